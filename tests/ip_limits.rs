//! Per-IP limits that are hard to dodge (DESIGN.md, "Per-IP limits, harder
//! to dodge"): a full limiter table keeps serving the clients it tracks;
//! IPv6 clients are counted per /64, /56 (4×) and /48 (16×), IPv4 per
//! address; requests with no client address share one budget (a /48's)
//! and log one error; the shared (Redis) limiter applies the same prefixes.
//!
//! Requests go through the real layer with the peer address axum's
//! `ConnectInfo` gives (or the `ClientAddr` a non-axum host inserts). A
//! verify for a contact with no live code answers 400 `otp_expired` once
//! it passed the edge limits, and 429 `rate_limited` when they refuse it.

mod common;

use std::{net::SocketAddr, sync::Arc};

use axum::{body::Body, extract::ConnectInfo};
use common::{app::TestApp, logs::Captured};
use http::{Request, StatusCode};
use serde_json::json;
use tower_otp::{OtpBuilder, OtpConfig, delivery::MemoryOutbox};
use tracing::Instrument;

/// A verify from `peer` (no peer when `None`), as axum's `ConnectInfo`
/// would carry it.
fn verify_from(peer: Option<&str>, n: usize) -> Request<Body> {
    let mut request = Request::post("/verify-otp/")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"email": format!("ip{n}@b.co"), "otp": "123456"}).to_string(),
        ))
        .unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    request
}

/// The status of a verify from `ip` (an address without a port).
async fn status_from(app: &TestApp, ip: &str, n: usize) -> StatusCode {
    let peer = if ip.contains(':') {
        format!("[{ip}]:4000")
    } else {
        format!("{ip}:4000")
    };
    let answer = app.request(verify_from(Some(&peer), n)).await;
    match answer.status {
        StatusCode::BAD_REQUEST => assert_eq!(answer.code(), "otp_expired", "{}", answer.body),
        StatusCode::TOO_MANY_REQUESTS => answer.assert_error(429, "rate_limited"),
        other => panic!("unexpected {other}: {}", answer.body),
    }
    answer.status
}

const PASSED: StatusCode = StatusCode::BAD_REQUEST;
const REFUSED: StatusCode = StatusCode::TOO_MANY_REQUESTS;

/// An app allowing `per_client` verifies per client per minute (sends
/// unlimited), tracking at most `max_tracked` keys per table.
fn app(per_client: u32, max_tracked: usize) -> TestApp {
    let mut config = OtpConfig::default();
    config.max_tracked_ips = max_tracked;
    let outbox = MemoryOutbox::new();
    TestApp::with(
        common::builder_with(&outbox)
            .config(config)
            .ip_limits(0, per_client),
        outbox,
    )
}

#[tokio::test]
async fn a_full_table_still_serves_tracked_clients_and_new_ones_share_one_overflow_budget() {
    let app = app(3, 3);
    // Three clients fill the table.
    for (n, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        assert_eq!(status_from(&app, ip, n).await, PASSED, "{ip}");
    }
    // A tracked client keeps its own budget of 3, and only that.
    assert_eq!(status_from(&app, "192.0.2.1", 10).await, PASSED);
    assert_eq!(status_from(&app, "192.0.2.1", 11).await, PASSED);
    assert_eq!(status_from(&app, "192.0.2.1", 12).await, REFUSED);
    // New clients share one overflow budget of 3...
    for (n, ip) in ["192.0.2.4", "192.0.2.5", "203.0.113.6"].iter().enumerate() {
        assert_eq!(status_from(&app, ip, 20 + n).await, PASSED, "{ip}");
    }
    // ...which is then spent for every new client, whoever it is.
    assert_eq!(status_from(&app, "203.0.113.7", 30).await, REFUSED);
    assert_eq!(status_from(&app, "192.0.2.4", 31).await, REFUSED);
    // Nobody already tracked is refused because the table is full.
    assert_eq!(status_from(&app, "192.0.2.2", 32).await, PASSED);
    assert_eq!(status_from(&app, "192.0.2.3", 33).await, PASSED);
}

