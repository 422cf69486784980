//! The SMS fraud breaker as a user, an attacker and an operator see it: a
//! simulated pumping run (many sends to one number range, no verifies) is
//! refused with 429 `rate_limited` + `Retry-After`, nothing more is sent to
//! the range, a `range_blocked` event names the range (never a number),
//! while a range whose codes are verified keeps working; the operator lists
//! and lifts the block. On the memory store, and on Redis with two app
//! instances sharing it (instance A's sends block instance B's).

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{app::TestApp, builder_with};
use tower_otp::{
    OtpBuilder,
    delivery::{MemoryOutbox, memory::Failure},
    events::{Event, EventKind},
    limit::{sms_breaker::SmsBreaker, sms_guard::SmsGuard},
};

/// The pumped range: `+447400` (UK mobile numbers 07400 900xxx).
const PUMPED_RANGE: &str = "+447400";
/// The legitimate range: `+14155` (4 digits after the country code `1`).
const GOOD_RANGE: &str = "+14155";

fn pumped(i: u32) -> String {
    format!("+447400900{:03}", 100 + i)
}

fn good(i: u32) -> String {
    format!("+1415555{:04}", 100 + i)
}

/// 5 sends with fewer than half verified trip it; blocks last 10 minutes.
fn breaker() -> SmsBreaker {
    SmsBreaker::new()
        .min_sends(5)
        .min_conversion(0.5)
        .block_for(Duration::from_secs(600))
}

type Events = Arc<Mutex<Vec<Event>>>;

/// `builder` with the breaker on and every event kept.
fn with_breaker(builder: OtpBuilder, events: &Events) -> OtpBuilder {
    let events = Arc::clone(events);
    builder
        .sms_guard(SmsGuard::none().breaker(breaker()))
        .on_event(move |event: Event| {
            let events = Arc::clone(&events);
            async move { events.lock().unwrap().push(event) }
        })
}

