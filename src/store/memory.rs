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
//! grants. A pending code with its send record costs about 180 bytes as
//! the allocator counts them (`tests/memory_pressure.rs`, at 100 000, checks
//! at most 256), about 250 resident with the allocator's own overhead
//! (`BENCHMARKS.md`, "Bytes per pending code"), so full code and send tables
//! at the default hold about 125 MB; a failure record costs less than a
//! send record and exists only for contacts that typed a wrong code.
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
//! The SMS fraud breaker's number ranges
//! ([`record_range_send`](OtpStore::record_range_send)) are a table of
//! their own, of at most 100 000 ranges (or `max_entries`, if lower): stale
//! ranges go first, then the least recently active unblocked one; blocks
//! are never evicted.
//!
//! Eviction scans the table once per batch (amortized a few dozen entry
//! visits per insert at capacity) and logs a warning, at most once a second.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::hash::HASH_LEN;

use super::ranges::{MAX_TRACKED_RANGES, RangeBlock, RangeLimits, RangeTable, RangeVerdict};
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
    /// The origin of every [`Stamp`] in the tables.
    epoch: Instant,
    codes: Mutex<Table<CodeId, CodeEntry>>,
    sends: Mutex<Table<ContactId, SendEntry>>,
    failures: Mutex<Table<ContactId, FailureEntry>>,
    /// Spent single-use grants, until the grant would have expired.
    spent: Mutex<Table<ContactId, SpentGrant>>,
    /// The SMS fraud breaker's number ranges (bounded on their own).
    ranges: Mutex<RangeTable>,
    /// Email link records, by code slot (same expiry as their code).
    links: Mutex<Table<CodeId, LinkEntry>>,
}

/// An email link record (opaque bytes) until it expires.
#[derive(Debug)]
struct LinkEntry {
    record: Box<[u8]>,
    expires_at: Stamp,
}

impl Expiring for LinkEntry {
    fn expires_at(&self) -> Stamp {
        self.expires_at
    }

    /// Closest to expiry first, like codes (a link without its code is
    /// worth nothing).
    fn evict_rank(&self, _: Stamp) -> (u8, Stamp) {
        (1, self.expires_at)
    }
}

// Entries are kept small (a pending code with its send record is counted in
// `tests/memory_pressure.rs`): 16-byte keys instead of hex strings, the hash
// inline instead of in a `Vec`, and 8-byte timestamps instead of `Instant`s.

/// A point in time: nanoseconds since the store's epoch (tokio's clock, so
/// paused test time applies). Eight bytes where an `Instant` takes sixteen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(u64);

impl Stamp {
    fn after(self, duration: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// The time from `self` until `later` (zero if `later` is not later).
    fn until(self, later: Self) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

/// A contact's key in the tables: the 16 bytes of the engine's digest (32
/// lowercase hex digits); any other key text (a host's own store keys in
/// tests) is named by the first 16 bytes of its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ContactId([u8; 16]);

impl ContactId {
    fn of(key: &StoreKey) -> Self {
        let text = key.as_str().as_bytes();
        let mut id = [0u8; 16];
        if text.len() == 32 && decode_lower_hex(text, &mut id) {
            return Self(id);
        }
        id.copy_from_slice(&Sha256::digest(text)[..16]);
        Self(id)
    }
}

fn decode_lower_hex(text: &[u8], out: &mut [u8; 16]) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    true
}

/// Where a code lives: the contact's id for the default purpose; for
/// another purpose, the first 16 bytes of SHA-256 over the contact's id and
/// the purpose's name (a code for one purpose never answers for another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CodeId([u8; 16]);

impl CodeId {
    fn of(key: &StoreKey) -> Self {
        let contact = ContactId::of(key);
        match key.purpose() {
            None => Self(contact.0),
            Some(purpose) => {
                let digest = Sha256::new()
                    .chain_update(contact.0)
                    .chain_update(b":")
                    .chain_update(purpose.as_bytes())
                    .finalize();
                let mut id = [0u8; 16];
                id.copy_from_slice(&digest[..16]);
                Self(id)
            }
        }
    }
}

#[derive(Debug)]
struct SpentGrant {
    until: Stamp,
}

/// A [`CodeRecord`] laid out flat (the hash inline).
#[derive(Debug)]
struct CodeEntry {
    salt: [u8; 16],
    hash: [u8; HASH_LEN],
    /// `HASH_LEN`, or 0 when the provider checks the code (Twilio Verify).
    hash_len: u8,
    secret_id: u32,
    attempts_used: u32,
    expires_at: Stamp,
}

impl CodeEntry {
    fn new(record: &CodeRecord, expires_at: Stamp) -> Result<Self, StoreError> {
        let mut hash = [0u8; HASH_LEN];
        let hash_len = record.hash.len();
        hash.get_mut(..hash_len)
            .ok_or_else(|| StoreError::corrupt("a code hash longer than HASH_LEN bytes"))?
            .copy_from_slice(&record.hash);
        Ok(Self {
            salt: record.salt,
            hash,
            hash_len: hash_len as u8,
            secret_id: record.secret_id,
            attempts_used: 0,
            expires_at,
        })
    }

