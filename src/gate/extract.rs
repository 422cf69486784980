//! Gating handlers on proven contacts.
//!
//! - [`VerifiedContact`]: at least one channel proven.
//! - [`VerifiedEmail`] / [`VerifiedMobile`]: that channel required.
//!
//! With the `axum` feature these are `FromRequestParts` extractors; a caller
//! without a valid grant gets 401 `verification_required` (JSON, from the one
//! error table). They read the grant from the `x-verification-token` header
//! (configurable) or the `__Host-otp_verification` cookie (`otp_verification`
//! when the cookie is not Secure; in Secure mode only the `__Host-` name is
//! read).
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
//! async fn register(VerifiedEmail(email, _): VerifiedEmail, VerifiedMobile(mobile, _): VerifiedMobile)
//!     -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "email": email.as_str(), "mobile": mobile.as_str() }))
//! }
//!
//! let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
//! let app: Router = Router::new().route("/register", post(register)).layer(otp.layer());
//! ```

use std::{
    marker::PhantomData,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::{HeaderName, request::Parts};

pub use super::proof::VerifiedContact;
use super::{
    codec::GrantCodec,
    location::{DEFAULT_TOKEN_HEADER, GRANT_COOKIE, GrantLocation, SECURE_GRANT_COOKIE},
};
use crate::{
    contact::{Email, Mobile},
    error::{ApiError, ErrorFormat, ErrorShape},
    purpose::{Purpose, Verify},
    store::{OtpStore, StoreKey},
};

/// A proven email address (the grant must cover email, proven for purpose
/// `P`: by default [`Verify`], the default purpose; `VerifiedEmail<Login>`
/// accepts only a proof made for `login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEmail<P: Purpose = Verify>(pub Email, pub PhantomData<P>);

/// A proven mobile number (the grant must cover mobile, proven for purpose
/// `P`, by default [`Verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMobile<P: Purpose = Verify>(pub Mobile, pub PhantomData<P>);

impl<P: Purpose> VerifiedEmail<P> {
    /// The proven address.
    pub fn into_inner(self) -> Email {
        self.0
    }
}

impl<P: Purpose> VerifiedMobile<P> {
    /// The proven number.
    pub fn into_inner(self) -> Mobile {
        self.0
    }
}

/// The grant checker the layer puts in the extensions of every
/// passed-through request that may carry a grant: the keys that verify
/// grants, where grants travel, and how errors are shaped. It holds nothing
/// of the send/verify flow.
#[derive(Debug, Clone)]
pub struct GrantChecker {
    inner: Arc<CheckerInner>,
}

#[derive(Debug)]
struct CheckerInner {
    codec: GrantCodec,
    location: GrantLocation,
    format: ErrorFormat,
    /// Single-use mode: the store where accepted grants are recorded as
    /// spent.
    spent_in: Option<Arc<dyn OtpStore>>,
}

/// The grant this request already spent (several extractors in one
/// handler accept it once).
#[derive(Debug, Clone)]
struct SpentHere(String);

/// The name this type had before it held only the grant checker.
pub type OtpHandle = GrantChecker;

impl GrantChecker {
    pub(crate) fn new(
        codec: GrantCodec,
        location: GrantLocation,
        format: ErrorFormat,
        spent_in: Option<Arc<dyn OtpStore>>,
    ) -> Self {
        Self {
            inner: Arc::new(CheckerInner {
                codec,
                location,
                format,
                spent_in,
            }),
        }
    }

    /// Whether grants are single-use (recorded as spent the first time an
    /// extractor accepts them).
    pub fn single_use(&self) -> bool {
        self.inner.spent_in.is_some()
    }

    /// In single-use mode, records `grant` as spent: `Ok(true)` the first
    /// time (and again within the request that spent it), `Ok(false)` on a
    /// replay. Fails closed (503) when the store cannot be reached.
    async fn spend(
        &self,
        parts: &mut Parts,
        grant: &VerifiedContact,
    ) -> Result<bool, VerificationRejection> {
        let Some(store) = &self.inner.spent_in else {
            return Ok(true);
        };
        // Grants issued before single-use mode had no id: not accepted.
        let Some(id) = grant.id() else {
            return Ok(false);
        };
        if parts
            .extensions
            .get::<SpentHere>()
            .is_some_and(|spent| spent.0 == id)
        {
            return Ok(true);
        }
        match record_spent(store.as_ref(), id, grant).await {
            Ok(true) => {
                parts.extensions.insert(SpentHere(id.to_owned()));
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(error) => {
                tracing::error!(error = %error, "could not record a single-use grant as spent");
                let refusal = if error.is_unavailable() {
                    ApiError::StoreUnavailable
                } else {
                    ApiError::Internal
                };
                Err(self.rejection(parts, refusal))
            }
        }
    }

    /// Whether a held grant may be carried into a new one (a verify of the
    /// other channel). In single-use mode only an unspent grant may, and
    /// carrying it spends it: a spent grant cannot be revived by merging.
    /// A store failure refuses (fail closed).
    pub(crate) async fn claim_held(&self, grant: &VerifiedContact) -> bool {
        let Some(store) = &self.inner.spent_in else {
            return true;
        };
        let Some(id) = grant.id() else {
            return false;
        };
        record_spent(store.as_ref(), id, grant)
            .await
            .unwrap_or_else(|error| {
                tracing::error!(error = %error, "could not record a held single-use grant as spent");
                false
            })
    }

    /// The grant carried by these request parts, if valid.
    pub fn grant(&self, parts: &Parts) -> Option<VerifiedContact> {
        self.inner
            .codec
            .find_in_headers(&parts.headers, &self.inner.location)
    }

    pub(crate) fn codec(&self) -> &GrantCodec {
        &self.inner.codec
    }

    pub(crate) fn location(&self) -> &GrantLocation {
        &self.inner.location
    }

    fn rejection(&self, parts: &Parts, error: ApiError) -> VerificationRejection {
        VerificationRejection {
            error,
            shape: self.inner.format.shape_for(&parts.headers),
        }
    }
}

/// Why an extractor refused a request. Answers 401 `verification_required`,
/// or 500 `internal` when the layer is not mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRejection {
    error: ApiError,
    shape: ErrorShape,
}

impl VerificationRejection {
    /// The error answered to the client.
    pub fn error(&self) -> &ApiError {
        &self.error
    }

    /// The HTTP status answered.
    pub fn status(&self) -> http::StatusCode {
        self.error.status()
    }

    /// The response, rendered by the crate's one error renderer in the
    /// shape the layer's configuration and the request's `Accept` ask for.
    pub fn to_response(&self) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        self.error.render(self.shape)
    }
}

