//! Where codes, attempt counts, cooldowns and send quotas live.
//!
//! [`OtpStore`] is the one trait every backend implements. The engine owns
//! the flow; the store owns **atomicity and expiry**. Each method is one
//! atomic operation, so that parallel requests (on one instance or on many
//! sharing the store) cannot get more guesses, cannot use a code twice and
//! cannot slip past a cooldown or quota:
//!
//! | method | atomic operation |
//! |---|---|
//! | [`reserve_send`](OtpStore::reserve_send) | check the cooldown and the quota, count this send, start the cooldown |
//! | [`release_cooldown`](OtpStore::release_cooldown) | end the cooldown early (delivery failed), keep the count |
//! | [`put_code`](OtpStore::put_code) | store a code record with its expiry, replacing any previous one |
//! | [`begin_attempt`](OtpStore::begin_attempt) | refuse if the contact is locked by its failure budget; else take one attempt from the live code and return its record |
//! | [`remove_code`](OtpStore::remove_code) | delete the code only if it is still the given one (single use) |
//! | [`consume_code`](OtpStore::consume_code) | `remove_code`, and on success reset the failure budget (one operation where the store can) |
//! | [`record_failure`](OtpStore::record_failure) | count one wrong code against the contact's failure budget; lock it once the budget is used up |
//! | [`reset_failures`](OtpStore::reset_failures) | forget the contact's failures and lift its lock (a success, or an operator's unlock) |
//! | [`spend_grant`](OtpStore::spend_grant) | record a grant as spent, only if it was not (single-use grants) |
//!
//! The operator's tools ([`Admin`](crate::Admin)) use five more methods, with
//! default implementations that answer [`StoreError::unsupported`] so that
//! stores written before them keep compiling:
//!
//! | method | operation |
//! |---|---|
//! | [`inspect_code`](OtpStore::inspect_code) | time left and attempts used of the live code (never its hash or salt) |
//! | [`inspect_sends`](OtpStore::inspect_sends) | sends counted in the quota window, time left in the window and in the cooldown |
//! | [`inspect_failures`](OtpStore::inspect_failures) | failures counted and time left in the lock |
//! | [`delete_code`](OtpStore::delete_code) | delete the live code, whatever it is (cancel) |
//! | [`clear_sends`](OtpStore::clear_sends) | forget the contact's cooldown and send count (unlock) |
//!
//! Keys are [`StoreKey`]s: a keyed digest of the contact's identity, never
//! the raw address or number. Codes live per (purpose, contact): a store keys
//! code records by [`StoreKey::code_slot`], and cooldowns, quotas and failure
//! records by [`StoreKey::as_str`] (the contact), so purposes share them.
//!
//! # The failure budget
//!
//! Per contact, consecutive wrong codes are counted **across codes** (a new
//! code does not reset them; NIST SP 800-63B caps consecutive failures per
//! account). Only a wrong code against a live code counts: the engine calls
//! [`record_failure`](OtpStore::record_failure) after it compared a
//! candidate and found it wrong, never for `otp_expired`. Once
//! [`FailureBudget::limit`] failures are counted with no success between,
//! the store keeps a lock: [`begin_attempt`](OtpStore::begin_attempt)
//! answers [`Attempt::Locked`] (before it takes an attempt, so a locked
//! verify spends neither an attempt nor a hash, even with the right code),
//! answered as 429 `rate_limited` with `Retry-After`. The lock lasts
//! [`FailureBudget::first_lock`] (30 s), doubled for each further failure
//! up to [`FailureBudget::max_lock`] (1 h). A success
//! ([`consume_code`](OtpStore::consume_code)) or an operator's
//! [`reset_failures`](OtpStore::reset_failures) (unlock) clears it. The
//! record expires [`FailureBudget::keep`] (24 h) after the last failure,
//! so the store does not grow forever.
//!
//! # Implementing a store
//!
//! A complete (if naive, unbounded and single-process) store:
//!
//! ```
//! use std::{collections::HashMap, sync::Mutex, time::{Duration, Instant}};
//! use tower_otp::store::{
//!     Attempt, CodeRecord, FailureBudget, FailureOutcome, OtpStore, SendLimits,
//!     SendReservation, StoreError, StoreKey,
//! };
//!
//! #[derive(Debug, Default)]
//! struct ToyStore {
//!     codes: Mutex<HashMap<String, (CodeRecord, u32, Instant)>>,
//!     sends: Mutex<HashMap<String, (Instant, u32, Instant)>>, // cooldown end, count, window end
//!     spent: Mutex<HashMap<String, Instant>>, // spent grant ids, until their expiry
//!     failures: Mutex<HashMap<String, (u32, Instant)>>, // failures, locked until
//! }
//!
//! #[async_trait::async_trait]
//! impl OtpStore for ToyStore {
//!     async fn reserve_send(&self, key: &StoreKey, limits: &SendLimits)
//!         -> Result<SendReservation, StoreError> {
//!         let now = Instant::now();
//!         let mut sends = self.sends.lock().unwrap();
//!         let entry = sends.entry(key.as_str().to_owned()).or_insert((now, 0, now + limits.window));
//!         if entry.2 <= now { *entry = (now, 0, now + limits.window); }
//!         if entry.0 > now {
//!             return Ok(SendReservation::Cooldown { retry_after: entry.0 - now });
//!         }
//!         if entry.1 >= limits.quota {
//!             return Ok(SendReservation::QuotaExceeded { retry_after: entry.2 - now });
//!         }
//!         entry.1 += 1;
//!         entry.0 = now + limits.cooldown;
//!         Ok(SendReservation::Granted)
//!     }
//!     async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
//!         if let Some(e) = self.sends.lock().unwrap().get_mut(key.as_str()) { e.0 = Instant::now(); }
//!         Ok(())
//!     }
//!     async fn put_code(&self, key: &StoreKey, record: &CodeRecord, ttl: Duration)
//!         -> Result<(), StoreError> {
//!         let expires = Instant::now() + ttl;
//!         // Codes live per (purpose, contact): key them by `code_slot()`.
//!         self.codes.lock().unwrap().insert(key.code_slot().into_owned(), (record.clone(), 0, expires));
//!         Ok(())
//!     }
//!     async fn begin_attempt(&self, key: &StoreKey, max_attempts: u32)
//!         -> Result<Attempt, StoreError> {
//!         let now = Instant::now();
//!         if let Some((_, until)) = self.failures.lock().unwrap().get(key.as_str()) {
//!             if *until > now {
//!                 return Ok(Attempt::Locked { retry_after: *until - now });
//!             }
//!         }
//!         let mut codes = self.codes.lock().unwrap();
//!         let slot = key.code_slot();
//!         match codes.get_mut(slot.as_ref()) {
//!             Some((_, _, expires)) if *expires <= Instant::now() => {
//!                 codes.remove(slot.as_ref());
//!                 Ok(Attempt::NoCode)
//!             }
//!             Some((_, used, _)) if *used >= max_attempts => Ok(Attempt::Exhausted),
//!             Some((record, used, _)) => {
//!                 *used += 1;
//!                 Ok(Attempt::Granted { record: record.clone(), attempts_used: *used })
//!             }
//!             None => Ok(Attempt::NoCode),
//!         }
//!     }
//!     async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
//!         let mut codes = self.codes.lock().unwrap();
//!         let slot = key.code_slot();
//!         let matches = codes.get(slot.as_ref()).is_some_and(|(r, _, _)| &r.salt == salt);
//!         if matches { codes.remove(slot.as_ref()); }
//!         Ok(matches)
//!     }
//!     async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
//!         let mut spent = self.spent.lock().unwrap();
//!         let now = Instant::now();
//!         if spent.get(key.as_str()).is_some_and(|until| *until > now) {
//!             return Ok(false);
//!         }
//!         spent.insert(key.as_str().to_owned(), now + ttl);
//!         Ok(true)
//!     }
//!     async fn record_failure(&self, key: &StoreKey, budget: &FailureBudget)
//!         -> Result<FailureOutcome, StoreError> {
//!         let now = Instant::now();
//!         let mut failures = self.failures.lock().unwrap();
//!         let entry = failures.entry(key.as_str().to_owned()).or_insert((0, now));
//!         entry.0 += 1;
//!         let lock = budget.lock_after(entry.0);
//!         if let Some(lock) = lock { entry.1 = now + lock; }
//!         Ok(FailureOutcome::new(entry.0, lock))
//!     }
//!     async fn reset_failures(&self, key: &StoreKey) -> Result<(), StoreError> {
//!         self.failures.lock().unwrap().remove(key.as_str());
//!         Ok(())
//!     }
//! }
//!
//! # let _ = tower_otp::Otp::builder().store(ToyStore::default());
//! ```

