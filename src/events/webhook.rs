//! Signed webhooks in the Standard Webhooks format.
//!
//! Each [`Event`] is POSTed as JSON ([`Event::to_json`]) with three headers:
//!
//! - `webhook-id`: `msg_` and 22 random characters; the same on every retry
//!   of one event (use it to process an event once);
//! - `webhook-timestamp`: the attempt's time, Unix seconds;
//! - `webhook-signature`: `v1,` and the base64 HMAC-SHA256, under the key
//!   of the `whsec_` secret, of `<webhook-id>.<webhook-timestamp>.<body>`.
//!
//! Delivery is off the request path: events wait in the webhook's bounded
//! queue (events beyond it are dropped and counted, see
//! [`events`](crate::events)); at most [`max_in_flight`](Webhook::max_in_flight)
//! POSTs run at once, each within [`timeout`](Webhook::timeout). Any answer
//! but a 2xx is a failure (redirects are not followed), retried with
//! doubling, jittered backoff up to [`retries`](Webhook::retries) tries;
//! `410 Gone` is not retried. A failure is logged (the event type and its
//! `webhook-id`, never the URL or the contact) and, with the `metrics`
//! feature, counted in `tower_otp_webhook_failures_total` (label `reason`:
//! `status`, `transport`, `gave_up`).
//!
//! ```
//! use tower_otp::{Otp, events::webhook::Webhook};
//!
//! // whsec_ + base64 of 24 to 64 random bytes, from the receiver.
//! let hook = Webhook::new(
//!     "https://crm.example.com/hooks/otp",
//!     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
//! )
//! .unwrap();
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .webhook(hook)
//!     .build()
//!     .unwrap();
//! ```

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use hmac::{Hmac, KeyInit, Mac};
use rand::{TryRng, rngs::SysRng};
use sha2::Sha256;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{Event, EventSink};
use crate::error::ConfigError;

/// The prefix of a Standard Webhooks signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// Shortest and longest signing keys the standard allows, in bytes.
const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;