#[tokio::test]
async fn ipv6_clients_share_their_64_and_five_64s_exhaust_their_56() {
    let app = app(1, 1000);
    // Two addresses in one /64 are one client.
    assert_eq!(status_from(&app, "2001:db8:7:100::1", 0).await, PASSED);
    assert_eq!(
        status_from(&app, "2001:db8:7:100:ffff:1:2:3", 1).await,
        REFUSED
    );
    // The /56 (2001:db8:7:100::/56) holds 4 clients' budgets: three more /64s
    // get in, the fifth /64 is refused although its own budget is untouched.
    for (n, ip) in [
        "2001:db8:7:101::1",
        "2001:db8:7:1a0::1",
        "2001:db8:7:1ff::1",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(status_from(&app, ip, 2 + n).await, PASSED, "{ip}");
    }
    assert_eq!(status_from(&app, "2001:db8:7:102::1", 5).await, REFUSED);
    // The neighbouring /56 in the same /48 still has its budget.
    assert_eq!(status_from(&app, "2001:db8:7:200::1", 6).await, PASSED);
}

#[tokio::test]
async fn an_ipv6_48_holds_sixteen_clients_budgets() {
    let app = app(1, 1000);
    // 4 /56s × 4 /64s: 16 clients of 2001:db8:48::/48, one request each.
    let mut n = 0;
    for subnet in 0..4u16 {
        for host in 0..4u16 {
            let ip = format!("2001:db8:48:{:x}::1", (subnet << 8) | host);
            assert_eq!(status_from(&app, &ip, n).await, PASSED, "{ip}");
            n += 1;
        }
    }
    // A fresh /64 in a fresh /56 of the same /48: the /48 is spent.
    assert_eq!(status_from(&app, "2001:db8:48:ff00::1", n).await, REFUSED);
    // Another /48 is not.
    assert_eq!(status_from(&app, "2001:db8:49::1", n + 1).await, PASSED);
}

#[tokio::test]
async fn ipv4_neighbours_are_independent() {
    let app = app(1, 1000);
    // 40 addresses of one /24: each its own client (no prefix is pooled).
    for host in 1..=40 {
        let ip = format!("198.51.100.{host}");
        assert_eq!(status_from(&app, &ip, host).await, PASSED, "{ip}");
    }
    assert_eq!(status_from(&app, "198.51.100.1", 99).await, REFUSED);
    // An IPv4-mapped IPv6 peer is the IPv4 client.
    assert_eq!(status_from(&app, "::ffff:198.51.100.2", 98).await, REFUSED);
}

/// Everything the crate logs in this test binary (one global subscriber:
/// a thread-local one can miss events whose callsites other tests
/// registered first).
fn captured_logs() -> &'static Captured {
    common::logs::global(tracing::Level::WARN)
}

#[tokio::test]
async fn without_a_client_address_requests_share_one_budget_and_one_error_is_logged() {
    let logs = captured_logs();
    let app = app(1, 1000);
    let mut statuses = Vec::new();
    for n in 0..20 {
        // The span tells this test's lines from other tests' in the log.
        let span = tracing::error_span!("no_address_test");
        let answer = app.request(verify_from(None, n)).instrument(span).await;
        statuses.push(answer.status);
    }
    // Never fail open: every request without an address draws from one
    // budget, of 16 clients (what a /48 gets).
    let passed = statuses.iter().filter(|s| **s == PASSED).count();
    assert_eq!(passed, 16, "{statuses:?}");
    assert!(statuses[16..].iter().all(|s| *s == REFUSED), "{statuses:?}");
    // Requests with an address are not in that budget.
    assert_eq!(status_from(&app, "192.0.2.9", 7).await, PASSED);

    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no_address_test") && l.contains("no client address"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(
        lines[0].contains("ClientAddr"),
        "names the fix: {}",
        lines[0]
    );
}