use std::{fmt, time::Duration};

use async_trait::async_trait;

pub(crate) mod deadline;
pub mod memory;
pub mod ranges;
pub mod rate;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use memory::MemoryStore;
pub use ranges::{RangeBlock, RangeLimits, RangeVerdict};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

/// The store key of one contact: a keyed digest (hex), never the raw contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    digest: String,
    /// The code's purpose, when not the default (`verify`).
    purpose: Option<Box<str>>,
}

impl StoreKey {
    /// Wraps a digest. The engine makes these; stores only read them.
    pub fn new(digest: impl Into<String>) -> Self {
        Self {
            digest: digest.into(),
            purpose: None,
        }
    }

    /// This contact's key for a code of `purpose`: codes live per
    /// (purpose, contact), while cooldown, quota and failure budget stay per
    /// contact ([`as_str`](Self::as_str)).
    pub fn with_purpose(&self, purpose: &str) -> Self {
        Self {
            digest: self.digest.clone(),
            purpose: (purpose != crate::purpose::DEFAULT_PURPOSE).then(|| purpose.into()),
        }
    }

    /// The contact's digest as text (hex digits only): the key of its
    /// cooldown, quota and failure budget.
    pub fn as_str(&self) -> &str {
        &self.digest
    }

    /// The code's purpose, `None` for the default (`verify`).
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    /// Where a code of this key lives: the digest for the default purpose,
    /// `<digest>:<purpose>` for the others. Stores key codes by it, so that
    /// a code for one purpose never answers for another.
    pub fn code_slot(&self) -> std::borrow::Cow<'_, str> {
        match &self.purpose {
            None => std::borrow::Cow::Borrowed(&self.digest),
            Some(purpose) => std::borrow::Cow::Owned(format!("{}:{purpose}", self.digest)),
        }
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code_slot())
    }
}

