//! The four handlers: method, content type, bounded body read, JSON fields,
//! then the engine, then the JSON response.
//!
//! Checks run cheapest first, and every refusal is an [`ApiError`] from the
//! contract: 405 before 415 before 413 before 400.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde_json::{Map, Value, json};

use crate::{
    code,
    config::GRANT_COOKIE,
    contact::{Channel, Contact, Email, InvalidContact, Mobile},
    engine::Engine,
    error::{ApiError, json_response},
    grant,
    limit::{LimitKind, client_ip::client_ip},
};
use tracing::Instrument;

/// Type-erased error of a request body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One of the four OTP routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    SendEmail,
    VerifyEmail,
    SendMobile,
    VerifyMobile,
}

impl Route {
    fn contact_field(self) -> &'static str {
        match self {
            Self::SendEmail | Self::VerifyEmail => "email",
            Self::SendMobile | Self::VerifyMobile => "mobile",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::SendEmail => "send_email",
            Self::VerifyEmail => "verify_email",
            Self::SendMobile => "send_mobile",
            Self::VerifyMobile => "verify_mobile",
        }
    }

    fn channel(self) -> Channel {
        match self {
            Self::SendEmail | Self::VerifyEmail => Channel::Email,
            Self::SendMobile | Self::VerifyMobile => Channel::Mobile,
        }
    }

    fn limit_kind(self) -> LimitKind {
        if self.is_verify() {
            LimitKind::Verify
        } else {
            LimitKind::Send
        }
    }

    fn is_verify(self) -> bool {
        matches!(self, Self::VerifyEmail | Self::VerifyMobile)
    }
}

/// Serves one request on an OTP route.
pub(crate) async fn handle<B>(
    engine: Arc<Engine>,
    route: Route,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if request.method() != Method::POST {
        return ApiError::MethodNotAllowed.to_response();
    }
    let ip = client_ip(
        request.extensions(),
        request.headers(),
        &engine.config.trusted_proxies,
    );
    let span = tracing::info_span!(
        "otp_request",
        route = route.name(),
        client_ip = %ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    );
    async move {
        // The edge limit comes before reading the body, hashing or delivery.
        let rate_headers = match engine.edge.check(route.limit_kind(), ip).await {
            Ok(headers) => headers,
            Err(refusal) => {
                let (error, headers) = *refusal;
                crate::audit::refused_at_edge(route.channel());
                let mut response = error.to_response();
                response.headers_mut().extend(headers);
                return response;
            }
        };
        let mut response = match serve(&engine, route, request).await {
            Ok(response) => response,
            Err(error) => error.to_response(),
        };
        if let Some(headers) = rate_headers {
            response.headers_mut().extend(headers);
        }
        response
    }
    .instrument(span)
    .await
}

async fn serve<B>(
    engine: &Arc<Engine>,
    route: Route,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let object = read_json_object(&parts.headers, body, engine.config.body_limit).await?;

    let field = route.contact_field();
    let raw_contact = string_field(&object, field, || match route {
        Route::SendEmail | Route::VerifyEmail => ApiError::InvalidEmail,
        Route::SendMobile | Route::VerifyMobile => ApiError::InvalidMobile,
    })?;
    let contact = match route {
        Route::SendEmail | Route::VerifyEmail => Email::parse(raw_contact).map(Contact::Email),
        Route::SendMobile | Route::VerifyMobile => {
            Mobile::parse(raw_contact, engine.config.default_region).map(Contact::Mobile)
        }
    }
    .map_err(|e| match e {
        InvalidContact::Email => ApiError::InvalidEmail,
        InvalidContact::Mobile => ApiError::InvalidMobile,
    })?;

    if !route.is_verify() {
        let sent = engine.send(&contact).await?;
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "status": "success",
                "message": format!("A verification code was sent to your {}.", contact.channel()),
                "expires_in": sent.expires_in,
                "resend_in": sent.resend_in,
            }),
        ));
    }

    let length = engine.config.code_length;
    let candidate = string_field(&object, "otp", || ApiError::InvalidOtpFormat { length })?;
    if !code::is_well_formed(candidate, length) {
        return Err(ApiError::InvalidOtpFormat { length });
    }
    let held =
        engine
            .grants
            .find_in_headers(&parts.headers, &engine.config.token_header, GRANT_COOKIE);
    let granted = engine.verify(&contact, candidate, held).await?;

    let mut verified = Map::new();
    if let Some(email) = granted.contact.email() {
        verified.insert("email".into(), json!(email.as_str()));
    }
    if let Some(mobile) = granted.contact.mobile() {
        verified.insert("mobile".into(), json!(mobile.as_str()));
    }
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "status": "success",
            "message": format!("Your {} is verified.", contact.channel()),
            "verified": verified,
            "token": granted.token,
        }),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        grant::set_cookie(
            GRANT_COOKIE,
            &granted.token,
            engine.config.grant_ttl,
            engine.config.cookie_secure,
        ),
    );
    Ok(response)
}

/// `application/json` or `application/*+json`, any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Reads at most `limit` bytes (refusing early on a larger Content-Length,
/// and while reading otherwise) and parses a JSON object.
async fn read_json_object<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Map<String, Value>, ApiError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        Err(err) => {
            tracing::debug!(error = %err, "could not read an OTP request body");
            return Err(ApiError::InvalidJson);
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidJson),
    }
}

/// A required string field: absent, `null` or blank is `missing_field`;
/// any other JSON type is the field's own error.
fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    wrong_type: impl FnOnce() -> ApiError,
) -> Result<&'a str, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(ApiError::MissingField { field: name }),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(ApiError::MissingField { field: name })
        }
        Some(Value::String(s)) => Ok(s.trim()),
        Some(_) => Err(wrong_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn json_content_types() {
        let check = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/vnd.api+json"));
        assert!(!check("text/json"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!check("application/+json"));
        assert!(!check("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
