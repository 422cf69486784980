//! Log discipline over the Redis store: under a global capturing subscriber
//! at TRACE, with the `log` records of dependencies (the `redis` crate
//! logs through `log`) bridged in, a full email and SMS flow on the shared
//! Redis never logs a code or an unmasked address or number.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::app::wrong_code;
use serde_json::json;
use tower_otp::delivery::MemoryOutbox;

fn logs() -> &'static common::logs::Captured {
    common::logs::global_with_log_records(tracing::Level::TRACE)
}

/// The capture sees `log` records too, from any thread: without that the
/// check of dependencies' logs could pass by seeing nothing.
#[test]
fn log_records_of_dependencies_reach_the_capture() {
    common::logs::assert_log_records_are_captured(logs());
}

#[tokio::test]
async fn a_flow_on_redis_logs_no_code_address_or_number() {
    let logs = logs();
    let Some(store) = common::redis_server::shared_store(Duration::from_secs(2)).await else {
        return;
    };
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox).store(store).build().unwrap();
    let email = "hidden.recipient@example.com";

    let (status, body) = common::post(&otp, "/send-otp/", json!({ "email": email })).await;
    assert_eq!(status, 200, "{body}");
    let code = outbox.last_code_for(email).unwrap();
    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({ "email": email, "otp": wrong_code(&code) }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        common::post(&otp, "/verify-otp/", json!({ "email": email, "otp": code })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::post(
        &otp,
        "/send-mobile-otp/",
        json!({ "mobile": common::MOBILE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sms_code = outbox.last_code_for(common::MOBILE).unwrap();
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({ "mobile": common::MOBILE, "otp": sms_code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let logs = logs.text();
    assert!(
        logs.contains("h***@example.com"),
        "the flow was logged:\n{logs}"
    );
    assert!(
        logs.contains("+1******0123"),
        "the flow was logged:\n{logs}"
    );
    for secret in [
        code.as_str(),
        sms_code.as_str(),
        email,
        "hidden.recipient",
        "4155550123",
        common::SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}
