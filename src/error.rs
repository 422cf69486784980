//! The one error table of the HTTP contract and its JSON renderer.
//!
//! Every error a client can see, from the four routes or from the
//! extractors, is an [`ApiError`]. Its [`code`](ApiError::code),
//! [`status`](ApiError::status) and [`message`](ApiError::message) are fixed
//! here, and [`ApiError::to_response`] is the single place that renders the
//! `{"status":"error","code":…,"message":…}` body, so the shape cannot drift
//! between the routes and the extractor rejection.
//!
//! Messages are plain words for end users. They never carry internals: store,
//! SMTP or provider error text goes to the log only.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

/// The `tracing` target under which rejections are logged.
pub(crate) const REJECTION_TARGET: &str = "tower_otp::rejection";

/// An error answered to a client, one variant per row of the contract's table.
///
/// ```
/// use tower_otp::ApiError;
///
/// let err = ApiError::OtpInvalid { attempts_left: 2 };
/// assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
/// assert_eq!(err.code(), "otp_invalid");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not a JSON object (or not UTF-8, or empty).
    InvalidJson,
    /// 400: a required field is absent, `null` or empty.
    MissingField {
        /// The name of the missing field.
        field: &'static str,
    },
    /// 400: the value cannot be a deliverable email address.
    InvalidEmail,
    /// 400: the value cannot be a deliverable mobile number.
    InvalidMobile,
    /// 400 `invalid_mobile`: a valid number that cannot receive SMS (a
    /// landline, a premium-rate or shared-cost number); the message says so.
    CannotReceiveSms,
    /// 400: the `"channel"` of a mobile send is not `sms` or `whatsapp`,
    /// not a string, or a channel this server is not configured for.
    InvalidChannel,
    /// 400: the code is not exactly the configured number of digits.
    InvalidOtpFormat {
        /// The configured code length.
        length: u8,
    },
    /// 400: the `"purpose"` is not a registered purpose name.
    InvalidPurpose,
    /// 400: wrong code.
    OtpInvalid {
        /// How many more wrong codes are allowed before the code is destroyed.
        attempts_left: u32,
    },
    /// 400: no live code: never sent, expired, or already used.
    OtpExpired,
    /// 401: the extractor found no valid grant for what the handler needs.
    VerificationRequired,
    /// 403: an email sign-in link bound to the browser that asked for the
    /// code was used without that browser's device cookie: type the code
    /// instead.
    DeviceMismatch,
    /// 403: an email link POST sent by a page of another site (login
    /// CSRF: a form elsewhere must not sign this browser in).
    CrossSite,
    /// 405: not POST on an OTP path.
    MethodNotAllowed,
    /// 408: the body did not arrive within the configured deadline.
    RequestTimeout,
    /// 413: the body is above the configured limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: the Content-Type is not `application/json`.
    UnsupportedMediaType,
    /// 429: too many wrong codes; the code is destroyed.
    AttemptsExceeded,
    /// 429: IP limit, resend cooldown or send quota.
    RateLimited {
        /// Seconds until a retry may succeed (at least 1).
        retry_after: u64,
    },
    /// 429 `rate_limited`: the SMS fraud breaker blocks the number's range
    /// (see [`sms_breaker`](crate::limit::sms_breaker)). Rendered exactly as
    /// [`RateLimited`](Self::RateLimited); a variant of its own so that the
    /// event is `range_blocked`.
    RangeBlocked {
        /// Seconds until the block ends (at least 1).
        retry_after: u64,
    },
    /// 4xx: the host's policy refused the contact.
    ContactRejected {
        /// The status the host chose (a 4xx).
        status: StatusCode,
        /// The message the host chose.
        message: String,
    },
    /// 502: the email or SMS provider failed after retries.
    DeliveryFailed,
    /// 503: the store cannot be reached.
    StoreUnavailable,
    /// 503: the hashing pool's queue is full.
    Overloaded {
        /// Seconds after which to retry.
        retry_after: u64,
    },
    /// 500: anything else.
    Internal,
}

