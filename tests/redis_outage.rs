//! Redis outages: a private `redis-server` is killed (or frozen) under
//! traffic. Requests must answer 503 `store_unavailable` within the
//! configured timeout (no hang, no panic, never a code accepted without a
//! check), and succeed again once Redis is back, without rebuilding the app.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, binaries_available, random_prefix};
use http::StatusCode;
use tower_otp::test_util::{Harness, code_for, email, send, verify};
use tower_otp::{Otp, store::RedisStore};

const TIMEOUT: Duration = Duration::from_millis(300);
/// What "promptly" means here: the timeout plus scheduling slack.
const BOUND: Duration = Duration::from_millis(1500);

async fn setup() -> Option<(RedisServer, Harness)> {
    binaries_available()?;
    let server = RedisServer::start().await;
    let store = RedisStore::builder(server.url())
        .prefix(random_prefix())
        .pool_size(4)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    Some((server, Harness::new(store, ())))
}

/// Every request answers 503 `store_unavailable` within [`BOUND`].
async fn assert_unavailable(otp: &Otp, email: &str, code: &str) {
    for _ in 0..3 {
        let start = Instant::now();
        let (status, _, body) = send(otp, email).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "store_unavailable");
        assert!(start.elapsed() < BOUND, "send took {:?}", start.elapsed());

        let start = Instant::now();
        let (status, _, body) = verify(otp, email, code).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "store_unavailable");
        assert!(start.elapsed() < BOUND, "verify took {:?}", start.elapsed());
        assert!(body.get("token").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_gives_503_then_recovers_on_restart() {
    let Some((mut server, harness)) = setup().await else {
        return;
    };
    let (otp, outbox) = harness.otp(|b| b.resend_cooldown(Duration::ZERO));

    // Traffic while Redis is up.
    let warm = email();
    for _ in 0..3 {
        assert_eq!(send(&otp, &warm).await.0, StatusCode::OK);
    }
    assert_eq!(
        verify(&otp, &warm, &code_for(&outbox, &warm)).await.0,
        StatusCode::OK
    );
    // A live code that the outage must not let through.
    let pending = email();
    assert_eq!(send(&otp, &pending).await.0, StatusCode::OK);
    let pending_code = code_for(&outbox, &pending);
    let sent_before = outbox.messages().len();

    server.kill();
    assert_unavailable(&otp, &pending, &pending_code).await;
    assert_eq!(
        outbox.messages().len(),
        sent_before,
        "nothing sent while down"
    );

    // Redis comes back empty on the same port; the same app recovers.
    server.restart().await;
    let (status, _, body) = verify(&otp, &pending, &pending_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired", "the lost code is not accepted");
    let (status, _, body) = send(&otp, &pending).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = verify(&otp, &pending, &code_for(&outbox, &pending)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_instead_of_hanging() {
    let Some((server, harness)) = setup().await else {
        return;
    };
    let (otp, outbox) = harness.otp(|b| b);
    let user = email();
    assert_eq!(send(&otp, &user).await.0, StatusCode::OK);
    let code = code_for(&outbox, &user);

    // SIGSTOP: sockets stay open, nothing answers. Only the timeout ends
    // the wait.
    server.freeze();
    let start = Instant::now();
    let (status, _, body) = verify(&otp, &user, &code).await;
    let took = start.elapsed();
    server.thaw();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "store_unavailable");
    assert!(took >= TIMEOUT - Duration::from_millis(50), "{took:?}");
    assert!(took < BOUND, "{took:?}");

    server.freeze();
    assert_unavailable(&otp, &user, &code).await;
    server.thaw();

    // Unfrozen, the code still works (timed-out attempts never reached
    // Redis or were counted; either way at most 4 of 5 are used).
    let (status, _, body) = verify(&otp, &user, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_pool_without_timeouts_is_still_bounded_by_the_store_timeout() {
    if binaries_available().is_none() {
        return;
    }
    let server = RedisServer::start().await;
    // The host's pool: deadpool defaults, no wait/create/recycle timeouts.
    let pool = deadpool_redis::Config::from_url(server.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let store = RedisStore::builder_from_pool(pool)
        .prefix(random_prefix())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let harness = Harness::new(store, ());
    let (otp, outbox) = harness.otp(|b| b);
    let user = email();
    assert_eq!(send(&otp, &user).await.0, StatusCode::OK);
    let code = code_for(&outbox, &user);

    server.freeze();
    let start = Instant::now();
    let (status, _, body) = verify(&otp, &user, &code).await;
    let took = start.elapsed();
    server.thaw();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < BOUND, "{took:?}");
    let (status, _, body) = verify(&otp, &user, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
