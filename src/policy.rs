//! Host contact policy: an async hook that may refuse a contact before a
//! code is sent (e.g. "this email is already registered", as the Django
//! recipe checks).
//!
//! A refusal answers `contact_rejected` with the status and message the host
//! chose. In **enumeration-safe** mode
//! ([`OtpBuilder::enumeration_safe`](crate::OtpBuilder::enumeration_safe)) a
//! refused contact instead gets exactly the answer an accepted one gets:
//! the same limits apply, a code is generated, hashed and stored (so verify
//! answers alike: wrong codes count down, then the code is destroyed), but
//! nothing is sent. Delivery to accepted contacts then runs in the
//! background, so the answer's timing does not depend on the provider; a
//! delivery failure is logged (and the code deleted, the cooldown released)
//! instead of answered as 502.
//!
//! ```
//! use tower_otp::{Otp, policy::{PolicyDecision, from_fn}};
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .contact_policy(from_fn(|contact| async move {
//!         if contact.as_str().ends_with("@registered.example") {
//!             PolicyDecision::reject(http::StatusCode::CONFLICT, "This email is already registered.")
//!         } else {
//!             PolicyDecision::Allow
//!         }
//!     }))
//!     .build()
//!     .unwrap();
//! ```

use std::{fmt, future::Future};

use async_trait::async_trait;
use http::StatusCode;

use crate::contact::Contact;

/// What the host decided about a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyDecision {
    /// Send the code.
    Allow,
    /// Refuse with this status (a 4xx) and message.
    Reject {
        /// The status (a 4xx; anything else becomes 403).
        status: StatusCode,
        /// The message shown to the user.
        message: String,
    },
}

impl PolicyDecision {
    /// A refusal with a 4xx status and a plain message.
    pub fn reject(status: StatusCode, message: impl Into<String>) -> Self {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::FORBIDDEN
        };
        Self::Reject {
            status,
            message: message.into(),
        }
    }
}

/// Decides whether a contact may be sent a code.
#[async_trait]
pub trait ContactPolicy: Send + Sync + fmt::Debug + 'static {
    /// Called for every send, after the contact was validated and
    /// normalized.
    async fn check(&self, contact: &Contact) -> PolicyDecision;
}

/// A [`ContactPolicy`] made from an async closure; see [`from_fn`].
pub struct PolicyFn<F>(F);

impl<F> fmt::Debug for PolicyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyFn")
    }
}

/// A policy from an async closure taking the normalized contact.
pub fn from_fn<F, Fut>(f: F) -> PolicyFn<F>
where
    F: Fn(Contact) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = PolicyDecision> + Send + 'static,
{
    PolicyFn(f)
}

#[async_trait]
impl<F, Fut> ContactPolicy for PolicyFn<F>
where
    F: Fn(Contact) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = PolicyDecision> + Send + 'static,
{
    async fn check(&self, contact: &Contact) -> PolicyDecision {
        (self.0)(contact.clone()).await
    }
}
