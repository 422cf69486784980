//! Per-IP limits shared through Redis: two layers (two app instances) on
//! one Redis draw from one budget per client address; when that Redis is
//! gone, each instance falls back to its own in-process limiter.
#![cfg(feature = "redis")]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::body::Body;
use common::redis_server::{RedisServer, binaries_available, random_prefix, shared_redis};
use http::Request;
use serde_json::json;
use tower_otp::{
    ClientAddr, delivery::MemoryOutbox, limit::shared::SharedRateLimiter, store::RedisStore,
};

fn send_from(peer: &str, email: &str) -> Request<Body> {
    let mut request = Request::post("/send-otp/")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "email": email }).to_string()))
        .unwrap();
    let addr: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ClientAddr(addr));
    request
}

fn instance(store: &Arc<RedisStore>, outbox: &MemoryOutbox) -> common::app::TestApp {
    let limiter: Arc<dyn SharedRateLimiter> = store.clone();
    common::app::TestApp::with(
        common::builder_with(outbox)
            .shared_store(store.clone())
            .ip_limits(3, 30)
            .shared_ip_limits(limiter),
        outbox.clone(),
    )
}

#[tokio::test]
async fn two_instances_share_one_ip_budget() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let store = Arc::new(
        RedisStore::builder(url)
            .prefix(random_prefix())
            .build()
            .unwrap(),
    );
    let outbox = MemoryOutbox::new();
    let (a, b) = (instance(&store, &outbox), instance(&store, &outbox));

    let mut statuses = Vec::new();
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let answer = app
            .request(send_from("198.51.100.20:4000", &format!("s{i}@b.co")))
            .await;
        statuses.push(answer.status.as_u16());
        if i < 3 {
            assert_eq!(answer.header("ratelimit-policy"), "\"otp-send\";q=3;w=60");
            let expected = format!("\"otp-send\";r={};t={}", 2 - i, (i + 1) * 20);
            assert_eq!(answer.header("ratelimit"), expected);
        } else {
            answer.assert_error(429, "rate_limited");
            let retry: u64 = answer.header("retry-after").parse().unwrap();
            assert!((1..=20).contains(&retry), "{retry}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Another address has its own budget on both instances.
    let answer = b
        .request(send_from("198.51.100.21:4000", "other@b.co"))
        .await;
    answer.assert_success();
}

#[tokio::test]
async fn without_its_redis_the_limit_falls_back_to_the_instance() {
    if binaries_available().is_none() {
        return;
    }
    let mut server = RedisServer::start().await;
    let store = Arc::new(
        RedisStore::builder(server.url())
            .prefix(random_prefix())
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let limiter: Arc<dyn SharedRateLimiter> = store.clone();
    let outbox = MemoryOutbox::new();
    // Codes in memory; only the limiter lives in the Redis that goes away.
    let app = common::app::TestApp::with(
        common::builder_with(&outbox)
            .ip_limits(2, 30)
            .shared_ip_limits(limiter),
        outbox.clone(),
    );
    server.kill();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let answer = app
            .request(send_from("203.0.113.5:1000", &format!("f{i}@b.co")))
            .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 429],
        "the in-process limiter still holds"
    );
}