/// What is stored for one live code. Never the code itself. It will grow
/// (so it is `non_exhaustive`: build one with [`CodeRecord::new`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeRecord {
    /// The random Argon2 salt; also identifies this code (see
    /// [`OtpStore::remove_code`]).
    pub salt: [u8; 16],
    /// The Argon2id hash of the code, keyed with the server secret. Empty
    /// when the provider checks the code itself (Twilio Verify).
    pub hash: Vec<u8>,
    /// Which server secret keyed the hash (0 for the current one at issue
    /// time; see `Otp` key rotation). A fingerprint, not the secret.
    pub secret_id: u32,
}

impl fmt::Debug for CodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeRecord")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

impl CodeRecord {
    /// A record of a code hashed with `salt` under the secret `secret_id`.
    pub fn new(salt: [u8; 16], hash: Vec<u8>, secret_id: u32) -> Self {
        Self {
            salt,
            hash,
            secret_id,
        }
    }

    /// Serializes the record to bytes (salt, secret id, hash) for stores that
    /// keep blobs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.hash.len());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.secret_id.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes); `None` for malformed input.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 20 {
            return None;
        }
        let salt: [u8; 16] = bytes[..16].try_into().ok()?;
        let secret_id = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        Some(Self {
            salt,
            hash: bytes[20..].to_vec(),
            secret_id,
        })
    }
}

/// The cooldown and quota applied by [`OtpStore::reserve_send`]
/// (`non_exhaustive`: build one with [`SendLimits::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendLimits {
    /// Time before the same contact may be sent another code.
    pub cooldown: Duration,
    /// Sends allowed per contact per window.
    pub quota: u32,
    /// The quota window (fixed, starting at the first send).
    pub window: Duration,
}

