//! [`MemoryStore`]: the embedded default store.
//!
//! Everything lives in this process behind short synchronous locks (no await
//! inside a critical section, so every operation is atomic). Entries expire
//! on their own schedule, measured with tokio's clock (so tests can pause
//! time), and the number of entries is capped: when the cap is reached,
//! expired entries are swept, and if the store is still full the operation
//! fails with [`StoreError::full`], answered as 503 `store_unavailable`.
//!
//! A memory store is per process: run several instances behind a load
//! balancer and each has its own codes and limits. Use
//! [`RedisStore`](crate::store::RedisStore) to share them.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Attempt, CodeRecord, OtpStore, SendLimits, SendReservation, StoreError, StoreKey};

/// The default cap on live codes (and, separately, on send records).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// How long a full store waits before scanning for expired entries again, so
/// that a store full of live entries does not rescan on every request.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// An in-process, bounded, expiring store.
///
/// ```
/// use tower_otp::{Otp, store::MemoryStore};
///
/// let otp = Otp::builder().store(MemoryStore::with_max_entries(10_000));
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    codes: Mutex<Table<CodeEntry>>,
    sends: Mutex<Table<SendEntry>>,
    /// Spent single-use grants, until the grant would have expired.
    spent: Mutex<Table<SpentGrant>>,
}

#[derive(Debug)]
struct SpentGrant {
    until: Instant,
}

impl Expiring for SpentGrant {
    fn expires_at(&self) -> Instant {
        self.until
    }
}

#[derive(Debug)]
struct CodeEntry {
    record: CodeRecord,
    attempts_used: u32,
    expires_at: Instant,
}

#[derive(Debug)]
struct SendEntry {
    cooldown_until: Instant,
    count: u32,
    window_ends: Instant,
}

trait Expiring {
    fn expires_at(&self) -> Instant;
}

impl Expiring for CodeEntry {
    fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

impl Expiring for SendEntry {
    fn expires_at(&self) -> Instant {
        self.window_ends.max(self.cooldown_until)
    }
}

/// A capped map whose entries expire.
#[derive(Debug)]
struct Table<V> {
    map: HashMap<String, V>,
    max_entries: usize,
    next_sweep: Instant,
}

impl<V: Expiring> Table<V> {
    fn new(max_entries: usize) -> Self {
        Self {
            map: HashMap::new(),
            max_entries,
            next_sweep: Instant::now(),
        }
    }

    /// The live entry for `key`; an expired one is removed and not returned.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut V> {
        if self.map.get(key).is_some_and(|v| v.expires_at() <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Makes room for one new key, or reports the table full.
    fn reserve_slot(&mut self, key: &str, now: Instant) -> Result<(), StoreError> {
        if self.map.len() < self.max_entries || self.map.contains_key(key) {
            return Ok(());
        }
        if now >= self.next_sweep {
            self.map.retain(|_, v| v.expires_at() > now);
            self.next_sweep = now + SWEEP_INTERVAL;
        }
        if self.map.len() < self.max_entries {
            Ok(())
        } else {
            tracing::warn!(
                max_entries = self.max_entries,
                "MemoryStore is full; refusing new entries"
            );
            Err(StoreError::full())
        }
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_ENTRIES`] codes.
    pub fn new() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding at most `max_entries` live codes (and as many send
    /// records).
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            codes: Mutex::new(Table::new(max_entries.max(1))),
            sends: Mutex::new(Table::new(max_entries.max(1))),
            spent: Mutex::new(Table::new(max_entries.max(1))),
        }
    }

    /// How many live (unexpired) codes the store holds.
    pub fn live_codes(&self) -> usize {
        let now = Instant::now();
        lock(&self.codes)
            .map
            .values()
            .filter(|e| e.expires_at > now)
            .count()
    }

    /// Attempts used on the live code for `key`, or `None` when there is no
    /// live code. For tests and diagnostics.
    pub fn attempts_used(&self, key: &StoreKey) -> Option<u32> {
        lock(&self.codes)
            .live(key.as_str(), Instant::now())
            .map(|e| e.attempts_used)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a table half-updated in a
    // way that matters more than refusing service, so keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl OtpStore for MemoryStore {
    async fn reserve_send(
        &self,
        key: &StoreKey,
        limits: &SendLimits,
    ) -> Result<SendReservation, StoreError> {
        let now = Instant::now();
        let mut sends = lock(&self.sends);
        if let Some(entry) = sends.live(key.as_str(), now) {
            if entry.cooldown_until > now {
                return Ok(SendReservation::Cooldown {
                    retry_after: entry.cooldown_until - now,
                });
            }
            if entry.window_ends <= now {
                entry.count = 0;
                entry.window_ends = now + limits.window;
            }
            if entry.count >= limits.quota {
                return Ok(SendReservation::QuotaExceeded {
                    retry_after: entry.window_ends - now,
                });
            }
            entry.count += 1;
            entry.cooldown_until = now + limits.cooldown;
            return Ok(SendReservation::Granted);
        }
        if limits.quota == 0 {
            return Ok(SendReservation::QuotaExceeded {
                retry_after: limits.window,
            });
        }
        sends.reserve_slot(key.as_str(), now)?;
        sends.map.insert(
            key.as_str().to_owned(),
            SendEntry {
                cooldown_until: now + limits.cooldown,
                count: 1,
                window_ends: now + limits.window,
            },
        );
        Ok(SendReservation::Granted)
    }

    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
        let now = Instant::now();
        if let Some(entry) = lock(&self.sends).live(key.as_str(), now) {
            entry.cooldown_until = now;
        }
        Ok(())
    }

    async fn put_code(
        &self,
        key: &StoreKey,
        record: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut codes = lock(&self.codes);
        codes.reserve_slot(key.as_str(), now)?;
        codes.map.insert(
            key.as_str().to_owned(),
            CodeEntry {
                record: record.clone(),
                attempts_used: 0,
                expires_at: now + ttl,
            },
        );
        Ok(())
    }

    async fn begin_attempt(
        &self,
        key: &StoreKey,
        max_attempts: u32,
    ) -> Result<Attempt, StoreError> {
        let mut codes = lock(&self.codes);
        Ok(match codes.live(key.as_str(), Instant::now()) {
            None => Attempt::NoCode,
            Some(entry) if entry.attempts_used >= max_attempts => Attempt::Exhausted,
            Some(entry) => {
                entry.attempts_used += 1;
                Attempt::Granted {
                    record: entry.record.clone(),
                    attempts_used: entry.attempts_used,
                }
            }
        })
    }

    async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let mut codes = lock(&self.codes);
        let is_current = codes
            .live(key.as_str(), Instant::now())
            .is_some_and(|e| &e.record.salt == salt);
        if is_current {
            codes.map.remove(key.as_str());
        }
        Ok(is_current)
    }

    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut spent = lock(&self.spent);
        if spent.live(key.as_str(), now).is_some() {
            return Ok(false);
        }
        // A full table refuses (fail closed): a grant that cannot be
        // recorded as spent is not accepted.
        spent.reserve_slot(key.as_str(), now)?;
        spent
            .map
            .insert(key.as_str().to_owned(), SpentGrant { until: now + ttl });
        Ok(true)
    }
}
