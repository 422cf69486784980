//! Rate limits driven by rules. A [`Rule`] names its key (the client IP,
//! the contact, the country calling code), its quota and period, and which
//! requests it counts; its key decides when it runs ([`Stage`]): IP rules
//! right after the method check, before the body is read; contact and
//! country rules after parsing. Every rule runs before any hashing or
//! delivery.
//!
//! Each rule is a GCRA limiter, in process with governor's keyed limiters,
//! or, with a shared store configured
//! ([`OtpBuilder::shared_limits`](crate::OtpBuilder::shared_limits); set
//! by `REDIS_OTP_URL`), in that store, so that every rule holds across
//! instances. The in-process limiter is the fallback when the shared store
//! cannot be reached.
//!
//! The built-in rules come from the builder's settings:
//! [`ip_limits`](crate::OtpBuilder::ip_limits) (`otp-send` and
//! `otp-verify`, per IP per minute) and the SMS guard's per-country hourly
//! budget (`otp-sms-country`); [`OtpBuilder::limit`](crate::OtpBuilder::limit)
//! adds more. The per-contact resend cooldown and send quota are not rules:
//! they stay atomic in the code store, because a failed delivery must
//! release them.
//!
//! Every answer on an OTP route carries the IETF `RateLimit-Policy` and
//! `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) of the
//! tightest IP rule; a refused request gets 429 `rate_limited` with
//! `Retry-After` and `"retry_after"`.
//!
//! # Who counts as one client
//!
//! | client address | counted against (each must have budget left) |
//! |---|---|
//! | IPv4 | the address: the rule's quota |
//! | IPv6 | its /64: the quota; its /56: 4× the quota; its /48: 16× the quota |
//! | none known | one "unknown" budget shared by every such request: 16× the quota (a /48's) |
//!
//! A /64 is one customer's usual allocation, so rotating addresses inside
//! it buys nothing; an attacker holding a /56 or a /48 (what many providers
//! hand out) gets 4 or 16 clients' worth, not 256 or 65,536. The prefixes
//! are checked narrowest first, so requests a /64 is refused for do not
//! drain its neighbours' /56 and /48 budgets. IPv4-mapped IPv6 addresses
//! count as the IPv4 address. With the shared store the prefixes are keyed
//! `<rule>:<digest>`, `<rule>/56:<digest>` and `<rule>/48:<digest>` (the
//! unknown client: `<rule>/48:unknown`), where the digest is keyed with the
//! server secret (no address is stored).
//!
//! A request with no client address at all (no `ConnectInfo`, no
//! [`ClientAddr`](client_ip::ClientAddr) extension) is never let through
//! unlimited: such requests share one "unknown" budget per rule (16× the
//! quota: they come from any number of clients, so they get what one /48
//! gets), and an error naming the fix is logged once per layer.
//!
//! # Memory
//!
//! Each rule's in-process table holds at most
//! [`max_tracked_ips`](crate::OtpConfig::max_tracked_ips) keys (default
//! [`DEFAULT_MAX_TRACKED_IPS`]). Every [`CLEANUP_EVERY`] checks, and at most
//! once a second while a table is full, keys whose budget is back to full
//! are dropped. While a table is full, clients it already tracks keep their
//! own budgets, and clients it does not track share one overflow budget (the
//! rule's quota) until entries expire: a flood of new addresses can neither
//! grow memory nor lock out clients already known (logged once per
//! episode).

pub mod client_ip;
mod rule;
pub mod shared;
pub mod sms_breaker;
pub mod sms_guard;
mod table;

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
};
use http::{HeaderName, HeaderValue};

pub(crate) use rule::Traffic;
pub use rule::{Rule, RuleKey, RuleScope, Stage};
use shared::SharedRateLimiter;
use table::BoundedStore;

use crate::{
    contact::{Channel, Contact},
    error::ApiError,
    time::ceil_secs,
};

/// Default sends per client IP per minute.
pub const DEFAULT_IP_SEND_PER_MINUTE: u32 = 10;
/// Default verifies per client IP per minute.
pub const DEFAULT_IP_VERIFY_PER_MINUTE: u32 = 30;
/// Default cap on tracked keys (client addresses, contacts, countries) per
/// rule.
pub const DEFAULT_MAX_TRACKED_IPS: usize = 100_000;
/// Checks between two sweeps of idle keys.
pub const CLEANUP_EVERY: u64 = 1024;

/// The wider IPv6 prefixes a client is also counted against, with each
/// one's budget as a multiple of the per-client quota (the /64 is the
/// client itself).
const IPV6_WIDER: [(u8, u32, &str); 2] = [(56, 4, "/56"), (48, 16, "/48")];