/// Waits (up to 2 s) for an event of `kind`; the events seen.
async fn wait_for(events: &Events, kind: EventKind) -> Vec<Event> {
    for _ in 0..200 {
        let seen = events.lock().unwrap().clone();
        if seen.iter().any(|e| e.kind() == kind) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {kind} event");
}

/// Sends to `mobile` on `from` and verifies the code on `to`.
async fn send_and_verify(from: &TestApp, to: &TestApp, mobile: &str) {
    from.send_mobile(mobile).await.assert_success();
    let code = from.code_for(mobile);
    to.verify_mobile(mobile, &code).await.assert_success();
}

/// The pumping run against `a` (sends) and `b` (the instance that then
/// refuses), with a converting range beside it; `events_b` are `b`'s
/// events.
async fn pumping_run(a: &TestApp, b: &TestApp, events_b: &Events) {
    // A legitimate range converts: its sends are answered, its codes used
    // (sent on one instance, verified on the other).
    for i in 0..5 {
        send_and_verify(a, b, &good(i)).await;
    }
    // The pumping run: five numbers of one range, no code ever typed in.
    for i in 0..5 {
        a.send_mobile(&pumped(i)).await.assert_success();
    }
    let sent_before = a.outbox.messages().len() + b.outbox.messages().len();

    // The next send to the range, on the other instance, is refused.
    let refused = b.send_mobile(&pumped(5)).await;
    refused.assert_error(429, "rate_limited");
    let retry_after = refused.body["retry_after"].as_u64().unwrap();
    assert!((590..=600).contains(&retry_after), "{}", refused.body);
    assert_eq!(refused.header("retry-after"), retry_after.to_string());
    // ...and so is every number of the range, on either instance.
    a.send_mobile(&pumped(6))
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(
        a.outbox.messages().len() + b.outbox.messages().len(),
        sent_before,
        "nothing was sent to the blocked range"
    );

    // The legitimate range, and another range of the same country, are
    // not affected.
    send_and_verify(b, a, &good(5)).await;
    b.send_mobile("+447812345678").await.assert_success();

    // The event names the range, never a number.
    let seen = wait_for(events_b, EventKind::RangeBlocked).await;
    let blocked: Vec<_> = seen
        .iter()
        .filter(|e| e.kind() == EventKind::RangeBlocked)
        .collect();
    assert_eq!(blocked[0].range(), Some(PUMPED_RANGE));
    assert_eq!(blocked[0].contact(), None);
    let json = blocked[0].to_json();
    assert!(json.contains(r#""type":"otp.range_blocked""#), "{json}");
    assert!(json.contains(r#""range":"+447400""#), "{json}");
    assert!(
        !json.contains(&pumped(5)[1..]),
        "no number in the event: {json}"
    );

    // The operator sees the block (on either instance) and lifts it.
    let list = b.otp.admin().blocked_ranges().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].range, PUMPED_RANGE);
    assert_eq!((list[0].sent, list[0].verified), (5, 0));
    assert!((590..=600).contains(&list[0].seconds_left), "{list:?}");
    assert!(!list.iter().any(|b| b.range == GOOD_RANGE));
    assert!(a.otp.admin().lift_range_block(PUMPED_RANGE).await.unwrap());
    assert!(b.otp.admin().blocked_ranges().await.unwrap().is_empty());
    b.send_mobile(&pumped(7)).await.assert_success();
}

#[tokio::test]
async fn pumping_is_blocked_on_the_memory_store() {
    let events: Events = Events::default();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(with_breaker(builder_with(&outbox), &events), outbox);
    pumping_run(&app, &app, &events).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn pumping_on_one_instance_blocks_the_range_on_another() {
    let Some(url) = common::redis_server::shared_redis().await else {
        return;
    };
    let prefix = common::redis_server::random_prefix();
    let store = || {
        tower_otp::store::RedisStore::builder(url.as_str())
            .prefix(prefix.as_str())
            .build()
            .unwrap()
    };
    let instance = |events: &Events| {
        let outbox = MemoryOutbox::new();
        TestApp::with(
            with_breaker(builder_with(&outbox).store(store()), events),
            outbox,
        )
    };
    let (events_a, events_b) = (Events::default(), Events::default());
    let (a, b) = (instance(&events_a), instance(&events_b));
    pumping_run(&a, &b, &events_b).await;
    // The index of blocks expires when its last block ends (600 s here):
    // ranges an attacker trips leave nothing behind for good.
    // The run ended with the operator lifting the block and one send to
    // the range: four more trip it again.
    for i in 10..14 {
        a.send_mobile(&pumped(i)).await.assert_success();
    }
    a.send_mobile(&pumped(15))
        .await
        .assert_error(429, "rate_limited");
    let mut conn = common::redis_server::raw_connection(&url).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}{{sms-ranges}}:blocked"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((590_000..=600_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn below_the_minimum_volume_nothing_is_blocked() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).sms_guard(
            SmsGuard::none().breaker(SmsBreaker::new().min_sends(8).min_conversion(1.0)),
        ),
        outbox,
    );
    for i in 0..8 {
        app.send_mobile(&pumped(i)).await.assert_success();
    }
    assert!(app.otp.admin().blocked_ranges().await.unwrap().is_empty());
    app.send_mobile(&pumped(8))
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn failed_deliveries_do_not_trip_the_breaker() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).sms_guard(SmsGuard::none().breaker(breaker())),
        outbox,
    );
    // A provider outage: every send to the range fails (502), nothing is
    // delivered, so nothing counts against the range.
    app.outbox.fail_always(Failure::Permanent);
    for i in 0..8 {
        app.send_mobile(&pumped(i))
            .await
            .assert_error(502, "delivery_failed");
    }
    app.outbox.succeed();
    for i in 8..13 {
        app.send_mobile(&pumped(i)).await.assert_success();
    }
    assert!(app.otp.admin().blocked_ranges().await.unwrap().is_empty());
    // Five delivered and none verified: now it trips.
    app.send_mobile(&pumped(13))
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn the_breaker_is_off_by_default() {
    let app = TestApp::new();
    for i in 0..30 {
        app.send_mobile(&pumped(i)).await.assert_success();
    }
}

#[tokio::test]
async fn the_range_blocked_audit_line_names_the_range_not_the_number() {
    let logs = common::logs::global(tracing::Level::INFO);
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).sms_guard(
            SmsGuard::none().breaker(SmsBreaker::new().min_sends(1).min_conversion(1.0)),
        ),
        outbox,
    );
    // A range of its own (`+447911`), so other tests' lines do not match.
    app.send_mobile("+447911123456").await.assert_success();
    app.send_mobile("+447911123457")
        .await
        .assert_error(429, "rate_limited");
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("range_blocked") && l.contains("+447911"))
        .unwrap_or_else(|| panic!("no range_blocked line:\n{text}"));
    assert!(
        line.contains("contact=\"-\"") || line.contains("contact=-"),
        "{line}"
    );
    assert!(!line.contains("3457"), "no digits of the number: {line}");
    assert!(
        text.lines()
            .any(|l| l.contains("SMS fraud breaker tripped") && l.contains("+447911")),
        "the trip is logged once with the range:\n{text}"
    );
    assert!(!text.contains("447911123457"), "no full number in any log");
}

