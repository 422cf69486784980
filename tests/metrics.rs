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
