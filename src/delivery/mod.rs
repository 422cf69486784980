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
//! - **transient, nothing sent** (connection refused, HTTP 429 and 503, SMTP
//!   4xx replies): retried with [`RetryPolicy`];
//! - **transient, may have been sent** (timeouts, a connection lost after
//!   the request went out, HTTP 500/502/504; [`DeliveryError::maybe_sent`]):
//!   an SMS (and a Twilio Verify start) is **never** retried, since a
//!   second try could be a second message; an email is retried (a duplicate
//!   email is harmless);
//! - **permanent** (other HTTP 4xx, SMTP 5xx, TLS and configuration errors):
//!   no retry;
//! - **invalid recipient** (e.g. Twilio 21211, an unparsable address): no
//!   retry, and the route answers `invalid_email` / `invalid_mobile`.
//!
//! Retries (default 3 tries in all) wait a jittered backoff (from 200 ms),
//! or the provider's `Retry-After` when it sends one, and the whole delivery
//! has **one deadline** (default 15 s, [`RetryPolicy::with_deadline`]): a
//! wait that would pass it is not started, and a try still running at the
//! deadline is cancelled. A cancelled SMTP send closes its connection
//! rather than return it to the pool half-way through a message.
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
#[cfg(feature = "smtp")]
mod smtp_pool;
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

/// Which channel carries a message to a mobile number.
///
/// `send-mobile-otp` takes it from the `"channel"` field (`"sms"`, the
/// default, or `"whatsapp"`) and answers the one used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MobileChannel {
    /// A text message (the default).
    #[default]
    Sms,
    /// A WhatsApp message.
    WhatsApp,
}

impl MobileChannel {
    /// The name used in requests and answers: `sms` or `whatsapp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::WhatsApp => "whatsapp",
        }
    }

    /// The channel named `name` (`sms` or `whatsapp`, exactly), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sms" => Some(Self::Sms),
            "whatsapp" => Some(Self::WhatsApp),
            _ => None,
        }
    }
}

impl fmt::Display for MobileChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text message ready to send, by SMS or WhatsApp (it may grow, so it is
/// `non_exhaustive`: build one with [`SmsMessage::new`] and the `with_*`
/// methods).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmsMessage {
    /// The recipient in E.164.
    pub to: String,
    /// The text.
    pub body: String,
    /// The channel: SMS (the default) or WhatsApp.
    pub channel: MobileChannel,
    /// The one-time code the text carries, for senders that send it through
    /// a provider template instead of the text (a WhatsApp authentication
    /// template); `None` for other messages.
    pub code: Option<String>,
}