impl SendLimits {
    /// A `cooldown` between sends and `quota` sends per `window`.
    pub fn new(cooldown: Duration, quota: u32, window: Duration) -> Self {
        Self {
            cooldown,
            quota,
            window,
        }
    }
}

/// The answer of [`OtpStore::reserve_send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendReservation {
    /// The send may go ahead; it was counted and the cooldown started.
    Granted,
    /// A code was sent too recently.
    Cooldown {
        /// Time left in the cooldown.
        retry_after: Duration,
    },
    /// The quota for this window is used up.
    QuotaExceeded {
        /// Time left in the window.
        retry_after: Duration,
    },
}

/// The answer of [`OtpStore::begin_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// The contact used up its failure budget: no attempt was taken, and
    /// none may be until the lock ends (or is reset).
    Locked {
        /// Time left in the lock.
        retry_after: Duration,
    },
    /// No live code: never sent, expired, used or destroyed.
    NoCode,
    /// A live code exists but all its attempts are taken.
    Exhausted,
    /// One attempt was taken; compare the candidate with this record.
    Granted {
        /// The live code's record.
        record: CodeRecord,
        /// Attempts used so far, this one included (1-based).
        attempts_used: u32,
    },
}

/// Default failures per contact, with no success between, before verifies
/// are refused.
pub const DEFAULT_FAILURE_BUDGET: u32 = 25;
/// Default length of the first lock once the failure budget is used up.
pub const DEFAULT_FIRST_LOCK: Duration = Duration::from_secs(30);
/// Default longest lock (the doubling stops here).
pub const DEFAULT_MAX_LOCK: Duration = Duration::from_secs(3600);
/// Default time a failure record is kept after the contact's last failure.
pub const DEFAULT_FAILURE_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The failure budget applied by [`OtpStore::record_failure`]
/// (`non_exhaustive`: build one with [`FailureBudget::new`]). See the
/// [module docs](self#the-failure-budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureBudget {
    /// Failures (with no success between) that lock the contact. At least 1.
    pub limit: u32,
    /// The lock started by the failure that reaches `limit`; each further
    /// failure doubles it.
    pub first_lock: Duration,
    /// The longest lock.
    pub max_lock: Duration,
    /// How long the record is kept after the last failure (at least as
    /// long as the lock).
    pub keep: Duration,
}

impl FailureBudget {
    /// A budget of `limit` failures, with the default locks (30 s doubling
    /// to 1 h) and records kept 24 h.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            first_lock: DEFAULT_FIRST_LOCK,
            max_lock: DEFAULT_MAX_LOCK,
            keep: DEFAULT_FAILURE_KEEP,
        }
    }

    /// Sets the first and the longest lock.
    pub fn locks(mut self, first: Duration, max: Duration) -> Self {
        self.first_lock = first;
        self.max_lock = max.max(first);
        self
    }

    /// The lock that the `failures`-th consecutive failure starts, if any:
    /// none below the limit, then `first_lock`, doubling, up to `max_lock`.
    pub fn lock_after(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.limit.max(1))?;
        let factor = 1u32.checked_shl(beyond.min(31)).unwrap_or(u32::MAX);
        Some(
            self.first_lock
                .checked_mul(factor)
                .unwrap_or(self.max_lock)
                .min(self.max_lock),
        )
    }

    /// How long the record of a contact whose last failure started `lock`
    /// must be kept.
    pub fn keep_for(&self, lock: Option<Duration>) -> Duration {
        self.keep.max(lock.unwrap_or_default())
    }
}

impl Default for FailureBudget {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURE_BUDGET)
    }
}

/// The answer of [`OtpStore::record_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureOutcome {
    /// Consecutive failures counted for the contact, this one included.
    pub failures: u32,
    /// The lock this failure started, if the budget is used up.
    pub locked_for: Option<Duration>,
    /// Whether a lock was already in force when this failure was counted
    /// (a parallel request started it): the engine then refuses the
    /// request before its check.
    pub was_locked: bool,
}

impl FailureOutcome {
    /// `failures` counted, and the lock started, if any.
    pub fn new(failures: u32, locked_for: Option<Duration>) -> Self {
        Self {
            failures,
            locked_for,
            was_locked: false,
        }
    }