impl ApiError {
    /// A `contact_rejected` refusal with the host's own status (a 4xx;
    /// anything else becomes 403) and message, for host handlers that want
    /// the contract's error body.
    pub fn contact_rejected(status: StatusCode, message: impl Into<String>) -> Self {
        Self::ContactRejected {
            status: if status.is_client_error() {
                status
            } else {
                StatusCode::FORBIDDEN
            },
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson
            | Self::MissingField { .. }
            | Self::InvalidEmail
            | Self::InvalidMobile
            | Self::CannotReceiveSms
            | Self::InvalidChannel
            | Self::InvalidOtpFormat { .. }
            | Self::InvalidPurpose
            | Self::OtpInvalid { .. }
            | Self::OtpExpired => StatusCode::BAD_REQUEST,
            Self::VerificationRequired => StatusCode::UNAUTHORIZED,
            Self::DeviceMismatch | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AttemptsExceeded | Self::RateLimited { .. } | Self::RangeBlocked { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::ContactRejected { status, .. } => *status,
            Self::DeliveryFailed => StatusCode::BAD_GATEWAY,
            Self::StoreUnavailable | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code, the `"code"` field of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidMobile | Self::CannotReceiveSms => "invalid_mobile",
            Self::InvalidChannel => "invalid_channel",
            Self::InvalidOtpFormat { .. } => "invalid_otp_format",
            Self::InvalidPurpose => "invalid_purpose",
            Self::OtpInvalid { .. } => "otp_invalid",
            Self::OtpExpired => "otp_expired",
            Self::VerificationRequired => "verification_required",
            Self::DeviceMismatch => "device_mismatch",
            Self::CrossSite => "cross_site",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::AttemptsExceeded => "attempts_exceeded",
            Self::RateLimited { .. } | Self::RangeBlocked { .. } => "rate_limited",
            Self::ContactRejected { .. } => "contact_rejected",
            Self::DeliveryFailed => "delivery_failed",
            Self::StoreUnavailable => "store_unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::Internal => "internal",
        }
    }

    /// The plain-words message, the `"message"` field of the JSON body.
    pub fn message(&self) -> String {
        match self {
            Self::InvalidJson => "The request body must be a JSON object.".into(),
            Self::MissingField { field } => format!("The field \"{field}\" is required."),
            Self::InvalidEmail => "Please enter a valid email address.".into(),
            Self::InvalidMobile => {
                "Please enter a valid mobile number in international format, e.g. +14155550123."
                    .into()
            }
            Self::CannotReceiveSms => "This number cannot receive text messages (for example a \
                 landline or a premium-rate number). Please enter a mobile number."
                .into(),
            Self::InvalidChannel => {
                "The channel must be \"sms\" or \"whatsapp\", and one this service offers.".into()
            }
            Self::InvalidOtpFormat { length } => {
                format!("The code must be exactly {length} digits.")
            }
            Self::InvalidPurpose => "The purpose is not one this service accepts.".into(),
            Self::OtpInvalid { attempts_left } => {
                format!("The code is incorrect. {attempts_left} attempt(s) left.")
            }
            Self::OtpExpired => {
                "The code has expired or was already used. Please request a new one.".into()
            }
            Self::VerificationRequired => "Please verify your contact details first.".into(),
            Self::DeviceMismatch => "This link works only in the browser where the code was \
                 requested. Please type the code from the email instead."
                .into(),
            Self::CrossSite => "This request came from another site. Open the link from the \
                 email instead."
                .into(),
            Self::MethodNotAllowed => {
                "This method is not allowed on this path (see the Allow header).".into()
            }
            Self::RequestTimeout => "The request body took too long to arrive.".into(),
            Self::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            Self::UnsupportedMediaType => "The Content-Type must be application/json.".into(),
            Self::AttemptsExceeded => "Too many incorrect codes. Please request a new code.".into(),
            Self::RateLimited { retry_after } | Self::RangeBlocked { retry_after } => {
                format!("Too many requests. Please try again in {retry_after} second(s).")
            }
            Self::ContactRejected { message, .. } => message.clone(),
            Self::DeliveryFailed => {
                "We could not deliver the code. Please try again in a moment.".into()
            }
            Self::StoreUnavailable | Self::Overloaded { .. } => {
                "The service is temporarily unavailable. Please try again shortly.".into()
            }
            Self::Internal => "Something went wrong on our side.".into(),
        }
    }

    /// The seconds to put in `Retry-After`, for the errors that carry one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after }
            | Self::RangeBlocked { retry_after }
            | Self::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The JSON body: `{"status":"error","code":…,"message":…}` plus the
    /// extra fields the contract names for this error.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("code".into(), json!(self.code()));
        body.insert("message".into(), json!(self.message()));
        match self {
            Self::MissingField { field } => {
                body.insert("field".into(), json!(field));
            }
            Self::InvalidPurpose => {
                body.insert("field".into(), json!("purpose"));
            }
            Self::InvalidChannel => {
                body.insert("field".into(), json!("channel"));
            }
            Self::OtpInvalid { attempts_left } => {
                body.insert("attempts_left".into(), json!(attempts_left));
            }
            Self::RateLimited { retry_after }
            | Self::RangeBlocked { retry_after }
            | Self::Overloaded { retry_after } => {
                body.insert("retry_after".into(), json!(retry_after));
            }
            _ => {}
        }
        Value::Object(body)
    }

