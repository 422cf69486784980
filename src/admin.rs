//! The operator's tools: what is pending for a contact, cancel its codes,
//! unlock it; list and lift the SMS fraud breaker's blocks. A Rust API for the host's own admin pages; **nothing of it is
//! mounted as a route**. Expose it behind the host's own authentication
//! (`examples/admin.rs` shows axum routes behind a bearer token).
//!
//! [`Admin`] comes from [`Otp::admin`](crate::Otp::admin). It derives store
//! keys exactly as the flow does (the canonical mailbox, the current
//! secret, one code slot per purpose), so it sees and changes what every
//! instance sharing the store sees: with a
//! [`RedisStore`](crate::store::RedisStore), an unlock on one instance
//! holds on all of them.
//!
//! It never reveals a code, its hash or its salt; its log lines carry the
//! masked contact only.
//!
//! ```
//! # async fn demo(otp: tower_otp::Otp) -> Result<(), tower_otp::admin::AdminError> {
//! let admin = otp.admin();
//! let contact = admin.parse_contact("ada@example.com")?;
//! let report = admin.pending(&contact).await?;
//! for code in &report.codes {
//!     println!("{}: {} s, {} attempts left", code.purpose, code.expires_in, code.attempts_left);
//! }
//! admin.cancel(&contact, None).await?; // every purpose
//! admin.unlock(&contact).await?; // failure budget, cooldown and quota
//! for block in admin.blocked_ranges().await? {
//!     println!("{}: blocked {} s more ({} sent, {} verified)", block.range, block.seconds_left, block.sent, block.verified);
//!     admin.lift_range_block(&block.range).await?;
//! }
//! # Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    contact::{Contact, Email, InvalidContact, Mobile, Region},
    engine::Engine,
    store::{StoreError, StoreKey},
};

/// The operator's handle on the store, from [`Otp::admin`](crate::Otp::admin).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    engine: Arc<Engine>,
    default_region: Option<Region>,
}

/// What is pending for one contact ([`Admin::pending`]). Never a code, a
/// hash or a salt; the contact only masked. Times are whole seconds,
/// rounded up (0: nothing running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingReport {
    /// `email` or `mobile`.
    pub channel: &'static str,
    /// The contact, masked (`a***@example.com`, `+91******5678`).
    pub contact: String,
    /// One entry per registered purpose with a live code (built-ins first).
    pub codes: Vec<PendingCode>,
    /// Sends counted in the current quota window (failed ones included).
    pub sends_in_window: u32,
    /// The send quota per window in force.
    pub send_quota: u32,
    /// Seconds left in the quota window.
    pub window_left: u64,
    /// Seconds left in the resend cooldown.
    pub cooldown_left: u64,
    /// Consecutive wrong codes counted against the failure budget.
    pub failures: u32,
    /// Seconds left in the failure-budget lock (verifies refused until then).
    pub locked_for: u64,
}

/// A live code of one purpose, in a [`PendingReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingCode {
    /// The purpose it was sent for.
    pub purpose: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Wrong codes it still accepts before it is destroyed.
    pub attempts_left: u32,
}

/// A number range the SMS fraud breaker blocks ([`Admin::blocked_ranges`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BlockedRange {
    /// The range: `+`, the country calling code and the leading digits
    /// (`+447400`).
    pub range: String,
    /// Seconds left in the block (rounded up).
    pub seconds_left: u64,
    /// Sends counted in the window when the breaker tripped.
    pub sent: u32,
    /// Verified codes counted in the window when the breaker tripped.
    pub verified: u32,
}

