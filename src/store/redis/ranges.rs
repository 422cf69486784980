//! The SMS fraud breaker's ranges in Redis: one Lua script per operation
//! (one round trip), all keys under the hash tag `{sms-ranges}` so that a
//! script touching a range and the index of blocks runs in one cluster slot.
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `<prefix>{sms-ranges}:r:<range>` | hash | `b` (current bucket), `s0`/`s1` and `v0`/`v1` (sends and verifies, current and previous bucket), `bu` (blocked until, ms), `ts`/`tv` (figures at the trip) | two windows after the last activity, or when the block ends if later |
//! | `<prefix>{sms-ranges}:blocked` | sorted set | range → blocked until (ms) | members removed when their block ends (on reads and trips); the set when the last block ends |
//!
//! Every range lives in one slot: the breaker's traffic is one script per
//! SMS send and per SMS verify, which SMS costs bound, and one per
//! enumeration-safe decoy (no SMS), which the send cooldown, quota and
//! per-IP limits bound.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use super::{Call, RedisStore, Unexpected, millis};
use crate::store::{
    StoreError,
    ranges::{RangeBlock, RangeLimits, RangeVerdict},
};

/// The longest list of blocks one call returns.
const MAX_LISTED: u32 = 1000;

/// Rolls the buckets to now (shared head of the send and verify scripts).
const ROLL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local bucket = math.floor(now / window)
local h = redis.call('HMGET', KEYS[1], 'b', 's0', 's1', 'v0', 'v1', 'bu', 'w')
local stored = tonumber(h[1])
local s0, s1 = tonumber(h[2]) or 0, tonumber(h[3]) or 0
local v0, v1 = tonumber(h[4]) or 0, tonumber(h[5]) or 0
local bu = tonumber(h[6]) or 0
if stored == nil or tonumber(h[7]) ~= window or bucket > stored + 1 then
  s0, s1, v0, v1 = 0, 0, 0, 0
elseif bucket == stored + 1 then
  s1, v1, s0, v0 = s0, v0, 0, 0
end
local weight = 1 - (now - bucket * window) / window
if weight < 0 then weight = 0 end
local function keep()
  local ttl = 2 * window
  if bu > now and bu - now > ttl then ttl = bu - now end
  redis.call('HSET', KEYS[1], 'b', bucket, 's0', s0, 's1', s1, 'v0', v0, 'v1', v1, 'w', window)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
";

/// KEYS: range hash, blocked index. ARGV: window ms, min sends,
/// min verified per mille, block ms, range, count (1, or 0 for a decoy).
/// Returns {blocked (0/1), retry ms, tripped (0/1)}.
const SEND: &str = r"
if bu > now then
  return {1, bu - now, 0}
end
local sent = s0 + s1 * weight
local verified = v0 + v1 * weight
local block = tonumber(ARGV[4])
if block > 0 and sent >= tonumber(ARGV[2]) and verified * 1000 < tonumber(ARGV[3]) * sent then
  bu = now + block
  redis.call('HSET', KEYS[1], 'bu', bu, 'ts', math.floor(sent), 'tv', math.floor(verified))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZADD', KEYS[2], bu, ARGV[5])
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[2], math.max(tonumber(last[2]) - now, 1))
  keep()
  return {1, block, 1}
end
if ARGV[6] == '1' then
  s0 = s0 + 1
elseif stored == nil then
  return {0, 0, 0}
end
keep()
return {0, 0, 0}
";

/// KEYS: range hash. ARGV: window ms. Returns 1.
const VERIFY: &str = r"
v0 = v0 + 1
keep()
return 1
";

/// KEYS: range hash. ARGV: window ms. Takes back one send; returns 1.
const RELEASE: &str = r"
if stored == nil then return 0 end
if s0 > 0 then s0 = s0 - 1 elseif s1 > 0 then s1 = s1 - 1 end
keep()
return 1
";

