//! Delivery retries as a client and a provider see them: through the layer,
//! against local Twilio and SendGrid mocks that count (and time) every
//! request. An SMS that may have been sent is never sent again; a
//! `Retry-After` is honoured; waits are jittered; one deadline bounds the
//! whole delivery.
#![cfg(all(feature = "twilio", feature = "sendgrid"))]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tower_otp::delivery::{RetryPolicy, SendGridSender, TwilioMessaging, TwilioVerify};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path},
};

const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "twilio-auth-token-do-not-print";
const SERVICE: &str = "VAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const FROM: &str = "+14155550100";
const OTHER_MOBILE: &str = "+14155550124";

/// Answers `answers[i]` to the i-th request (the last one from then on),
/// recording when each request came and for whom (`To`, or the first
/// SendGrid recipient).
#[derive(Clone)]
struct Recorder {
    answers: Vec<ResponseTemplate>,
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Recorder {
    fn new(answers: Vec<ResponseTemplate>) -> Self {
        Self {
            answers,
            seen: Arc::default(),
        }
    }

    fn times(&self, to: &str) -> Vec<Instant> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(who, _)| who == to)
            .map(|(_, at)| *at)
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let to = url::form_urlencoded::parse(&request.body)
            .find(|(k, _)| k == "To")
            .map(|(_, v)| v.into_owned())
            .or_else(|| {
                serde_json::from_slice::<Value>(&request.body)
                    .ok()
                    .and_then(|b| {
                        b["personalizations"][0]["to"][0]["email"]
                            .as_str()
                            .map(str::to_owned)
                    })
            })
            .unwrap_or_default();
        let mut seen = self.seen.lock().unwrap();
        seen.push((to, Instant::now()));
        let i = (seen.len() - 1).min(self.answers.len() - 1);
        self.answers[i].clone()
    }
}

fn twilio_error(status: u16, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": "error",
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"status": "queued"}))
}

async fn mount_messages(server: &MockServer, recorder: &Recorder) {
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(recorder.clone())
        .mount(server)
        .await;
}

fn messaging(server: &MockServer, timeout: Duration) -> TwilioMessaging {
    TwilioMessaging::new(SID, TOKEN, FROM)
        .base_url(server.uri())
        .timeout(timeout)
}

async fn send_mobile(otp: &tower_otp::Otp, mobile: &str) -> (u16, Value) {
    let (status, body) = common::post(otp, "/send-mobile-otp/", json!({ "mobile": mobile })).await;
    (status.as_u16(), body)
}

fn assert_delivery_failed((status, body): &(u16, Value)) {
    assert_eq!(
        (*status, body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
}

#[tokio::test]
async fn an_sms_that_times_out_is_sent_once() {
    let server = MockServer::start().await;
    // Twilio takes the message but answers too late: it may well have gone.
    let recorder = Recorder::new(vec![queued().set_delay(Duration::from_secs(2))]);
    mount_messages(&server, &recorder).await;
    let otp = common::builder()
        .sms_sender(messaging(&server, Duration::from_millis(300)))
        .build()
        .unwrap();
    let answer = send_mobile(&otp, common::MOBILE).await;
    assert_delivery_failed(&answer);
    assert_eq!(recorder.count(), 1, "a timed-out SMS is never sent again");
}

#[tokio::test]
async fn an_sms_answered_500_is_sent_once_and_503_is_retried() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![twilio_error(500, 20500)]);
    mount_messages(&server, &recorder).await;
    let otp = common::builder()
        .sms_sender(messaging(&server, Duration::from_secs(2)))
        .build()
        .unwrap();
    assert_delivery_failed(&send_mobile(&otp, common::MOBILE).await);
    assert_eq!(recorder.count(), 1, "a 500 does not prove nothing was sent");

    server.reset().await;
    let recorder = Recorder::new(vec![twilio_error(503, 20503), queued()]);
    mount_messages(&server, &recorder).await;
    let (status, body) = send_mobile(&otp, common::MOBILE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recorder.count(), 2, "a 503 says Twilio did not take it");
}

