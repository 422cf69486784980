//! [`Readiness`]: whether each configured dependency answers, for a
//! readiness probe ([`Otp::readiness`](crate::Otp::readiness)).

use std::{fmt, time::Duration};

/// The deadline of each check of [`Otp::readiness`](crate::Otp::readiness).
pub const READINESS_DEADLINE: Duration = Duration::from_secs(2);

/// The answer of one dependency's check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// It answered.
    Ready,
    /// It failed or did not answer within the deadline. The reason is for
    /// the operator's log: it may hold a server's error text.
    Failed(String),
}

impl Check {
    /// Whether it answered.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// Whether the store and the senders answer: the store (a read of a key
/// that holds nothing), the email sender (SMTP: a connection and `NOOP`;
/// SendGrid: the key's scopes) and the SMS sender or verifier (Twilio: the
/// account or the Verify Service). Senders with no server (console,
/// `MemoryOutbox`) are always ready.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// The code store.
    pub store: Check,
    /// The email sender.
    pub email: Check,
    /// The SMS sender, or the provider that owns SMS codes.
    pub sms: Check,
}

impl Readiness {
    /// Whether every dependency answered.
    pub fn is_ready(&self) -> bool {
        self.checks().all(|(_, check)| check.is_ready())
    }

    /// The dependencies that failed: `"store"`, `"email"`, `"sms"`.
    pub fn failed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.checks()
            .filter(|(_, check)| !check.is_ready())
            .map(|(name, _)| name)
    }

    /// Each dependency and its check.
    pub fn checks(&self) -> impl Iterator<Item = (&'static str, &Check)> {
        [
            ("store", &self.store),
            ("email", &self.email),
            ("sms", &self.sms),
        ]
        .into_iter()
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ready() {
            return f.write_str("ready");
        }
        let failed: Vec<_> = self.failed().collect();
        write!(f, "not ready: {}", failed.join(", "))
    }
}

/// Runs `check` within the deadline.
pub(crate) async fn within<E: fmt::Display>(
    deadline: Duration,
    check: impl Future<Output = Result<(), E>>,
) -> Check {
    match tokio::time::timeout(deadline, check).await {
        Ok(Ok(())) => Check::Ready,
        Ok(Err(error)) => Check::Failed(error.to_string()),
        Err(_) => Check::Failed(format!("no answer within {deadline:?}")),
    }
}