    fn record(&self) -> CodeRecord {
        CodeRecord::new(
            self.salt,
            self.hash[..usize::from(self.hash_len)].to_vec(),
            self.secret_id,
        )
    }
}

#[derive(Debug)]
struct SendEntry {
    cooldown_until: Stamp,
    window_ends: Stamp,
    last_send: Stamp,
    count: u32,
    /// Sends in the window that happened (were not released), for the
    /// eviction order only (so saturating).
    held: u16,
    /// The cooldown is a send block ([`OtpStore::block_sends`]): a failed
    /// delivery's [`OtpStore::release_cooldown`] does not end it.
    blocked: bool,
}

// A send record stays at 32 bytes (issue 21.3: a pending code's whole
// cost, its send record included, is at most 256 bytes).
const _: () = assert!(std::mem::size_of::<SendEntry>() == 32);

#[derive(Debug)]
struct FailureEntry {
    failures: u32,
    locked_until: Option<Stamp>,
    last_failure: Stamp,
    expires_at: Stamp,
}

/// An entry's expiry, and its place in the eviction order.
trait Expiring {
    fn expires_at(&self) -> Stamp;

    /// Lower goes first: (class, time). (Expired entries are dropped
    /// before any live one is evicted.)
    fn evict_rank(&self, now: Stamp) -> (u8, Stamp);
}

impl Expiring for SpentGrant {
    fn expires_at(&self) -> Stamp {
        self.until
    }

    fn evict_rank(&self, _: Stamp) -> (u8, Stamp) {
        (1, self.until)
    }
}

impl Expiring for CodeEntry {
    fn expires_at(&self) -> Stamp {
        self.expires_at
    }

    /// Closest to expiry first.
    fn evict_rank(&self, _: Stamp) -> (u8, Stamp) {
        (1, self.expires_at)
    }
}

impl Expiring for SendEntry {
    fn expires_at(&self) -> Stamp {
        self.window_ends.max(self.cooldown_until)
    }

    /// Records of sends that never happened first, then the least recently
    /// active contacts.
    fn evict_rank(&self, _: Stamp) -> (u8, Stamp) {
        (if self.held == 0 { 1 } else { 2 }, self.last_send)
    }
}

impl Expiring for FailureEntry {
    fn expires_at(&self) -> Stamp {
        self.expires_at
    }