impl SmsMessage {
    /// A text `body` to `to` (E.164), by SMS.
    pub fn new(to: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            body: body.into(),
            channel: MobileChannel::Sms,
            code: None,
        }
    }

    /// Sends it on `channel` instead of SMS.
    #[must_use]
    pub fn with_channel(mut self, channel: MobileChannel) -> Self {
        self.channel = channel;
        self
    }

    /// Declares the one-time code the text carries (see [`code`](Self::code)).
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl fmt::Debug for SmsMessage {
    // The body may hold a one-time code: keep it out of Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
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

    /// The host this sender sends codes to over the network without TLS,
    /// if it does and the host is not this machine (plain SMTP to a remote
    /// server, a provider base URL over `http://`): start-up logs a warning
    /// for such a sender on an enabled channel. Default `None`.
    fn cleartext_host(&self) -> Option<String> {
        None
    }

    /// A cheap check that the sender can reach its server, for readiness
    /// probes ([`Otp::readiness`](crate::Otp::readiness)); sends nothing.
    /// The default answers ready: right for senders with no server (the
    /// console, [`MemoryOutbox`]). SMTP opens a connection and sends
    /// `NOOP`; SendGrid reads the key's scopes.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// A short, fixed name of the provider (`smtp`, `sendgrid`,
    /// `twilio_messaging`, ...): the `provider` label of the delivery
    /// metrics (feature `metrics`). Default `"custom"`. Keep it a constant:
    /// a label takes few values.
    fn provider_name(&self) -> &'static str {
        "custom"
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

    /// The host this sender sends codes to over the network without TLS,
    /// if it does and the host is not this machine (plain SMTP to a remote
    /// server, a provider base URL over `http://`): start-up logs a warning
    /// for such a sender on an enabled channel. Default `None`.
    fn cleartext_host(&self) -> Option<String> {
        None
    }

    /// A cheap check that the sender can reach its provider, for readiness
    /// probes; sends nothing. The default answers ready (the console,
    /// [`MemoryOutbox`]); Twilio Messaging reads the account.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// Whether this sender can send on `channel`. A request for a channel
    /// no sender supports is refused with `invalid_channel` before anything
    /// is sent. The default supports SMS only; [`MemoryOutbox`] supports
    /// both, `TwilioMessaging` WhatsApp once it has a WhatsApp sender.
    fn supports(&self, channel: MobileChannel) -> bool {
        channel == MobileChannel::Sms
    }

    /// A short, fixed name of the provider (`smtp`, `sendgrid`,
    /// `twilio_messaging`, ...): the `provider` label of the delivery
    /// metrics (feature `metrics`). Default `"custom"`. Keep it a constant:
    /// a label takes few values.
    fn provider_name(&self) -> &'static str {
        "custom"
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
    /// Asks the provider to send a code to `to` on `channel`. The default
    /// sends SMS with [`start`](Self::start) and refuses other channels
    /// (permanent failure); Twilio Verify sends `Channel=whatsapp`.
    async fn start_on(&self, to: &Mobile, channel: MobileChannel) -> Result<(), DeliveryError> {
        match channel {
            MobileChannel::Sms => self.start(to).await,
            other => Err(DeliveryError::permanent(format!(
                "this verifier cannot send on {other}"
            ))),
        }
    }

    /// Whether this provider can send codes on `channel` (see
    /// [`SmsSender::supports`]). The default supports SMS only.
    fn supports(&self, channel: MobileChannel) -> bool {
        channel == MobileChannel::Sms
    }

    /// Asks the provider whether `code` is right for `to`.
    async fn check(&self, to: &Mobile, code: &str) -> Result<ProviderCheck, DeliveryError>;

    /// The host this provider is reached at over the network without TLS,
    /// if it is and the host is not this machine (a base URL over
    /// `http://`): start-up logs a warning for such a verifier when mobile
    /// is enabled. Default `None`.
    fn cleartext_host(&self) -> Option<String> {
        None
    }

    /// A cheap check that the provider is reachable and the credentials
    /// work, for readiness probes; sends nothing. The default answers
    /// ready; Twilio Verify reads the Verify Service.
    async fn ready(&self) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// A short, fixed name of the provider (`smtp`, `sendgrid`,
    /// `twilio_messaging`, ...): the `provider` label of the delivery
    /// metrics (feature `metrics`). Default `"custom"`. Keep it a constant:
    /// a label takes few values.
    fn provider_name(&self) -> &'static str {
        "custom"
    }
}

/// A delivery failure. Opaque; keeps its source for the logs, never for
/// clients.
///
/// Besides its kind it records two facts the [`RetryPolicy`] reads:
/// whether the message **may have been sent** anyway
/// ([`maybe_sent`](Self::maybe_sent): a timeout, a connection lost after
/// the request went out, a 500 that proves nothing), and how long the
/// provider asked us to wait ([`with_retry_after`](Self::with_retry_after),
/// from a `Retry-After` header).
#[derive(Debug)]
pub struct DeliveryError {
    kind: DeliveryErrorKind,
    maybe_sent: bool,
    retry_after: Option<Duration>,
    /// The recipient must not be reached on another channel for this
    /// message (they opted out).
    no_other_channel: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryErrorKind {
    Transient,
    Permanent,
    InvalidRecipient,
}

impl DeliveryError {
    fn new(
        kind: DeliveryErrorKind,
        maybe_sent: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            maybe_sent,
            retry_after: None,
            no_other_channel: false,
            source: Some(source.into()),
        }
    }