impl std::fmt::Display for VerificationRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for VerificationRejection {}

impl From<VerificationRejection> for ApiError {
    fn from(rejection: VerificationRejection) -> Self {
        rejection.error
    }
}

/// Set once any `OtpService` exists in this process.
static LAYER_MOUNTED: AtomicBool = AtomicBool::new(false);

/// Records that an `OtpLayer` wrapped a service.
pub(crate) fn note_layer_mounted() {
    LAYER_MOUNTED.store(true, Ordering::Relaxed);
}

/// Records the grant `id` as spent until the grant expires; `true` the first
/// time.
async fn record_spent(
    store: &dyn OtpStore,
    id: &str,
    grant: &VerifiedContact,
) -> Result<bool, crate::store::StoreError> {
    let ttl = grant
        .valid_until()
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    store
        .spend_grant(&StoreKey::new(format!("grant-{id}")), ttl)
        .await
}

/// The checker the layer left in the request, if any.
///
/// To keep the passthrough path free of allocations, the layer adds the
/// checker only to requests that carry something like a grant. So no checker
/// means either "no grant" (answered 401, or `None`) or "no layer": the
/// latter when the request does carry a grant, or when no `OtpLayer` exists
/// in the process at all (answered 500 with a hint in the log).
fn checker(parts: &Parts) -> Result<Option<&GrantChecker>, VerificationRejection> {
    if let Some(checker) = parts.extensions.get::<GrantChecker>() {
        return Ok(Some(checker));
    }
    // The layer's own test, with the default header and either cookie name
    // (no layer, no config).
    static DEFAULT_LOCATIONS: LazyLock<[GrantLocation; 2]> = LazyLock::new(|| {
        let header = HeaderName::from_static(DEFAULT_TOKEN_HEADER);
        [
            GrantLocation::new(&header, SECURE_GRANT_COOKIE),
            GrantLocation::new(&header, GRANT_COOKIE),
        ]
    });
    let carries_grant = DEFAULT_LOCATIONS
        .iter()
        .any(|location| location.may_carry(&parts.headers));
    if carries_grant || !LAYER_MOUNTED.load(Ordering::Relaxed) {
        tracing::error!(
            "tower-otp extractor used without the layer: is `OtpLayer` mounted in front of this handler?"
        );
        return Err(VerificationRejection {
            error: ApiError::Internal,
            shape: ErrorFormat::Contract.shape_for(&parts.headers),
        });
    }
    Ok(None)
}