#[test]
fn the_environment_turns_the_breaker_on() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let otp = OtpBuilder::from_env_with(env(&[
        ("OTP_SECRET", common::SECRET),
        ("OTP_SMS_BREAKER", "1"),
        ("OTP_SMS_BREAKER_DIGITS", "3"),
        ("OTP_SMS_BREAKER_WINDOW_SECONDS", "600"),
        ("OTP_SMS_BREAKER_MIN_SENDS", "50"),
        ("OTP_SMS_BREAKER_MIN_CONVERSION", "0.35"),
        ("OTP_SMS_BREAKER_BLOCK_SECONDS", "7200"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(
        otp.config().sms_guard.breaker_settings(),
        Some(
            &SmsBreaker::new()
                .digits(3)
                .window(Duration::from_secs(600))
                .min_sends(50)
                .min_conversion(0.35)
                .block_for(Duration::from_secs(7200))
        )
    );
    // Off unless switched on; thresholds alone do nothing.
    let otp = OtpBuilder::from_env_with(env(&[
        ("OTP_SECRET", common::SECRET),
        ("OTP_SMS_BREAKER", "false"),
        ("OTP_SMS_BREAKER_MIN_SENDS", "5"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(otp.config().sms_guard.breaker_settings(), None);

    // A value that does not parse, or is out of range, stops start-up
    // naming the variable.
    for (name, value) in [
        ("OTP_SMS_BREAKER", "maybe"),
        ("OTP_SMS_BREAKER_DIGITS", "four"),
        ("OTP_SMS_BREAKER_DIGITS", "9"),
        ("OTP_SMS_BREAKER_WINDOW_SECONDS", "0"),
        ("OTP_SMS_BREAKER_MIN_SENDS", "0"),
        ("OTP_SMS_BREAKER_MIN_CONVERSION", "1.5"),
        ("OTP_SMS_BREAKER_MIN_CONVERSION", "high"),
        ("OTP_SMS_BREAKER_BLOCK_SECONDS", "-1"),
    ] {
        let vars: Vec<(String, String)> = vec![
            ("OTP_SECRET".into(), common::SECRET.into()),
            ("OTP_SMS_BREAKER".into(), "true".into()),
            (name.into(), value.into()),
        ];
        let err = OtpBuilder::from_env_with(move |k| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap_err();
        assert!(err.to_string().contains(name), "{name}={value}: {err}");
    }
}

/// Enumeration-safe mode: a refused number's decoy meets the breaker like
/// an accepted number (a blocked range answers 429 for both, else the
/// answer would tell them apart), but its send is not counted (nothing
/// goes out, so decoys never trip a range).
#[tokio::test]
async fn decoys_meet_the_breaker_but_do_not_count() {
    use tower_otp::policy::{PolicyDecision, from_fn};
    let outbox = MemoryOutbox::new();
    // Even-numbered pumped numbers are "registered" and refused.
    let refused = |i: u32| pumped(2 * i);
    let accepted = |i: u32| pumped(2 * i + 1);
    let app = TestApp::with(
        builder_with(&outbox)
            .enumeration_safe()
            .sms_guard(SmsGuard::none().breaker(breaker()))
            .contact_policy(from_fn(|contact| async move {
                let last: u32 = contact.as_str()[contact.as_str().len() - 3..]
                    .parse()
                    .unwrap();
                if last.is_multiple_of(2) {
                    PolicyDecision::reject(http::StatusCode::CONFLICT, "registered")
                } else {
                    PolicyDecision::Allow
                }
            })),
        outbox.clone(),
    );
    // Ten decoys, twice the breaker's minimum volume: nothing trips.
    for i in 0..10 {
        app.send_mobile(&refused(i)).await.assert_success();
    }
    assert!(app.otp.admin().blocked_ranges().await.unwrap().is_empty());
    // Five real sends, never verified: the sixth send trips the range.
    for i in 0..5 {
        app.send_mobile(&accepted(i)).await.assert_success();
    }
    let real = app.send_mobile(&accepted(5)).await;
    real.assert_error(429, "rate_limited");
    // A decoy in the blocked range answers the same.
    let decoy = app.send_mobile(&refused(10)).await;
    decoy.assert_error(429, "rate_limited");
    assert_eq!(decoy.header("retry-after"), real.header("retry-after"));
    let blocks = app.otp.admin().blocked_ranges().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].range, PUMPED_RANGE);
}
