//! In-process event hooks: what a host's subscriber sees for each outcome
//! of the routes (masked contacts, never a code), and that a subscriber
//! that cannot keep up loses events (counted) instead of slowing answers.

mod common;

use std::time::Duration;

use common::app::{TestApp, wrong_code};
use serde_json::json;
use tokio::sync::mpsc;
use tower_otp::{
    ClientAddr, Email, Mobile,
    delivery::MemoryOutbox,
    events::{Event, EventKind},
};

/// A hook that forwards every event to the returned receiver.
fn collecting() -> (
    impl Fn(Event) -> std::future::Ready<()> + Send + Sync + 'static,
    mpsc::UnboundedReceiver<Event>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |event: Event| {
            let _ = tx.send(event);
            std::future::ready(())
        },
        rx,
    )
}

/// The next `n` events, waiting at most a few seconds for them.
async fn next(rx: &mut mpsc::UnboundedReceiver<Event>, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the hook is alive");
        events.push(event);
    }
    events
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(Event::kind).collect()
}

fn masked_email(email: &str) -> String {
    Email::parse(email).unwrap().masked().to_string()
}

#[tokio::test]
async fn a_hook_sees_every_outcome_with_masked_contacts_and_never_a_code() {
    let (hook, mut rx) = collecting();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).max_attempts(2).on_event(hook),
        outbox.clone(),
    );
    let mut codes = Vec::new();

    // sent, delivered; a wrong code; the right one.
    let email = "ada.lovelace@example.com";
    app.send_email(email).await.assert_success();
    let code = app.code_for(email);
    codes.push(code.clone());
    app.verify_email(email, &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    app.verify_email(email, &code).await.assert_success();
    // The cooldown refuses a second send at once.
    app.send_email(email)
        .await
        .assert_error(429, "rate_limited");
    let events = next(&mut rx, 5).await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::Sent,
            EventKind::Delivered,
            EventKind::OtpInvalid,
            EventKind::Verified,
            EventKind::RateLimited
        ]
    );
    for event in &events {
        assert_eq!(event.contact(), Some(masked_email(email).as_str()));
        assert_eq!(event.channel(), tower_otp::Channel::Email);
        assert_eq!(event.purpose(), "verify");
    }

    // The last attempt: attempts_exceeded (SMS this time).
    let mobile = common::MOBILE;
    app.send_mobile(mobile).await.assert_success();
    let code = app.code_for(mobile);
    codes.push(code.clone());
    app.verify_mobile(mobile, &wrong_code(&code)).await;
    app.verify_mobile(mobile, &wrong_code(&code))
        .await
        .assert_error(429, "attempts_exceeded");
    let sms_events = next(&mut rx, 4).await;
    assert_eq!(
        kinds(&sms_events),
        [
            EventKind::Sent,
            EventKind::Delivered,
            EventKind::OtpInvalid,
            EventKind::AttemptsExceeded
        ]
    );
    let masked_mobile = Mobile::parse(mobile, None).unwrap().masked().to_string();
    for event in &sms_events {
        assert_eq!(event.contact(), Some(masked_mobile.as_str()));
        assert_eq!(event.channel(), tower_otp::Channel::Mobile);
    }

    // A provider that fails: delivery_failed, and no `sent`.
    outbox.set_failing(true);
    let failing = "grace@example.com";
    app.send_email(failing)
        .await
        .assert_error(502, "delivery_failed");
    let failed = next(&mut rx, 1).await;
    assert_eq!(kinds(&failed), [EventKind::DeliveryFailed]);

    // Nothing of a code or of an unmasked contact, in any form.
    for event in events.iter().chain(&sms_events).chain(&failed) {
        let shown = format!("{event:?} {}", event.to_json());
        for code in &codes {
            assert!(!shown.contains(code.as_str()), "a code in {shown}");
        }
        for raw in ["ada.lovelace", "grace@", "4155550123"] {
            assert!(!shown.contains(raw), "an unmasked contact in {shown}");
        }
    }
    assert!(
        rx.try_recv().is_err(),
        "one event per outcome, nothing more"
    );
    assert_eq!(app.otp.events_dropped(), 0);
}

#[tokio::test]
async fn contacts_are_unmasked_only_when_the_host_asks() {
    let (hook, mut rx) = collecting();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .unmasked_event_contacts()
            .on_event(hook),
        outbox,
    );
    app.send_email("ada@example.com").await.assert_success();
    let events = next(&mut rx, 2).await;
    assert_eq!(events[0].contact(), Some("ada@example.com"));
    assert!(
        events[0]
            .to_json()
            .contains(r#""contact":"ada@example.com""#)
    );
}

#[tokio::test]
async fn an_ip_limit_is_an_event_without_a_contact() {
    let (hook, mut rx) = collecting();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .ip_limits(1, 30)
            .on_event(hook),
        outbox,
    );
    // One client address: its second send is refused at the edge.
    let send = |email: &str| {
        let mut request = http::Request::post("/send-otp/")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({ "email": email }).to_string(),
            ))
            .unwrap();
        request
            .extensions_mut()
            .insert(ClientAddr("203.0.113.9:4000".parse().unwrap()));
        app.request(request)
    };
    send("ada@example.com").await.assert_success();
    send("bob@example.com")
        .await
        .assert_error(429, "rate_limited");
    let events = next(&mut rx, 3).await;
    assert_eq!(events[2].kind(), EventKind::RateLimited);
    assert_eq!(events[2].contact(), None);
    assert!(events[2].to_json().contains(r#""contact":null"#));
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    #[cfg(feature = "metrics")]
    let snapshotter = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        snapshotter
    };
    // A hook that never finishes its first event; a queue of 2.
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .event_queue(2)
            .on_event(|_event: Event| std::future::pending::<()>()),
        outbox,
    );
    let sends = 10;
    for i in 0..sends {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            app.send_email(&format!("user{i}@example.com")),
        )
        .await
        .expect("a stuck hook never holds up an answer");
        answer.assert_success();
    }
    // Two events per send (sent, delivered): the hook holds at most one,
    // its queue two; every other one was dropped and counted.
    let emitted = 2 * sends;
    let dropped = app.otp.events_dropped();
    assert!(
        (emitted - 3..=emitted - 2).contains(&dropped),
        "{dropped} of {emitted} dropped"
    );

    #[cfg(feature = "metrics")]
    {
        let counted: u64 = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "tower_otp_events_dropped_total")
            .map(|(.., value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum();
        assert_eq!(counted, dropped);
    }
}