/// Shortest time between two sweeps of a full table.
const FULL_SWEEP_INTERVAL_NANOS: u64 = 1_000_000_000;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The value a rule counts one request under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    /// An IPv4 address, or an IPv6 address masked to the table's prefix.
    Ip(IpAddr),
    /// Every request with no client address.
    UnknownClient,
    Contact(String),
    Country(u16),
}

impl std::fmt::Display for LimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::UnknownClient => f.write_str("unknown"),
            Self::Contact(digest) => f.write_str(digest),
            Self::Country(code) => write!(f, "cc{code}"),
        }
    }
}

type KeyedLimiter =
    RateLimiter<LimitKey, BoundedStore<LimitKey>, DefaultClock, StateInformationMiddleware>;

/// One GCRA table of a rule: its quota, its in-process state, and the
/// suffix that tells its keys apart in the shared store.
struct Table {
    quota: NonZeroU32,
    local: KeyedLimiter,
    /// `""` for the rule's own key, `"/56"` and `"/48"` for the wider IPv6
    /// prefixes.
    suffix: &'static str,
    /// When this table was last swept because it was full (nanoseconds
    /// since the limiter started).
    last_full_sweep: AtomicU64,
}

impl Table {
    fn new(
        name: &str,
        suffix: &'static str,
        quota: NonZeroU32,
        period: Duration,
        max_keys: usize,
    ) -> Self {
        // GCRA: one request every period/quota, a burst of quota.
        let interval = (period / quota.get()).max(Duration::from_nanos(1));
        let gcra = Quota::with_period(interval)
            .expect("the interval is positive")
            .allow_burst(quota);
        let store = BoundedStore::new(format!("{name}{suffix}"), max_keys);
        Self {
            quota,
            local: KeyedLimiter::new(gcra, store, DefaultClock::default()),
            suffix,
            last_full_sweep: AtomicU64::new(0),
        }
    }
}

/// One rule in force, with its in-process tables.
struct ActiveRule {
    rule: Rule,
    /// Per value of the rule's key (IPv4 address, IPv6 /64, contact,
    /// country, or the unknown client).
    own: Table,
    /// Client-IP rules only: the IPv6 /56 and /48, in [`IPV6_WIDER`] order.
    wider: Vec<(u8, Table)>,
    /// `"name";q=…;w=…`, built once.
    policy: HeaderValue,
}

/// One check's answer.
#[derive(Debug, Clone, Copy)]
struct Decision {
    allowed: bool,
    remaining: u32,
    /// Seconds until a retry may succeed (refused) or the burst is full
    /// again (allowed).
    wait: u64,
}

/// Every rule in force, shared by the layer (IP rules) and the flow
/// (contact and country rules).
pub(crate) struct Limiter {
    rules: Vec<ActiveRule>,
    max_keys: usize,
    checks: AtomicU64,
    started: std::time::Instant,
    /// Set once the "no client address" error was logged.
    warned_no_peer: AtomicBool,
    clock: DefaultClock,
    shared: Option<Arc<dyn SharedRateLimiter>>,
    /// Keys the digest that names a client address in the shared store,
    /// so that a leaked store reveals no address.
    digest_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.rule).collect::<Vec<_>>(),
            )
            .field("max_keys", &self.max_keys)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// The `RateLimit-Policy` and `RateLimit` header values of one answer.
pub(crate) type RateHeaders = [(HeaderName, HeaderValue); 2];

/// A refusal at the edge: the error and its rate headers.
pub(crate) type EdgeRefusal = Box<(ApiError, RateHeaders)>;

