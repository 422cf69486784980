//! [`SendGridSender`]: email through SendGrid's v3 Mail Send API.
//!
//! One request per message: `POST {base}/v3/mail/send` with
//! `Authorization: Bearer <API key>` and a JSON body holding one
//! personalization (`to`, `cc`, `bcc`), `from`, `subject`, `content`
//! (`text/plain` first, then `text/html`, the order SendGrid requires) and
//! `attachments` (base64 `content`, `filename`, `type`, `disposition`).
//! SendGrid answers `202 Accepted` with an empty body; errors carry
//! `{"errors":[{"message":…,"field":…,"help":…}]}` (SendGrid v3 Mail Send
//! reference, and the `sendgrid` crate's `v3` module on docs.rs).
//!
//! Failures: connection errors, timeouts, 429 and 5xx are transient (the
//! engine retries them, after SendGrid's `Retry-After` when it sends one,
//! within the delivery deadline); other 4xx are permanent, and a 400 whose error
//! `field` is a recipient's email (`personalizations.0.to.0.email`) is an
//! invalid recipient (the route answers `invalid_email`). The response body
//! goes to the log only, with contacts masked.
//!
//! ```
//! use std::time::Duration;
//! use tower_otp::{Otp, delivery::SendGridSender};
//!
//! let sender = SendGridSender::new("SG.secret-api-key", "Shop <no-reply@shop.example>")
//!     .timeout(Duration::from_secs(5));
//! assert!(!format!("{sender:?}").contains("secret-api-key"));
//! let otp = Otp::builder().email_sender(sender);
//! ```

use std::time::Duration;

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    DeliveryError, EmailMessage, EmailSender,
    http::{self, ProviderError},
};
use crate::Secret;

/// SendGrid's API origin.
pub const SENDGRID_BASE_URL: &str = "https://api.sendgrid.com";

/// Sends email through SendGrid's v3 Mail Send API (see the [module
/// docs](self)).
#[cfg_attr(docsrs, doc(cfg(feature = "sendgrid")))]
#[derive(Clone)]
pub struct SendGridSender {
    client: reqwest::Client,
    api_key: Secret,
    from: String,
    base_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for SendGridSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGridSender")
            .field("api_key", &self.api_key)
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SendGridSender {
    /// A sender with `api_key`, sending from `from` (`addr@host` or
    /// `Name <addr@host>`, a sender verified in SendGrid) unless a message
    /// names its own. Timeout 10 s; base URL [`SENDGRID_BASE_URL`].
    pub fn new(api_key: impl Into<Secret>, from: impl Into<String>) -> Self {
        Self {
            client: http::client(),
            api_key: api_key.into(),
            from: from.into(),
            base_url: SENDGRID_BASE_URL.to_owned(),
            timeout: http::DEFAULT_TIMEOUT,
        }
    }

    /// The API origin, e.g. `http://127.0.0.1:8080` for a local mock; the
    /// crate appends `/v3/mail/send`.
    pub fn base_url(mut self, origin: impl Into<String>) -> Self {
        self.base_url = http::origin(origin);
        self
    }

    /// Time allowed for one request. Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The JSON body SendGrid expects for `message`.
    fn body(&self, message: &EmailMessage) -> Value {
        let addresses =
            |list: &[String]| -> Vec<Value> { list.iter().map(|a| address(a)).collect() };
        let mut personalization = json!({ "to": addresses(&message.to) });
        // SendGrid refuses empty cc/bcc arrays: leave them out.
        if !message.cc.is_empty() {
            personalization["cc"] = Value::from(addresses(&message.cc));
        }
        if !message.bcc.is_empty() {
            personalization["bcc"] = Value::from(addresses(&message.bcc));
        }
        let mut body = json!({
            "personalizations": [personalization],
            "from": address(message.from.as_deref().unwrap_or(&self.from)),
            "subject": message.subject,
            "content": [
                { "type": "text/plain", "value": message.text },
                { "type": "text/html", "value": message.html },
            ],
        });
        if let Some(language) = &message.content_language {
            body["headers"] = json!({ "Content-Language": language });
        }
        if !message.attachments.is_empty() {
            body["attachments"] = message
                .attachments
                .iter()
                .map(|a| {
                    json!({
                        "content": STANDARD.encode(&a.data),
                        "filename": a.filename,
                        "type": a.content_type,
                        "disposition": "attachment",
                    })
                })
                .collect();
        }
        body
    }
}

/// Whether a 400 answer blames a recipient address: an error whose `field`
/// is `personalizations.N.to|cc|bcc.N.email`.
fn refuses_a_recipient(body: &str) -> bool {
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let Some(errors) = answer["errors"].as_array() else {
        return false;
    };
    errors
        .iter()
        .filter_map(|e| e["field"].as_str())
        .any(|field| {
            let parts: Vec<&str> = field.split('.').collect();
            matches!(
                parts.as_slice(),
                ["personalizations", _, "to" | "cc" | "bcc", _, "email"]
            )
        })
}

/// `Name <addr>` → `{"email": addr, "name": Name}`; `addr` → `{"email": addr}`.
fn address(input: &str) -> Value {
    let input = input.trim();
    if let (Some(open), true) = (input.rfind('<'), input.ends_with('>')) {
        let email = input[open + 1..input.len() - 1].trim();
        let name = input[..open].trim().trim_matches('"').trim();
        if name.is_empty() {
            return json!({ "email": email });
        }
        return json!({ "email": email, "name": name });
    }
    json!({ "email": input })
}

#[async_trait]
impl EmailSender for SendGridSender {
    fn provider_name(&self) -> &'static str {
        "sendgrid"
    }

    /// A base URL over `http://` to a host that is not this machine.
    fn cleartext_host(&self) -> Option<String> {
        http::cleartext_host(&self.base_url)
    }

    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        if message.to.is_empty() {
            return Err(DeliveryError::permanent(
                "an email needs at least one recipient",
            ));
        }
        let response = self
            .client
            .post(format!("{}/v3/mail/send", self.base_url))
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout)
            .json(&self.body(message))
            .send()
            .await
            .map_err(http::transport_failure)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = http::retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let error = ProviderError::new("SendGrid", status.as_u16(), &body);
        if status == reqwest::StatusCode::BAD_REQUEST && refuses_a_recipient(&body) {
            return Err(DeliveryError::invalid_recipient(error));
        }
        Err(http::status_failure(error, retry_after))
    }

    /// `GET /v3/scopes`: the key works and the API answers.
    async fn ready(&self) -> Result<(), DeliveryError> {
        let request = self
            .client
            .get(format!("{}/v3/scopes", self.base_url))
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout);
        http::ready_check(request, "SendGrid").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_errors_are_recognized() {
        let body = |field: &str| json!({"errors": [{"message": "m", "field": field}]}).to_string();
        assert!(refuses_a_recipient(&body("personalizations.0.to.0.email")));
        assert!(refuses_a_recipient(&body("personalizations.1.bcc.3.email")));
        assert!(!refuses_a_recipient(&body("from.email")));
        assert!(!refuses_a_recipient(&body("personalizations.0.to")));
        assert!(!refuses_a_recipient("not json"));
        assert!(!refuses_a_recipient(r#"{"errors":[{"field":null}]}"#));
    }

    #[test]
    fn addresses_with_display_names_are_split() {
        assert_eq!(address("a@b.co"), json!({"email": "a@b.co"}));
        assert_eq!(
            address("\"Shop\" <no-reply@shop.example>"),
            json!({"email": "no-reply@shop.example", "name": "Shop"})
        );
        assert_eq!(address("<x@y.z>"), json!({"email": "x@y.z"}));
    }
}
