//! Slow and silent dependencies, over real HTTP: Redis behind a delaying /
//! black-holing TCP proxy, an SMTP server that stalls after DATA, Twilio
//! answering 429 with `Retry-After` or answering nothing. Each must give the
//! contract's answer within its deadline (503 `store_unavailable` within the
//! store timeout, 502 `delivery_failed` within the delivery deadline), many
//! concurrent requests must not pile up (descriptors, tasks and upstream
//! connections come back near their baseline), and the service must recover
//! when the dependency does, without a restart.
//!
//! The tests of this file run one at a time ([`SERIAL`]): they count this
//! process's descriptors and tasks.
#![cfg(all(feature = "redis", feature = "smtp", feature = "twilio"))]

mod common;
#[path = "common/slow_proxy.rs"]
mod slow_proxy;

use std::time::{Duration, Instant};

use common::{
    app::serve,
    redis_server::{random_email, random_prefix, shared_redis},
    smtp_server::{FROM, Mode, SmtpServer},
};
use serde_json::{Value, json};
use slow_proxy::SlowProxy;
use tower_otp::{
    delivery::{RetryPolicy, SmtpSender, TwilioMessaging},
    store::RedisStore,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The store timeout used here.
const STORE_TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on top of a deadline (debug build, 2 shared cores).
const SLACK: Duration = Duration::from_millis(1200);

const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "twilio-auth-token-do-not-print";

/// The test builder with the per-IP limits, cooldown and quota out of the
/// way (all requests come from 127.0.0.1, some to one address).
fn unlimited() -> tower_otp::OtpBuilder {
    common::builder()
        .ip_limits(0, 0)
        .resend_cooldown(Duration::ZERO)
        .send_quota(10_000, Duration::from_secs(600))
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Tasks alive in the current runtime (the app's connections and requests
/// run on it).
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (up to 5 s) until `f` is at most `bound`; returns its last value.
async fn settles(bound: usize, f: impl Fn() -> usize) -> usize {
    let start = Instant::now();
    loop {
        let now = f();
        if now <= bound || start.elapsed() > Duration::from_secs(5) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A POST over a fresh client (no connection kept): status, JSON body,
/// elapsed time.
async fn post(base: &str, path: &str, body: Value) -> (u16, Value, Duration) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let response = client
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, start.elapsed())
}

/// The host routes over a Redis store reached through `proxy`, with
/// cooldowns off.
async fn app_through(proxy: &SlowProxy) -> String {
    let store = RedisStore::builder(proxy.redis_url())
        .prefix(random_prefix())
        .pool_size(4)
        .timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    serve(
        unlimited()
            .store(store)
            .email_sender(tower_otp::delivery::MemoryOutbox::new())
            .sms_sender(tower_otp::delivery::MemoryOutbox::new()),
    )
    .await
}

async fn redis_proxy() -> Option<SlowProxy> {
    let url = shared_redis().await?;
    let host = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    Some(SlowProxy::start(&host).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_answers_within_the_timeout_and_recovers() {
    let _serial = SERIAL.lock().await;
    let Some(proxy) = redis_proxy().await else {
        return;
    };
    let base = app_through(&proxy).await;

    // Slow but within the timeout: normal answers.
    proxy.set_delay(Duration::from_millis(40));
    let (status, body, _) = post(&base, "/send-otp/", json!({"email": random_email()})).await;
    assert_eq!(status, 200, "{body}");

    // Slower than the timeout: 503 store_unavailable, promptly, for sends
    // and verifies alike; never a grant.
    proxy.set_delay(Duration::from_secs(3));
    for _ in 0..3 {
        let email = random_email();
        let (status, body, took) = post(&base, "/send-otp/", json!({"email": email})).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "store_unavailable", "{body}");
        assert!(took < STORE_TIMEOUT + SLACK, "send took {took:?}");
        let (status, body, took) = post(
            &base,
            "/verify-otp/",
            json!({"email": email, "otp": "123456"}),
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "store_unavailable", "{body}");
        assert!(body.get("token").is_none());
        assert!(took < STORE_TIMEOUT + SLACK, "verify took {took:?}");
    }

    // Redis is quick again: the next request succeeds, no restart.
    proxy.set_delay(Duration::ZERO);
    let (status, body, _) = post(&base, "/send-otp/", json!({"email": random_email()})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_at_a_black_holed_redis_do_not_pile_up() {
    let _serial = SERIAL.lock().await;
    let Some(proxy) = redis_proxy().await else {
        return;
    };
    let base = app_through(&proxy).await;
    // Warm: the pool holds a connection, the server its accept task.
    let (status, body, _) = post(&base, "/send-otp/", json!({"email": random_email()})).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds_before = open_fds();
    let tasks_before = alive_tasks();

    proxy.set_black_hole(true);
    let started = Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let path = if i % 2 == 0 {
                    "/send-otp/"
                } else {
                    "/verify-otp/"
                };
                post(
                    &base,
                    path,
                    json!({"email": random_email(), "otp": "123456"}),
                )
                .await
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    let mut overloaded = 0;
    for request in requests {
        let (status, body, took) = request.await.unwrap();
        assert_eq!(status, 503, "{body}");
        // The hashing queue may fill first (sends hash before they store):
        // 503 `overloaded` is the contract's answer to that.
        match body["code"].as_str() {
            Some("store_unavailable") => {}
            Some("overloaded") => overloaded += 1,
            _ => panic!("not a contract 503: {body}"),
        }
        slowest = slowest.max(took);
    }
    let all = started.elapsed();
    eprintln!(
        "200 requests at a black hole ({overloaded} overloaded): slowest {slowest:?}, \
         all done in {all:?}; proxy connections: peak {}, accepted {}",
        proxy.peak_connections(),
        proxy.accepted_connections()
    );
    // Each waits at most one store timeout (for a pooled connection or for
    // the answer): they do not queue behind each other.
    assert!(slowest < STORE_TIMEOUT + SLACK * 2, "slowest {slowest:?}");
    // A connection that did not answer in time is never reused, so a dead
    // Redis sees reconnects; at most one per request, and none left behind.
    assert!(
        proxy.accepted_connections() <= 200,
        "{} connections to Redis for 200 requests",
        proxy.accepted_connections()
    );
    let left_open = settles(4, || proxy.live_connections()).await;
    assert!(
        left_open <= 4,
        "{left_open} connections to Redis left open (pool of 4)"
    );

    // The clients are gone: descriptors and tasks come back near baseline.
    let fds_after = settles(fds_before + 8, open_fds).await;
    assert!(
        fds_after <= fds_before + 8,
        "descriptors: {fds_before} before, {fds_after} after"
    );
    let tasks_after = settles(tasks_before + 8, alive_tasks).await;
    assert!(
        tasks_after <= tasks_before + 8,
        "tasks: {tasks_before} before, {tasks_after} after"
    );

    // Redis answers again: the next request succeeds, no restart.
    proxy.set_black_hole(false);
    let (status, body, _) = post(&base, "/send-otp/", json!({"email": random_email()})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_stalling_after_data_gives_502_within_the_deadline_and_recovers() {
    let _serial = SERIAL.lock().await;
    const STALLS: &str = "stalls@example.com";
    let Some(server) = SmtpServer::start(
        Mode::Plain,
        &["--slow-rcpt", STALLS, "--slow-seconds", "30"],
    ) else {
        return;
    };
    let sender = SmtpSender::unencrypted_localhost(server.port)
        .from(FROM)
        .timeout(Duration::from_millis(700))
        .max_connections(2)
        .build()
        .unwrap();
    let deadline = Duration::from_secs(2);
    let base = serve(
        unlimited()
            .email_sender(sender)
            .retry_policy(RetryPolicy::new(3, Duration::from_millis(50)).with_deadline(deadline)),
    )
    .await;

    let (status, body, took) = post(&base, "/send-otp/", json!({"email": STALLS})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "delivery_failed", "{body}");
    assert!(took < deadline + SLACK, "took {took:?}");

    // Concurrent stalled sends all end by the deadline.
    let stalled: Vec<_> = (0..10)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { post(&base, "/send-otp/", json!({"email": STALLS})).await })
        })
        .collect();
    for request in stalled {
        let (status, body, took) = request.await.unwrap();
        assert_eq!(status, 502, "{body}");
        assert!(took < deadline + SLACK, "took {took:?}");
    }

    // Another address on the same server and pool: delivered, and whole.
    let (status, body, _) = post(&base, "/send-otp/", json!({"email": "fine@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.received(), 1, "only the healthy message was saved");
    let (_, envelope) = server.message(1);
    assert_eq!(envelope["rcpt_tos"], json!(["fine@example.com"]));
}

/// Parses a number once, so the phone-number metadata (loaded on first use,
/// slow in a debug build) is not counted in a delivery's time.
async fn warm_phone_numbers(base: &str) {
    let (status, body, _) = post(base, "/send-mobile-otp/", json!({"mobile": "+1"})).await;
    assert_eq!(status, 400, "{body}");
}

fn twilio(server: &MockServer) -> TwilioMessaging {
    TwilioMessaging::new(SID, TOKEN, "+14155550100")
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

fn messages() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
}

fn too_many(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", retry_after)
        .set_body_json(json!({"code": 20429, "message": "Too Many Requests", "status": 429}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_429_with_retry_after_gives_502_by_the_deadline_and_recovers() {
    let _serial = SERIAL.lock().await;
    let twilio_server = MockServer::start().await;
    messages()
        .respond_with(too_many("1"))
        .mount(&twilio_server)
        .await;
    let deadline = Duration::from_secs(3);
    let base = serve(
        unlimited()
            .sms_sender(twilio(&twilio_server))
            .retry_policy(RetryPolicy::new(3, Duration::from_millis(50)).with_deadline(deadline)),
    )
    .await;
    warm_phone_numbers(&base).await;

    let start = Instant::now();
    let (status, body, _) = post(
        &base,
        "/send-mobile-otp/",
        json!({"mobile": common::MOBILE}),
    )
    .await;
    let took = start.elapsed();
    let tries = twilio_server.received_requests().await.unwrap().len();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "delivery_failed", "{body}");
    assert!(took < deadline + SLACK, "took {took:?} for {tries} tries");
    // Retried after the Retry-After wait (1 s each), not hammered.
    assert!((2..=3).contains(&tries), "{tries} tries");
    assert!(took >= Duration::from_secs(1), "did not wait: {took:?}");

    // Twilio takes messages again: the next send goes through.
    twilio_server.reset().await;
    messages()
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .mount(&twilio_server)
        .await;
    let (status, body, _) = post(
        &base,
        "/send-mobile-otp/",
        json!({"mobile": common::MOBILE}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_answering_nothing_gives_502_by_the_deadline_without_piling_up() {
    let _serial = SERIAL.lock().await;
    let twilio_server = MockServer::start().await;
    messages()
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .mount(&twilio_server)
        .await;
    // Twilio reached through a proxy that swallows the requests: connections
    // are accepted, nothing is ever answered.
    let proxy = SlowProxy::start(twilio_server.address().to_string().as_str()).await;
    proxy.set_black_hole(true);
    let deadline = Duration::from_secs(2);
    let base = serve(
        unlimited()
            .sms_sender(
                TwilioMessaging::new(SID, TOKEN, "+14155550100")
                    .base_url(format!("http://{}", proxy.addr))
                    .timeout(Duration::from_millis(500)),
            )
            .retry_policy(RetryPolicy::new(3, Duration::from_millis(50)).with_deadline(deadline)),
    )
    .await;
    warm_phone_numbers(&base).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fds_before = open_fds();
    let tasks_before = alive_tasks();

    let sends: Vec<_> = (0..50)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let mobile = format!("+1415555{:04}", 200 + i);
                post(&base, "/send-mobile-otp/", json!({"mobile": mobile})).await
            })
        })
        .collect();
    for send in sends {
        let (status, body, took) = send.await.unwrap();
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "delivery_failed", "{body}");
        assert!(took < deadline + SLACK, "took {took:?}");
    }
    // A timeout may mean the SMS was sent: one try per send, never two.
    assert_eq!(proxy.accepted_connections(), 50);
    assert!(twilio_server.received_requests().await.unwrap().is_empty());

    let fds_after = settles(fds_before + 8, open_fds).await;
    assert!(
        fds_after <= fds_before + 8,
        "descriptors: {fds_before} before, {fds_after} after"
    );
    let tasks_after = settles(tasks_before + 8, alive_tasks).await;
    assert!(
        tasks_after <= tasks_before + 8,
        "tasks: {tasks_before} before, {tasks_after} after"
    );

    // Twilio answers again: the next send goes through.
    proxy.set_black_hole(false);
    let (status, body, _) = post(
        &base,
        "/send-mobile-otp/",
        json!({"mobile": common::MOBILE}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(twilio_server.received_requests().await.unwrap().len(), 1);
}