#[tokio::test]
async fn a_twilio_verify_start_that_times_out_is_sent_once() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![
        ResponseTemplate::new(201)
            .set_body_json(json!({"status": "pending"}))
            .set_delay(Duration::from_secs(2)),
    ]);
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{SERVICE}/Verifications")))
        .respond_with(recorder.clone())
        .mount(&server)
        .await;
    let verifier = TwilioVerify::new(SID, TOKEN, SERVICE)
        .base_url(server.uri())
        .timeout(Duration::from_millis(300));
    let otp = common::builder().sms_verifier(verifier).build().unwrap();
    assert_delivery_failed(&send_mobile(&otp, common::MOBILE).await);
    assert_eq!(recorder.count(), 1, "Twilio may have sent the code already");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_wait() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![
        twilio_error(429, 20429).insert_header("retry-after", "1"),
        queued(),
    ]);
    mount_messages(&server, &recorder).await;
    let otp = common::builder()
        .sms_sender(messaging(&server, Duration::from_secs(2)))
        .build()
        .unwrap();
    let (status, body) = send_mobile(&otp, common::MOBILE).await;
    assert_eq!(status, 200, "{body}");
    let times = recorder.times(common::MOBILE);
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}, before the 1 s Twilio asked for",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_gives_up_at_once() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![
        twilio_error(429, 20429).insert_header("retry-after", "30"),
        queued(),
    ]);
    mount_messages(&server, &recorder).await;
    let otp = common::builder()
        .sms_sender(messaging(&server, Duration::from_secs(2)))
        .retry_policy(RetryPolicy::new(3, Duration::from_millis(10)).with_deadline(secs(2)))
        .build()
        .unwrap();
    assert_delivery_failed(&send_mobile(&otp, common::MOBILE).await);
    let took = recorder.times(common::MOBILE)[0].elapsed();
    assert!(
        took < Duration::from_millis(500),
        "no wait that cannot end before the deadline: {took:?}"
    );
    assert_eq!(recorder.count(), 1);
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn repeated_503s_are_retried_with_jittered_waits_until_the_deadline() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![twilio_error(503, 20503)]);
    mount_messages(&server, &recorder).await;
    let deadline = secs(2);
    let otp = common::builder()
        .sms_sender(messaging(&server, Duration::from_secs(1)))
        // Tries are not what stops it: the deadline is.
        .retry_policy(RetryPolicy::new(1000, Duration::from_millis(50)).with_deadline(deadline))
        .build()
        .unwrap();
    // Two users whose sends fail at the same moment.
    let (a, b) = tokio::time::timeout(secs(10), async {
        tokio::join!(
            send_mobile(&otp, common::MOBILE),
            send_mobile(&otp, OTHER_MOBILE)
        )
    })
    .await
    .expect("the delivery deadline ends the retries");
    let finished = Instant::now();
    assert_delivery_failed(&a);
    assert_delivery_failed(&b);
    for to in [common::MOBILE, OTHER_MOBILE] {
        // Counted from the first try (the send's own work comes before it).
        let took = finished - recorder.times(to)[0];
        assert!(
            took < deadline + Duration::from_millis(300),
            "answered by the deadline: {took:?}"
        );
    }

    let offsets = |to: &str| -> Vec<Duration> {
        let times = recorder.times(to);
        times.iter().map(|t| *t - times[0]).collect()
    };
    let (a, b) = (offsets(common::MOBILE), offsets(OTHER_MOBILE));
    assert!(a.len() >= 3 && b.len() >= 3, "retried: {a:?} {b:?}");
    for times in [&a, &b] {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(45),
                "each wait is at least the initial backoff: {times:?}"
            );
        }
    }
    // Without jitter both would retry in lockstep (50, 100, 200 ms, …).
    let apart = a
        .iter()
        .zip(&b)
        .skip(1)
        .any(|(x, y)| x.abs_diff(*y) > Duration::from_millis(15));
    assert!(apart, "the two retry schedules are the same: {a:?} {b:?}");
}

