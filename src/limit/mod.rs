//! Per-client-IP rate limits at the edge, with governor's keyed GCRA
//! limiters: one quota for the send routes, one for the verify routes.
//!
//! The check runs right after the method check, before the body is read,
//! before any hashing and before any delivery. Every answer on an OTP route
//! carries the IETF `RateLimit-Policy` and `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers); a refused request gets 429
//! `rate_limited` with `Retry-After` and `"retry_after"`.
//!
//! IPv6 clients are limited per /64 (one customer's usual allocation), so an
//! attacker cannot get a fresh budget by rotating through its own prefix.
//!
//! Memory stays bounded: every [`CLEANUP_EVERY`] checks (and whenever the
//! table is over its cap) keys whose budget is back to full are dropped; if
//! the table is still over [`DEFAULT_MAX_TRACKED_IPS`] after that, new
//! addresses are refused (fail closed) until it shrinks.

pub mod client_ip;
pub mod shared;
pub mod sms_guard;

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use http::{HeaderName, HeaderValue};

use crate::{engine::ceil_secs, error::ApiError};
use shared::SharedRateLimiter;

/// Default sends per client IP per minute.
pub const DEFAULT_IP_SEND_PER_MINUTE: u32 = 10;
/// Default verifies per client IP per minute.
pub const DEFAULT_IP_VERIFY_PER_MINUTE: u32 = 30;
/// Default cap on tracked client addresses per limiter.
pub const DEFAULT_MAX_TRACKED_IPS: usize = 100_000;
/// Checks between two sweeps of idle addresses.
pub const CLEANUP_EVERY: u64 = 1024;

/// Set once the "no client address" warning was logged.
static WARNED_NO_PEER: AtomicBool = AtomicBool::new(false);

/// Shortest time between two sweeps of a full table.
const FULL_SWEEP_INTERVAL_NANOS: u64 = 1_000_000_000;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Which budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitKind {
    Send,
    Verify,
}

type KeyedLimiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

struct Limiter {
    name: &'static str,
    per_minute: u32,
    inner: KeyedLimiter,
}

/// The two edge limiters.
pub(crate) struct EdgeLimiter {
    send: Option<Limiter>,
    verify: Option<Limiter>,
    max_keys: usize,
    checks: AtomicU64,
    /// When a full table was last swept (nanoseconds since `started`).
    last_full_sweep: AtomicU64,
    started: std::time::Instant,
    clock: DefaultClock,
    shared: Option<Arc<dyn SharedRateLimiter>>,
}

impl std::fmt::Debug for EdgeLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_minute = |l: &Option<Limiter>| l.as_ref().map(|l| l.per_minute);
        f.debug_struct("EdgeLimiter")
            .field("send_per_minute", &per_minute(&self.send))
            .field("verify_per_minute", &per_minute(&self.verify))
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

/// The `RateLimit-Policy` and `RateLimit` header values of one answer.
pub(crate) type RateHeaders = [(HeaderName, HeaderValue); 2];

impl EdgeLimiter {
    /// Limiters allowing `send` and `verify` requests per IP per minute
    /// (0 turns one off).
    pub(crate) fn new(send: u32, verify: u32, max_keys: usize) -> Self {
        let limiter = |name, per_minute: u32| {
            NonZeroU32::new(per_minute).map(|n| Limiter {
                name,
                per_minute,
                inner: RateLimiter::keyed(Quota::per_minute(n))
                    .with_middleware::<StateInformationMiddleware>(),
            })
        };
        Self {
            send: limiter("otp-send", send),
            verify: limiter("otp-verify", verify),
            max_keys: max_keys.max(1),
            checks: AtomicU64::new(0),
            last_full_sweep: AtomicU64::new(0),
            started: std::time::Instant::now(),
            clock: DefaultClock::default(),
            shared: None,
        }
    }

    /// Keeps the counts in a store shared by every instance; the in-process
    /// limiter remains the fallback when that store cannot be reached.
    pub(crate) fn with_shared(mut self, shared: Option<Arc<dyn SharedRateLimiter>>) -> Self {
        self.shared = shared;
        self
    }

