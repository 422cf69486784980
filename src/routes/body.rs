//! Reading a request: content type, the bounded body, and its JSON fields.

use http::{HeaderMap, header};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::BoxError;
use crate::error::ApiError;

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

/// Reads at most `limit` bytes: 413 early on a larger Content-Length, and
/// while reading otherwise; `Ok(None)` when the body broke off (the caller
/// answers it like an unusable body).
async fn read_limited<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Option<bytes::Bytes>, ApiError>
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
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Some(collected.to_bytes())),
        Err(err) if err.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(err) => {
            tracing::debug!(error = %err, "could not read an OTP request body");
            Ok(None)
        }
    }
}

/// Checks the content type, reads at most `limit` bytes (refusing early on a
/// larger Content-Length, and while reading otherwise) and parses a JSON
/// object.
pub(super) async fn read_json_object<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Map<String, Value>, ApiError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let Some(bytes) = read_limited(headers, body, limit).await? else {
        return Err(ApiError::InvalidJson);
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidJson),
    }
}

/// Whether the content type is `application/x-www-form-urlencoded`.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The `t` of a link POST: a form (field `t`) or a JSON object (`"t"`),
/// read within `limit` bytes. `Ok(None)` when the body has no usable `t`
/// (answered like any unusable token); 415 for another content type.
pub(super) async fn read_link_token<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Option<String>, ApiError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if is_json(headers) {
        let object = read_json_object(headers, body, limit).await?;
        return Ok(object
            .get("t")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_owned()));
    }
    if !is_form(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let Some(bytes) = read_limited(headers, body, limit).await? else {
        return Ok(None);
    };
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(query_token)
        .map(str::to_owned))
}

/// The value of the first `t=` pair of a query string or form body, as
/// is (a token needs no percent-decoding; one that would is unusable).
pub(super) fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("t="))
        .map(str::trim)
}

/// A required string field: absent, `null` or blank is `missing_field`;
/// any other JSON type is the field's own error.
pub(super) fn string_field<'a>(
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
