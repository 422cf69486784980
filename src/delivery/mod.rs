//! How messages leave: email and SMS senders.
//!
//! - [`EmailSender`]: sends an [`EmailMessage`] (HTML and plain-text parts,
//!   cc, bcc, attachments). Implementations: [`ConsoleSender`] (prints, for
//!   development), [`MemoryOutbox`] (captures, for tests), and behind
//!   features `SmtpSender` and `SendGridSender`.
//! - [`SmsSender`]: sends an [`SmsMessage`]. Implementations: console,
//!   memory, and behind the `twilio` feature `TwilioMessaging`.
//! - [`SmsVerifier`]: a provider that generates and checks the codes itself
//!   (Twilio Verify). The engine still applies its own limits and counts
//!   attempts.
//!
//! Failures are [`DeliveryError`]s that say whether they are transient;
//! [`RetryPolicy`] retries only those, with backoff.
//!
//! | sender | feature | transport |
//! |---|---|---|
//! | [`ConsoleSender`] | — | standard output (development) |
//! | [`MemoryOutbox`] | — | memory (tests) |
//! | `SmtpSender` | `smtp` (default) | SMTP: STARTTLS, implicit TLS, or plain to localhost |
//! | `SendGridSender` | `sendgrid` | SendGrid v3 Mail Send |
//! | `TwilioMessaging` (SMS) | `twilio` | Twilio Programmable Messaging |
//! | `TwilioVerify` (SMS verifier) | `twilio` | Twilio Verify |
//!
//! ## When delivery fails
//!
//! Every sender makes **one** attempt per call, with a request timeout, and
//! classifies its failure:
//!
//! - **transient** (connection errors, timeouts, HTTP 5xx and 429, SMTP 4xx
//!   replies): the engine retries with [`RetryPolicy`] (default 3 tries in
//!   all, 200 ms backoff doubling);
//! - **permanent** (other HTTP 4xx, SMTP 5xx, TLS and configuration errors):
//!   no retry;
//! - **invalid recipient** (e.g. Twilio 21211, an unparsable address): no
//!   retry, and the route answers `invalid_email` / `invalid_mobile`.
//!
//! When a send still fails, the route answers `502 delivery_failed` with a
//! plain message; the provider's error text goes to the log only (with
//! contacts masked). The code that was never delivered is deleted and the
//! resend cooldown released, so the user may ask again at once; the failed
//! send still counts toward the per-contact quota.
//!
//! ```
//! use tower_otp::delivery::{DeliveryError, RetryPolicy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let mut tries = 0;
//! let policy = RetryPolicy::new(3, std::time::Duration::ZERO);
//! let result: Result<(), _> = policy
//!     .run(|| {
//!         tries += 1;
//!         async { Err(DeliveryError::transient("HTTP 503")) }
//!     })
//!     .await;
//! assert!(result.is_err());
//! assert_eq!(tries, 3); // transient: retried up to the limit
//! # });
//! ```

use std::{fmt, future::Future, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;

use crate::contact::Mobile;

pub mod console;
pub(crate) mod dispatch;
#[cfg(any(feature = "sendgrid", feature = "twilio"))]
mod http;
pub mod memory;
#[cfg(feature = "sendgrid")]
#[cfg_attr(docsrs, doc(cfg(feature = "sendgrid")))]
pub mod sendgrid;
pub(crate) mod sms_text;
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub mod smtp;
#[cfg(feature = "twilio")]
#[cfg_attr(docsrs, doc(cfg(feature = "twilio")))]
pub mod twilio;

pub use console::ConsoleSender;
pub use memory::{MemoryOutbox, OutboxMessage};
#[cfg(feature = "sendgrid")]
pub use sendgrid::SendGridSender;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpSecurity, SmtpSender, SmtpSenderBuilder};
#[cfg(feature = "twilio")]
pub use twilio::{TwilioMessaging, TwilioVerify};

/// A file attached to an email.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attachment {
    /// The file name shown to the recipient.
    pub filename: String,
    /// The MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The content.
    pub data: Bytes,
}

