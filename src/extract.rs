//! Gating handlers on proven contacts.
//!
//! - [`VerifiedContact`]: at least one channel proven.
//! - [`VerifiedEmail`] / [`VerifiedMobile`]: that channel required.
//!
//! With the `axum` feature these are `FromRequestParts` extractors; a caller
//! without a valid grant gets 401 `verification_required` (JSON, from the one
//! error table). They read the grant from the `x-verification-token` header
//! (configurable) or the `otp_verification` cookie.
//!
//! `Option<VerifiedContact>` (and the other two) never reject for a missing,
//! tampered, expired or wrong-channel grant: they give `None`, so the
//! handler can ask for verification again. Only a missing layer is an error.
//!
//! If [`OtpLayer`](crate::OtpLayer) is not mounted in front of the handler,
//! the extractors answer 500 `internal` and log a hint; the hint never
//! reaches the client. (To keep passthrough requests free of allocations, the
//! layer hands its grant checker only to requests that carry a grant cookie
//! or header; a missing layer is therefore detected when a grant reaches a
//! handler without it, or when no `OtpLayer` exists in the process.)
//!
//! Hosts that do not use axum call [`verify_parts`] on the request parts.
//!
//! ```
//! use axum::{Router, routing::post, Json};
//! use tower_otp::{Otp, VerifiedEmail, VerifiedMobile};
//!
//! async fn register(VerifiedEmail(email): VerifiedEmail, VerifiedMobile(mobile): VerifiedMobile)
//!     -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "email": email.as_str(), "mobile": mobile.as_str() }))
//! }
//!
//! let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
//! let app: Router = Router::new().route("/register", post(register)).layer(otp.layer());
//! ```

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use http::{HeaderName, request::Parts};

use crate::{
    config::{DEFAULT_TOKEN_HEADER, GRANT_COOKIE},
    contact::{Email, Mobile},
    engine::Engine,
    error::ApiError,
    grant::GrantSniffer,
};

/// What a valid grant proves: at least one of an email address and a mobile
/// number, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContact {
    email: Option<Email>,
    mobile: Option<Mobile>,
    expires_at: SystemTime,
}

impl Default for VerifiedContact {
    fn default() -> Self {
        Self {
            email: None,
            mobile: None,
            expires_at: SystemTime::UNIX_EPOCH,
        }
    }
}

impl VerifiedContact {
    pub(crate) fn new(
        email: Option<Email>,
        mobile: Option<Mobile>,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            email,
            mobile,
            expires_at,
        }
    }

    /// The proven email address, if any.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// The proven mobile number, if any.
    pub fn mobile(&self) -> Option<&Mobile> {
        self.mobile.as_ref()
    }

    /// When the grant stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// A proven email address (the grant must cover email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEmail(pub Email);

/// A proven mobile number (the grant must cover mobile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMobile(pub Mobile);

/// The handle the layer puts in every passed-through request's extensions,
/// through which the extractors check grants.
#[derive(Debug, Clone)]
pub struct OtpHandle {
    engine: Arc<Engine>,
}

impl OtpHandle {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The grant carried by these request parts, if valid.
    pub fn grant(&self, parts: &Parts) -> Option<VerifiedContact> {
        let config = &self.engine.config;
        self.engine
            .grants
            .find_in_headers(&parts.headers, &config.token_header, GRANT_COOKIE)
    }
}

/// Why an extractor refused a request. Answers 401 `verification_required`,
/// or 500 `internal` when the layer is not mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRejection(ApiError);

impl VerificationRejection {
    /// The error answered to the client.
    pub fn error(&self) -> &ApiError {
        &self.0
    }

    /// The HTTP status answered.
    pub fn status(&self) -> http::StatusCode {
        self.0.status()
    }
}

impl std::fmt::Display for VerificationRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for VerificationRejection {}

impl From<VerificationRejection> for ApiError {
    fn from(rejection: VerificationRejection) -> Self {
        rejection.0
    }
}

/// Set once any `OtpService` exists in this process.
static LAYER_MOUNTED: AtomicBool = AtomicBool::new(false);

