//! # tower-otp
//!
//! Email and SMS one-time-code verification for any Tower-based server
//! (axum first, plain hyper too), as one layer.
//!
//! 1. **Mount**: build an [`Otp`] once and add [`Otp::layer`] to your app.
//!    The layer serves four JSON routes (`POST /send-otp/`, `/verify-otp/`,
//!    `/send-mobile-otp/`, `/verify-mobile-otp/`) and passes every other
//!    request through untouched.
//! 2. **Configure**: the [`OtpBuilder`] setters (or [`OtpBuilder::from_env`])
//!    choose the store, the senders and the limits. The defaults are the
//!    secure ones in [`OtpConfig::default`].
//! 3. **Gate**: handlers that take [`VerifiedEmail`], [`VerifiedMobile`] or
//!    [`VerifiedContact`] run only once the caller proved that contact.
//! 4. **Test**: [`MemoryOutbox`](delivery::MemoryOutbox) captures what would
//!    have been sent, so your own tests can read the code and finish a flow.
//!
//! ```
//! use axum::{Router, routing::{get, post}, Json};
//! use tower_otp::{Otp, VerifiedEmail};
//!
//! async fn profile(VerifiedEmail(email): VerifiedEmail) -> String {
//!     format!("hello {}", email.as_str())
//! }
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .build()
//!     .expect("valid configuration");
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "home" }))
//!     .route("/profile", get(profile))
//!     .layer(otp.layer());
//! ```
//!
//! ## Security defaults
//!
//! 6-digit codes from the OS CSPRNG, stored only as Argon2id hashes keyed
//! with the server secret, 5-minute lifetime, 5 attempts per code, 30 s
//! resend cooldown, 5 sends per contact per 10 minutes, 4 KiB body limit,
//! grants signed with HMAC-SHA256 in an HttpOnly, SameSite=Lax, Secure
//! cookie. Codes never appear in logs; contacts are masked.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `FromRequestParts` extractors, `ConnectInfo` client-IP lookup |
//! | `redis` | yes | `RedisStore` (deadpool-redis, cluster-ready) |
//! | `smtp` | yes | `SmtpSender` (lettre, rustls) |
//! | `sendgrid` | yes | `SendGridSender` (reqwest, rustls) |
//! | `twilio` | yes | `TwilioVerify`, `TwilioMessaging` (reqwest, rustls) |
//! | `metrics` | no | counters through the `metrics` facade |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
mod code;
pub mod config;
pub mod contact;
pub mod delivery;
mod engine;
pub mod error;
pub mod extract;
mod grant;
pub mod hash;
pub mod limit;
pub mod middleware;
pub mod notify;
mod otp;
pub mod policy;
mod routes;
mod secret;
pub mod store;
pub mod template;
pub mod test_mode;

pub use code::{MAX_CODE_LENGTH, MIN_CODE_LENGTH};
pub use config::OtpConfig;
pub use contact::{Channel, Contact, Email, Mobile, Region};
pub use error::{ApiError, ConfigError};
pub use extract::{
    VerificationRejection, VerifiedContact, VerifiedEmail, VerifiedMobile, verify_parts,
};
pub use limit::client_ip::{ClientAddr, TrustedProxies};
pub use middleware::{OtpLayer, OtpService};
pub use notify::{Notifier, NotifyError};
pub use otp::{MIN_SECRET_LEN, Otp, OtpBuilder};
pub use secret::Secret;
pub use store::{MemoryStore, OtpStore, StoreError};