    /// A failure that may pass and that proves nothing was sent: the
    /// connection was refused, the provider answered 429 or 503, an SMTP
    /// server answered 4xx. Retried for every kind of message.
    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(DeliveryErrorKind::Transient, false, source)
    }

    /// A failure that may pass but after which the message **may have been
    /// sent**: a timeout, a connection lost once the request went out, a
    /// provider's 500/502/504. [`RetryPolicy::run`] does not retry it (a
    /// second SMS would be a second message, and a second bill); the
    /// dispatcher retries it for email only, where a duplicate is harmless.
    pub fn maybe_sent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(DeliveryErrorKind::Transient, true, source)
    }

    /// A failure that will not pass by retrying: 4xx, SMTP 5xx, bad config.
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(DeliveryErrorKind::Permanent, false, source)
    }

    /// The provider says the recipient cannot receive messages (e.g. Twilio
    /// 21211): answered as `invalid_email` / `invalid_mobile`.
    pub fn invalid_recipient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(DeliveryErrorKind::InvalidRecipient, false, source)
    }

    /// The provider asked to be called again no sooner than `wait` (its
    /// `Retry-After`): the [`RetryPolicy`] waits that long if it fits in its
    /// deadline, and gives up otherwise.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The recipient refused messages from this sender (they opted out, e.g.
    /// Twilio 21610): the message is not sent on another channel instead
    /// (no WhatsApp-to-SMS fallback), which would disregard that choice.
    #[must_use]
    pub fn without_other_channel(mut self) -> Self {
        self.no_other_channel = true;
        self
    }

    /// Whether the message may be sent on another channel instead (false
    /// after [`without_other_channel`](Self::without_other_channel)).
    pub fn allows_other_channel(&self) -> bool {
        !self.no_other_channel
    }

    /// Whether retrying may help (for [`maybe_sent`](Self::maybe_sent)
    /// failures too: whether to retry those depends on the message).
    pub fn is_transient(&self) -> bool {
        self.kind == DeliveryErrorKind::Transient
    }

    /// Whether the message may have been sent despite the failure (a
    /// timeout or a lost connection): an SMS is then never retried.
    pub fn may_have_been_sent(&self) -> bool {
        self.maybe_sent
    }

    /// How long the provider asked us to wait before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the provider refused the recipient itself.
    pub fn is_invalid_recipient(&self) -> bool {
        self.kind == DeliveryErrorKind::InvalidRecipient
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.kind, self.maybe_sent) {
            (DeliveryErrorKind::Transient, false) => "transient delivery failure",
            (DeliveryErrorKind::Transient, true) => {
                "transient delivery failure (the message may have been sent)"
            }
            (DeliveryErrorKind::Permanent, _) => "permanent delivery failure",
            (DeliveryErrorKind::InvalidRecipient, _) => "recipient refused by the provider",
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

/// Bounded retries of transient failures, with jittered backoff, under one
/// overall deadline (it may grow, so it is `non_exhaustive`: build one with
/// [`RetryPolicy::new`] and [`with_deadline`](Self::with_deadline)).
///
/// - **Tries**: at most [`max_tries`](Self::max_tries) in all (default 3).
/// - **Backoff**: "decorrelated jitter": each wait is drawn at random
///   between [`initial_backoff`](Self::initial_backoff) (default 200 ms)
///   and three times the previous wait, so many senders that failed at the
///   same moment do not retry at the same moment.
/// - **`Retry-After`**: when the provider names a wait (429/503 with
///   `Retry-After`), that wait is used instead.
/// - **Deadline**: the whole delivery, every try and every wait, ends
///   within [`deadline`](Self::deadline) (default 15 s). A wait that would
///   end past it is not started: the last failure is returned at once. A
///   try still running at the deadline is cancelled (and counts as
///   "may have been sent").
/// - **Never twice when it may have arrived**: [`run`](Self::run) does not
///   retry a failure after which the message may have been sent (a timeout,
///   see [`DeliveryError::maybe_sent`]). SMS codes are sent this way; emails
///   retry those too, since a duplicate email is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total tries, the first included (default 3).
    pub max_tries: u32,
    /// The shortest wait before a retry (default 200 ms); later waits are
    /// drawn between it and three times the previous wait.
    pub initial_backoff: Duration,
    /// Time allowed for the whole delivery, retries and waits included
    /// (default 15 s).
    pub deadline: Duration,
}