/// Records that an `OtpLayer` wrapped a service.
pub(crate) fn note_layer_mounted() {
    LAYER_MOUNTED.store(true, Ordering::Relaxed);
}

/// The handle the layer left in the request, if any.
///
/// To keep the passthrough path free of allocations, the layer adds the
/// handle only to requests that carry something like a grant. So no handle
/// means either "no grant" (answered 401, or `None`) or "no layer": the
/// latter when the request does carry a grant, or when no `OtpLayer` exists
/// in the process at all (answered 500 with a hint in the log).
fn handle(parts: &Parts) -> Result<Option<&OtpHandle>, VerificationRejection> {
    if let Some(handle) = parts.extensions.get::<OtpHandle>() {
        return Ok(Some(handle));
    }
    // The layer's own test, with the default header (no layer, no config).
    static DEFAULT_SNIFFER: LazyLock<GrantSniffer> = LazyLock::new(|| {
        GrantSniffer::new(&HeaderName::from_static(DEFAULT_TOKEN_HEADER), GRANT_COOKIE)
    });
    let carries_grant = DEFAULT_SNIFFER.may_carry(&parts.headers);
    if carries_grant || !LAYER_MOUNTED.load(Ordering::Relaxed) {
        tracing::error!(
            "tower-otp extractor used without the layer: is `OtpLayer` mounted in front of this handler?"
        );
        return Err(VerificationRejection(ApiError::Internal));
    }
    Ok(None)
}

/// Checks the grant in a request's parts: the plain function for hosts that
/// do not use axum.
///
/// Errors with 401 `verification_required` when no valid grant is present,
/// and with 500 `internal` when the layer is not mounted.
pub fn verify_parts(parts: &Parts) -> Result<VerifiedContact, VerificationRejection> {
    handle(parts)?
        .and_then(|h| h.grant(parts))
        .ok_or(VerificationRejection(ApiError::VerificationRequired))
}

/// The extractors' common shape: what each takes from a valid grant.
#[cfg(feature = "axum")]
trait FromGrant: Sized {
    fn from_grant(grant: VerifiedContact) -> Option<Self>;
}

#[cfg(feature = "axum")]
impl FromGrant for VerifiedContact {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        Some(grant)
    }
}

#[cfg(feature = "axum")]
impl FromGrant for VerifiedEmail {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        grant.email.map(VerifiedEmail)
    }
}

#[cfg(feature = "axum")]
impl FromGrant for VerifiedMobile {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        grant.mobile.map(VerifiedMobile)
    }
}

#[cfg(feature = "axum")]
mod axum_impls {
    use axum_core::{
        extract::{FromRequestParts, OptionalFromRequestParts},
        response::{IntoResponse, Response},
    };
    use http::request::Parts;

    use super::{
        FromGrant, VerificationRejection, VerifiedContact, VerifiedEmail, VerifiedMobile, handle,
    };
    use crate::error::ApiError;

    impl IntoResponse for VerificationRejection {
        fn into_response(self) -> Response {
            self.0.into_response()
        }
    }

    macro_rules! extractor {
        ($ty:ty) => {
            impl<S: Send + Sync> FromRequestParts<S> for $ty {
                type Rejection = VerificationRejection;

                async fn from_request_parts(
                    parts: &mut Parts,
                    _state: &S,
                ) -> Result<Self, Self::Rejection> {
                    handle(parts)?
                        .and_then(|h| h.grant(parts))
                        .and_then(<$ty>::from_grant)
                        .ok_or(VerificationRejection(ApiError::VerificationRequired))
                }
            }

            impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
                type Rejection = VerificationRejection;

                async fn from_request_parts(
                    parts: &mut Parts,
                    _state: &S,
                ) -> Result<Option<Self>, Self::Rejection> {
                    Ok(handle(parts)?
                        .and_then(|h| h.grant(parts))
                        .and_then(<$ty>::from_grant))
                }
            }
        };
    }

    extractor!(VerifiedContact);
    extractor!(VerifiedEmail);
    extractor!(VerifiedMobile);
}
