//! [`MemoryStore`]: the embedded default store.
//!
//! Everything lives in this process behind short synchronous locks (no await
//! inside a critical section, so every operation is atomic). Entries expire
//! on their own schedule, measured with tokio's clock (so tests can pause
//! time).
//!
//! A memory store is per process: run several instances behind a load
//! balancer and each has its own codes and limits. Use
//! [`RedisStore`](crate::store::RedisStore) to share them.
//!
//! # Capacity and eviction
//!
//! Four tables are each capped at `max_entries` (default
//! [`DEFAULT_MAX_ENTRIES`], 500 000): codes, send records (cooldown and
//! quota), failure records (the failure budget) and spent single-use
//! grants. A pending code with its send record costs about 330 bytes as
//! the allocator counts them (`tests/memory_pressure.rs`, at 100 000), about
//! 400 resident with the allocator's own overhead (`BENCHMARKS.md`, "Bytes
//! per pending code"), so full code and send tables at the default hold
//! about 200 MB; a failure record costs about as much as a send record
//! (some 150 bytes) and exists only for contacts that typed a wrong code.
//! Lower the cap with [`MemoryStore::with_max_entries`] on small machines.
//!
//! A full table does not refuse new contacts (that would let anyone who
//! fills it lock every new user out with 503s). It makes room instead: it
//! drops expired entries, and if that is not enough it **evicts** a batch
//! (1/64 of the cap) chosen so that eviction cannot be used to reset a
//! victim's limits cheaply:
//!
//! - **Codes**: the ones closest to expiry first. Losing a code costs its
//!   user a resend (`otp_expired`), never a guess: a new code needs a new
//!   send, which the cooldown and quota still govern.
//! - **Send records**: first those whose every send in the window never
//!   happened (delivery failed, or the send was refused after the
//!   reservation, i.e. [`release_cooldown`](OtpStore::release_cooldown)
//!   was called for each), then the least recently active contacts. To
//!   push a victim's record out, an attacker must first make
//!   `max_entries` newer send records, each a real send through the per-IP
//!   limits (at the default cap, half a million sends); records of failed
//!   sends buy him nothing, since they go first.
//! - **Failure records**: a separate table, so send records and codes never
//!   compete with them. Unlocked records go first (least recently failed
//!   first); a **lock** goes only when the table holds nothing else, and
//!   then the one that ends soonest. Each lock takes a budget of wrong
//!   codes against live codes, so filling the table with locks takes
//!   millions of sends.
//! - **Spent grants** are never evicted (that would revive a single-use
//!   grant): at capacity, spending a new one fails closed with
//!   [`StoreError::full`] (503 `store_unavailable`).
//!
//! Eviction scans the table once per batch (amortized a few dozen entry
//! visits per insert at capacity) and logs a warning, at most once a second.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    Attempt, CodeRecord, CodeStatus, FailureBudget, FailureOutcome, FailureStatus, OtpStore,
    SendLimits, SendReservation, SendStatus, StoreError, StoreKey,
};

/// The default cap on each table (codes, send records, failure records,
/// spent grants). See [Capacity and eviction](self#capacity-and-eviction).
pub const DEFAULT_MAX_ENTRIES: usize = 500_000;

/// Warnings about a full table are logged at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// At capacity, this fraction of the cap (at least one entry) is evicted at
/// once, so that the scan is paid once per batch, not once per insert.
const EVICT_FRACTION: usize = 64;

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
    failures: Mutex<Table<FailureEntry>>,
    /// Spent single-use grants, until the grant would have expired.
    spent: Mutex<Table<SpentGrant>>,
    /// Email link records, by code slot (same expiry as their code).
    links: Mutex<Table<LinkEntry>>,
}

/// An email link record (opaque bytes) until it expires.
#[derive(Debug)]
struct LinkEntry {
    record: Vec<u8>,
    expires_at: Instant,
}

impl Expiring for LinkEntry {
    fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Closest to expiry first, like codes (a link without its code is
    /// worth nothing).
    fn evict_rank(&self, _: Instant) -> (u8, Instant) {
        (1, self.expires_at)
    }
}

#[derive(Debug)]
struct SpentGrant {
    until: Instant,
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
    /// Sends in the window that happened (were not released).
    held: u32,
    window_ends: Instant,
    last_send: Instant,
}

#[derive(Debug)]
struct FailureEntry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
    expires_at: Instant,
}

