//! One scenario that makes every audit event of `tower_otp::audit` happen,
//! through the layer, and what it must have recorded: shared by the metrics
//! test (counters) and the audit log test (target, level, fields, route).

use std::collections::BTreeMap;

use tower_otp::{
    delivery::{MemoryOutbox, memory::Failure},
    limit::{sms_breaker::SmsBreaker, sms_guard::SmsGuard},
};

use super::{
    MOBILE,
    app::{TestApp, wrong_code},
    builder_with,
};

/// Every audit event name (src/audit.rs's table).
pub const ALL_EVENTS: [&str; 12] = [
    "sent",
    "delivered",
    "verified",
    "otp_invalid",
    "otp_expired",
    "attempts_exceeded",
    "rate_limited",
    "rejected",
    "delivery_failed",
    "store_unavailable",
    "overloaded",
    "range_blocked",
];

/// The level each event is recorded at.
pub fn level(event: &str) -> &'static str {
    match event {
        "store_unavailable" => "ERROR",
        "attempts_exceeded" | "delivery_failed" | "overloaded" | "range_blocked" => "WARN",
        _ => "INFO",
    }
}

/// (event, channel, route) → how many times.
pub type Expected = BTreeMap<(&'static str, &'static str, &'static str), u64>;

/// Runs the scenario; returns what it must have recorded.
pub async fn every_event() -> Expected {
    let mut expected = Expected::new();
    let mut add =
        |event, channel, route, n| *expected.entry((event, channel, route)).or_default() += n;

    // A normal app: sent, delivered, otp_invalid, verified, rate_limited,
    // otp_expired; on the mobile side four wrong codes, then
    // attempts_exceeded.
    let app = TestApp::new();
    app.send_email("m@b.co").await.assert_success();
    add("sent", "email", "send_email", 1);
    add("delivered", "email", "send_email", 1);
    let code = app.code_for("m@b.co");
    app.verify_email("m@b.co", &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    add("otp_invalid", "email", "verify_email", 1);
    app.verify_email("m@b.co", &code).await.assert_success();
    add("verified", "email", "verify_email", 1);
    app.send_email("m@b.co")
        .await
        .assert_error(429, "rate_limited");
    add("rate_limited", "email", "send_email", 1);
    app.verify_email("nobody@b.co", "123456")
        .await
        .assert_error(400, "otp_expired");
    add("otp_expired", "email", "verify_email", 1);
    app.send_mobile(MOBILE).await.assert_success();
    add("sent", "mobile", "send_mobile", 1);
    add("delivered", "mobile", "send_mobile", 1);
    let code = app.code_for(MOBILE);
    for _ in 0..4 {
        app.verify_mobile(MOBILE, &wrong_code(&code))
            .await
            .assert_error(400, "otp_invalid");
    }
    add("otp_invalid", "mobile", "verify_mobile", 4);
    app.verify_mobile(MOBILE, &wrong_code(&code))
        .await
        .assert_error(429, "attempts_exceeded");
    add("attempts_exceeded", "mobile", "verify_mobile", 1);

    // The SMS fraud guard refuses a country: rejected.
    let outbox = MemoryOutbox::new();
    let guarded = TestApp::with(
        builder_with(&outbox).sms_guard(SmsGuard::allow([1])),
        outbox,
    );
    let answer = guarded.send_mobile("+919812345678").await;
    assert_eq!(answer.status.as_u16() / 100, 4, "{}", answer.body);
    add("rejected", "mobile", "send_mobile", 1);

    // The SMS fraud breaker blocks a range after one unverified send:
    // range_blocked.
    let outbox = MemoryOutbox::new();
    let breaker = SmsBreaker::new().min_sends(1).min_conversion(1.0);
    let pumped = TestApp::with(
        builder_with(&outbox).sms_guard(SmsGuard::none().breaker(breaker)),
        outbox,
    );
    pumped.send_mobile("+447400900123").await.assert_success();
    add("sent", "mobile", "send_mobile", 1);
    add("delivered", "mobile", "send_mobile", 1);
    pumped
        .send_mobile("+447400900124")
        .await
        .assert_error(429, "rate_limited");
    add("range_blocked", "mobile", "send_mobile", 1);

    // The provider fails: the code was issued (sent), then delivery_failed.
    let outbox = MemoryOutbox::new();
    outbox.fail_always(Failure::Permanent);
    let failing = TestApp::with(builder_with(&outbox), outbox);
    failing
        .send_email("f@b.co")
        .await
        .assert_error(502, "delivery_failed");
    add("sent", "email", "send_email", 1);
    add("delivery_failed", "email", "send_email", 1);

    // The hashing pool is full: overloaded.
    let outbox = MemoryOutbox::new();
    let busy = TestApp::with(builder_with(&outbox).hash_pool_size(1, 0), outbox);
    let permit = busy.otp.hash_pool().reserve().unwrap();
    busy.send_email("o@b.co")
        .await
        .assert_error(503, "overloaded");
    drop(permit);
    add("overloaded", "email", "send_email", 1);

    // The store cannot be reached (a real RedisStore, nothing listening):
    // store_unavailable.
    #[cfg(feature = "redis")]
    {
        let store = tower_otp::store::RedisStore::builder("redis://127.0.0.1:1")
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .unwrap();
        let outbox = MemoryOutbox::new();
        let down = TestApp::with(builder_with(&outbox).store(store), outbox);
        down.send_email("s@b.co")
            .await
            .assert_error(503, "store_unavailable");
        add("store_unavailable", "email", "send_email", 1);
    }

    expected
}
