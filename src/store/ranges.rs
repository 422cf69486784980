//! The SMS fraud breaker's figures per number range, as a store keeps them.
//!
//! A *range* is a string such as `+447400` (a country calling code and the
//! first digits of the national number; see
//! [`SmsBreaker`](crate::limit::sms_breaker::SmsBreaker)). Per range the
//! store counts codes sent and codes verified over a sliding window, and
//! keeps a block once the conversion falls too low. Four operations, each
//! atomic, with defaults that answer [`StoreError::unsupported`](super::StoreError::unsupported):
//!
//! | method | atomic operation |
//! |---|---|
//! | [`record_range_send`](super::OtpStore::record_range_send) | refuse if the range is blocked; else, if its figures trip the breaker, block it and refuse; else count one send |
//! | [`record_range_verify`](super::OtpStore::record_range_verify) | count one verified code |
//! | [`blocked_ranges`](super::OtpStore::blocked_ranges) | the blocks in force, with the figures that tripped them |
//! | [`lift_range_block`](super::OtpStore::lift_range_block) | end a block and forget the range's figures |
//! | [`release_range_send`](super::OtpStore::release_range_send) | take back a counted send whose delivery failed |
//!
//! # The sliding window
//!
//! Time is cut into fixed buckets of one window each; a range keeps the
//! counts of the current bucket and of the one before. The figure over the
//! last window is the current count plus the previous count weighted by
//! the share of the previous bucket still inside the window (Cloudflare's
//! "sliding window counter"): one small record per range, exact at bucket
//! edges, smooth in between.
//!
//! The breaker trips when, before a send is counted, the window's sends
//! reach [`RangeLimits::min_sends`] and its verified codes are below
//! [`RangeLimits::min_verified_per_mille`] thousandths of them: that send is
//! refused and the range is blocked for [`RangeLimits::block`].

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;

/// The breaker's thresholds, as the store applies them (`non_exhaustive`:
/// build with [`RangeLimits::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RangeLimits {
    /// The sliding window sends and verifies are counted over.
    pub window: Duration,
    /// Sends in the window below which a range is never blocked.
    pub min_sends: u32,
    /// The lowest acceptable conversion, in thousandths (200 = 20 %
    /// of the codes sent are verified).
    pub min_verified_per_mille: u32,
    /// How long a tripped range stays blocked.
    pub block: Duration,
}

impl RangeLimits {
    /// Thresholds: over `window`, at least `min_sends` sends with fewer
    /// than `min_verified_per_mille`/1000 of them verified block the range
    /// for `block`.
    pub fn new(
        window: Duration,
        min_sends: u32,
        min_verified_per_mille: u32,
        block: Duration,
    ) -> Self {
        Self {
            window,
            min_sends: min_sends.max(1),
            min_verified_per_mille: min_verified_per_mille.min(1000),
            block,
        }
    }
}

/// The answer of [`record_range_send`](super::OtpStore::record_range_send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeVerdict {
    /// The send may go ahead; it was counted.
    Allowed,
    /// The range is blocked: nothing was counted.
    Blocked {
        /// Time left in the block.
        retry_after: Duration,
        /// Whether this call tripped the breaker (the block starts now).
        tripped: bool,
    },
}

/// A block in force, from [`blocked_ranges`](super::OtpStore::blocked_ranges)
/// (`non_exhaustive`: build with [`RangeBlock::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RangeBlock {
    /// The range (`+447400`).
    pub range: String,
    /// Time left in the block.
    pub blocked_for: Duration,
    /// Sends in the window when the breaker tripped (rounded down).
    pub sent: u32,
    /// Verified codes in the window when the breaker tripped (rounded down).
    pub verified: u32,
}

impl RangeBlock {
    /// `range` blocked for `blocked_for`, tripped at `sent` sends and
    /// `verified` verified codes.
    pub fn new(range: impl Into<String>, blocked_for: Duration, sent: u32, verified: u32) -> Self {
        Self {
            range: range.into(),
            blocked_for,
            sent,
            verified,
        }
    }
}