#[tokio::test]
async fn an_email_provider_failure_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![
        ResponseTemplate::new(503)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"errors": []})),
        ResponseTemplate::new(202),
    ]);
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(recorder.clone())
        .mount(&server)
        .await;
    let sender = SendGridSender::new("SG.key", "Shop <no-reply@shop.example>")
        .base_url(server.uri())
        .timeout(Duration::from_secs(2));
    let otp = common::builder().email_sender(sender).build().unwrap();
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    let times = recorder.times("ada@example.com");
    assert_eq!(times.len(), 2, "the email was sent again");
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn an_email_that_times_out_is_retried_within_the_deadline() {
    // A duplicate email is harmless, so a timeout is retried; but never
    // past the deadline.
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![ResponseTemplate::new(202).set_delay(secs(3))]);
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(recorder.clone())
        .mount(&server)
        .await;
    let sender = SendGridSender::new("SG.key", "Shop <no-reply@shop.example>")
        .base_url(server.uri())
        .timeout(Duration::from_millis(400));
    let otp = common::builder()
        .email_sender(sender)
        .retry_policy(RetryPolicy::new(10, Duration::from_millis(20)).with_deadline(secs(1)))
        .build()
        .unwrap();
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    let took = recorder.times("ada@example.com")[0].elapsed();
    assert!(
        took < Duration::from_millis(1300),
        "past the 1 s deadline: {took:?}"
    );
    assert!(recorder.count() >= 2, "retried: {}", recorder.count());
}

#[tokio::test]
async fn the_deadline_comes_from_the_environment() {
    let server = MockServer::start().await;
    let recorder = Recorder::new(vec![
        twilio_error(429, 20429).insert_header("retry-after", "2"),
        queued(),
    ]);
    mount_messages(&server, &recorder).await;
    let uri = server.uri();
    let from_env = |deadline: &str| {
        let vars: Vec<(String, String)> = [
            ("OTP_SECRET", common::SECRET),
            ("SMS_SERVER", "TWILIO"),
            ("TWILIO_ACCOUNT_SID", SID),
            ("TWILIO_AUTH_TOKEN", TOKEN),
            ("TWILIO_FROM_NUMBER", FROM),
            ("TWILIO_API_BASE_URL", uri.as_str()),
            ("OTP_DELIVERY_DEADLINE_SECONDS", deadline),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        tower_otp::OtpBuilder::from_env_with(move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    };
    for bad in ["0", "soon"] {
        let err = from_env(bad).unwrap_err();
        assert!(
            err.to_string().contains("OTP_DELIVERY_DEADLINE_SECONDS"),
            "{bad}: {err}"
        );
    }
    // Twilio asks for 2 s; a 1 s deadline cannot wait that long.
    let otp = from_env("1")
        .unwrap()
        .hash_params(tower_otp::hash::HashParams::insecure_fast())
        .build()
        .unwrap();
    assert_delivery_failed(&send_mobile(&otp, common::MOBILE).await);
    assert_eq!(recorder.count(), 1);
}

#[tokio::test]
async fn a_whatsapp_fallback_to_sms_shares_the_one_delivery_deadline() {
    let server = MockServer::start().await;
    // WhatsApp refuses the number for good, but slowly; the SMS that
    // follows would take longer than the time left.
    let recorder = Recorder::new(vec![
        twilio_error(400, 63003).set_delay(Duration::from_millis(1500)),
        queued().set_delay(secs(3)),
    ]);
    mount_messages(&server, &recorder).await;
    let otp = common::builder()
        .sms_sender(messaging(&server, secs(5)).whatsapp_from("+14155550199"))
        .whatsapp_fallback_sms(true)
        .retry_policy(RetryPolicy::new(3, Duration::from_millis(10)).with_deadline(secs(2)))
        .build()
        .unwrap();
    let started = Instant::now();
    let (status, body) = common::post(
        &otp,
        "/send-mobile-otp/",
        json!({ "mobile": common::MOBILE, "channel": "whatsapp" }),
    )
    .await;
    let took = started.elapsed();
    assert_delivery_failed(&(status.as_u16(), body));
    assert_eq!(
        recorder.times(common::MOBILE).len(),
        1,
        "the fallback SMS was tried"
    );
    assert!(
        took < Duration::from_millis(2400),
        "WhatsApp and its SMS fallback together stay within the 2 s deadline: {took:?}"
    );
}