    /// Unlocked records first (least recently failed first), locks last
    /// (the one ending soonest first).
    fn evict_rank(&self, now: Stamp) -> (u8, Stamp) {
        match self.locked_until {
            Some(until) if until > now => (3, until),
            _ => (1, self.last_failure),
        }
    }
}

/// A capped map whose entries expire.
#[derive(Debug)]
struct Table<K, V> {
    map: HashMap<K, V>,
    max_entries: usize,
    /// Whether a full table evicts live entries (else it refuses).
    evicts: bool,
    next_warning: Stamp,
}

impl<K: Hash + Eq, V: Expiring> Table<K, V> {
    fn new(max_entries: usize, evicts: bool) -> Self {
        Self {
            map: HashMap::new(),
            max_entries: max_entries.max(1),
            evicts,
            next_warning: Stamp(0),
        }
    }

    /// The live entry for `key`; an expired one is removed and not returned.
    fn live(&mut self, key: &K, now: Stamp) -> Option<&mut V> {
        if self.map.get(key).is_some_and(|v| v.expires_at() <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Makes room for one new key. A table that evicts drops expired
    /// entries and, if that frees less than a batch, the first live ones
    /// in eviction order; one that does not evict drops expired entries (at
    /// most once a second) and otherwise reports itself full.
    fn reserve_slot(&mut self, key: &K, table: &'static str, now: Stamp) -> Result<(), StoreError> {
        if self.map.len() < self.max_entries || self.map.contains_key(key) {
            return Ok(());
        }
        let warn = now >= self.next_warning;
        if warn {
            self.next_warning = now.after(WARN_INTERVAL);
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
    fn evict(&mut self, batch: usize, now: Stamp) {
        let mut ranks: Vec<(u8, Stamp)> = self.map.values().map(|v| v.evict_rank(now)).collect();
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
            epoch: Instant::now(),
            codes: Mutex::new(Table::new(max_entries, true)),
            sends: Mutex::new(Table::new(max_entries, true)),
            failures: Mutex::new(Table::new(max_entries, true)),
            spent: Mutex::new(Table::new(max_entries, false)),
            ranges: Mutex::new(RangeTable::new(max_entries.min(MAX_TRACKED_RANGES))),
            links: Mutex::new(Table::new(max_entries, true)),
        }
    }

    /// How many live (unexpired) codes the store holds.
    pub fn live_codes(&self) -> usize {
        let now = self.now();
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
            .live(&CodeId::of(key), self.now())
            .map(|e| e.attempts_used)
    }

    /// Consecutive failures counted for `key` (0 when none are on record).
    /// For tests and diagnostics.
    pub fn failures(&self, key: &StoreKey) -> u32 {
        lock(&self.failures)
            .live(&ContactId::of(key), self.now())
            .map_or(0, |e| e.failures)
    }

    /// Now, as the tables count time.
    fn now(&self) -> Stamp {
        Stamp(
            u64::try_from(Instant::now().duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX),
        )
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
        let id = ContactId::of(key);
        let mut sends = lock(&self.sends);
        // The clock is read under the lock: read before it, a request that
        // got the lock second could hold the earlier time and find the
        // first one's cooldown (even a zero one) still running.
        let now = self.now();
        if let Some(entry) = sends.live(&id, now) {
            if entry.cooldown_until > now {
                return Ok(SendReservation::Cooldown {
                    retry_after: now.until(entry.cooldown_until),
                });
            }
            if entry.window_ends <= now {
                entry.count = 0;
                entry.held = 0;
                entry.window_ends = now.after(limits.window);
            }
            if entry.count >= limits.quota {
                return Ok(SendReservation::QuotaExceeded {
                    retry_after: now.until(entry.window_ends),
                });
            }
            entry.count += 1;
            entry.held = entry.held.saturating_add(1);
            entry.blocked = false;
            entry.cooldown_until = now.after(limits.cooldown);
            entry.last_send = now;
            return Ok(SendReservation::Granted);
        }
        if limits.quota == 0 {
            return Ok(SendReservation::QuotaExceeded {
                retry_after: limits.window,
            });
        }
        sends.reserve_slot(&id, "sends", now)?;
        sends.map.insert(
            id,
            SendEntry {
                cooldown_until: now.after(limits.cooldown),
                window_ends: now.after(limits.window),
                last_send: now,
                count: 1,
                held: 1,
                blocked: false,
            },
        );
        Ok(SendReservation::Granted)
    }

    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
        let now = self.now();
        if let Some(entry) = lock(&self.sends).live(&ContactId::of(key), now) {
            // A block ("this wasn't me") that began while this send was
            // in flight stays.
            if !entry.blocked {
                entry.cooldown_until = now;
            }
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
        let now = self.now();
        let entry = CodeEntry::new(record, now.after(ttl))?;
        let id = CodeId::of(key);
        let mut codes = lock(&self.codes);
        codes.reserve_slot(&id, "codes", now)?;
        codes.map.insert(id, entry);
        Ok(())
    }

    async fn begin_attempt(
        &self,
        key: &StoreKey,
        max_attempts: u32,
    ) -> Result<Attempt, StoreError> {
        let now = self.now();
        let code_id = CodeId::of(key);
        // Lock order: failures, then codes (held together, so a lock cannot
        // start between the check and the attempt).
        let mut failures = lock(&self.failures);
        if let Some(until) = failures
            .live(&ContactId::of(key), now)
            .and_then(|e| e.locked_until)
            .filter(|until| *until > now)
        {
            return Ok(Attempt::Locked {
                retry_after: now.until(until),
            });
        }
        let mut codes = lock(&self.codes);
        drop(failures);
        Ok(match codes.live(&code_id, now) {
            None => Attempt::NoCode,
            Some(entry) if entry.attempts_used >= max_attempts => Attempt::Exhausted,
            Some(entry) => {
                entry.attempts_used += 1;
                Attempt::Granted {
                    record: entry.record(),
                    attempts_used: entry.attempts_used,
                }
            }
        })
    }

    async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let now = self.now();
        let id = CodeId::of(key);
        let mut codes = lock(&self.codes);
        let is_current = codes.live(&id, now).is_some_and(|e| &e.salt == salt);
        if is_current {
            codes.map.remove(&id);
        }
        Ok(is_current)
    }

    async fn consume_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let now = self.now();
        let id = CodeId::of(key);
        // Lock order: failures, then codes.
        let mut failures = lock(&self.failures);
        let mut codes = lock(&self.codes);
        let consumed = codes.live(&id, now).is_some_and(|e| &e.salt == salt);
        if consumed {
            codes.map.remove(&id);
            failures.map.remove(&ContactId::of(key));
        }
        Ok(consumed)
    }

    async fn record_failure(
        &self,
        key: &StoreKey,
        budget: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError> {
        let now = self.now();
        let id = ContactId::of(key);
        let mut failures = lock(&self.failures);
        let live = failures.live(&id, now);
        let was_locked = live
            .as_ref()
            .and_then(|e| e.locked_until)
            .is_some_and(|until| until > now);
        let failures_so_far = live.map_or(0, |e| e.failures);
        let count = failures_so_far.saturating_add(1);
        let lock_for = budget.lock_after(count);
        if failures_so_far == 0 {
            failures.reserve_slot(&id, "failures", now)?;
        }
        failures.map.insert(
            id,
            FailureEntry {
                failures: count,
                locked_until: lock_for.map(|d| now.after(d)),
                last_failure: now,
                expires_at: now.after(budget.keep_for(lock_for)),
            },
        );
        Ok(FailureOutcome::new(count, lock_for).with_was_locked(was_locked))
    }

    async fn reset_failures(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(&self.failures).map.remove(&ContactId::of(key));
        Ok(())
    }

    async fn inspect_code(&self, key: &StoreKey) -> Result<Option<CodeStatus>, StoreError> {
        let now = self.now();
        Ok(lock(&self.codes)
            .live(&CodeId::of(key), now)
            .map(|e| CodeStatus::new(now.until(e.expires_at), e.attempts_used)))
    }

    async fn inspect_sends(&self, key: &StoreKey) -> Result<Option<SendStatus>, StoreError> {
        let now = self.now();
        Ok(lock(&self.sends).live(&ContactId::of(key), now).map(|e| {
            // A window that is over counts nothing any more (the next send
            // starts a new one).
            let (sends, window_left) = if e.window_ends > now {
                (e.count, now.until(e.window_ends))
            } else {
                (0, Duration::ZERO)
            };
            SendStatus::new(sends, window_left, now.until(e.cooldown_until))
        }))
    }

    async fn inspect_failures(&self, key: &StoreKey) -> Result<Option<FailureStatus>, StoreError> {
        let now = self.now();
        Ok(lock(&self.failures)
            .live(&ContactId::of(key), now)
            .map(|e| {
                let locked_for = e
                    .locked_until
                    .filter(|until| *until > now)
                    .map(|until| now.until(until));
                FailureStatus::new(e.failures, locked_for)
            }))
    }

    async fn delete_code(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = self.now();
        let id = CodeId::of(key);
        let mut codes = lock(&self.codes);
        let live = codes.live(&id, now).is_some();
        codes.map.remove(&id);
        Ok(live)
    }

    async fn clear_sends(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = self.now();
        let id = ContactId::of(key);
        let mut sends = lock(&self.sends);
        let live = sends.live(&id, now).is_some();
        sends.map.remove(&id);
        Ok(live)
    }

    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.now();
        let id = ContactId::of(key);
        let mut spent = lock(&self.spent);
        if spent.live(&id, now).is_some() {
            return Ok(false);
        }
        // A full table refuses (fail closed): a grant that cannot be
        // recorded as spent is not accepted.
        spent.reserve_slot(&id, "spent grants", now)?;
        spent.map.insert(
            id,
            SpentGrant {
                until: now.after(ttl),
            },
        );
        Ok(true)
    }

    async fn record_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        Ok(lock(&self.ranges).record_send(range, limits, true))
    }