/// The default [`RetryPolicy::deadline`].
pub const DEFAULT_DELIVERY_DEADLINE: Duration = Duration::from_secs(15);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 3,
            initial_backoff: Duration::from_millis(200),
            deadline: DEFAULT_DELIVERY_DEADLINE,
        }
    }
}

/// Which failures a retry loop may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// Only failures that prove nothing was sent (SMS, provider codes).
    Never,
    /// Also failures after which the message may have been sent (email).
    Harmless,
}

impl RetryPolicy {
    /// `max_tries` tries in all (the first included), waiting at least
    /// `initial_backoff` before each retry (jittered, see the type's docs),
    /// within the default deadline of 15 s.
    pub fn new(max_tries: u32, initial_backoff: Duration) -> Self {
        Self {
            max_tries,
            initial_backoff,
            ..Self::default()
        }
    }

    /// No retries: one try only (still bounded by the deadline).
    pub fn none() -> Self {
        Self {
            max_tries: 1,
            initial_backoff: Duration::ZERO,
            ..Self::default()
        }
    }

    /// Time allowed for the whole delivery, every try and wait included.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Runs `attempt` until it succeeds, fails permanently, fails in a way
    /// that may mean the message was sent, the tries are used up, or the
    /// deadline passes.
    pub async fn run<T, F, Fut>(&self, attempt: F) -> Result<T, DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DeliveryError>>,
    {
        self.run_with(Duplicates::Never, attempt).await
    }

    /// [`run`](Self::run), choosing whether failures that may have sent the
    /// message are retried.
    pub(crate) async fn run_with<T, F, Fut>(
        &self,
        duplicates: Duplicates,
        attempt: F,
    ) -> Result<T, DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DeliveryError>>,
    {
        self.run_until(self.deadline_from_now(), duplicates, attempt)
            .await
    }

    /// The instant this policy's deadline ends if a delivery starts now
    /// (`None`: too far to represent, so no deadline).
    pub(crate) fn deadline_from_now(&self) -> Option<tokio::time::Instant> {
        tokio::time::Instant::now().checked_add(self.deadline)
    }