/// Where and how events are POSTed. See the [module docs](self).
#[derive(Clone)]
pub struct Webhook {
    url: reqwest::Url,
    key: Arc<Zeroizing<Vec<u8>>>,
    timeout: Duration,
    max_tries: u32,
    initial_backoff: Duration,
    max_in_flight: usize,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a token of the receiver's: only its origin.
        f.debug_struct("Webhook")
            .field("origin", &self.url.origin().ascii_serialization())
            .field("key", &"***")
            .field("timeout", &self.timeout)
            .field("max_tries", &self.max_tries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl Webhook {
    /// A webhook to `url` (`http` or `https`), signed with `secret`
    /// (`whsec_` + base64 of a 24 to 64 byte key). Defaults: 15 s per POST,
    /// 5 tries 5 s apart then doubling, 4 POSTs at once. Errors name
    /// `webhook_url` or `webhook_secret` (and never print the secret).
    pub fn new(url: &str, secret: &str) -> Result<Self, ConfigError> {
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| ConfigError::invalid("webhook_url", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError::invalid(
                "webhook_url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        let encoded = secret
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| ConfigError::invalid("webhook_secret", "must start with `whsec_`"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| ConfigError::invalid("webhook_secret", "not base64 after `whsec_`"))?;
        if !KEY_LEN.contains(&key.len()) {
            return Err(ConfigError::invalid(
                "webhook_secret",
                format!(
                    "the key is {} bytes; the standard asks for 24 to 64 random bytes",
                    key.len()
                ),
            ));
        }
        Ok(Self {
            url: parsed,
            key: Arc::new(Zeroizing::new(key)),
            timeout: Duration::from_secs(15),
            max_tries: 5,
            initial_backoff: Duration::from_secs(5),
            max_in_flight: 4,
        })
    }

    /// Time allowed for one POST, connection included. Default 15 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Tries per event (at least 1, the first included), waiting
    /// `initial_backoff` (±25 % jitter) before the second and doubling
    /// after each. Default 5 tries, 5 s.
    #[must_use]
    pub fn retries(mut self, max_tries: u32, initial_backoff: Duration) -> Self {
        self.max_tries = max_tries.max(1);
        self.initial_backoff = initial_backoff;
        self
    }

    /// Events delivered at once (each with its retries). Default 4.
    #[must_use]
    pub fn max_in_flight(mut self, events: usize) -> Self {
        self.max_in_flight = events.max(1);
        self
    }

    /// The `webhook-signature` value for one attempt:
    /// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The host events are POSTed to without TLS (`http://`), if it is
    /// not this machine: start-up logs a warning.
    pub(crate) fn cleartext_host(&self) -> Option<String> {
        let host = self.url.host_str()?;
        (self.url.scheme() == "http" && !crate::delivery::is_loopback(host))
            .then(|| host.to_owned())
    }

    /// The subscriber that POSTs events to this webhook.
    pub(crate) fn into_sink(self) -> WebhookSink {
        let client = reqwest::Client::builder()
            .user_agent(concat!("tower-otp/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .unwrap_or_default();
        WebhookSink {
            slots: Arc::new(Semaphore::new(self.max_in_flight)),
            webhook: Arc::new(self),
            client,
        }
    }
}

/// POSTs events to a [`Webhook`], a bounded number at once.
pub(crate) struct WebhookSink {
    webhook: Arc<Webhook>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn handle(&self, event: Event) {
        // Waiting for a slot holds the queue back: the queue's bound is
        // what protects memory when the receiver is slow.
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        let webhook = Arc::clone(&self.webhook);
        let client = self.client.clone();
        tokio::spawn(async move {
            deliver(&webhook, &client, &event).await;
            drop(slot);
        });
    }
}

/// Why one POST failed.
enum Failure {
    Status(u16),
    Transport(reqwest::Error),
}

/// One event, with its retries.
async fn deliver(webhook: &Webhook, client: &reqwest::Client, event: &Event) {
    let id = message_id();
    let body = event.to_json();
    let kind = event.kind().type_name();
    let mut backoff = webhook.initial_backoff;
    for attempt in 1..=webhook.max_tries {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sent = client
            .post(webhook.url.clone())
            // Also set on the client; here too, so that no client can lose it.
            .timeout(webhook.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                webhook.signature(&id, timestamp, &body),
            )
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => Failure::Status(response.status().as_u16()),
            Err(error) => Failure::Transport(error.without_url()),
        };
        match &failure {
            Failure::Status(status) => {
                tracing::warn!(event = kind, webhook_id = %id, attempt, status, "webhook refused");
                count_failure("status");
            }
            Failure::Transport(error) => {
                tracing::warn!(event = kind, webhook_id = %id, attempt, error = %error, "webhook failed");
                count_failure("transport");
            }
        }
        if matches!(failure, Failure::Status(410)) {
            return;
        }
        if attempt < webhook.max_tries {
            tokio::time::sleep(jittered(backoff)).await;
            backoff = backoff.saturating_mul(2);
        }
    }
    tracing::warn!(event = kind, webhook_id = %id, tries = webhook.max_tries, "webhook gave up");
    count_failure("gave_up");
}

fn count_failure(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_otp_webhook_failures_total", "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// `msg_` and 128 random bits, base64url (no `.`).
fn message_id() -> String {
    let mut bytes = [0u8; 16];
    if SysRng.try_fill_bytes(&mut bytes).is_err() {
        tracing::warn!("the OS random number generator failed: webhook id from the clock");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    format!("msg_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `base` ±25 %.
fn jittered(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = SysRng.try_fill_bytes(&mut byte);
    // 0..=255 → 0.75..=1.25
    let factor = 0.75 + f64::from(byte[0]) / 510.0;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn signs_as_the_standard_example() {
        // The Standard Webhooks reference libraries' test vector.
        let hook = Webhook::new("https://example.com/", WHSEC).unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            hook.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets_and_urls_are_refused_without_printing_the_secret() {
        for secret in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!notQzXwV",
            "whsec_c2hvcnQ=",
        ] {
            let err = Webhook::new("https://example.com/", secret).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains("webhook_secret"), "{shown}");
            assert!(!shown.contains(&secret[secret.len() - 6..]), "{shown}");
        }
        for url in ["ftp://example.com/", "not a url", "file:///etc/passwd"] {
            let err = Webhook::new(url, WHSEC).unwrap_err();
            assert!(err.to_string().contains("webhook_url"), "{err}");
        }
        let shown = format!(
            "{:?}",
            Webhook::new("https://x.io/h?token=abc", WHSEC).unwrap()
        );
        assert!(!shown.contains("abc") && !shown.contains("MfKQ"), "{shown}");
    }

    #[test]
    fn message_ids_are_random_and_dot_free() {
        let (a, b) = (message_id(), message_id());
        assert_ne!(a, b);
        assert!(a.starts_with("msg_") && !a.contains('.'), "{a}");
    }
}