    /// The same, saying whether a lock was already in force.
    pub fn with_was_locked(mut self, was_locked: bool) -> Self {
        self.was_locked = was_locked;
        self
    }
}

/// What [`OtpStore::inspect_code`] reports about a live code: never the
/// code, its hash or its salt (`non_exhaustive`: build one with
/// [`CodeStatus::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeStatus {
    /// Time until the code expires.
    pub expires_in: Duration,
    /// Attempts taken on it so far.
    pub attempts_used: u32,
}

impl CodeStatus {
    /// A code expiring in `expires_in` with `attempts_used` attempts taken.
    pub fn new(expires_in: Duration, attempts_used: u32) -> Self {
        Self {
            expires_in,
            attempts_used,
        }
    }
}

/// What [`OtpStore::inspect_sends`] reports about a contact's send record
/// (`non_exhaustive`: build one with [`SendStatus::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendStatus {
    /// Sends counted in the current quota window (released ones included).
    pub sends: u32,
    /// Time left in the quota window.
    pub window_left: Duration,
    /// Time left in the resend cooldown (zero when none is running).
    pub cooldown_left: Duration,
}

impl SendStatus {
    /// `sends` counted, the window ending in `window_left`, the cooldown in
    /// `cooldown_left`.
    pub fn new(sends: u32, window_left: Duration, cooldown_left: Duration) -> Self {
        Self {
            sends,
            window_left,
            cooldown_left,
        }
    }
}

/// What [`OtpStore::inspect_failures`] reports about a contact's failure
/// budget (`non_exhaustive`: build one with [`FailureStatus::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureStatus {
    /// Consecutive wrong codes counted.
    pub failures: u32,
    /// Time left in the lock (`None` when not locked).
    pub locked_for: Option<Duration>,
}

impl FailureStatus {
    /// `failures` counted, locked for `locked_for`, if at all.
    pub fn new(failures: u32, locked_for: Option<Duration>) -> Self {
        Self {
            failures,
            locked_for,
        }
    }
}