/// An entry's expiry, and its place in the eviction order.
trait Expiring {
    fn expires_at(&self) -> Instant;

    /// Lower goes first: (class, time). (Expired entries are dropped
    /// before any live one is evicted.)
    fn evict_rank(&self, now: Instant) -> (u8, Instant);
}

impl Expiring for SpentGrant {
    fn expires_at(&self) -> Instant {
        self.until
    }

    fn evict_rank(&self, _: Instant) -> (u8, Instant) {
        (1, self.until)
    }
}

impl Expiring for CodeEntry {
    fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Closest to expiry first.
    fn evict_rank(&self, _: Instant) -> (u8, Instant) {
        (1, self.expires_at)
    }
}

impl Expiring for SendEntry {
    fn expires_at(&self) -> Instant {
        self.window_ends.max(self.cooldown_until)
    }

    /// Records of sends that never happened first, then the least recently
    /// active contacts.
    fn evict_rank(&self, _: Instant) -> (u8, Instant) {
        (if self.held == 0 { 1 } else { 2 }, self.last_send)
    }
}

impl Expiring for FailureEntry {
    fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Unlocked records first (least recently failed first), locks last
    /// (the one ending soonest first).
    fn evict_rank(&self, now: Instant) -> (u8, Instant) {
        match self.locked_until {
            Some(until) if until > now => (3, until),
            _ => (1, self.last_failure),
        }
    }
}

/// A capped map whose entries expire.
#[derive(Debug)]
struct Table<V> {
    map: HashMap<String, V>,
    max_entries: usize,
    /// Whether a full table evicts live entries (else it refuses).
    evicts: bool,
    next_warning: Instant,
}

impl<V: Expiring> Table<V> {
    fn new(max_entries: usize, evicts: bool) -> Self {
        Self {
            map: HashMap::new(),
            max_entries: max_entries.max(1),
            evicts,
            next_warning: Instant::now(),
        }
    }