/// What the grant in these parts proves for this extractor (`take`), spent
/// in single-use mode: `Ok(None)` for no (or a replayed) grant; `Err` without
/// the layer, or when a spend cannot be recorded.
async fn accepted<T>(
    parts: &mut Parts,
    take: impl FnOnce(VerifiedContact) -> Option<T>,
) -> Result<Option<T>, VerificationRejection> {
    let Some(checker) = checker(parts)?.cloned() else {
        return Ok(None);
    };
    let Some(grant) = checker.grant(parts) else {
        return Ok(None);
    };
    // Spend only what this extractor accepts (an email-only grant is not
    // spent by `VerifiedMobile`).
    let Some(proven) = take(grant.clone()) else {
        return Ok(None);
    };
    Ok(checker.spend(parts, &grant).await?.then_some(proven))
}

/// The grant these parts carry, or the 401 rejection.
async fn required<T>(
    parts: &mut Parts,
    take: impl FnOnce(VerifiedContact) -> Option<T>,
) -> Result<T, VerificationRejection> {
    accepted(parts, take).await?.ok_or_else(|| {
        let format = parts
            .extensions
            .get::<GrantChecker>()
            .map_or(ErrorFormat::Contract, |c| c.inner.format);
        VerificationRejection {
            error: ApiError::VerificationRequired,
            shape: format.shape_for(&parts.headers),
        }
    })
}

/// Checks the grant in a request's parts: the plain function for hosts that
/// do not use axum.
///
/// Errors with 401 `verification_required` when no valid grant is present,
/// and with 500 `internal` when the layer is not mounted. With single-use
/// grants ([`OtpBuilder::single_use_grants`](crate::OtpBuilder::single_use_grants))
/// it cannot record the spend: it answers 500 and logs that
/// [`verify_parts_once`] is needed.
pub fn verify_parts(parts: &Parts) -> Result<VerifiedContact, VerificationRejection> {
    let Some(checker) = checker(parts)? else {
        return Err(VerificationRejection {
            error: ApiError::VerificationRequired,
            shape: ErrorFormat::Contract.shape_for(&parts.headers),
        });
    };
    if checker.single_use() {
        tracing::error!("grants are single-use: check them with `verify_parts_once`");
        return Err(checker.rejection(parts, ApiError::Internal));
    }
    checker
        .grant(parts)
        .filter(|grant| !grant.is_empty())
        .ok_or_else(|| checker.rejection(parts, ApiError::VerificationRequired))
}

/// [`verify_parts`] that also spends single-use grants (a replay is 401),
/// for hosts that do not use axum.
pub async fn verify_parts_once(
    parts: &mut Parts,
) -> Result<VerifiedContact, VerificationRejection> {
    required(parts, |grant| (!grant.is_empty()).then_some(grant)).await
}

/// The extractors' common shape: what each takes from a valid grant.
#[cfg(feature = "axum")]
trait FromGrant: Sized {
    fn from_grant(grant: VerifiedContact) -> Option<Self>;
}

#[cfg(feature = "axum")]
impl<P: Purpose> FromGrant for VerifiedContact<P> {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        let view = grant.view::<P>();
        (!view.is_empty()).then_some(view)
    }
}

#[cfg(feature = "axum")]
impl<P: Purpose> FromGrant for VerifiedEmail<P> {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        grant
            .view::<P>()
            .into_email()
            .map(|email| VerifiedEmail(email, PhantomData))
    }
}

#[cfg(feature = "axum")]
impl<P: Purpose> FromGrant for VerifiedMobile<P> {
    fn from_grant(grant: VerifiedContact) -> Option<Self> {
        grant
            .view::<P>()
            .into_mobile()
            .map(|mobile| VerifiedMobile(mobile, PhantomData))
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
        FromGrant, Purpose, VerificationRejection, VerifiedContact, VerifiedEmail, VerifiedMobile,
        accepted, required,
    };

    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl IntoResponse for VerificationRejection {
        fn into_response(self) -> Response {
            self.to_response().map(axum_core::body::Body::new)
        }
    }

    macro_rules! extractor {
        ($ty:ty) => {
            #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
            impl<S: Send + Sync, P: Purpose> FromRequestParts<S> for $ty {
                type Rejection = VerificationRejection;

                async fn from_request_parts(
                    parts: &mut Parts,
                    _state: &S,
                ) -> Result<Self, Self::Rejection> {
                    required(parts, <$ty>::from_grant).await
                }
            }

            #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
            impl<S: Send + Sync, P: Purpose> OptionalFromRequestParts<S> for $ty {
                type Rejection = VerificationRejection;

                async fn from_request_parts(
                    parts: &mut Parts,
                    _state: &S,
                ) -> Result<Option<Self>, Self::Rejection> {
                    accepted(parts, <$ty>::from_grant).await
                }
            }
        };
    }

    extractor!(VerifiedContact<P>);
    extractor!(VerifiedEmail<P>);
    extractor!(VerifiedMobile<P>);
}
