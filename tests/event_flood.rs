//! A flood of refusals (the cheapest requests) never crowds the events
//! that matter out of a slow subscriber's queue. A binary of its own: the
//! drops it makes would count in `event_hooks`'s metrics test.

mod common;

use std::time::Duration;

use common::app::TestApp;
use serde_json::json;
use tokio::sync::mpsc;
use tower_otp::{
    ClientAddr,
    delivery::MemoryOutbox,
    events::{Event, EventKind},
};

#[tokio::test]
async fn a_flood_of_refusals_leaves_room_for_the_events_that_matter() {
    // A hook held up until the test opens the gate; a queue of 8.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let hook = {
        let gate = std::sync::Arc::clone(&gate);
        move |event: Event| {
            let (gate, tx, held_tx) = (std::sync::Arc::clone(&gate), tx.clone(), held_tx.clone());
            async move {
                let _ = held_tx.send(());
                gate.acquire().await.unwrap().forget();
                let _ = tx.send(event);
            }
        }
    };
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .ip_limits(1, 30)
            .event_queue(8)
            .on_event(hook),
        outbox,
    );
    let from = |ip: &str, path: &str, body: serde_json::Value| {
        let mut request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        request
            .extensions_mut()
            .insert(ClientAddr(format!("{ip}:4000").parse().unwrap()));
        app.request(request)
    };
    let email = "ada@example.com";
    from("203.0.113.9", "/send-otp/", json!({ "email": email }))
        .await
        .assert_success();
    // The hook holds the first event: from here on the queue fills.
    tokio::time::timeout(Duration::from_secs(5), held.recv())
        .await
        .expect("the hook takes the first event");
    // An attacker's flood of refused sends from one address.
    for i in 0..50 {
        from(
            "203.0.113.9",
            "/send-otp/",
            json!({ "email": format!("x{i}@example.com") }),
        )
        .await
        .assert_error(429, "rate_limited");
    }
    // Meanwhile a user verifies: that event is kept.
    let code = app.code_for(email);
    from(
        "198.51.100.7",
        "/verify-otp/",
        json!({ "email": email, "otp": code }),
    )
    .await
    .assert_success();
    gate.add_permits(1000);
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        seen.push(event.kind());
    }
    assert!(seen.contains(&EventKind::Verified), "{seen:?}");
    let refusals = seen
        .iter()
        .filter(|k| **k == EventKind::RateLimited)
        .count();
    // The hook held one event, the queue 8, refusals at most half of it.
    assert!((1..=4).contains(&refusals), "{seen:?}");
    assert!(
        app.otp.events_dropped() >= 45,
        "{}",
        app.otp.events_dropped()
    );
}