    /// Draws one request for `ip` from `kind`'s budget. `Ok(None)` when that
    /// limiter is off or the address is unknown.
    pub(crate) async fn check(
        &self,
        kind: LimitKind,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateHeaders>, Box<(ApiError, RateHeaders)>> {
        let limiter = match kind {
            LimitKind::Send => &self.send,
            LimitKind::Verify => &self.verify,
        };
        let Some(limiter) = limiter else {
            return Ok(None);
        };
        let Some(ip) = ip else {
            if !WARNED_NO_PEER.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "no client address on OTP requests: per-IP limits are off. Serve with \
                     `into_make_service_with_connect_info::<SocketAddr>()` or insert a `ClientAddr`."
                );
            }
            return Ok(None);
        };
        let key = limit_key(ip);
        let policy = HeaderValue::from_str(&format!(
            "\"{}\";q={};w=60",
            limiter.name, limiter.per_minute
        ))
        .expect("policy header is ASCII");
        if let Some(shared) = &self.shared {
            let shared_key = format!("{}:{key}", limiter.name);
            match shared
                .check(
                    &shared_key,
                    limiter.per_minute,
                    std::time::Duration::from_secs(60),
                )
                .await
            {
                Ok(d) if d.allowed => {
                    return Ok(Some([
                        (RATELIMIT_POLICY, policy),
                        (
                            RATELIMIT,
                            remaining(limiter.name, d.remaining, ceil_secs(d.reset)),
                        ),
                    ]));
                }
                Ok(d) => {
                    let retry_after = ceil_secs(d.retry_after);
                    return Err(Box::new((
                        ApiError::RateLimited { retry_after },
                        [
                            (RATELIMIT_POLICY, policy),
                            (RATELIMIT, remaining(limiter.name, 0, retry_after)),
                        ],
                    )));
                }
                Err(error) => tracing::warn!(
                    error = %error,
                    "shared rate limiter unreachable; limiting in process"
                ),
            }
        }
        self.check_local(limiter, key, policy)
    }

    fn check_local(
        &self,
        limiter: &Limiter,
        key: IpAddr,
        policy: HeaderValue,
    ) -> Result<Option<RateHeaders>, Box<(ApiError, RateHeaders)>> {
        self.maybe_clean(limiter);
        if limiter.inner.len() >= self.max_keys {
            tracing::error!(
                max_keys = self.max_keys,
                "too many client addresses tracked; refusing new ones until they expire"
            );
            let headers = [
                (RATELIMIT_POLICY, policy),
                (RATELIMIT, remaining(limiter.name, 0, 60)),
            ];
            return Err(Box::new((
                ApiError::RateLimited { retry_after: 60 },
                headers,
            )));
        }
        match limiter.inner.check_key(&key) {
            Ok(snapshot) => {
                let left = snapshot.remaining_burst_capacity();
                let used = limiter.per_minute.saturating_sub(left);
                // GCRA refills one request every 60/q seconds.
                let reset = (u64::from(used) * 60).div_ceil(u64::from(limiter.per_minute));
                Ok(Some([
                    (RATELIMIT_POLICY, policy),
                    (RATELIMIT, remaining(limiter.name, left, reset)),
                ]))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry_after = ceil_secs(wait);
                Err(Box::new((
                    ApiError::RateLimited { retry_after },
                    [
                        (RATELIMIT_POLICY, policy),
                        (RATELIMIT, remaining(limiter.name, 0, retry_after)),
                    ],
                )))
            }
        }
    }

    /// How many addresses the send and verify limiters track.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        let len = |l: &Option<Limiter>| l.as_ref().map_or(0, |l| l.inner.len());
        (len(&self.send), len(&self.verify))
    }

    fn maybe_clean(&self, limiter: &Limiter) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        let due = n.is_multiple_of(CLEANUP_EVERY);
        // A full table is swept at most once a second, so a flood of new
        // addresses does not buy a full scan per request.
        let full = !due && limiter.inner.len() >= self.max_keys && {
            let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let last = self.last_full_sweep.load(Ordering::Relaxed);
            now.saturating_sub(last) >= FULL_SWEEP_INTERVAL_NANOS
                && self
                    .last_full_sweep
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        };
        if due || full {
            limiter.inner.retain_recent();
            limiter.inner.shrink_to_fit();
        }
    }
}

fn remaining(name: &str, left: u32, reset_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{name}\";r={left};t={reset_secs}"))
        .expect("ratelimit header is ASCII")
}

/// IPv4 addresses as they are; IPv6 addresses by their /64 prefix.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl EdgeLimiter {
        fn check_now(
            &self,
            kind: LimitKind,
            ip: Option<IpAddr>,
        ) -> Result<Option<RateHeaders>, Box<(ApiError, RateHeaders)>> {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(self.check(kind, ip))
        }
    }

    #[test]
    fn budgets_are_per_address_and_per_kind() {
        let limiter = EdgeLimiter::new(2, 5, 1000);
        let a = Some("198.51.100.1".parse().unwrap());
        let b = Some("198.51.100.2".parse().unwrap());
        assert!(limiter.check_now(LimitKind::Send, a).is_ok());
        let headers = limiter.check_now(LimitKind::Send, a).unwrap().unwrap();
        assert_eq!(headers[0].1, "\"otp-send\";q=2;w=60");
        assert_eq!(headers[1].1, "\"otp-send\";r=0;t=60");
        let (err, _) = *limiter.check_now(LimitKind::Send, a).unwrap_err();
        assert!(
            matches!(err, ApiError::RateLimited { retry_after } if (1..=30).contains(&retry_after))
        );
        assert!(limiter.check_now(LimitKind::Send, b).is_ok());
        assert!(limiter.check_now(LimitKind::Verify, a).is_ok());
        assert!(limiter.check_now(LimitKind::Send, None).unwrap().is_none());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limiter = EdgeLimiter::new(1, 1, 1000);
        let a = Some("2001:db8:1:2::1".parse().unwrap());
        let b = Some("2001:db8:1:2:ffff::9".parse().unwrap());
        assert!(limiter.check_now(LimitKind::Send, a).is_ok());
        assert!(limiter.check_now(LimitKind::Send, b).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let limiter = EdgeLimiter::new(10, 10, 500);
        let mut refused = 0;
        for i in 0..5_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if limiter.check_now(LimitKind::Send, Some(ip)).is_err() {
                refused += 1;
            }
        }
        assert!(limiter.tracked().0 <= 500, "{:?}", limiter.tracked());
        assert!(refused >= 4_000, "{refused} refused");
    }
}
