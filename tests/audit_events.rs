//! The audit events carry what they must: under a JSON subscriber, the
//! scenario of `common::audit` (every one of the 12 events) records each
//! event under the target `tower_otp::audit`, at its level, with its
//! `event` and `channel` fields, a masked `contact`, inside the
//! `otp_request` span of the route that caused it; exactly as many times
//! as it happened.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

#[tokio::test]
async fn every_audit_event_has_its_target_level_channel_route_and_masked_contact() {
    let captured = common::logs::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global, in a binary of its own: every callsite, every thread.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let expected = common::audit::every_event().await;

    let logs = captured.text();
    let mut recorded = BTreeMap::<(String, String, String), u64>::new();
    for line in logs.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["target"] != tower_otp::audit::AUDIT_TARGET {
            assert!(
                event["fields"].get("event").is_none() || event["fields"]["contact"].is_null(),
                "an audit-like event outside the audit target: {line}"
            );
            continue;
        }
        let fields = &event["fields"];
        let name = fields["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event: {line}"));
        assert_eq!(
            event["level"],
            common::audit::level(name),
            "level of {name}: {line}"
        );
        let contact = fields["contact"]
            .as_str()
            .unwrap_or_else(|| panic!("no contact: {line}"));
        assert!(
            contact == "-" || contact.contains("***"),
            "contact not masked: {line}"
        );
        assert_eq!(event["span"]["name"], "otp_request", "{line}");
        let key = (
            name.to_owned(),
            fields["channel"].as_str().unwrap_or_default().to_owned(),
            event["span"]["route"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        *recorded.entry(key).or_default() += 1;
    }
    let expected: BTreeMap<(String, String, String), u64> = expected
        .into_iter()
        .map(|((e, c, r), n)| ((e.to_owned(), c.to_owned(), r.to_owned()), n))
        .collect();
    assert_eq!(
        recorded, expected,
        "(event, channel, route) -> count\n{logs}"
    );
    #[cfg(feature = "redis")]
    assert_eq!(
        recorded
            .keys()
            .map(|(e, ..)| e.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        common::audit::ALL_EVENTS.into_iter().collect(),
        "every audit event was recorded"
    );
}