/// KEYS: blocked index, range key prefix. ARGV: max listed.
/// Returns a flat list: range, ms left, sent, verified, ...
const LIST: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #members, 2 do
  local range = members[i]
  local f = redis.call('HMGET', KEYS[2] .. range, 'ts', 'tv')
  table.insert(out, range)
  table.insert(out, tonumber(members[i + 1]) - now)
  table.insert(out, tonumber(f[1]) or 0)
  table.insert(out, tonumber(f[2]) or 0)
end
return out
";

/// KEYS: range hash, blocked index. ARGV: range. Returns 1 if a block was
/// in force.
const LIFT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local bu = tonumber(redis.call('HGET', KEYS[1], 'bu')) or 0
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if bu > now then return 1 end
return 0
";

struct Scripts {
    send: Script,
    verify: Script,
    release: Script,
    list: Script,
    lift: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    send: Script::new(&format!("{ROLL}{SEND}")),
    verify: Script::new(&format!("{ROLL}{VERIFY}")),
    release: Script::new(&format!("{ROLL}{RELEASE}")),
    list: Script::new(LIST),
    lift: Script::new(LIFT),
});

impl RedisStore {
    /// The hash of one range (`<prefix>{sms-ranges}:r:<range>`). For
    /// diagnostics and tests.
    pub fn range_key(&self, range: &str) -> String {
        format!("{}:r:{range}", self.ranges_tag())
    }

    /// The sorted set of blocked ranges (`<prefix>{sms-ranges}:blocked`).
    pub fn blocked_ranges_key(&self) -> String {
        format!("{}:blocked", self.ranges_tag())
    }

    fn ranges_tag(&self) -> String {
        format!("{}{{sms-ranges}}", self.prefix)
    }

    pub(super) async fn range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
        count: bool,
    ) -> Result<RangeVerdict, StoreError> {
        let call = Call::new(
            &SCRIPTS.send,
            [&self.range_key(range), &self.blocked_ranges_key()],
        )
        .arg(millis(limits.window).max(1))
        .arg(limits.min_sends)
        .arg(limits.min_verified_per_mille)
        .arg(millis(limits.block))
        .arg(range)
        .arg(u8::from(count));
        let (blocked, retry_ms, tripped): (i64, u64, i64) = self.eval(&call).await?;
        match blocked {
            0 => Ok(RangeVerdict::Allowed),
            1 => Ok(RangeVerdict::Blocked {
                retry_after: Duration::from_millis(retry_ms),
                tripped: tripped == 1,
            }),
            _ => Err(StoreError::corrupt(Unexpected("range send status"))),
        }
    }

    pub(super) async fn range_verify(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        let call =
            Call::new(&SCRIPTS.verify, [&self.range_key(range)]).arg(millis(limits.window).max(1));
        let _counted: i64 = self.eval(&call).await?;
        Ok(())
    }

    pub(super) async fn range_release(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        let call =
            Call::new(&SCRIPTS.release, [&self.range_key(range)]).arg(millis(limits.window).max(1));
        let _released: i64 = self.eval(&call).await?;
        Ok(())
    }

    pub(super) async fn range_blocks(&self) -> Result<Vec<RangeBlock>, StoreError> {
        // The second key is a prefix the script appends ranges to: declared
        // so that the cluster routes the script to the tag's slot.
        let call = Call::new(
            &SCRIPTS.list,
            [
                &self.blocked_ranges_key(),
                &format_args!("{}:r:", self.ranges_tag()),
            ],
        )
        .arg(MAX_LISTED);
        let flat: Vec<(String, u64, u64, u64)> = self.eval(&call).await?;
        let mut blocks: Vec<_> = flat
            .into_iter()
            .map(|(range, left, sent, verified)| {
                let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                RangeBlock::new(
                    range,
                    Duration::from_millis(left),
                    count(sent),
                    count(verified),
                )
            })
            .collect();
        blocks.sort_by(|a, b| a.range.cmp(&b.range));
        Ok(blocks)
    }

    pub(super) async fn range_lift(&self, range: &str) -> Result<bool, StoreError> {
        let call = Call::new(
            &SCRIPTS.lift,
            [&self.range_key(range), &self.blocked_ranges_key()],
        )
        .arg(range);
        let lifted: i64 = self.eval(&call).await?;
        Ok(lifted == 1)
    }
}
