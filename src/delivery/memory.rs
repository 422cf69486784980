//! [`MemoryOutbox`]: a sender that keeps every message in memory, so that a
//! host app's own tests can read what would have been sent.
//!
//! ```
//! use tower_otp::delivery::{EmailMessage, EmailSender, MemoryOutbox};
//!
//! # tokio_test_block_on(async {
//! let outbox = MemoryOutbox::new();
//! let message = EmailMessage {
//!     to: vec!["ada@example.com".into()],
//!     subject: "Your code".into(),
//!     text: "Your code is 123456.".into(),
//!     ..Default::default()
//! };
//! outbox.send_email(&message).await.unwrap();
//! assert_eq!(outbox.messages().len(), 1);
//! assert_eq!(outbox.last_code_for("ada@example.com").as_deref(), Some("123456"));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;

use super::{DeliveryError, EmailMessage, EmailSender, SmsMessage, SmsSender};

/// One captured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMessage {
    /// An email.
    Email(EmailMessage),
    /// An SMS.
    Sms(SmsMessage),
}

impl OutboxMessage {
    /// Whether `recipient` is among the message's To recipients.
    pub fn is_to(&self, recipient: &str) -> bool {
        match self {
            Self::Email(m) => m.to.iter().any(|to| to == recipient),
            Self::Sms(m) => m.to == recipient,
        }
    }

    /// The plain-text content (the text part of an email, an SMS body).
    pub fn text(&self) -> &str {
        match self {
            Self::Email(m) => &m.text,
            Self::Sms(m) => &m.body,
        }
    }
}

/// Captures emails and SMS instead of sending them. Cheap to clone: clones
/// share one outbox.
#[derive(Debug, Clone, Default)]
pub struct MemoryOutbox {
    messages: Arc<Mutex<Vec<OutboxMessage>>>,
    failing: Arc<AtomicBool>,
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

    /// Makes later sends fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every message captured so far, oldest first.
    pub fn messages(&self) -> Vec<OutboxMessage> {
        self.lock().clone()
    }

    /// Forgets every captured message.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The newest message to `recipient` (an email address or E.164 number).
    pub fn last_to(&self, recipient: &str) -> Option<OutboxMessage> {
        self.lock()
            .iter()
            .rev()
            .find(|m| m.is_to(recipient))
            .cloned()
    }

    /// The one-time code in the newest message to `recipient`: the first run
    /// of 4 to 10 digits in its text.
    pub fn last_code_for(&self, recipient: &str) -> Option<String> {
        let message = self.last_to(recipient)?;
        first_code(message.text())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OutboxMessage>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn accept(&self, message: OutboxMessage) -> Result<(), DeliveryError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(DeliveryError::permanent("MemoryOutbox is set to fail"));
        }
        self.lock().push(message);
        Ok(())
    }
}

fn first_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| (4..=10).contains(&run.len()))
        .map(str::to_owned)
}

#[async_trait]
impl EmailSender for MemoryOutbox {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.accept(OutboxMessage::Email(message.clone()))
    }
}

#[async_trait]
impl SmsSender for MemoryOutbox {
    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        self.accept(OutboxMessage::Sms(message.clone()))
    }
}
