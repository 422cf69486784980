//! The gate in front of the host's handlers: the signed grant
//! ([`codec`]), where it travels ([`location`]: the token header and the
//! grant cookie, one parser for both), and the extractors ([`extract`])
//! that hold only a grant checker, never the send/verify flow.

pub(crate) mod codec;
pub mod extract;
pub(crate) mod location;
pub(crate) mod proof;