    /// The live entry for `key`; an expired one is removed and not returned.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut V> {
        if self.map.get(key).is_some_and(|v| v.expires_at() <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Makes room for one new key. A table that evicts drops expired
    /// entries and, if that frees less than a batch, the first live ones
    /// in eviction order; one that does not evict drops expired entries (at
    /// most once a second) and otherwise reports itself full.
    fn reserve_slot(
        &mut self,
        key: &str,
        table: &'static str,
        now: Instant,
    ) -> Result<(), StoreError> {
        if self.map.len() < self.max_entries || self.map.contains_key(key) {
            return Ok(());
        }
        let warn = now >= self.next_warning;
        if warn {
            self.next_warning = now + WARN_INTERVAL;
        }
        if !self.evicts {
            if warn {
                // (Rate-limited like the warning: a table full of live
                // entries is not rescanned on every request.)
                self.map.retain(|_, v| v.expires_at() > now);
                if self.map.len() < self.max_entries {
                    return Ok(());
                }
                tracing::warn!(
                    table,
                    max_entries = self.max_entries,
                    "MemoryStore is full; refusing new entries"
                );
            }
            return Err(StoreError::full());
        }
        let before = self.map.len();
        self.map.retain(|_, v| v.expires_at() > now);
        let batch = (self.max_entries / EVICT_FRACTION).max(1);
        let expired = before - self.map.len();
        let evicted = batch.saturating_sub(expired);
        if evicted > 0 {
            self.evict(evicted, now);
        }
        if warn && evicted > 0 {
            tracing::warn!(
                table,
                max_entries = self.max_entries,
                evicted,
                "MemoryStore is full; evicting the entries that come first in eviction order"
            );
        }
        Ok(())
    }

    /// Removes the `batch` live entries that come first in eviction order.
    fn evict(&mut self, batch: usize, now: Instant) {
        let mut ranks: Vec<(u8, Instant)> = self.map.values().map(|v| v.evict_rank(now)).collect();
        if ranks.len() <= batch {
            self.map.clear();
            return;
        }
        let (_, &mut threshold, _) = ranks.select_nth_unstable(batch - 1);
        // Every entry below the threshold goes, and as many of those equal
        // to it as the batch has room for.
        let below = ranks.iter().filter(|r| **r < threshold).count();
        let mut equal_room = batch - below;
        self.map.retain(|_, v| {
            let rank = v.evict_rank(now);
            if rank < threshold {
                return false;
            }
            if rank == threshold && equal_room > 0 {
                equal_room -= 1;
                return false;
            }
            true
        });
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_ENTRIES`] entries per table.
    pub fn new() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding at most `max_entries` codes (and as many send
    /// records, failure records and spent grants). See
    /// [Capacity and eviction](self#capacity-and-eviction).
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            codes: Mutex::new(Table::new(max_entries, true)),
            sends: Mutex::new(Table::new(max_entries, true)),
            failures: Mutex::new(Table::new(max_entries, true)),
            spent: Mutex::new(Table::new(max_entries, false)),
            links: Mutex::new(Table::new(max_entries, true)),
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
            .live(&key.code_slot(), Instant::now())
            .map(|e| e.attempts_used)
    }

    /// Consecutive failures counted for `key` (0 when none are on record).
    /// For tests and diagnostics.
    pub fn failures(&self, key: &StoreKey) -> u32 {
        lock(&self.failures)
            .live(key.as_str(), Instant::now())
            .map_or(0, |e| e.failures)
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
                entry.held = 0;
                entry.window_ends = now + limits.window;
            }
            if entry.count >= limits.quota {
                return Ok(SendReservation::QuotaExceeded {
                    retry_after: entry.window_ends - now,
                });
            }
            entry.count += 1;
            entry.held += 1;
            entry.cooldown_until = now + limits.cooldown;
            entry.last_send = now;
            return Ok(SendReservation::Granted);
        }
        if limits.quota == 0 {
            return Ok(SendReservation::QuotaExceeded {
                retry_after: limits.window,
            });
        }
        sends.reserve_slot(key.as_str(), "sends", now)?;
        sends.map.insert(
            key.as_str().to_owned(),
            SendEntry {
                cooldown_until: now + limits.cooldown,
                count: 1,
                held: 1,
                window_ends: now + limits.window,
                last_send: now,
            },
        );
        Ok(SendReservation::Granted)
    }

    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
        let now = Instant::now();
        if let Some(entry) = lock(&self.sends).live(key.as_str(), now) {
            entry.cooldown_until = now;
            // This send never happened: it still counts toward the quota,
            // but the record is among the first evicted.
            entry.held = entry.held.saturating_sub(1);
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
        let slot = key.code_slot();
        codes.reserve_slot(&slot, "codes", now)?;
        codes.map.insert(
            slot.into_owned(),
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
        let now = Instant::now();
        // Lock order: failures, then codes (held together, so a lock cannot
        // start between the check and the attempt).
        let mut failures = lock(&self.failures);
        if let Some(until) = failures
            .live(key.as_str(), now)
            .and_then(|e| e.locked_until)
            .filter(|until| *until > now)
        {
            return Ok(Attempt::Locked {
                retry_after: until - now,
            });
        }
        let mut codes = lock(&self.codes);
        drop(failures);
        Ok(match codes.live(&key.code_slot(), now) {
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
        let slot = key.code_slot();
        let is_current = codes
            .live(&slot, Instant::now())
            .is_some_and(|e| &e.record.salt == salt);
        if is_current {
            codes.map.remove(slot.as_ref());
        }
        Ok(is_current)
    }

    async fn consume_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        // Lock order: failures, then codes.
        let mut failures = lock(&self.failures);
        let mut codes = lock(&self.codes);
        let slot = key.code_slot();
        let consumed = codes
            .live(&slot, Instant::now())
            .is_some_and(|e| &e.record.salt == salt);
        if consumed {
            codes.map.remove(slot.as_ref());
            failures.map.remove(key.as_str());
        }
        Ok(consumed)
    }

    async fn record_failure(
        &self,
        key: &StoreKey,
        budget: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError> {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        let live = failures.live(key.as_str(), now);
        let was_locked = live
            .as_ref()
            .and_then(|e| e.locked_until)
            .is_some_and(|until| until > now);
        let failures_so_far = live.map_or(0, |e| e.failures);
        let count = failures_so_far.saturating_add(1);
        let lock_for = budget.lock_after(count);
        if failures_so_far == 0 {
            failures.reserve_slot(key.as_str(), "failures", now)?;
        }
        failures.map.insert(
            key.as_str().to_owned(),
            FailureEntry {
                failures: count,
                locked_until: lock_for.map(|d| now + d),
                last_failure: now,
                expires_at: now + budget.keep_for(lock_for),
            },
        );
        Ok(FailureOutcome::new(count, lock_for).with_was_locked(was_locked))
    }

    async fn reset_failures(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(&self.failures).map.remove(key.as_str());
        Ok(())
    }

    async fn inspect_code(&self, key: &StoreKey) -> Result<Option<CodeStatus>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.codes)
            .live(&key.code_slot(), now)
            .map(|e| CodeStatus::new(e.expires_at - now, e.attempts_used)))
    }

    async fn inspect_sends(&self, key: &StoreKey) -> Result<Option<SendStatus>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.sends).live(key.as_str(), now).map(|e| {
            // A window that is over counts nothing any more (the next send
            // starts a new one).
            let (sends, window_left) = if e.window_ends > now {
                (e.count, e.window_ends - now)
            } else {
                (0, Duration::ZERO)
            };
            SendStatus::new(
                sends,
                window_left,
                e.cooldown_until.saturating_duration_since(now),
            )
        }))
    }

    async fn inspect_failures(&self, key: &StoreKey) -> Result<Option<FailureStatus>, StoreError> {
        let now = Instant::now();
        Ok(lock(&self.failures).live(key.as_str(), now).map(|e| {
            let locked_for = e
                .locked_until
                .filter(|until| *until > now)
                .map(|until| until - now);
            FailureStatus::new(e.failures, locked_for)
        }))
    }

    async fn delete_code(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut codes = lock(&self.codes);
        let slot = key.code_slot();
        let live = codes.live(&slot, now).is_some();
        codes.map.remove(slot.as_ref());
        Ok(live)
    }

    async fn clear_sends(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut sends = lock(&self.sends);
        let live = sends.live(key.as_str(), now).is_some();
        sends.map.remove(key.as_str());
        Ok(live)
    }

    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut spent = lock(&self.spent);
        if spent.live(key.as_str(), now).is_some() {
            return Ok(false);
        }
        // A full table refuses (fail closed): a grant that cannot be
        // recorded as spent is not accepted.
        spent.reserve_slot(key.as_str(), "spent grants", now)?;
        spent
            .map
            .insert(key.as_str().to_owned(), SpentGrant { until: now + ttl });
        Ok(true)
    }

    async fn put_link(
        &self,
        key: &StoreKey,
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let slot = link_slot(key);
        let mut links = lock(&self.links);
        links.reserve_slot(&slot, "links", now)?;
        links.map.insert(
            slot,
            LinkEntry {
                record: record.to_vec(),
                expires_at: now + ttl,
            },
        );
        Ok(())
    }

    async fn get_link(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.links)
            .live(&link_slot(key), Instant::now())
            .map(|e| e.record.clone()))
    }

    async fn delete_link(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = Instant::now();
        let slot = link_slot(key);
        let mut links = lock(&self.links);
        let live = links.live(&slot, now).is_some();
        links.map.remove(&slot);
        Ok(live)
    }

    async fn block_sends(&self, key: &StoreKey, block: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let until = now + block;
        let mut sends = lock(&self.sends);
        if let Some(entry) = sends.live(key.as_str(), now) {
            entry.cooldown_until = entry.cooldown_until.max(until);
            return Ok(());
        }
        sends.reserve_slot(key.as_str(), "sends", now)?;
        sends.map.insert(
            key.as_str().to_owned(),
            SendEntry {
                cooldown_until: until,
                count: 0,
                // Ranked like a contact that was sent a code.
                held: 1,
                window_ends: now,
                last_send: now,
            },
        );
        Ok(())
    }
}

/// Where the link record of `key`'s code slot lives.
fn link_slot(key: &StoreKey) -> String {
    format!("{}:link", key.code_slot())
}