/// Whether figures of `sent` sends and `verified` verified codes (over the
/// window, weighted) trip the breaker.
pub(crate) fn trips(sent: f64, verified: f64, limits: &RangeLimits) -> bool {
    sent >= f64::from(limits.min_sends)
        && verified * 1000.0 < f64::from(limits.min_verified_per_mille) * sent
}

/// Ranges the memory store tracks at most; see [`RangeTable`].
pub(crate) const MAX_TRACKED_RANGES: usize = 100_000;

/// One range's record in the memory store.
#[derive(Debug, Default, Clone)]
struct RangeEntry {
    /// The current bucket's index (time / window).
    bucket: u64,
    sent: [u32; 2],
    verified: [u32; 2],
    /// Milliseconds since the table's origin; 0 = not blocked.
    blocked_until: u64,
    /// The figures that tripped the block.
    tripped_at: (u32, u32),
    last_ms: u64,
    window_ms: u64,
}

impl RangeEntry {
    /// Moves the buckets forward to `now`; `[current, previous]`.
    fn roll(&mut self, now: u64, window_ms: u64) {
        let bucket = now / window_ms;
        if self.window_ms != window_ms || bucket > self.bucket + 1 {
            self.sent = [0; 2];
            self.verified = [0; 2];
        } else if bucket == self.bucket + 1 {
            self.sent = [0, self.sent[0]];
            self.verified = [0, self.verified[0]];
        }
        self.bucket = bucket;
        self.window_ms = window_ms;
        self.last_ms = now;
    }

    /// (sent, verified) over the window ending `now`.
    fn figures(&self, now: u64) -> (f64, f64) {
        let into = (now - self.bucket * self.window_ms) as f64 / self.window_ms as f64;
        let weight = (1.0 - into).max(0.0);
        (
            f64::from(self.sent[0]) + f64::from(self.sent[1]) * weight,
            f64::from(self.verified[0]) + f64::from(self.verified[1]) * weight,
        )
    }

    fn is_blocked(&self, now: u64) -> bool {
        self.blocked_until > now
    }

    /// Whether the record still matters at `now`: a block, or counts that
    /// are still inside the window.
    fn is_live(&self, now: u64) -> bool {
        self.is_blocked(now) || self.last_ms + 2 * self.window_ms > now
    }
}

/// The memory store's ranges: a bounded map (at most
/// [`MAX_TRACKED_RANGES`]); when full, stale records go first, then the
/// least recently active unblocked range. Blocks are never evicted; a new
/// range that finds the table full of blocks is not tracked (its sends are
/// allowed).
#[derive(Debug)]
pub(crate) struct RangeTable {
    origin: Instant,
    entries: HashMap<String, RangeEntry>,
    max: usize,
}

impl Default for RangeTable {
    fn default() -> Self {
        Self::new(MAX_TRACKED_RANGES)
    }
}

impl RangeTable {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            origin: Instant::now(),
            entries: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Milliseconds since the table's origin, at least 1.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The entry for `range`, made room for if new; `None` when the table
    /// is full of blocks.
    fn entry(&mut self, range: &str, now: u64) -> Option<&mut RangeEntry> {
        if !self.entries.contains_key(range) && self.entries.len() >= self.max {
            self.entries.retain(|_, e| e.is_live(now));
            if self.entries.len() >= self.max {
                let oldest = self
                    .entries
                    .iter()
                    .filter(|(_, e)| !e.is_blocked(now))
                    .min_by_key(|(_, e)| e.last_ms)
                    .map(|(k, _)| k.clone());
                self.entries.remove(&oldest?);
            }
        }
        Some(self.entries.entry(range.to_owned()).or_default())
    }

    /// The verdict for a send to `range`, counted if `count` (a decoy's is
    /// not: it goes out to no one).
    pub(crate) fn record_send(
        &mut self,
        range: &str,
        limits: &RangeLimits,
        count: bool,
    ) -> RangeVerdict {
        let now = self.now();
        let window_ms = millis(limits.window).max(1);
        let block_ms = millis(limits.block);
        // An uncounted send leaves a range never seen unseen.
        let entry = if count {
            self.entry(range, now)
        } else {
            self.entries.get_mut(range)
        };
        let Some(entry) = entry else {
            return RangeVerdict::Allowed;
        };
        if entry.is_blocked(now) {
            return RangeVerdict::Blocked {
                retry_after: Duration::from_millis(entry.blocked_until - now),
                tripped: false,
            };
        }
        entry.roll(now, window_ms);
        let (sent, verified) = entry.figures(now);
        if block_ms > 0 && trips(sent, verified, limits) {
            entry.blocked_until = now + block_ms;
            entry.tripped_at = (sent as u32, verified as u32);
            return RangeVerdict::Blocked {
                retry_after: limits.block,
                tripped: true,
            };
        }
        if count {
            entry.sent[0] = entry.sent[0].saturating_add(1);
        }
        RangeVerdict::Allowed
    }