impl Limiter {
    /// A limiter enforcing `rules`, each tracking at most `max_keys` keys
    /// in process.
    pub(crate) fn new(rules: Vec<Rule>, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let rules = rules
            .into_iter()
            .map(|rule| {
                let own = Table::new(&rule.name, "", rule.quota, rule.period, max_keys);
                let wider = if rule.key == RuleKey::ClientIp {
                    IPV6_WIDER
                        .iter()
                        .map(|&(prefix, times, suffix)| {
                            let quota = rule.quota.saturating_mul(
                                NonZeroU32::new(times).expect("multiples are positive"),
                            );
                            (
                                prefix,
                                Table::new(&rule.name, suffix, quota, rule.period, max_keys),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let policy = HeaderValue::from_str(&format!(
                    "\"{}\";q={};w={}",
                    rule.name,
                    rule.quota,
                    rule.period.as_secs().max(1)
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("\"otp\""));
                ActiveRule {
                    rule,
                    own,
                    wider,
                    policy,
                }
            })
            .collect();
        Self {
            rules,
            max_keys,
            checks: AtomicU64::new(0),
            started: std::time::Instant::now(),
            warned_no_peer: AtomicBool::new(false),
            clock: DefaultClock::default(),
            shared: None,
            digest_key: zeroize::Zeroizing::new([0; 32]),
        }
    }

    /// Client addresses are named in the shared store by a digest keyed
    /// with `key` (derived from the server secret).
    pub(crate) fn with_digest_key(mut self, key: [u8; 32]) -> Self {
        self.digest_key = zeroize::Zeroizing::new(key);
        self
    }

    /// Keeps every rule's counts in a store shared by every instance; the
    /// in-process limiter remains the fallback when that store cannot be
    /// reached.
    pub(crate) fn with_shared(mut self, shared: Option<Arc<dyn SharedRateLimiter>>) -> Self {
        self.shared = shared;
        self
    }

    /// Runs the IP rules that apply to this request. `Ok(None)` when none
    /// applies; otherwise the rate headers of the tightest rule. Requests
    /// with no known address share one "unknown" budget per rule.
    pub(crate) async fn check_edge(
        &self,
        traffic: Traffic,
        channel: Channel,
        ip: Option<IpAddr>,
    ) -> Result<Option<RateHeaders>, EdgeRefusal> {
        let applies =
            |r: &ActiveRule| r.rule.key == RuleKey::ClientIp && r.rule.applies(traffic, channel);
        if !self.rules.iter().any(applies) {
            return Ok(None);
        }
        if ip.is_none() && !self.warned_no_peer.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "no client address on OTP requests: they all share one \"unknown\" per-IP \
                 budget. Serve with `into_make_service_with_connect_info::<SocketAddr>()` or \
                 insert a `ClientAddr` extension per connection."
            );
        }
        let mut tightest: Option<(u32, RateHeaders)> = None;
        for active in &self.rules {
            if !applies(active) {
                continue;
            }
            let decision = self.check_client(active, ip).await;
            if !decision.allowed {
                let headers = [
                    (RATELIMIT_POLICY, active.policy.clone()),
                    (RATELIMIT, remaining(&active.rule.name, 0, decision.wait)),
                ];
                return Err(Box::new((
                    ApiError::RateLimited {
                        retry_after: decision.wait,
                    },
                    headers,
                )));
            }
            if tightest
                .as_ref()
                .is_none_or(|(left, _)| decision.remaining < *left)
            {
                tightest = Some((
                    decision.remaining,
                    [
                        (RATELIMIT_POLICY, active.policy.clone()),
                        (
                            RATELIMIT,
                            remaining(&active.rule.name, decision.remaining, decision.wait),
                        ),
                    ],
                ));
            }
        }
        Ok(tightest.map(|(_, headers)| headers))
    }

    /// One request from `ip` against one client-IP rule: IPv4 per address;
    /// IPv6 per /64, then /56, then /48 (narrowest first, so a refusal
    /// draws nothing from the wider budgets); no address: the one unknown
    /// client, with a /48's budget.
    async fn check_client(&self, active: &ActiveRule, ip: Option<IpAddr>) -> Decision {
        let Some(ip) = ip else {
            // Whoever they are, they are more than one client: the budget
            // of a /48, the widest any one network gets.
            let table = active.wider.last().map_or(&active.own, |(_, t)| t);
            return self
                .check_table(active, table, &LimitKey::UnknownClient)
                .await;
        };
        let IpAddr::V6(v6) = ip else {
            return self
                .check_table(active, &active.own, &LimitKey::Ip(ip))
                .await;
        };
        let mut combined = self
            .check_table(active, &active.own, &LimitKey::Ip(ipv6_prefix(v6, 64)))
            .await;
        for (prefix, table) in &active.wider {
            if !combined.allowed {
                break;
            }
            let wide = self
                .check_table(active, table, &LimitKey::Ip(ipv6_prefix(v6, *prefix)))
                .await;
            combined = Decision {
                allowed: wide.allowed,
                remaining: combined.remaining.min(wide.remaining),
                wait: if wide.allowed {
                    combined.wait.max(wide.wait)
                } else {
                    wide.wait
                },
            };
        }
        combined
    }

    /// Runs the contact and country rules that apply to this request;
    /// `contact_key` is the contact's keyed digest.
    pub(crate) async fn check_contact(
        &self,
        traffic: Traffic,
        contact: &Contact,
        contact_key: &str,
    ) -> Result<(), ApiError> {
        for active in &self.rules {
            if !active.rule.applies(traffic, contact.channel()) {
                continue;
            }
            let key = match (active.rule.key, contact) {
                (RuleKey::Contact, _) => LimitKey::Contact(contact_key.to_owned()),
                (RuleKey::CountryCode, Contact::Mobile(m)) => LimitKey::Country(m.country_code()),
                _ => continue,
            };
            let decision = self.check_table(active, &active.own, &key).await;
            if !decision.allowed {
                tracing::warn!(
                    rule = %active.rule.name,
                    country_code = match &key { LimitKey::Country(c) => Some(*c), _ => None },
                    "rate limit rule refused a request"
                );
                return Err(ApiError::RateLimited {
                    retry_after: decision.wait,
                });
            }
        }
        Ok(())
    }

    /// One request against one table of a rule, in the shared store when
    /// there is one.
    async fn check_table(&self, active: &ActiveRule, table: &Table, key: &LimitKey) -> Decision {
        if let Some(shared) = &self.shared {
            let (name, suffix) = (&active.rule.name, table.suffix);
            let shared_key = match key {
                LimitKey::Ip(ip) => {
                    format!("{name}{suffix}:{}", ip_digest(&self.digest_key, *ip))
                }
                _ => format!("{name}{suffix}:{key}"),
            };
            match shared
                .check(&shared_key, table.quota.get(), active.rule.period)
                .await
            {
                Ok(d) if d.allowed => {
                    return Decision {
                        allowed: true,
                        remaining: d.remaining,
                        wait: ceil_secs(d.reset),
                    };
                }
                Ok(d) => {
                    return Decision {
                        allowed: false,
                        remaining: 0,
                        wait: ceil_secs(d.retry_after),
                    };
                }
                Err(error) => tracing::warn!(
                    error = %error,
                    "shared rate limiter unreachable; limiting in process"
                ),
            }
        }
        self.check_local(active.rule.period, table, key)
    }

    fn check_local(&self, period: Duration, table: &Table, key: &LimitKey) -> Decision {
        self.maybe_clean(table);
        match table.local.check_key(key) {
            Ok(snapshot) => {
                let quota = table.quota.get();
                let left = snapshot.remaining_burst_capacity();
                let used = quota.saturating_sub(left);
                // GCRA refills one request every period/quota.
                let reset =
                    (u128::from(used) * period.as_millis()).div_ceil(u128::from(quota) * 1000);
                Decision {
                    allowed: true,
                    remaining: left,
                    wait: u64::try_from(reset).unwrap_or(u64::MAX),
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                remaining: 0,
                wait: ceil_secs(not_until.wait_time_from(self.clock.now())),
            },
        }
    }

    /// How many keys each rule's own table tracks in process.
    #[cfg(test)]
    fn tracked(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.own.local.len()).collect()
    }

    fn maybe_clean(&self, table: &Table) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        let due = n.is_multiple_of(CLEANUP_EVERY);
        // A full table is swept at most once a second, so a flood of new
        // keys does not buy a full scan per request.
        let full = !due && table.local.len() >= self.max_keys && {
            let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let last = table.last_full_sweep.load(Ordering::Relaxed);
            now.saturating_sub(last) >= FULL_SWEEP_INTERVAL_NANOS
                && table
                    .last_full_sweep
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        };
        if due || full {
            table.local.retain_recent();
            table.local.shrink_to_fit();
        }
    }
}

fn remaining(name: &str, left: u32, reset_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{name}\";r={left};t={reset_secs}"))
        .unwrap_or_else(|_| HeaderValue::from_static("\"otp\""))
}

