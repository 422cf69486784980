//! # tower-otp
//!
//! Email and SMS one-time-code verification for any Tower-based server
//! (axum first, plain hyper too), as one layer.
//!
//! 1. **Mount**: build an [`Otp`] once and add [`Otp::layer`] to your app.
//!    The layer serves four JSON routes (`POST /send-otp/`, `/verify-otp/`,
//!    `/send-mobile-otp/`, `/verify-mobile-otp/`) and passes every other
//!    request through untouched. It must wrap the outermost router; to place
//!    the routes with axum's routing (`nest("/api", ..)`, `merge`), use
//!    [`Otp::router`] for the routes and [`Otp::gate_layer`] for the gate.
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
//! async fn profile(VerifiedEmail(email, _): VerifiedEmail) -> String {
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
//! ## Configure
//!
//! Every setter states its default; `build` validates and names the field at
//! fault. From the environment, [`OtpBuilder::from_env`] reads the Django
//! recipe's variables (`EMAIL_SERVER`, `REDIS_OTP_URL`, `TWILIO_*`, …) and
//! the crate's own `OTP_*` ones.
//!
//! ```
//! use std::time::Duration;
//! use tower_otp::{Otp, Region, store::MemoryStore, delivery::ConsoleSender};
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .store(MemoryStore::with_max_entries(50_000))
//!     .email_sender(ConsoleSender::new())
//!     .code_ttl(Duration::from_secs(600))
//!     .default_region(Region::IN)
//!     .prefix("/api")
//!     .build()
//!     .unwrap();
//! assert_eq!(otp.config().code_length, 6);
//! ```
//!
//! ## Test your app
//!
//! Argon2 compiled without optimisation is about 20× slower, and a
//! library's profiles do not reach the app that depends on it: add to your
//! app's `Cargo.toml` (the `test` profile inherits them; with the
//! `simd-argon2` backend, name `argon2-rust` instead):
//!
//! ```toml
//! [profile.dev.package.argon2]
//! opt-level = 3
//! [profile.dev.package.blake2]
//! opt-level = 3
//! ```
//!
//! In tests, use tiny hashing parameters ([`HashParams::insecure_fast`]) and
//! capture messages with [`MemoryOutbox`](delivery::MemoryOutbox):
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_otp::{Otp, VerifiedEmail, delivery::MemoryOutbox, hash::HashParams};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let outbox = MemoryOutbox::new();
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .hash_params(HashParams::insecure_fast()) // fast hashing in tests only
//!     .email_sender(outbox.clone())
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(|VerifiedEmail(e, _): VerifiedEmail| async move { e.as_str().to_owned() }))
//!     .layer(otp.layer());
//! let post = |path: &str, body: serde_json::Value| {
//!     Request::post(path)
//!         .header("content-type", "application/json")
//!         .body(Body::from(body.to_string()))
//!         .unwrap()
//! };
//!
//! app.clone().oneshot(post("/send-otp/", serde_json::json!({"email": "ada@example.com"}))).await.unwrap();
//! let code = outbox.last_code_for("ada@example.com").unwrap();
//! let res = app.clone()
//!     .oneshot(post("/verify-otp/", serde_json::json!({"email": "ada@example.com", "otp": code})))
//!     .await
//!     .unwrap();
//! let body: serde_json::Value =
//!     serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//! let token = body["token"].as_str().unwrap();
//!
//! let res = app
//!     .oneshot(Request::get("/me").header("x-verification-token", token).body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # });
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
//! | `rustcrypto-argon2` | yes | the hashing backend: RustCrypto's `argon2` (one backend is required) |
//! | `simd-argon2` | no | the other backend: `argon2-rust`, Argon2id on the CPU's vector unit; faster, young and unaudited (see the README); same hashes |
//! | `axum` | yes | `FromRequestParts` extractors, `Otp::router`, `ConnectInfo` client-IP lookup |
//! | `redis` | yes | `RedisStore` (pooled multiplexed connections, cluster-ready) |
//! | `redis-tls` | no | `rediss://` for `RedisStore` |
//! | `smtp` | yes | `SmtpSender` (lettre, rustls) |
//! | `sendgrid` | yes | `SendGridSender` (reqwest, rustls) |
//! | `twilio` | yes | `TwilioVerify`, `TwilioMessaging` (reqwest, rustls) |
//! | `webhooks` | yes | signed webhooks for OTP events (`events::webhook`, reqwest, rustls) |
//! | `metrics` | no | counters through the `metrics` facade |
//! | `test-util` | no | `Otp::grant_for_tests`, the store conformance suite, `MemoryOutbox` failures |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Composition: the handle and its builder, the configuration as plain
// data, and the environment table.
pub mod admin;
pub mod config;
pub mod env;
mod otp;
pub mod production;
pub mod readiness;
// HTTP: the layer and its routes.
pub mod middleware;
mod routes;
// Domain: the send/verify flow, and the gate (grants and extractors).
mod engine;
mod gate;
pub use gate::extract;
// Services.
pub mod audit;
pub mod delivery;
pub mod events;
pub mod limit;
pub mod link;
pub mod notify;
pub mod policy;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod test_mode;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
// Primitives.
mod argon;
mod code;
pub mod contact;
pub mod error;
pub mod hash;
pub mod language;
pub mod purpose;
mod secret;
mod time;

pub use admin::Admin;
pub use code::{MAX_CODE_LENGTH, MIN_CODE_LENGTH};
pub use config::{OtpConfig, RoutePaths};
pub use contact::{Channel, Channels, Contact, Email, Mobile, Region};
pub use delivery::{EmailSender, RetryPolicy, SmsSender, SmsVerifier};
pub use error::{ApiError, ConfigError, ErrorFormat};
pub use extract::{
    GrantChecker, VerificationRejection, VerifiedContact, VerifiedEmail, VerifiedMobile,
    verify_parts, verify_parts_once,
};
pub use hash::{HashParams, HashThreadPriority};
pub use language::Languages;
pub use limit::client_ip::{ClientAddr, ForwardedHeader, TrustedProxies};
pub use limit::shared::SharedRateLimiter;
pub use limit::{Rule, RuleKey, RuleScope, sms_guard::SmsGuard};
pub use middleware::{OtpLayer, OtpService};
pub use notify::{Notifier, NotifyError};
pub use otp::{MIN_SECRET_LEN, Otp, OtpBuilder};
pub use policy::{ContactPolicy, PolicyDecision};
pub use secret::Secret;
pub use store::{MemoryStore, OtpStore, StoreError};
pub use test_mode::TestContacts;