    pub(crate) fn record_verify(&mut self, range: &str, limits: &RangeLimits) {
        let now = self.now();
        let window_ms = millis(limits.window).max(1);
        if let Some(entry) = self.entry(range, now) {
            entry.roll(now, window_ms);
            entry.verified[0] = entry.verified[0].saturating_add(1);
        }
    }

    pub(crate) fn release_send(&mut self, range: &str, limits: &RangeLimits) {
        let now = self.now();
        let window_ms = millis(limits.window).max(1);
        if let Some(entry) = self.entries.get_mut(range) {
            entry.roll(now, window_ms);
            if entry.sent[0] > 0 {
                entry.sent[0] -= 1;
            } else {
                entry.sent[1] = entry.sent[1].saturating_sub(1);
            }
        }
    }

    pub(crate) fn blocked(&self) -> Vec<RangeBlock> {
        let now = self.now();
        let mut blocks: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.is_blocked(now))
            .map(|(range, e)| {
                RangeBlock::new(
                    range.clone(),
                    Duration::from_millis(e.blocked_until - now),
                    e.tripped_at.0,
                    e.tripped_at.1,
                )
            })
            .collect();
        blocks.sort_by(|a, b| a.range.cmp(&b.range));
        blocks
    }

    pub(crate) fn lift(&mut self, range: &str) -> bool {
        let now = self.now();
        self.entries
            .remove(range)
            .is_some_and(|e| e.is_blocked(now))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RangeLimits {
        RangeLimits::new(Duration::from_secs(60), 4, 500, Duration::from_secs(30))
    }

    #[test]
    fn trips_only_with_volume_and_low_conversion() {
        let l = limits();
        assert!(!trips(3.0, 0.0, &l));
        assert!(trips(4.0, 1.0, &l));
        assert!(!trips(4.0, 2.0, &l));
    }

    #[tokio::test(start_paused = true)]
    async fn the_previous_bucket_fades_out() {
        let mut table = RangeTable::new(10);
        let l = limits();
        for _ in 0..3 {
            assert_eq!(
                table.record_send("+447400", &l, true),
                RangeVerdict::Allowed
            );
        }
        // A window and a half later: half of the previous bucket counts.
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Allowed
        );
        assert_eq!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Allowed
        );
        assert_eq!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Allowed
        );
        // A failed delivery is taken back: 2 + 1.5 < 4, one more goes.
        table.release_send("+447400", &l);
        assert_eq!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Allowed
        );
        // 3 + 3 * ~0.5 = 4.5 >= 4 with nothing verified: trips.
        assert!(matches!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Blocked { tripped: true, .. }
        ));
        assert_eq!(table.blocked().len(), 1);
        assert!(table.lift("+447400"));
        assert!(table.blocked().is_empty());
        assert_eq!(
            table.record_send("+447400", &l, true),
            RangeVerdict::Allowed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_keeps_its_blocks() {
        let mut table = RangeTable::new(2);
        let l = RangeLimits::new(Duration::from_secs(60), 1, 500, Duration::from_secs(30));
        table.record_send("+1", &l, true);
        assert!(matches!(
            table.record_send("+1", &l, true),
            RangeVerdict::Blocked { .. }
        ));
        table.record_send("+2", &l, true);
        // Full: +2 (unblocked) makes room for +3; +1's block stays.
        assert_eq!(table.record_send("+3", &l, true), RangeVerdict::Allowed);
        assert_eq!(table.blocked()[0].range, "+1");
        assert_eq!(table.entries.len(), 2);
    }
}
