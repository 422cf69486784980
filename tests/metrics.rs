//! With the `metrics` feature, every audit event increments
//! `tower_otp_events_total{event, channel}`.
#![cfg(feature = "metrics")]

mod common;

use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder},
};

fn counter(
    entries: &[(
        CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    event: &str,
    channel: &str,
) -> u64 {
    entries
        .iter()
        .filter(|(key, ..)| {
            key.kind() == MetricKind::Counter
                && key.key().name() == "tower_otp_events_total"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "event" && l.value() == event)
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "channel" && l.value() == channel)
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn audit_events_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let app = common::app::TestApp::new();
    app.send_email("m@b.co").await.assert_success();
    let code = app.code_for("m@b.co");
    app.verify_email("m@b.co", &common::app::wrong_code(&code))
        .await;
    app.verify_email("m@b.co", &code).await.assert_success();
    app.send_email("m@b.co").await; // cooldown
    app.send_mobile("+14155550123").await.assert_success();

    let entries = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&entries, "sent", "email"), 1);
    assert_eq!(counter(&entries, "delivered", "email"), 1);
    assert_eq!(counter(&entries, "otp_invalid", "email"), 1);
    assert_eq!(counter(&entries, "verified", "email"), 1);
    assert_eq!(counter(&entries, "rate_limited", "email"), 1);
    assert_eq!(counter(&entries, "sent", "mobile"), 1);
    assert_eq!(counter(&entries, "verified", "mobile"), 0);
}
