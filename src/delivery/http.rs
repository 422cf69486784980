//! What the HTTP providers (SendGrid, Twilio) share: one `reqwest` client
//! setup, base-URL handling and the classification of failures.

use std::{fmt, time::Duration};

use super::{DeliveryError, scrub};

/// Default time allowed for one request, connection included.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a provider's error body kept for the log.
const MAX_LOGGED_BODY: usize = 512;

/// A client for one provider. Timeouts are set per request, so that
/// `timeout()` setters take effect without rebuilding the client.
/// Redirects are not followed: a provider's API never redirects, and a 307
/// or 308 (from anything between us and it) would send the form, with its
/// code and number, to another host. A redirect is answered as a failure.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("tower-otp/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // A build fails only where the TLS backend cannot start (then
        // `Client::new` panics too). No fallback client: it would follow
        // redirects.
        .expect("the provider HTTP client (reqwest with rustls) builds")
}

/// The host of `origin` if it is reached without TLS (`http://`) and is
/// not this machine.
pub(crate) fn cleartext_host(origin: &str) -> Option<String> {
    let url = reqwest::Url::parse(origin).ok()?;
    let host = url.host_str()?;
    (url.scheme() == "http" && !super::is_loopback(host)).then(|| host.to_owned())
}

/// A bare origin without its trailing slashes, so the API paths can be
/// appended.
pub(crate) fn origin(base: impl Into<String>) -> String {
    base.into().trim_end_matches('/').to_owned()
}

/// A provider's refusal: status and the start of its body, with anything
/// that looks like an email address or a phone number masked (Twilio's
/// messages quote the `To` number). For the logs only, never for clients.
#[derive(Debug)]
pub(crate) struct ProviderError {
    pub(crate) provider: &'static str,
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl ProviderError {
    pub(crate) fn new(provider: &'static str, status: u16, body: &str) -> Self {
        // Masked first, then cut: a cut first could leave the start of a
        // number or an address's local part unmasked. (Provider error
        // bodies are short; masking reads at most the first 64 KiB.)
        let mut read = prefix(body, 64 * 1024);
        if read.len() < body.len() {
            // Cut at a word's end: a word cut in two may be half a number.
            read = read
                .rsplit_once(char::is_whitespace)
                .map_or("", |(head, _)| head);
        }
        let masked = scrub(read);
        Self {
            provider,
            status,
            body: prefix(&masked, MAX_LOGGED_BODY).to_owned(),
        }
    }
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered HTTP {}: {}",
            self.provider, self.status, self.body
        )
    }
}

impl std::error::Error for ProviderError {}

/// A failed exchange. A request we could not even build will not pass; a
/// connection that could not be opened proves nothing was sent; anything
/// else (a timeout, a connection lost once the request went out, an
/// unreadable answer) may pass, but the provider may have acted on it.
pub(crate) fn transport_failure(error: reqwest::Error) -> DeliveryError {
    if error.is_builder() {
        DeliveryError::permanent(error)
    } else if error.is_connect() && !error.is_timeout() {
        DeliveryError::transient(error)
    } else {
        DeliveryError::maybe_sent(error)
    }
}

/// An HTTP error status. 429 and 503 say the provider did not take the
/// request (retry, after its `Retry-After` if it sent one); other 5xx may
/// pass, but do not prove nothing was sent (a 504 may come after the work
/// was done); other 4xx will not pass.
pub(crate) fn status_failure(error: ProviderError, retry_after: Option<Duration>) -> DeliveryError {
    let failure = match error.status {
        429 | 503 => DeliveryError::transient(error),
        500.. => DeliveryError::maybe_sent(error),
        _ => DeliveryError::permanent(error),
    };
    match retry_after {
        Some(wait) => failure.with_retry_after(wait),
        None => failure,
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds (what Twilio and
/// SendGrid send) or an HTTP date, capped at a day; a malformed value is
/// ignored (the policy's own backoff applies).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    // Clamped: a wait beyond a day is past any delivery deadline anyway,
    // and an absurd value must not overflow an `Instant`.
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        // The other form RFC 9110 allows: an HTTP date (a date already
        // past asks for no wait).
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(Duration::from_secs(86_400)))
}

/// Sends a readiness check (a `GET` the provider answers cheaply, sending
/// nothing): any 2xx is ready, anything else the provider's failure.
pub(crate) async fn ready_check(
    request: reqwest::RequestBuilder,
    provider: &'static str,
) -> Result<(), DeliveryError> {
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let wait = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(status_failure(
        ProviderError::new(provider, status.as_u16(), &body),
        wait,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        // (status, transient, may have been sent)
        for (status, transient, maybe_sent) in [
            (400, false, false),
            (401, false, false),
            (404, false, false),
            (429, true, false),
            (500, true, true),
            (502, true, true),
            (503, true, false),
            (504, true, true),
        ] {
            let e = status_failure(ProviderError::new("x", status, "{}"), None);
            assert_eq!(
                (e.is_transient(), e.may_have_been_sent()),
                (transient, maybe_sent),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", " 7 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        // An HTTP date: the wait until then (none for a date past).
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            (Duration::from_secs(118)..=Duration::from_secs(120)).contains(&wait),
            "{wait:?}"
        );
        headers.insert("retry-after", "next week".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(400);
        let e = ProviderError::new("x", 500, &body);
        assert!(e.body.len() <= MAX_LOGGED_BODY);
        assert_eq!(origin("http://127.0.0.1:8080//"), "http://127.0.0.1:8080");
    }

    #[test]
    fn contacts_in_provider_bodies_are_masked() {
        let e = ProviderError::new(
            "Twilio",
            400,
            r#"{"code":21211,"message":"The 'To' number +14155550123 is not valid","to":"ada@example.com","status":400}"#,
        );
        let shown = e.to_string();
        assert!(
            !shown.contains("4155550123") && !shown.contains("ada@"),
            "{shown}"
        );
        assert!(
            shown.contains("21211") && shown.contains("HTTP 400"),
            "{shown}"
        );
    }

    #[test]
    fn a_contact_across_the_cut_is_masked_not_halved() {
        // A number that the 512-byte cut would split keeps none of its
        // digits: masked first, then cut.
        let body = format!("{} +14155550123 and more", "x".repeat(MAX_LOGGED_BODY - 6));
        let e = ProviderError::new("x", 400, &body);
        assert!(
            !e.body.contains("+1415") && !e.body.contains("14155"),
            "{}",
            e.body
        );
        let body = format!(
            "{} ada.lovelace@example.com",
            "x".repeat(MAX_LOGGED_BODY - 6)
        );
        let e = ProviderError::new("x", 400, &body);
        assert!(!e.body.contains("ada"), "{}", e.body);
        // A body past what masking reads is cut at a word's end.
        let body = format!("a@{} +14155550123 tail", "x".repeat(64 * 1024 - 8));
        let e = ProviderError::new("x", 400, &body);
        assert!(!e.body.contains("1415"), "{}", e.body);
    }
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;

    #[test]
    fn an_absurd_retry_after_is_clamped() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "18446744073709551615".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }
}