    /// [`run_with`](Self::run_with) within a deadline fixed by the caller:
    /// one delivery made of several sends (a WhatsApp message, then its
    /// SMS fallback) shares one deadline.
    pub(crate) async fn run_until<T, F, Fut>(
        &self,
        deadline: Option<tokio::time::Instant>,
        duplicates: Duplicates,
        mut attempt: F,
    ) -> Result<T, DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DeliveryError>>,
    {
        if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
            // Nothing tried, so nothing sent.
            return Err(DeliveryError::transient(
                "the delivery deadline passed before this send",
            ));
        }
        let mut backoff = Backoff::new(self.initial_backoff);
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, attempt())
                    .await
                    .unwrap_or_else(|_elapsed| {
                        Err(DeliveryError::maybe_sent("the delivery deadline passed"))
                    }),
                None => attempt().await,
            };
            let err = match outcome {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let retryable = err.is_transient()
                && (!err.may_have_been_sent() || duplicates == Duplicates::Harmless)
                && tries < self.max_tries.max(1);
            if !retryable {
                return Err(err);
            }
            let wait = err.retry_after().unwrap_or_else(|| backoff.next());
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|deadline| now + wait >= deadline) {
                tracing::debug!(
                    try_number = tries,
                    wait_ms = wait.as_millis() as u64,
                    error = %err,
                    "delivery failed; the next try would pass the delivery deadline"
                );
                return Err(err);
            }
            tracing::debug!(
                try_number = tries,
                wait_ms = wait.as_millis() as u64,
                error = %err,
                "delivery failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Decorrelated jitter ("Exponential Backoff And Jitter", AWS architecture
/// blog): each wait is uniform between the base and three times the
/// previous wait.
struct Backoff {
    base: Duration,
    previous: Duration,
}

impl Backoff {
    fn new(base: Duration) -> Self {
        Self {
            base,
            previous: base,
        }
    }

    fn next(&mut self) -> Duration {
        let low = self.base;
        let high = self.previous.saturating_mul(3).max(low);
        let wait = low + (high - low).mul_f64(unit_random());
        self.previous = wait;
        wait
    }
}

/// A number in `[0, 1]` from the OS generator (0.5 if it fails: jitter is
/// about spreading retries, not secrecy).
fn unit_random() -> f64 {
    use rand::{TryRng, rngs::SysRng};
    match SysRng.try_next_u64() {
        // 53 random bits: every such f64 in [0, 1) is equally likely.
        Ok(bits) => (bits >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// Whether `host` names this machine (`localhost`, a loopback address,
/// bracketed or not).
#[cfg(any(
    feature = "smtp",
    feature = "sendgrid",
    feature = "twilio",
    feature = "webhooks"
))]
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Masks what looks like a contact in a provider's error text (which goes
/// to the log): any word containing `@` (or `%40`), and any run of phone-number
/// characters (digits and `+-().`) holding at least seven digits, wherever
/// it stands in a word (`whatsapp:+14155550100`, `To=%2B14155550100`).
#[cfg(any(feature = "smtp", feature = "sendgrid", feature = "twilio"))]
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        // `%40`: an address in a URL-encoded form echoed back.
        if word.contains('@') || word.contains("%40") {
            out.push_str("***");
        } else {
            mask_digit_runs(word, out);
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

/// Copies `word` to `out`, each run of phone-number characters with at
/// least seven digits replaced by `***`.
#[cfg(any(feature = "smtp", feature = "sendgrid", feature = "twilio"))]
fn mask_digit_runs(word: &str, out: &mut String) {
    let phone_char = |c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.');
    let mut rest = word;
    while let Some(start) = rest.find(phone_char) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let len = run.find(|c: char| !phone_char(c)).unwrap_or(run.len());
        let (run, after) = run.split_at(len);
        if run.chars().filter(char::is_ascii_digit).count() >= 7 {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        rest = after;
    }
    out.push_str(rest);
}

#[cfg(all(test, any(feature = "smtp", feature = "sendgrid", feature = "twilio")))]
mod scrub_tests {
    use super::scrub;

    #[test]
    fn contacts_are_masked_wherever_they_stand_in_a_word() {
        for (text, scrubbed) in [
            (
                "The 'To' number whatsapp:+14155550100 is not a valid phone number.",
                "The 'To' number whatsapp:*** is not a valid phone number.",
            ),
            ("To=%2B14155550100&Body=x", "To=%2B***&Body=x"),
            ("tel:+44 20 7946 0958", "tel:+44 20 7946 0958"),
            ("call (415) 555-0100 now", "call (415) *** now"),
            (
                "5.1.1 <ada@example.com>: Recipient address rejected",
                "5.1.1 <***>: Recipient address rejected",
            ),
            ("mailto:ada@example.com", "***"),
            ("To=ada%40example.com&x=1", "***"),
            ("error 21211, status 400", "error 21211, status 400"),
        ] {
            assert_eq!(scrub(text), scrubbed, "{text}");
        }
    }
}