/// A keyed digest of a client address (HMAC-SHA256, 128 bits in hex).
fn ip_digest(key: &[u8; 32], ip: IpAddr) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    match ip {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()),
    }
    let tag = mac.finalize().into_bytes();
    crate::contact::hex(&tag[..16])
}

/// `v6` with every bit after the first `prefix` cleared.
fn ipv6_prefix(v6: Ipv6Addr, prefix: u8) -> IpAddr {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Mobile;

    fn edge(send: u32, verify: u32, max_keys: usize) -> Limiter {
        let minute = Duration::from_secs(60);
        let rules = [
            Rule::per_ip("otp-send", send, minute).map(|r| r.scope(RuleScope::Sends)),
            Rule::per_ip("otp-verify", verify, minute).map(|r| r.scope(RuleScope::Verifies)),
        ];
        Limiter::new(rules.into_iter().flatten().collect(), max_keys)
    }

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    impl Limiter {
        fn check_now(
            &self,
            traffic: Traffic,
            ip: Option<IpAddr>,
        ) -> Result<Option<RateHeaders>, EdgeRefusal> {
            block_on(self.check_edge(traffic, Channel::Email, ip))
        }
    }

    #[test]
    fn budgets_are_per_address_and_per_kind() {
        let limiter = edge(2, 5, 1000);
        let a = Some("198.51.100.1".parse().unwrap());
        let b = Some("198.51.100.2".parse().unwrap());
        assert!(limiter.check_now(Traffic::Send, a).is_ok());
        let headers = limiter.check_now(Traffic::Send, a).unwrap().unwrap();
        assert_eq!(headers[0].1, "\"otp-send\";q=2;w=60");
        assert_eq!(headers[1].1, "\"otp-send\";r=0;t=60");
        let (err, _) = *limiter.check_now(Traffic::Send, a).unwrap_err();
        assert!(
            matches!(err, ApiError::RateLimited { retry_after } if (1..=30).contains(&retry_after))
        );
        assert!(limiter.check_now(Traffic::Send, b).is_ok());
        assert!(limiter.check_now(Traffic::Verify, a).is_ok());
        // No address: one shared "unknown" budget (16 × 2), never unlimited.
        for _ in 0..32 {
            assert!(limiter.check_now(Traffic::Send, None).unwrap().is_some());
        }
        assert!(limiter.check_now(Traffic::Send, None).is_err());
    }

    #[test]
    fn ipv6_prefixes_are_masked() {
        let v6: Ipv6Addr = "2001:db8:aaaa:bbcc:1:2:3:4".parse().unwrap();
        assert_eq!(
            ipv6_prefix(v6, 64),
            "2001:db8:aaaa:bbcc::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ipv6_prefix(v6, 56),
            "2001:db8:aaaa:bb00::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ipv6_prefix(v6, 48),
            "2001:db8:aaaa::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limiter = edge(1, 1, 1000);
        let a = Some("2001:db8:1:2::1".parse().unwrap());
        let b = Some("2001:db8:1:2:ffff::9".parse().unwrap());
        assert!(limiter.check_now(Traffic::Send, a).is_ok());
        assert!(limiter.check_now(Traffic::Send, b).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let limiter = edge(10, 10, 500);
        let mut refused = 0;
        for i in 0..5_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if limiter.check_now(Traffic::Send, Some(ip)).is_err() {
                refused += 1;
            }
        }
        assert!(limiter.tracked()[0] <= 500, "{:?}", limiter.tracked());
        assert!(refused >= 4_000, "{refused} refused");
        // The first addresses are still tracked, with their own budgets.
        let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
        assert!(limiter.check_now(Traffic::Send, Some(first)).is_ok());
    }

    #[test]
    fn country_rules_count_mobile_sends_per_calling_code() {
        let rule = Rule::per_country("otp-sms-country", 2, Duration::from_secs(3600))
            .unwrap()
            .scope(RuleScope::Sends);
        let limiter = Limiter::new(vec![rule], 1000);
        let india = |n: &str| Contact::Mobile(Mobile::parse(n, None).unwrap());
        let check = |c: &Contact, t| block_on(limiter.check_contact(t, c, "digest"));
        assert!(check(&india("+919812345678"), Traffic::Send).is_ok());
        assert!(check(&india("+919812345679"), Traffic::Send).is_ok());
        let err = check(&india("+919812345670"), Traffic::Send).unwrap_err();
        assert!(matches!(err, ApiError::RateLimited { retry_after } if retry_after > 60));
        // Another country, a verify, an email: not counted by this rule.
        assert!(check(&india("+14155550123"), Traffic::Send).is_ok());
        assert!(check(&india("+919812345678"), Traffic::Verify).is_ok());
        let email = Contact::Email(crate::contact::Email::parse("a@b.co").unwrap());
        assert!(check(&email, Traffic::Send).is_ok());
    }

    #[test]
    fn contact_rules_count_per_contact_key() {
        let rule = Rule::per_contact("verify-per-contact", 1, Duration::from_secs(60))
            .unwrap()
            .scope(RuleScope::Verifies);
        let limiter = Limiter::new(vec![rule], 1000);
        let email = Contact::Email(crate::contact::Email::parse("a@b.co").unwrap());
        let check = |k: &str| block_on(limiter.check_contact(Traffic::Verify, &email, k));
        assert!(check("one").is_ok());
        assert!(check("one").is_err());
        assert!(check("two").is_ok());
    }
}
