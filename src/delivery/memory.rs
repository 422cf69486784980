//! [`MemoryOutbox`]: a sender that keeps every message in memory, so that a
//! host app's own tests can read what would have been sent.
//!
//! ```
//! use tower_otp::delivery::{EmailMessage, EmailSender, MemoryOutbox};
//!
//! # tokio_test_block_on(async {
//! let outbox = MemoryOutbox::new();
//! let message = EmailMessage::new("ada@example.com", "Your code", "", "Your code is 123456.");
//! outbox.send_email(&message).await.unwrap();
//! assert_eq!(outbox.messages().len(), 1);
//! assert_eq!(outbox.last_code_for("ada@example.com").as_deref(), Some("123456"));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;

use super::{DeliveryError, EmailMessage, EmailSender, MobileChannel, SmsMessage, SmsSender};
use crate::{
    code::{MAX_CODE_LENGTH, MIN_CODE_LENGTH},
    contact::{Email, Mobile},
};

/// One captured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMessage {
    /// An email.
    Email(EmailMessage),
    /// An SMS.
    Sms(SmsMessage),
}

impl OutboxMessage {
    /// Whether `recipient` is among the message's To recipients, compared
    /// the way the crate normalizes contacts: an email address trimmed with
    /// its domain lower-cased (`Ada@Example.COM` is `Ada@example.com`; a
    /// `Name <address>` recipient counts by its address), a mobile number
    /// in E.164 (`+1 415 555 0123` is `+14155550123`).
    pub fn is_to(&self, recipient: &str) -> bool {
        let wanted = normalized(recipient);
        match self {
            Self::Email(m) => m.to.iter().any(|to| normalized(to) == wanted),
            Self::Sms(m) => normalized(&m.to) == wanted,
        }
    }

    /// The plain-text content (the text part of an email, an SMS body).
    pub fn text(&self) -> &str {
        match self {
            Self::Email(m) => &m.text,
            Self::Sms(m) => &m.body,
        }
    }

    /// The one-time code this message carries, if it is a code message.
    ///
    /// A message does not say which of its numbers is the code, so this
    /// reads it the way a person would, whatever the template or the app
    /// name hold (an app called "Shop 2024" puts `2024` in every message):
    ///
    /// 1. the code of a WebOTP / domain-bound line (`@host #123456`);
    /// 2. otherwise the stand-alone runs of 4 to 10 digits of the text, less
    ///    those that are in the subject (the app name is, the code is not)
    ///    and, when the email has an HTML part, those missing from it (the
    ///    code is in both parts);
    /// 3. of those, one that a code phrase announces (`code is: 123456`,
    ///    `code: 123456`, `123456 is your`), else the one that occurs the
    ///    fewest times (the app name repeats), the first on a tie.
    pub fn code(&self) -> Option<String> {
        let text = self.text();
        if let Some(code) = domain_bound_code(text) {
            return Some(code);
        }
        let mut candidates = digit_runs(text);
        if let Self::Email(m) = self {
            let subject = digit_runs(&m.subject);
            candidates.retain(|c| !subject.contains(c));
            if !m.html.trim().is_empty() {
                let html = digit_runs(&m.html);
                candidates.retain(|c| html.contains(c));
            }
        }
        candidates.dedup_by(|a, b| a == b);
        if let Some(announced) = candidates.iter().find(|c| announced(text, c)) {
            return Some(announced.clone());
        }
        let count = |c: &String| digit_runs(text).iter().filter(|x| *x == c).count();
        let fewest = candidates.iter().map(count).min()?;
        candidates.into_iter().find(|c| count(c) == fewest)
    }
}

/// A recipient as the crate would normalize it; unparsable ones as given.
fn normalized(recipient: &str) -> String {
    let recipient = recipient.trim();
    // `Name <address>`: the address.
    let address = match (recipient.rfind('<'), recipient.rfind('>')) {
        (Some(open), Some(close)) if open < close => &recipient[open + 1..close],
        _ => recipient,
    };
    if let Ok(email) = Email::parse(address) {
        return email.as_str().to_owned();
    }
    if let Ok(mobile) = Mobile::parse(address, None) {
        return mobile.as_str().to_owned();
    }
    address.to_owned()
}

/// The stand-alone runs of `MIN_CODE_LENGTH..=MAX_CODE_LENGTH` digits (not
/// glued to a letter, a digit or a decimal point), in order, repeats kept.
fn digit_runs(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let before = start.checked_sub(1).and_then(|j| bytes.get(j));
        // Part of a decimal number such as `1.5` or `2024.11`.
        let fraction = start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
        let integer_part =
            bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        let len = i - start;
        let standalone = !glued(before) && !glued(bytes.get(i)) && !fraction && !integer_part;
        if standalone
            && (usize::from(MIN_CODE_LENGTH)..=usize::from(MAX_CODE_LENGTH)).contains(&len)
        {
            runs.push(text[start..i].to_owned());
        }
    }
    runs
}

/// The code of a WebOTP / Apple domain-bound line: `@host #123456`.
fn domain_bound_code(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix('@')?;
        let (_, after) = rest.split_once(" #")?;
        let code: String = after.chars().take_while(char::is_ascii_digit).collect();
        digit_runs(&code).into_iter().next()
    })
}