    async fn check_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        Ok(lock(&self.ranges).record_send(range, limits, false))
    }

    async fn record_range_verify(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        lock(&self.ranges).record_verify(range, limits);
        Ok(())
    }

    async fn blocked_ranges(&self) -> Result<Vec<RangeBlock>, StoreError> {
        Ok(lock(&self.ranges).blocked())
    }

    async fn lift_range_block(&self, range: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.ranges).lift(range))
    }
    async fn release_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        lock(&self.ranges).release_send(range, limits);
        Ok(())
    }

    async fn put_link(
        &self,
        key: &StoreKey,
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let id = CodeId::of(key);
        let mut links = lock(&self.links);
        links.reserve_slot(&id, "links", now)?;
        links.map.insert(
            id,
            LinkEntry {
                record: record.into(),
                expires_at: now.after(ttl),
            },
        );
        Ok(())
    }

    async fn get_link(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.now();
        Ok(lock(&self.links)
            .live(&CodeId::of(key), now)
            .map(|e| e.record.to_vec()))
    }

    async fn delete_link(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let now = self.now();
        let id = CodeId::of(key);
        let mut links = lock(&self.links);
        let live = links.live(&id, now).is_some();
        links.map.remove(&id);
        Ok(live)
    }

    async fn block_sends(&self, key: &StoreKey, block: Duration) -> Result<(), StoreError> {
        let now = self.now();
        let until = now.after(block);
        let id = ContactId::of(key);
        let mut sends = lock(&self.sends);
        if let Some(entry) = sends.live(&id, now) {
            entry.cooldown_until = entry.cooldown_until.max(until);
            entry.blocked = true;
            return Ok(());
        }
        sends.reserve_slot(&id, "sends", now)?;
        sends.map.insert(
            id,
            SendEntry {
                cooldown_until: until,
                window_ends: now,
                last_send: now,
                count: 0,
                // Ranked like a contact that was sent a code.
                held: 1,
                blocked: true,
            },
        );
        Ok(())
    }
}