/// The storage backend: atomic operations on codes, attempts, cooldowns and
/// quotas. See the [module docs](self) for the contract and an example.
#[async_trait]
pub trait OtpStore: Send + Sync + fmt::Debug + 'static {
    /// Atomically: if the contact is in its cooldown, or its quota for the
    /// current window is used up, say so and change nothing; otherwise count
    /// one send and start the cooldown.
    async fn reserve_send(
        &self,
        key: &StoreKey,
        limits: &SendLimits,
    ) -> Result<SendReservation, StoreError>;

    /// Ends the cooldown now but keeps the send count (used when delivery
    /// failed, so the user can retry at once). A send block
    /// ([`block_sends`](Self::block_sends)) in force stays: it may have
    /// begun while the failed send was in flight.
    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Stores a new code for the contact with a fresh attempt count,
    /// replacing any previous one, expiring after `ttl`.
    async fn put_code(
        &self,
        key: &StoreKey,
        record: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Atomically: if the contact is locked by its failure budget (see
    /// [`record_failure`](Self::record_failure)), answer
    /// [`Attempt::Locked`] and change nothing; otherwise take one attempt
    /// from the live code: if it has fewer than `max_attempts` used, count
    /// one more and return the record.
    async fn begin_attempt(&self, key: &StoreKey, max_attempts: u32)
    -> Result<Attempt, StoreError>;

    /// Atomically deletes the code if the live one still has this salt.
    /// Returns whether it did: for a correct code, exactly one caller gets
    /// `true`.
    async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError>;

    /// The success path: [`remove_code`](Self::remove_code) and, if it
    /// removed the code, [`reset_failures`](Self::reset_failures). The
    /// default calls both; a store that can should do it in one operation
    /// (one round trip).
    async fn consume_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let consumed = self.remove_code(key, salt).await?;
        if consumed {
            self.reset_failures(key).await?;
        }
        Ok(consumed)
    }

    /// Atomically counts one failure (a wrong code against a live code)
    /// for the contact; when the count reaches `budget.limit`, locks the
    /// contact for [`FailureBudget::lock_after`] the count, so that
    /// [`begin_attempt`](Self::begin_attempt) answers [`Attempt::Locked`]
    /// until then. The record expires [`FailureBudget::keep_for`] after
    /// this failure.
    async fn record_failure(
        &self,
        key: &StoreKey,
        budget: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError>;

    /// Forgets the contact's failures and lifts its lock: called after a
    /// success, and the operator's "unlock".
    async fn reset_failures(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Atomically records the grant named `key` as spent for `ttl` (the
    /// grant's remaining lifetime). Returns whether it was not spent
    /// before: for one grant, exactly one caller gets `true`, on every
    /// instance sharing the store.
    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError>;

    /// The live code at `key`'s code slot ([`StoreKey::code_slot`]): time
    /// left and attempts used, or `None` when there is none. Changes
    /// nothing. For the operator's tools; the default answers
    /// [`StoreError::unsupported`].
    async fn inspect_code(&self, key: &StoreKey) -> Result<Option<CodeStatus>, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("inspect_code"))
    }

    /// The contact's send record (cooldown and quota), or `None` when it
    /// has none (or its window and cooldown are over). Changes nothing.
    /// The default answers [`StoreError::unsupported`].
    async fn inspect_sends(&self, key: &StoreKey) -> Result<Option<SendStatus>, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("inspect_sends"))
    }

    /// The contact's failure record, or `None` when it has none. Changes
    /// nothing. The default answers [`StoreError::unsupported`].
    async fn inspect_failures(&self, key: &StoreKey) -> Result<Option<FailureStatus>, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("inspect_failures"))
    }

    /// Deletes the live code at `key`'s code slot, whatever its salt (the
    /// operator's cancel). Returns whether there was one. The default
    /// answers [`StoreError::unsupported`].
    async fn delete_code(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("delete_code"))
    }

    /// Forgets the contact's send record: its cooldown ends and its send
    /// count starts again from zero (the operator's unlock). Returns
    /// whether there was one. The default answers
    /// [`StoreError::unsupported`].
    async fn clear_sends(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("clear_sends"))
    }

    /// The SMS fraud breaker, for one number range (see [`ranges`]):
    /// atomically, if `range` is blocked answer
    /// [`RangeVerdict::Blocked`]; else if its figures over the window trip
    /// `limits`, block it for [`RangeLimits::block`] and answer `Blocked`
    /// with `tripped`; else count one send and answer
    /// [`RangeVerdict::Allowed`]. Every instance sharing the store must see
    /// the same figures. The default answers [`StoreError::unsupported`].
    async fn record_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        let _ = (range, limits);
        Err(StoreError::unsupported("record_range_send"))
    }

    /// The breaker's verdict for a send that goes out to no one (an
    /// enumeration-safe decoy), so that it answers like a real send: as
    /// [`record_range_send`](Self::record_range_send) (a blocked range is
    /// `Blocked`; figures that trip `limits` block the range, as the next
    /// real send would), but the send is not counted. The default answers
    /// [`StoreError::unsupported`].
    async fn check_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        let _ = (range, limits);
        Err(StoreError::unsupported("check_range_send"))
    }

    /// Counts one verified code for `range` in the window of `limits`.
    /// The default answers [`StoreError::unsupported`].
    async fn record_range_verify(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        let _ = (range, limits);
        Err(StoreError::unsupported("record_range_verify"))
    }

    /// The range blocks in force, sorted by range. The default answers
    /// [`StoreError::unsupported`].
    async fn blocked_ranges(&self) -> Result<Vec<RangeBlock>, StoreError> {
        Err(StoreError::unsupported("blocked_ranges"))
    }

    /// Ends `range`'s block and forgets its figures (so it does not trip
    /// again at once). Returns whether it was blocked. The default answers
    /// [`StoreError::unsupported`].
    async fn lift_range_block(&self, range: &str) -> Result<bool, StoreError> {
        let _ = range;
        Err(StoreError::unsupported("lift_range_block"))
    }
    /// Takes back one send counted by
    /// [`record_range_send`](Self::record_range_send) whose delivery
    /// failed (nothing reached the range: a provider outage must not block
    /// ranges). The default answers [`StoreError::unsupported`].
    async fn release_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        let _ = (range, limits);
        Err(StoreError::unsupported("release_range_send"))
    }

    /// Stores an email link record (opaque bytes that hold no token and no
    /// address in the clear) in the link slot of `key`'s code slot,
    /// replacing any previous one, expiring after `ttl`. Used only with
    /// email links on; the default answers [`StoreError::unsupported`].
    async fn put_link(
        &self,
        key: &StoreKey,
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _ = (key, record, ttl);
        Err(StoreError::unsupported("put_link"))
    }

    /// The live link record of `key`'s code slot, if any. Changes nothing.
    /// The default answers [`StoreError::unsupported`].
    async fn get_link(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("get_link"))
    }

    /// Deletes the link record of `key`'s code slot. Returns whether there
    /// was one. The default answers [`StoreError::unsupported`].
    async fn delete_link(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let _ = key;
        Err(StoreError::unsupported("delete_link"))
    }

    /// Blocks sends to the contact for `block` (a "this wasn't me"
    /// cancel): [`reserve_send`](Self::reserve_send) answers
    /// [`SendReservation::Cooldown`] until then. Kept in the send record,
    /// so that [`clear_sends`](Self::clear_sends) (the operator's unlock)
    /// lifts it; never shortens a running cooldown, and
    /// [`release_cooldown`](Self::release_cooldown) does not end it. The
    /// default answers [`StoreError::unsupported`].
    async fn block_sends(&self, key: &StoreKey, block: Duration) -> Result<(), StoreError> {
        let _ = (key, block);
        Err(StoreError::unsupported("block_sends"))
    }
}

