//! With the `metrics` feature, every audit event increments
//! `tower_otp_events_total{event, channel}`, and a send and a verify record
//! the latency histograms (hashing, its queue, store operations, delivery
//! per provider) and the pool gauges, with bounded labels only.
//!
//! One recorder per process: the two phases run in one test, in order.
#![cfg(feature = "metrics")]

mod common;

use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};
use tower_otp::{
    delivery::{MemoryOutbox, memory::Failure},
    limit::{sms_breaker::SmsBreaker, sms_guard::SmsGuard},
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

type Entries = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

#[tokio::test]
async fn metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    audit_events_are_counted(&snapshotter).await;
    latency_histograms_and_gauges(&snapshotter).await;
}

async fn audit_events_are_counted(snapshotter: &Snapshotter) {
    let expected = common::audit::every_event().await;
    let entries = snapshotter.snapshot().into_vec();

    // Every event of the audit table happened in the scenario...
    let seen: std::collections::BTreeSet<_> = expected.keys().map(|(e, ..)| *e).collect();
    let all: std::collections::BTreeSet<_> = common::audit::ALL_EVENTS.into_iter().collect();
    #[cfg(feature = "redis")]
    assert_eq!(seen, all, "the scenario covers every audit event");
    // ...and each was counted exactly as often as it happened, per channel.
    let mut per_channel = std::collections::BTreeMap::<(&str, &str), u64>::new();
    for ((event, channel, _route), n) in &expected {
        *per_channel.entry((event, channel)).or_default() += n;
    }
    for event in all {
        for channel in ["email", "mobile"] {
            let want = per_channel.get(&(event, channel)).copied().unwrap_or(0);
            assert_eq!(
                counter(&entries, event, channel),
                want,
                "tower_otp_events_total{{event={event}, channel={channel}}}"
            );
        }
    }
}

/// The values of `name`'s histogram entries with exactly these labels.
fn histogram(entries: &Entries, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    entries
        .iter()
        .filter(|(key, ..)| {
            key.kind() == MetricKind::Histogram
                && key.key().name() == name
                && key.key().labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(values) => values.iter().map(|v| v.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn gauge(entries: &Entries, name: &str) -> Option<f64> {
    entries.iter().find_map(|(key, _, _, value)| match value {
        DebugValue::Gauge(v) if key.key().name() == name => Some(v.into_inner()),
        _ => None,
    })
}

fn unit(entries: &Entries, name: &str) -> Option<metrics::Unit> {
    entries
        .iter()
        .find(|(key, ..)| key.key().name() == name)
        .and_then(|(_, unit, ..)| *unit)
}

async fn latency_histograms_and_gauges(snapshotter: &Snapshotter) {
    use common::app::TestApp;
    const EMAIL: &str = "metrics-user@example.com";
    const MOBILE: &str = "+447400900555";

    // A send and a verify on each channel, the fraud breaker on.
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).sms_guard(SmsGuard::none().breaker(SmsBreaker::new())),
        outbox,
    );
    let _ = snapshotter.snapshot(); // histograms start afresh
    app.send_email(EMAIL).await.assert_success();
    app.verify_email(EMAIL, &app.code_for(EMAIL))
        .await
        .assert_success();
    app.send_mobile(MOBILE).await.assert_success();
    app.verify_mobile(MOBILE, &app.code_for(MOBILE))
        .await
        .assert_success();
    // A delivery that fails.
    app.outbox.fail_always(Failure::Permanent);
    app.send_email("fails@example.com")
        .await
        .assert_error(502, "delivery_failed");

    let entries: Entries = snapshotter.snapshot().into_vec();
    let positive = |values: Vec<f64>, what: &str| {
        assert!(!values.is_empty(), "{what}: nothing recorded");
        assert!(
            values.iter().all(|v| *v >= 0.0 && *v < 30.0),
            "{what}: {values:?}"
        );
        values.len()
    };
    // Five hashes (two codes made, two checked, one made before the failed
    // delivery): each timed, each with its queue wait.
    assert_eq!(
        positive(histogram(&entries, "tower_otp_hash_seconds", &[]), "hash"),
        5
    );
    assert_eq!(
        positive(
            histogram(&entries, "tower_otp_hash_queue_wait_seconds", &[]),
            "queue wait"
        ),
        5
    );
    for op in [
        "reserve_send",
        "put_code",
        "begin_attempt",
        "consume_code",
        "remove_code",
        "release_cooldown",
        "record_range_send",
        "record_range_verify",
    ] {
        positive(
            histogram(
                &entries,
                "tower_otp_store_op_seconds",
                &[("op", op), ("outcome", "ok")],
            ),
            op,
        );
    }
    assert_eq!(
        histogram(
            &entries,
            "tower_otp_store_op_seconds",
            &[("op", "record_range_send"), ("outcome", "ok")]
        )
        .len(),
        1,
        "the breaker counts mobile sends only"
    );
    for (channel, outcome, n) in [("email", "ok", 1), ("sms", "ok", 1), ("email", "error", 1)] {
        let labels = [
            ("provider", "memory"),
            ("channel", channel),
            ("outcome", outcome),
        ];
        assert_eq!(
            positive(
                histogram(&entries, "tower_otp_delivery_seconds", &labels),
                channel
            ),
            n,
            "{labels:?}"
        );
    }
    // Nothing is running or waiting once the answers are in.
    assert_eq!(gauge(&entries, "tower_otp_hash_pool_busy"), Some(0.0));
    assert_eq!(gauge(&entries, "tower_otp_hash_pool_queued"), Some(0.0));
    // Every histogram is described in seconds.
    for name in [
        "tower_otp_hash_seconds",
        "tower_otp_hash_queue_wait_seconds",
        "tower_otp_store_op_seconds",
        "tower_otp_delivery_seconds",
    ] {
        assert_eq!(unit(&entries, name), Some(metrics::Unit::Seconds), "{name}");
    }

    // Bounded labels: every value is one of a fixed set, never a contact.
    let allowed: std::collections::BTreeSet<&str> = tower_otp::telemetry::STORE_OPS
        .into_iter()
        .chain(common::audit::ALL_EVENTS)
        .chain(["ok", "error", "email", "mobile", "sms", "whatsapp"])
        .chain([
            "memory",
            "console",
            "smtp",
            "sendgrid",
            "twilio_verify",
            "twilio_messaging",
        ])
        .chain(["hook", "webhook"])
        .collect();
    for (key, ..) in &entries {
        for label in key.key().labels() {
            assert!(
                allowed.contains(label.value()),
                "{}{{{}={}}}: not a bounded label value",
                key.key().name(),
                label.key(),
                label.value()
            );
        }
    }
}