#[cfg(feature = "redis")]
mod shared {
    use super::*;
    use common::redis_server::{random_prefix, raw_connection, shared_redis};
    use tower_otp::{limit::shared::SharedRateLimiter, store::RedisStore};

    /// An instance on `store`, its limits kept there.
    fn instance(store: &Arc<RedisStore>, per_client: u32) -> TestApp {
        let limiter: Arc<dyn SharedRateLimiter> = store.clone();
        let outbox = MemoryOutbox::new();
        let builder: OtpBuilder = common::builder_with(&outbox)
            .shared_store(store.clone())
            .ip_limits(0, per_client)
            .shared_limits(limiter);
        TestApp::with(builder, outbox)
    }

    #[tokio::test]
    async fn the_shared_limiter_counts_ipv6_prefixes_across_instances() {
        let Some(url) = shared_redis().await else {
            return;
        };
        let prefix = random_prefix();
        let store = Arc::new(
            RedisStore::builder(url.clone())
                .prefix(prefix.clone())
                .build()
                .unwrap(),
        );
        let (a, b) = (instance(&store, 1), instance(&store, 1));
        // One /64 is one client, on either instance.
        assert_eq!(status_from(&a, "2001:db8:9:100::1", 0).await, PASSED);
        assert_eq!(status_from(&b, "2001:db8:9:100::2", 1).await, REFUSED);
        // Four /64s spend the /56, whichever instance serves them.
        for (n, (app, ip)) in [
            (&b, "2001:db8:9:101::1"),
            (&a, "2001:db8:9:102::1"),
            (&b, "2001:db8:9:103::1"),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(status_from(app, ip, 2 + n).await, PASSED, "{ip}");
        }
        assert_eq!(status_from(&a, "2001:db8:9:104::1", 5).await, REFUSED);
        // 16 × the budget for the /48: 12 more /64s in three more /56s.
        let mut n = 10;
        for subnet in 2..5u16 {
            for host in 0..4u16 {
                let ip = format!("2001:db8:9:{:x}::1", (subnet << 8) | host);
                let app = if n % 2 == 0 { &a } else { &b };
                assert_eq!(status_from(app, &ip, n).await, PASSED, "{ip}");
                n += 1;
            }
        }
        assert_eq!(status_from(&b, "2001:db8:9:ff00::1", n).await, REFUSED);
        // IPv4 neighbours stay independent.
        assert_eq!(status_from(&a, "198.51.100.1", 90).await, PASSED);
        assert_eq!(status_from(&b, "198.51.100.2", 91).await, PASSED);

        // The store names prefixes by keyed digest: the three tables are
        // there, no address is.
        let mut conn = raw_connection(&url).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        for table in ["otp-verify:", "otp-verify/56:", "otp-verify/48:"] {
            assert!(keys.iter().any(|k| k.contains(table)), "{table}: {keys:?}");
        }
        for key in &keys {
            assert!(
                !key.contains("2001:db8") && !key.contains("198.51.100"),
                "an address in a store key: {key}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_client_address_the_shared_limiter_has_one_unknown_budget() {
        let Some(url) = shared_redis().await else {
            return;
        };
        let store = Arc::new(
            RedisStore::builder(url)
                .prefix(random_prefix())
                .build()
                .unwrap(),
        );
        // 16 × 1 for every request without an address, on either instance.
        let (a, b) = (instance(&store, 1), instance(&store, 1));
        for n in 0..16 {
            let app = if n % 2 == 0 { &a } else { &b };
            assert_eq!(app.request(verify_from(None, n)).await.status, PASSED);
        }
        assert_eq!(a.request(verify_from(None, 16)).await.status, REFUSED);
        assert_eq!(b.request(verify_from(None, 17)).await.status, REFUSED);
    }
}