/// A store failure. Opaque, keeps its source for the logs.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreErrorKind {
    Unavailable,
    Full,
    Corrupt,
    Unsupported,
}

impl StoreError {
    /// The backend cannot be reached (connection refused, timeout, pool
    /// exhausted). Answered as 503 `store_unavailable`.
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    /// The store reached its capacity. Answered as 503 `store_unavailable`.
    pub fn full() -> Self {
        Self {
            kind: StoreErrorKind::Full,
            source: None,
        }
    }

    /// The backend answered something unexpected. Answered as 500 `internal`.
    pub fn corrupt(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind: StoreErrorKind::Corrupt,
            source: Some(source.into()),
        }
    }

    /// The store does not implement `operation` (the default of the
    /// operator's methods, such as [`OtpStore::inspect_code`]).
    pub fn unsupported(operation: &'static str) -> Self {
        Self {
            kind: StoreErrorKind::Unsupported,
            source: Some(Box::new(Unsupported(operation))),
        }
    }

    /// Whether the store does not support the operation asked.
    pub fn is_unsupported(&self) -> bool {
        self.kind == StoreErrorKind::Unsupported
    }

    /// Whether the store could not be reached or is full (a 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Full
        )
    }

    /// Whether the store is at capacity.
    pub fn is_full(&self) -> bool {
        self.kind == StoreErrorKind::Full
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StoreErrorKind::Unavailable => f.write_str("store unavailable"),
            StoreErrorKind::Full => f.write_str("store is full"),
            StoreErrorKind::Corrupt => f.write_str("store answered unexpected data"),
            StoreErrorKind::Unsupported => f.write_str("not supported by this store"),
        }
    }
}

/// The operation a store does not implement.
#[derive(Debug)]
struct Unsupported(&'static str);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not supported by this store", self.0)
    }
}

impl std::error::Error for Unsupported {}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_30_seconds_and_double_up_to_an_hour() {
        let budget = FailureBudget::default();
        assert_eq!(budget.limit, 25);
        let locks: Vec<_> = (24..=34).map(|n| budget.lock_after(n)).collect();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(
            locks,
            [
                None,
                secs(30),
                secs(60),
                secs(120),
                secs(240),
                secs(480),
                secs(960),
                secs(1920),
                secs(3600),
                secs(3600),
                secs(3600),
            ]
        );
        assert_eq!(budget.lock_after(u32::MAX), secs(3600));
        assert_eq!(budget.keep_for(None), Duration::from_secs(86_400));
        assert_eq!(FailureBudget::new(0).limit, 1);
    }
}
