//! Signed webhooks against a real local HTTP receiver (axum on
//! 127.0.0.1:0) that checks every signature itself (HMAC-SHA256 computed
//! here, not by the crate), and that a receiver that hangs or fails changes
//! no OTP answer and no latency.
#![cfg(feature = "webhooks")]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use common::app::{TestApp, wrong_code};
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;
use tower_otp::{Email, OtpBuilder, delivery::MemoryOutbox, events::webhook::Webhook};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Hang,
    Redirect,
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone)]
struct Receiver {
    mode: Mode,
    tx: mpsc::UnboundedSender<Received>,
}

/// Starts a receiver; its URL and the POSTs it gets.
async fn receiver(mode: Mode) -> (String, mpsc::UnboundedReceiver<Received>) {
    async fn take(
        State(r): State<Receiver>,
        uri: http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap) {
        let _ = r.tx.send(Received {
            path: uri.path().to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let mut out = HeaderMap::new();
        match r.mode {
            Mode::Ok => (StatusCode::NO_CONTENT, out),
            Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, out),
            Mode::Hang => std::future::pending().await,
            Mode::Redirect => {
                out.insert("location", "/elsewhere".parse().unwrap());
                (StatusCode::TEMPORARY_REDIRECT, out)
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/hook", post(take))
        .route("/elsewhere", post(take))
        .with_state(Receiver { mode, tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a webhook within 10 s")
                .unwrap(),
        );
    }
    got
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Checks the Standard Webhooks signature as a receiver would, with the
/// key decoded from `SECRET` and HMAC-SHA256 computed here.
#[track_caller]
fn assert_signed(r: &Received) {
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = header(r, "webhook-id");
    let timestamp = header(r, "webhook-timestamp");
    assert!(id.starts_with("msg_") && !id.contains('.'), "id {id:?}");
    let sent_at: u64 = timestamp.parse().expect("integer seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(sent_at) < 60, "timestamp {sent_at}, now {now}");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", r.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let signatures = header(r, "webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "signature {signatures:?}, expected {expected:?}"
    );
    assert_eq!(header(r, "content-type"), "application/json");
}

fn app_with(outbox: &MemoryOutbox, hook: Option<Webhook>) -> TestApp {
    let builder = common::builder_with(outbox).ip_limits(0, 0);
    let builder = match hook {
        Some(hook) => builder.webhook(hook),
        None => builder,
    };
    TestApp::with(builder, outbox.clone())
}

#[tokio::test]
async fn events_arrive_signed_with_masked_contacts_and_never_a_code() {
    let (url, mut rx) = receiver(Mode::Ok).await;
    let outbox = MemoryOutbox::new();
    let app = app_with(&outbox, Some(Webhook::new(&url, SECRET).unwrap()));
    let email = "ada.lovelace@example.com";
    app.send_email(email).await.assert_success();
    let code = app.code_for(email);
    app.verify_email(email, &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    app.verify_email(email, &code).await.assert_success();

    let mut got = next(&mut rx, 4).await;
    // Delivered concurrently: order by the event's own timestamp.
    got.sort_by_key(|r| {
        serde_json::from_str::<Value>(&r.body).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let mut types = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for r in &got {
        assert_signed(r);
        ids.insert(header(r, "webhook-id").to_owned());
        assert!(!r.body.contains(&code), "a code in {}", r.body);
        assert!(!r.body.contains("ada.lovelace"), "unmasked: {}", r.body);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        types.push(body["type"].as_str().unwrap().to_owned());
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.contains('T'),
            "RFC 3339: {timestamp}"
        );
        assert_eq!(
            body["data"],
            serde_json::json!({
                "channel": "email",
                "contact": Email::parse(email).unwrap().masked().to_string(),
                "purpose": "verify",
            })
        );
    }
    assert_eq!(ids.len(), 4, "one id per event");
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "otp.delivered",
            "otp.otp_invalid",
            "otp.sent",
            "otp.verified"
        ]
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_bounded_retries_with_the_same_id() {
    let (url, mut rx) = receiver(Mode::Fail).await;
    let outbox = MemoryOutbox::new();
    let hook = Webhook::new(&url, SECRET)
        .unwrap()
        .retries(3, Duration::from_millis(20));
    let app = app_with(&outbox, Some(hook));
    let answer = app.send_email("ada@example.com").await;
    answer.assert_success();

    // Two events (sent, delivered), three tries each, then nothing more.
    let got = next(&mut rx, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "more than 3 tries per event");
    let mut per_id = std::collections::BTreeMap::<String, Vec<String>>::new();
    for r in &got {
        assert_signed(r);
        per_id
            .entry(header(r, "webhook-id").to_owned())
            .or_default()
            .push(r.body.clone());
    }
    assert_eq!(per_id.len(), 2);
    for bodies in per_id.values() {
        assert_eq!(bodies.len(), 3);
        assert!(bodies.iter().all(|b| *b == bodies[0]), "same event body");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (url, mut rx) = receiver(Mode::Redirect).await;
    let outbox = MemoryOutbox::new();
    let hook = Webhook::new(&url, SECRET)
        .unwrap()
        .retries(1, Duration::ZERO);
    let app = app_with(&outbox, Some(hook));
    app.send_email("ada@example.com").await.assert_success();
    let got = next(&mut rx, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(got.iter().all(|r| r.path == "/hook"));
    assert!(rx.try_recv().is_err(), "a redirect was followed");
}

/// Runs `rounds` of send + wrong verify + right verify on `app`, timing
/// each send and each wrong verify; returns the answers (without the
/// grant token) and the timings.
async fn round(app: &TestApp, n: usize) -> (Vec<String>, Duration, Duration) {
    let email = format!("latency{n}@example.com");
    let started = Instant::now();
    let sent = app.send_email(&email).await;
    let send_time = started.elapsed();
    let code = app.code_for(&email);
    let started = Instant::now();
    let wrong = app.verify_email(&email, &wrong_code(&code)).await;
    let verify_time = started.elapsed();
    let mut right = app.verify_email(&email, &code).await;
    right.assert_success();
    right.body.as_object_mut().unwrap().remove("token");
    let answers = vec![
        format!("{} {}", sent.status, sent.body),
        format!("{} {}", wrong.status, wrong.body),
        format!("{} {}", right.status, right.body),
    ];
    (answers, send_time, verify_time)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_failing_receiver_changes_no_answer_and_no_latency() {
    const ROUNDS: usize = 50;
    let (hang_url, _hang_rx) = receiver(Mode::Hang).await;
    let (fail_url, _fail_rx) = receiver(Mode::Fail).await;
    let outbox = MemoryOutbox::new();
    let plain = app_with(&outbox, None);
    let hanging = app_with(
        &outbox,
        Some(
            Webhook::new(&hang_url, SECRET)
                .unwrap()
                .timeout(Duration::from_secs(5)),
        ),
    );
    let failing = app_with(
        &outbox,
        Some(
            Webhook::new(&fail_url, SECRET)
                .unwrap()
                .retries(5, Duration::from_millis(10)),
        ),
    );
    let apps = [&plain, &hanging, &failing];
    let mut sends: [Vec<Duration>; 3] = Default::default();
    let mut verifies: [Vec<Duration>; 3] = Default::default();
    // Interleaved, so that other load on the machine hits all three alike.
    for n in 0..ROUNDS {
        let mut answers = Vec::new();
        for (i, app) in apps.iter().enumerate() {
            let (a, send, verify) = round(app, n * 3 + i).await;
            // The same contact name in each app's own answers.
            answers.push(
                a.join("\n")
                    .replace(&format!("latency{}@", n * 3 + i), "X@"),
            );
            sends[i].push(send);
            verifies[i].push(verify);
        }
        assert_eq!(
            answers[0], answers[1],
            "a hanging receiver changed an answer"
        );
        assert_eq!(
            answers[0], answers[2],
            "a failing receiver changed an answer"
        );
    }
    let bound = |base: Duration| base * 3 + Duration::from_millis(25);
    let (send_base, verify_base) = (median(sends[0].clone()), median(verifies[0].clone()));
    for (i, name) in [(1, "hanging"), (2, "failing")] {
        let (send, verify) = (median(sends[i].clone()), median(verifies[i].clone()));
        eprintln!(
            "median send {send:?} / verify {verify:?} with a {name} receiver; \
             {send_base:?} / {verify_base:?} without"
        );
        assert!(
            send <= bound(send_base),
            "{name}: send {send:?} vs {send_base:?}"
        );
        assert!(
            verify <= bound(verify_base),
            "{name}: verify {verify:?} vs {verify_base:?}"
        );
    }
    assert_eq!(plain.otp.events_dropped(), 0);
}

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[tokio::test]
async fn the_environment_sets_the_webhook_both_or_neither() {
    let base = ("OTP_SECRET", common::SECRET);
    let url = ("OTP_WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let err = OtpBuilder::from_env_with(env(&[base, url])).unwrap_err();
    assert!(err.to_string().contains("OTP_WEBHOOK_SECRET"), "{err}");
    let err = OtpBuilder::from_env_with(env(&[base, ("OTP_WEBHOOK_SECRET", SECRET)])).unwrap_err();
    assert!(err.to_string().contains("OTP_WEBHOOK_URL"), "{err}");
    // A bad secret stops start-up, naming the variable, not the value.
    for bad in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_c2hvcnQ=",
        "whsec_%%%",
    ] {
        let err =
            OtpBuilder::from_env_with(env(&[base, url, ("OTP_WEBHOOK_SECRET", bad)])).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("OTP_WEBHOOK_SECRET"), "{shown}");
        assert!(!shown.contains(&bad[bad.len() - 4..]), "{shown}");
    }
    let err = OtpBuilder::from_env_with(env(&[
        base,
        ("OTP_WEBHOOK_URL", "ftp://example.com/"),
        ("OTP_WEBHOOK_SECRET", SECRET),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("OTP_WEBHOOK_URL"), "{err}");

    // Both set: the events reach the receiver, as from the quickstart.
    let (url, mut rx) = receiver(Mode::Ok).await;
    let vars = [
        base,
        ("OTP_WEBHOOK_URL", url.as_str()),
        ("OTP_WEBHOOK_SECRET", SECRET),
    ];
    let outbox = MemoryOutbox::new();
    let builder = OtpBuilder::from_env_with(env(&vars))
        .unwrap()
        .hash_params(tower_otp::HashParams::insecure_fast())
        .email_sender(outbox.clone());
    let app = TestApp::with(builder, outbox);
    app.send_email("ada@example.com").await.assert_success();
    for r in next(&mut rx, 2).await {
        assert_signed(&r);
    }
}
