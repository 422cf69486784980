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
//! | [`begin_attempt`](OtpStore::begin_attempt) | take one attempt from the live code and return its record |
//! | [`remove_code`](OtpStore::remove_code) | delete the code only if it is still the given one (single use) |
//! | [`spend_grant`](OtpStore::spend_grant) | record a grant as spent, only if it was not (single-use grants) |
//!
//! Keys are [`StoreKey`]s: a keyed digest of the normalized contact, never the
//! raw address or number.
//!
//! # Implementing a store
//!
//! A complete (if naive, unbounded and single-process) store:
//!
//! ```
//! use std::{collections::HashMap, sync::Mutex, time::{Duration, Instant}};
//! use tower_otp::store::{
//!     Attempt, CodeRecord, OtpStore, SendLimits, SendReservation, StoreError, StoreKey,
//! };
//!
//! #[derive(Debug, Default)]
//! struct ToyStore {
//!     codes: Mutex<HashMap<String, (CodeRecord, u32, Instant)>>,
//!     sends: Mutex<HashMap<String, (Instant, u32, Instant)>>, // cooldown end, count, window end
//!     spent: Mutex<HashMap<String, Instant>>, // spent grant ids, until their expiry
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
//!         self.codes.lock().unwrap().insert(key.as_str().to_owned(), (record.clone(), 0, expires));
//!         Ok(())
//!     }
//!     async fn begin_attempt(&self, key: &StoreKey, max_attempts: u32)
//!         -> Result<Attempt, StoreError> {
//!         let mut codes = self.codes.lock().unwrap();
//!         match codes.get_mut(key.as_str()) {
//!             Some((_, _, expires)) if *expires <= Instant::now() => {
//!                 codes.remove(key.as_str());
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
//!         let matches = codes.get(key.as_str()).is_some_and(|(r, _, _)| &r.salt == salt);
//!         if matches { codes.remove(key.as_str()); }
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
//! }
//!
//! # let _ = tower_otp::Otp::builder().store(ToyStore::default());
//! ```

use std::{fmt, time::Duration};

use async_trait::async_trait;

pub mod memory;
pub mod rate;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

/// The store key of one contact: a keyed digest (hex), never the raw contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// Wraps a digest. The engine makes these; stores only read them.
    pub fn new(digest: impl Into<String>) -> Self {
        Self(digest.into())
    }

    /// The digest as text (hex digits only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    /// failed, so the user can retry at once).
    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Stores a new code for the contact with a fresh attempt count,
    /// replacing any previous one, expiring after `ttl`.
    async fn put_code(
        &self,
        key: &StoreKey,
        record: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Atomically takes one attempt from the live code: if it has fewer than
    /// `max_attempts` used, count one more and return the record.
    async fn begin_attempt(&self, key: &StoreKey, max_attempts: u32)
    -> Result<Attempt, StoreError>;

    /// Atomically deletes the code if the live one still has this salt.
    /// Returns whether it did: for a correct code, exactly one caller gets
    /// `true`.
    async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError>;

    /// Atomically records the grant named `key` as spent for `ttl` (the
    /// grant's remaining lifetime). Returns whether it was not spent
    /// before: for one grant, exactly one caller gets `true`, on every
    /// instance sharing the store.
    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError>;
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
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
