//! Rate-limit rules beyond the built-in ones: per contact, per IP with a
//! channel, per country; and the SMS country budget held across two
//! instances sharing one Redis.

mod common;

use common::app;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use app::TestApp;
use axum::body::Body;
use http::Request;
use serde_json::json;
use tower_otp::{
    Channel, ClientAddr, SmsGuard,
    delivery::MemoryOutbox,
    limit::{Rule, RuleScope, Stage},
};

#[tokio::test]
async fn a_per_contact_rule_counts_verifies_across_codes_before_any_hash() {
    let outbox = MemoryOutbox::new();
    let rule = Rule::per_contact("verify-per-contact", 2, Duration::from_secs(3600))
        .unwrap()
        .scope(RuleScope::Verifies);
    assert_eq!(rule.stage(), Stage::AfterParse);
    let app = TestApp::with(common::builder_with(&outbox).limit(rule), outbox);
    app.send_email("ada@example.com").await.assert_success();
    let code = app.code_for("ada@example.com");
    for _ in 0..2 {
        app.verify_email("ada@example.com", &app::wrong_code(&code))
            .await
            .assert_error(400, "otp_invalid");
    }
    // The third verify for this contact is refused, even with the right code.
    let answer = app.verify_email("ada@example.com", &code).await;
    answer.assert_error(429, "rate_limited");
    assert!(answer.body["retry_after"].as_u64().is_some_and(|s| s > 60));
    // Another address has its own budget.
    app.send_email("bob@example.com").await.assert_success();
    let bob = app.code_for("bob@example.com");
    app.verify_email("bob@example.com", &bob)
        .await
        .assert_success();
}

#[tokio::test]
async fn a_per_ip_rule_can_be_narrowed_to_a_channel() {
    let outbox = MemoryOutbox::new();
    let rule = Rule::per_ip("sms-per-ip", 1, Duration::from_secs(86_400))
        .unwrap()
        .scope(RuleScope::Sends)
        .channel(Channel::Mobile);
    assert_eq!(rule.stage(), Stage::BeforeBody);
    let app = TestApp::with(common::builder_with(&outbox).limit(rule), outbox);
    let from = |path: &str, body: serde_json::Value| {
        let mut request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let peer: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        request.extensions_mut().insert(ClientAddr(peer));
        request
    };
    let first = app
        .request(from("/send-mobile-otp/", json!({"mobile": "+14155550101"})))
        .await;
    first.assert_success();
    assert!(
        first
            .header("ratelimit-policy")
            .contains("\"sms-per-ip\";q=1;w=86400")
    );
    let second = app
        .request(from("/send-mobile-otp/", json!({"mobile": "+14155550102"})))
        .await;
    second.assert_error(429, "rate_limited");
    // The rule is refused before the body is read: even a broken body gets 429.
    let broken = app
        .request(from("/send-mobile-otp/", json!("not an object")))
        .await;
    broken.assert_error(429, "rate_limited");
    // Email sends from the same address are not counted by it.
    app.request(from("/send-otp/", json!({"email": "ada@example.com"})))
        .await
        .assert_success();
}

#[tokio::test]
async fn rules_refuse_nonsense() {
    assert!(Rule::per_ip("x", 0, Duration::from_secs(60)).is_none());
    assert!(Rule::per_contact("x", 5, Duration::ZERO).is_none());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_sms_country_budget_holds_across_instances_sharing_redis() {
    use common::redis_server::{random_prefix, shared_redis};
    use tower_otp::{limit::shared::SharedRateLimiter, store::RedisStore};

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
    let instance = || {
        let limiter: Arc<dyn SharedRateLimiter> = store.clone();
        TestApp::with(
            common::builder_with(&outbox)
                .shared_store(store.clone())
                .sms_guard(SmsGuard::none().per_country_per_hour(2))
                .shared_limits(limiter),
            outbox.clone(),
        )
    };
    let (a, b) = (instance(), instance());
    a.send_mobile("+919812345601").await.assert_success();
    b.send_mobile("+919812345602").await.assert_success();
    // Per process, each instance would still have one left; shared, the
    // country's budget of 2 is spent.
    let refused = a.send_mobile("+919812345603").await;
    refused.assert_error(429, "rate_limited");
    let refused = b.send_mobile("+919812345604").await;
    refused.assert_error(429, "rate_limited");
    // The refused sends released their cooldown and sent nothing.
    assert_eq!(outbox.messages().len(), 2);
    // Another country is untouched.
    a.send_mobile("+14155550123").await.assert_success();
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn shared_limit_keys_never_hold_a_raw_client_address() {
    use common::redis_server::{random_prefix, shared_redis};
    use tower_otp::{limit::shared::SharedRateLimiter, store::RedisStore};

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
    let outbox = MemoryOutbox::new();
    let limiter: Arc<dyn SharedRateLimiter> = store.clone();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .shared_store(store.clone())
            .shared_limits(limiter),
        outbox,
    );
    let mut request = Request::post("/send-otp/")
        .header("content-type", "application/json")
        .body(Body::from(json!({"email": "ada@example.com"}).to_string()))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr("198.51.100.77:4000".parse().unwrap()));
    let answer = app.request(request).await;
    answer.assert_success();
    assert!(
        answer.header("ratelimit").contains("r=9"),
        "{:?}",
        answer.headers
    );

    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.contains("otp-send")), "{keys:?}");
    for key in &keys {
        assert!(!key.contains("198.51.100.77"), "raw address in {key}");
        assert!(!key.contains("ada"), "raw contact in {key}");
    }
}
