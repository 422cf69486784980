//! Test support for hosts and for other stores (feature `test-util`).
//!
//! - [`store_conformance!`](crate::store_conformance): the behaviour suite
//!   every [`OtpStore`](crate::OtpStore) must pass (expiry, replace on
//!   resend, attempts, single use, cooldown, quota, concurrency; directly and
//!   through the layer). A crate with its own store runs it with one line:
//!
//! ```ignore
//! // tests/conformance.rs of a crate with `tower-otp = { features = ["test-util"] }`
//! use tower_otp::test_util::Harness;
//!
//! tower_otp::store_conformance!(my_store, || async {
//!     Some(Harness::new(my_crate::MyStore::connect().await, ()))
//! });
//! ```
//!
//! - For a host's own flow tests, [`MemoryOutbox`](crate::delivery::MemoryOutbox)
//!   captures messages and can be told to fail
//!   ([`MemoryOutbox::fail_next`](crate::delivery::MemoryOutbox::fail_next)).

pub mod store_suite;

#[doc(inline)]
pub use crate::store_conformance;
pub use store_suite::{
    Harness, code_for, email, post, random_key, random_secret, record, send, verify, wrong,
};

#[doc(inline)]
pub use crate::delivery::memory::Failure;