/// Why an [`Admin`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The contact is not a valid email address or mobile number.
    #[error("invalid contact: {0}")]
    InvalidContact(#[from] InvalidContact),
    /// The purpose is not registered with this `Otp`.
    #[error("unknown purpose")]
    UnknownPurpose,
    /// Not a number range (`+` and 1 to 12 digits, e.g. `+447400`).
    #[error("invalid number range")]
    InvalidRange,
    /// The store failed, or does not implement the operator's methods
    /// ([`StoreError::is_unsupported`]).
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

/// Whole seconds, rounded up; zero stays zero.
fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Admin {
    pub(crate) fn new(engine: Arc<Engine>, default_region: Option<Region>) -> Self {
        Self {
            engine,
            default_region,
        }
    }

    /// Reads a contact as the routes do: an address with `@` is an email
    /// (trimmed, domain lower-cased), anything else a mobile number (E.164,
    /// or national in the configured default region).
    pub fn parse_contact(&self, input: &str) -> Result<Contact, AdminError> {
        Ok(if input.contains('@') {
            Contact::Email(Email::parse(input)?)
        } else {
            Contact::Mobile(Mobile::parse(input, self.default_region)?)
        })
    }

    /// The contact's key under every secret, the current one first (codes
    /// sent before a rotation live under an older one).
    fn keys(&self, contact: &Contact) -> impl Iterator<Item = StoreKey> + '_ {
        let contact = contact.clone();
        (0..self.engine.keys.all().len()).map(move |i| self.engine.store_key(&contact, i))
    }

    /// What is pending for `contact`: its live codes by purpose (time and
    /// attempts left), its sends in the quota window, its cooldown and its
    /// failure budget.
    pub async fn pending(&self, contact: &Contact) -> Result<PendingReport, AdminError> {
        let store = &self.engine.store;
        let settings = &self.engine.settings;
        let keys: Vec<StoreKey> = self.keys(contact).collect();
        let mut codes = Vec::new();
        for purpose in settings.purposes.names() {
            for key in &keys {
                let Some(status) = store.inspect_code(&key.with_purpose(purpose)).await? else {
                    continue;
                };
                let attempts_left = settings.max_attempts.saturating_sub(status.attempts_used);
                if attempts_left > 0 {
                    codes.push(PendingCode {
                        purpose: purpose.to_owned(),
                        expires_in: secs(status.expires_in),
                        attempts_left,
                    });
                }
                break;
            }
        }
        let current = &keys[0];
        let sends = store.inspect_sends(current).await?;
        let failures = store.inspect_failures(current).await?;
        Ok(PendingReport {
            channel: contact.channel().as_str(),
            contact: contact.masked().to_string(),
            codes,
            sends_in_window: sends.map_or(0, |s| s.sends),
            send_quota: settings.limits.quota,
            window_left: sends.map_or(0, |s| secs(s.window_left)),
            cooldown_left: sends.map_or(0, |s| secs(s.cooldown_left)),
            failures: failures.map_or(0, |f| f.failures),
            locked_for: failures.and_then(|f| f.locked_for).map_or(0, secs),
        })
    }

    /// Cancels `contact`'s pending code for `purpose` (`None`: every
    /// registered purpose). The next verify answers `otp_expired`; the
    /// cooldown and quota are untouched. Returns how many codes it
    /// deleted.
    pub async fn cancel(
        &self,
        contact: &Contact,
        purpose: Option<&str>,
    ) -> Result<usize, AdminError> {
        let purposes = &self.engine.settings.purposes;
        let selected: Vec<&str> = match purpose {
            Some(name) => vec![purposes.get(name).ok_or(AdminError::UnknownPurpose)?],
            None => purposes.names().collect(),
        };
        let mut deleted = 0;
        for key in self.keys(contact) {
            for purpose in &selected {
                if self
                    .engine
                    .store
                    .delete_code(&key.with_purpose(purpose))
                    .await?
                {
                    deleted += 1;
                }
            }
        }
        tracing::info!(
            contact = %contact.masked(),
            purpose = purpose.unwrap_or("*"),
            deleted,
            "admin: pending codes cancelled"
        );
        Ok(deleted)
    }

    /// Unlocks `contact`: forgets its failures (lifting a failure-budget
    /// lock), ends its resend cooldown and starts its send quota again.
    /// Pending codes stay as they are.
    pub async fn unlock(&self, contact: &Contact) -> Result<(), AdminError> {
        let key = self.engine.store_key(contact, 0);
        self.engine.store.reset_failures(&key).await?;
        self.engine.store.clear_sends(&key).await?;
        tracing::info!(contact = %contact.masked(), "admin: contact unlocked");
        Ok(())
    }

    /// The number ranges the SMS fraud breaker blocks now, on every
    /// instance sharing the store (see
    /// [`sms_breaker`](crate::limit::sms_breaker)), sorted by range.
    pub async fn blocked_ranges(&self) -> Result<Vec<BlockedRange>, AdminError> {
        let blocks = self.engine.store.blocked_ranges().await?;
        Ok(blocks
            .into_iter()
            .map(|b| BlockedRange {
                range: b.range,
                seconds_left: secs(b.blocked_for),
                sent: b.sent,
                verified: b.verified,
            })
            .collect())
    }

    /// Lifts the breaker's block on `range` (`+447400`, as
    /// [`blocked_ranges`](Self::blocked_ranges) lists it) and forgets its
    /// figures, so that it is judged afresh. Returns whether it was
    /// blocked.
    pub async fn lift_range_block(&self, range: &str) -> Result<bool, AdminError> {
        let range = range.trim();
        let digits = range.strip_prefix('+').ok_or(AdminError::InvalidRange)?;
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AdminError::InvalidRange);
        }
        let lifted = self.engine.store.lift_range_block(range).await?;
        tracing::info!(range, lifted, "admin: SMS range block lifted");
        Ok(lifted)
    }
}