/// Whether a code phrase announces `code` in `text`.
fn announced(text: &str, code: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(code).map(|i| i + from) {
        let before = lower[..at].trim_end();
        let after = lower[at + code.len()..].trim_start();
        if before.ends_with("code is:")
            || before.ends_with("code is")
            || before.ends_with("code:")
            || after.starts_with("is your")
        {
            return true;
        }
        from = at + code.len();
    }
    false
}

/// How [`MemoryOutbox`] fails a send, to exercise every delivery path of a
/// host app without an HTTP mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A transient failure ([`DeliveryError::transient`]): retried by the
    /// engine's retry policy; if every try fails the API answers 502
    /// `delivery_failed`.
    Transient,
    /// A permanent failure ([`DeliveryError::permanent`]): not retried,
    /// 502 `delivery_failed`.
    Permanent,
    /// The provider refused the recipient
    /// ([`DeliveryError::invalid_recipient`]): 400 `invalid_email` /
    /// `invalid_mobile`.
    InvalidRecipient,
}

impl Failure {
    fn error(self) -> DeliveryError {
        match self {
            Self::Transient => {
                DeliveryError::transient("MemoryOutbox: transient failure (as told)")
            }
            Self::Permanent => {
                DeliveryError::permanent("MemoryOutbox: permanent failure (as told)")
            }
            Self::InvalidRecipient => {
                DeliveryError::invalid_recipient("MemoryOutbox: invalid recipient (as told)")
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<OutboxMessage>,
    /// Failures for the next sends, one each, before `always`.
    next: VecDeque<Failure>,
    /// The failure of every other send, if any.
    always: Option<Failure>,
    /// Every send tried (failed ones included).
    attempts: usize,
}

/// Captures emails and SMS instead of sending them. Cheap to clone: clones
/// share one outbox.
///
/// It can also fail on request, to test a host's handling of every
/// delivery outcome: [`fail_next`](Self::fail_next) for the next send(s),
/// [`fail_always`](Self::fail_always) for every send until
/// [`succeed`](Self::succeed).
#[derive(Debug, Clone, Default)]
pub struct MemoryOutbox {
    state: Arc<Mutex<State>>,
}

impl MemoryOutbox {
    /// An empty outbox that accepts every message.
    pub fn new() -> Self {
        Self::default()
    }

    /// An outbox whose every send fails (permanently), to test delivery
    /// failures. Nothing is captured while it fails.
    pub fn failing() -> Self {
        let outbox = Self::new();
        outbox.set_failing(true);
        outbox
    }

    /// Makes later sends fail permanently (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.lock().always = failing.then_some(Failure::Permanent);
    }

    /// Makes the next send fail with `failure` (once; several calls queue
    /// several failures). With the engine's retries, `fail_next(Transient)`
    /// fails the first try and the retry delivers.
    pub fn fail_next(&self, failure: Failure) {
        self.lock().next.push_back(failure);
    }

    /// Makes every later send fail with `failure`, until [`succeed`](Self::succeed).
    pub fn fail_always(&self, failure: Failure) {
        self.lock().always = Some(failure);
    }

    /// Forgets every failure asked for: later sends succeed.
    pub fn succeed(&self) {
        let mut state = self.lock();
        state.next.clear();
        state.always = None;
    }

    /// How many sends were tried, failed ones included (retries count).
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Every message captured so far, oldest first.
    pub fn messages(&self) -> Vec<OutboxMessage> {
        self.lock().messages.clone()
    }

    /// Forgets every captured message.
    pub fn clear(&self) {
        self.lock().messages.clear();
    }

    /// The newest message to `recipient` (an email address or a mobile
    /// number, matched as the crate normalizes them, see
    /// [`OutboxMessage::is_to`]).
    pub fn last_to(&self, recipient: &str) -> Option<OutboxMessage> {
        self.lock()
            .messages
            .iter()
            .rev()
            .find(|m| m.is_to(recipient))
            .cloned()
    }

    /// The one-time code in the newest message to `recipient` (see
    /// [`OutboxMessage::code`] for how it is found).
    pub fn last_code_for(&self, recipient: &str) -> Option<String> {
        self.last_to(recipient)?.code()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn accept(&self, message: OutboxMessage) -> Result<(), DeliveryError> {
        let mut state = self.lock();
        state.attempts += 1;
        if let Some(failure) = state.next.pop_front().or(state.always) {
            return Err(failure.error());
        }
        state.messages.push(message);
        Ok(())
    }
}

#[async_trait]
impl EmailSender for MemoryOutbox {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.accept(OutboxMessage::Email(message.clone()))
    }

    fn for_development(&self) -> bool {
        true
    }
}

#[async_trait]
impl SmsSender for MemoryOutbox {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.accept(OutboxMessage::Sms(message.clone()))
    }

    fn for_development(&self) -> bool {
        true
    }

    /// SMS and WhatsApp (the message's [`channel`](SmsMessage::channel)
    /// says which).
    fn supports(&self, _channel: MobileChannel) -> bool {
        true
    }
}