    /// Renders the error as an HTTP response with the contract's JSON body,
    /// independent of any framework.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        self.render(ErrorShape::Contract)
    }

    /// The RFC 9457 problem details object: `type` (a URI ending in the
    /// machine code), `title`, `status`, `detail`, and as extension members
    /// `code` plus the fields the contract names for this error.
    pub fn to_problem_json(&self) -> Value {
        let Value::Object(mut body) = self.to_json() else {
            unreachable!("to_json builds an object")
        };
        body.remove("status");
        let detail = body.remove("message").unwrap_or_default();
        let status = self.status();
        body.insert(
            "type".into(),
            json!(format!("{PROBLEM_TYPE_BASE}{}", self.code())),
        );
        body.insert(
            "title".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("detail".into(), detail);
        Value::Object(body)
    }

    /// Renders the error in the given shape: the one place every refusal
    /// (routes, limits, extractors) is turned into a response.
    pub fn render(&self, shape: ErrorShape) -> Response<Full<Bytes>> {
        tracing::trace!(
            target: REJECTION_TARGET,
            status = self.status().as_u16(),
            code = self.code(),
            "rejecting request"
        );
        let mut response = match shape {
            ErrorShape::Contract => json_response(self.status(), &self.to_json()),
            ErrorShape::Problem => {
                let mut response = json_response(self.status(), &self.to_problem_json());
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                response
            }
        };
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, Self::MethodNotAllowed) {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// The media type of RFC 9457 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of the problem `type` URIs; the machine code is appended.
pub const PROBLEM_TYPE_BASE: &str = "urn:tower-otp:error:";

/// Which shape error bodies take, as configured
/// ([`OtpBuilder::error_format`](crate::OtpBuilder::error_format),
/// `OTP_ERROR_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorFormat {
    /// The seed-compatible `{"status":"error","code","message"}` body,
    /// unless the request's `Accept` prefers `application/problem+json`
    /// (strictly higher q than `application/json` and `*/*`). The default.
    #[default]
    Contract,
    /// Always RFC 9457 problem details.
    Problem,
}

/// The shape of one error response, decided per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorShape {
    /// `{"status":"error","code","message"}`.
    Contract,
    /// `application/problem+json`.
    Problem,
}

impl ErrorFormat {
    /// The shape for a request with these headers.
    pub fn shape_for(self, headers: &HeaderMap) -> ErrorShape {
        match self {
            Self::Problem => ErrorShape::Problem,
            Self::Contract if prefers_problem(headers) => ErrorShape::Problem,
            Self::Contract => ErrorShape::Contract,
        }
    }
}

/// Whether `Accept` gives `application/problem+json` a strictly higher q
/// than both `application/json` and `*/*` (an absent type counts as 0).
fn prefers_problem(headers: &HeaderMap) -> bool {
    let mut problem = 0u16;
    let mut json = 0u16;
    let mut any = 0u16;
    let mut seen = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1000), |(_, v)| parse_q(v.trim()));
            let Some(q) = q else { continue };
            let slot = if media.eq_ignore_ascii_case(PROBLEM_JSON) {
                &mut problem
            } else if media.eq_ignore_ascii_case("application/json") {
                &mut json
            } else if media == "*/*" {
                &mut any
            } else {
                continue;
            };
            seen = true;
            *slot = (*slot).max(q);
        }
    }
    seen && problem > json && problem > any
}

/// An RFC 9110 qvalue in thousandths (`0`, `0.5`, `1.000`); `None` when
/// malformed.
pub(crate) fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.status())
    }
}

impl std::error::Error for ApiError {}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for ApiError {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response().map(axum_core::body::Body::new)
    }
}

/// Renders any JSON value with the given status (also used for successes).
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Why an [`Otp`](crate::Otp) could not be built: names the field or
/// environment variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of its allowed range or malformed.
    #[error("invalid setting `{name}`: {reason}")]
    Invalid {
        /// The builder field or environment variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting that the chosen configuration needs is missing.
    #[error("missing setting `{name}`: {reason}")]
    Missing {
        /// The builder field or environment variable.
        name: &'static str,
        /// Why it is needed.
        reason: String,
    },
    /// A backend (store, sender) could not be set up.
    #[error("could not set up {what}: {source}")]
    Backend {
        /// Which backend.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Missing {
            name,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn problem_details_only_when_strictly_preferred() {
        let shape = |v: &str| ErrorFormat::Contract.shape_for(&accept(v));
        assert_eq!(shape("application/problem+json"), ErrorShape::Problem);
        assert_eq!(
            shape("application/problem+json, application/json;q=0.9"),
            ErrorShape::Problem
        );
        assert_eq!(
            shape("application/json, application/problem+json"),
            ErrorShape::Contract
        );
        assert_eq!(
            shape("application/problem+json;q=0.5, */*;q=0.5"),
            ErrorShape::Contract
        );
        assert_eq!(shape("*/*"), ErrorShape::Contract);
        assert_eq!(shape("application/problem+json;q=2"), ErrorShape::Contract);
        assert_eq!(
            ErrorFormat::Contract.shape_for(&HeaderMap::new()),
            ErrorShape::Contract
        );
        assert_eq!(
            ErrorFormat::Problem.shape_for(&HeaderMap::new()),
            ErrorShape::Problem
        );
    }

    #[test]
    fn problem_body_carries_the_contract_fields() {
        let body = ApiError::OtpInvalid { attempts_left: 2 }.to_problem_json();
        assert_eq!(body["type"], "urn:tower-otp:error:otp_invalid");
        assert_eq!(body["title"], "Bad Request");
        assert_eq!(body["status"], 400);
        assert_eq!(body["code"], "otp_invalid");
        assert_eq!(body["attempts_left"], 2);
        assert!(body["detail"].as_str().unwrap().contains("2 attempt"));
        assert!(body.get("message").is_none());
        let res = ApiError::RateLimited { retry_after: 7 }.render(ErrorShape::Problem);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
    }
}