impl Attachment {
    /// A file named `filename` of MIME type `content_type`.
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        Self {
            filename: filename.into(),
            content_type: content_type.into(),
            data: data.into(),
        }
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

/// An email ready to send: both an HTML and a plain-text part. Senders read
/// its fields; build one with [`EmailMessage::new`] and the `with_*`
/// methods (it will grow, e.g. with headers, so it is `non_exhaustive`).
///
/// ```
/// use tower_otp::delivery::EmailMessage;
///
/// let message = EmailMessage::new("ada@example.com", "Hi", "<p>Hello</p>", "Hello")
///     .with_cc("boss@example.com")
///     .with_from("no-reply@shop.example");
/// assert_eq!(message.cc, ["boss@example.com"]);
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EmailMessage {
    /// The sender; `None` uses the sender's configured default From.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Blind carbon-copy recipients.
    pub bcc: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// The language of the text (`Content-Language`: `en`, `fr`, ...).
    pub content_language: Option<String>,
}

impl EmailMessage {
    /// A message to `to` with this subject, HTML part and plain-text part.
    pub fn new(
        to: impl Into<String>,
        subject: impl Into<String>,
        html: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            to: vec![to.into()],
            subject: subject.into(),
            html: html.into(),
            text: text.into(),
            ..Self::default()
        }
    }

    /// Adds a recipient.
    pub fn with_to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }

    /// Adds a carbon-copy recipient.
    pub fn with_cc(mut self, address: impl Into<String>) -> Self {
        self.cc.push(address.into());
        self
    }

    /// Adds a blind carbon-copy recipient.
    pub fn with_bcc(mut self, address: impl Into<String>) -> Self {
        self.bcc.push(address.into());
        self
    }

    /// Declares the language of the text (the `Content-Language` header).
    pub fn with_content_language(mut self, language: impl Into<String>) -> Self {
        self.content_language = Some(language.into());
        self
    }

    /// Sends from `address` instead of the sender's default From.
    pub fn with_from(mut self, address: impl Into<String>) -> Self {
        self.from = Some(address.into());
        self
    }

    /// Adds an attachment.
    pub fn with_attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }
}

impl fmt::Debug for EmailMessage {
    // The body may hold a one-time code: keep it out of Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to.len())
            .field("cc", &self.cc.len())
            .field("bcc", &self.bcc.len())
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

/// An SMS ready to send (it will grow, e.g. with a channel, so it is
/// `non_exhaustive`: build one with [`SmsMessage::new`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmsMessage {
    /// The recipient in E.164.
    pub to: String,
    /// The text.
    pub body: String,
}

impl SmsMessage {
    /// A text `body` to `to` (E.164).
    pub fn new(to: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            body: body.into(),
        }
    }
}

impl fmt::Debug for SmsMessage {
    // The body may hold a one-time code: keep it out of Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage").finish_non_exhaustive()
    }
}

/// Sends emails.
#[async_trait]
pub trait EmailSender: Send + Sync + fmt::Debug + 'static {
    /// Sends one message, once (retries are the caller's, see [`RetryPolicy`]).
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError>;

    /// Whether this sender is for development only (it prints or keeps
    /// messages instead of delivering them): the production flag refuses
    /// it on an enabled channel, and without the flag it logs a warning at
    /// start-up. Default `false`.
    fn for_development(&self) -> bool {
        false
    }

    /// A cheap check that the sender can reach its server, for readiness
    /// probes ([`Otp::readiness`](crate::Otp::readiness)); sends nothing.
    /// The default answers ready: right for senders with no server (the
    /// console, [`MemoryOutbox`]). SMTP opens a connection and sends
    /// `NOOP`; SendGrid reads the key's scopes.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// Sends SMS text messages.
