//! Log discipline: a full flow under a capturing subscriber (every target,
//! and the `log` records of dependencies bridged in) never logs a code or an
//! unmasked contact. (The audit events' target, level, channel and
//! route: `audit_events.rs`.)

mod common;

use common::{
    app::{post_http, serve, wrong_code},
    builder_with,
};
use http::StatusCode;
use serde_json::json;
use tower_otp::delivery::MemoryOutbox;

/// The capture below sees `log` records too, from any thread: without that
/// the check of dependencies' logs could pass by seeing nothing.
#[test]
fn log_records_of_dependencies_reach_the_capture() {
    let captured = common::logs::global_with_log_records(tracing::Level::TRACE);
    common::logs::assert_log_records_are_captured(captured);
}

#[tokio::test]
async fn logs_of_a_full_flow_never_contain_the_code_or_the_raw_contact() {
    // Global, in a binary of its own (every callsite, every thread), with
    // the `log` records of dependencies bridged in at TRACE.
    let captured = common::logs::global_with_log_records(tracing::Level::TRACE);

    let outbox = MemoryOutbox::new();
    let base = serve(builder_with(&outbox)).await;
    post_http(
        &base,
        "/send-otp/",
        json!({"email": "secret.person@example.com"}),
        &[],
    )
    .await;
    let code = outbox.last_code_for("secret.person@example.com").unwrap();
    post_http(
        &base,
        "/verify-otp/",
        json!({"email": "secret.person@example.com", "otp": wrong_code(&code)}),
        &[],
    )
    .await;
    let (status, _, _) = post_http(
        &base,
        "/verify-otp/",
        json!({"email": "secret.person@example.com", "otp": code}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    post_http(
        &base,
        "/send-mobile-otp/",
        json!({"mobile": "+14155550123"}),
        &[],
    )
    .await;
    let sms_code = outbox.last_code_for("+14155550123").unwrap();

    let logs = captured.text();
    for event in [
        "event=\"sent\"",
        "event=\"delivered\"",
        "event=\"otp_invalid\"",
        "event=\"verified\"",
    ] {
        assert!(logs.contains(event), "no {event} in:\n{logs}");
    }
    assert!(
        logs.contains("s***@example.com"),
        "masked contact missing:\n{logs}"
    );
    assert!(
        logs.contains("+1******0123"),
        "masked mobile missing:\n{logs}"
    );
    assert!(
        logs.contains("client_ip=127.0.0.1"),
        "client IP missing:\n{logs}"
    );
    for secret in [
        code.as_str(),
        sms_code.as_str(),
        "secret.person",
        "4155550123",
        common::SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}