#[async_trait]
pub trait SmsSender: Send + Sync + fmt::Debug + 'static {
    /// Sends one message, once (retries are the caller's, see [`RetryPolicy`]).
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError>;

    /// Whether this sender is for development only (it prints or keeps
    /// messages instead of delivering them): the production flag refuses
    /// it on an enabled channel, and without the flag it logs a warning at
    /// start-up. Default `false`.
    fn for_development(&self) -> bool {
        false
    }

    /// A cheap check that the sender can reach its provider, for readiness
    /// probes; sends nothing. The default answers ready (the console,
    /// [`MemoryOutbox`]); Twilio Messaging reads the account.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// The result of a provider-side code check ([`SmsVerifier::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderCheck {
    /// The code is right.
    Approved,
    /// The code is wrong.
    Rejected,
    /// The provider has no pending verification (expired or used).
    Expired,
    /// The provider refuses more checks for this verification.
    TooManyAttempts,
}

/// A provider that generates, sends and checks codes itself (Twilio Verify).
#[async_trait]
pub trait SmsVerifier: Send + Sync + fmt::Debug + 'static {
    /// Asks the provider to send a code to `to`.
    async fn start(&self, to: &Mobile) -> Result<(), DeliveryError>;
    /// Asks the provider whether `code` is right for `to`.
    async fn check(&self, to: &Mobile, code: &str) -> Result<ProviderCheck, DeliveryError>;

    /// A cheap check that the provider is reachable and the credentials
    /// work, for readiness probes; sends nothing. The default answers
    /// ready; Twilio Verify reads the Verify Service.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// A delivery failure. Opaque; keeps its source for the logs, never for
/// clients.
#[derive(Debug)]
pub struct DeliveryError {
    kind: DeliveryErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryErrorKind {
    Transient,
    Permanent,
    InvalidRecipient,
}

impl DeliveryError {
    /// A failure that may pass: connect error, timeout, 5xx, 429, SMTP 4xx.
    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: DeliveryErrorKind::Transient,
            source: Some(source.into()),
        }
    }

    /// A failure that will not pass by retrying: 4xx, SMTP 5xx, bad config.
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: DeliveryErrorKind::Permanent,
            source: Some(source.into()),
        }
    }

    /// The provider says the recipient cannot receive messages (e.g. Twilio
    /// 21211): answered as `invalid_email` / `invalid_mobile`.
    pub fn invalid_recipient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: DeliveryErrorKind::InvalidRecipient,
            source: Some(source.into()),
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind == DeliveryErrorKind::Transient
    }

    /// Whether the provider refused the recipient itself.
    pub fn is_invalid_recipient(&self) -> bool {
        self.kind == DeliveryErrorKind::InvalidRecipient
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DeliveryErrorKind::Transient => "transient delivery failure",
            DeliveryErrorKind::Permanent => "permanent delivery failure",
            DeliveryErrorKind::InvalidRecipient => "recipient refused by the provider",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Bounded retries with exponential backoff, for transient failures only
/// (it will grow, e.g. with an overall deadline, so it is `non_exhaustive`:
/// build one with [`RetryPolicy::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total tries, the first included (default 3).
    pub max_tries: u32,
    /// Delay before the second try; doubled after each try (default 200 ms).
    pub initial_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 3,
            initial_backoff: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// `max_tries` tries in all (the first included), waiting
    /// `initial_backoff` before the second and doubling after each.
    pub fn new(max_tries: u32, initial_backoff: Duration) -> Self {
        Self {
            max_tries,
            initial_backoff,
        }
    }

    /// No retries: one try only.
    pub fn none() -> Self {
        Self {
            max_tries: 1,
            initial_backoff: Duration::ZERO,
        }
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the tries are
    /// used up.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DeliveryError>>,
    {
        let mut backoff = self.initial_backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && tries < self.max_tries.max(1) => {
                    tracing::debug!(try_number = tries, error = %err, "delivery failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Masks words that look like contacts in a provider's error text (which
/// goes to the log): any word containing `@`, and phone-number-like words
/// (only digits and `+-().`, at least seven digits).
#[cfg(any(feature = "smtp", feature = "sendgrid", feature = "twilio"))]
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let digits = word.chars().filter(char::is_ascii_digit).count();
        let phone_like = digits >= 7
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'));
        if word.contains('@') || phone_like {
            out.push_str("***");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '{' | '}' | '[' | ']' | '<' | '>') {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}
