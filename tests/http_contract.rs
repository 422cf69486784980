//! One test per row of DESIGN.md's HTTP contract, through the real layer.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use common::{
    app::{Answer, TestApp, wrong_code},
    builder_with,
};
use futures_util::stream;
use http::{Method, Request, StatusCode};
use serde_json::json;
use tower_otp::{
    Region,
    delivery::MemoryOutbox,
    store::{
        Attempt, CodeRecord, FailureBudget, FailureOutcome, OtpStore, SendLimits, SendReservation,
        StoreError, StoreKey,
    },
};

const PATHS: [&str; 4] = [
    "/send-otp/",
    "/verify-otp/",
    "/send-mobile-otp/",
    "/verify-mobile-otp/",
];

#[tokio::test]
async fn send_answers_success_with_expiry_and_resend_times() {
    let app = TestApp::new();
    let answer = app.send_email("Ada@Example.COM").await;
    answer.assert_success();
    assert_eq!(answer.body["expires_in"], 300);
    assert_eq!(answer.body["resend_in"], 30);
    assert!(answer.body["message"].as_str().unwrap().len() > 5);
    // The address was normalized before delivery: the domain is lower-cased.
    assert!(app.outbox.last_code_for("Ada@example.com").is_some());
}

#[tokio::test]
async fn verify_answers_the_proven_contact_a_token_and_a_cookie() {
    let app = TestApp::new();
    app.send_email("a@b.co").await.assert_success();
    let answer = app.verify_email("a@b.co", &app.code_for("a@b.co")).await;
    answer.assert_success();
    assert_eq!(answer.body["verified"], json!({"email": "a@b.co"}));
    let token = answer.token();
    assert_eq!(token.split('.').count(), 2);
    let cookie = answer.header("set-cookie");
    assert!(
        cookie.starts_with(&format!("__Host-otp_verification={token};")),
        "{cookie}"
    );
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=1800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
}

#[tokio::test]
async fn every_path_is_served_with_and_without_trailing_slash() {
    let app = TestApp::new();
    for path in PATHS {
        for variant in [path.to_owned(), path.trim_end_matches('/').to_owned()] {
            // An empty JSON object reaches the handler: missing_field, not 404.
            let answer = app.post(&variant, json!({})).await;
            answer.assert_error(400, "missing_field");
        }
    }
}

#[tokio::test]
async fn configurable_prefix_moves_the_routes() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(builder_with(&outbox).prefix("/api"), outbox);
    app.post("/api/send-otp", json!({"email": "a@b.co"}))
        .await
        .assert_success();
    // The unprefixed path now belongs to the host (404 from the router).
    let answer = app.post("/send-otp/", json!({"email": "a@b.co"})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_json_for_empty_malformed_non_object_and_non_utf8_bodies() {
    let app = TestApp::new();
    let bodies: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"{"),
        Bytes::from_static(b"[1,2]"),
        Bytes::from_static(b"\"a@b.co\""),
        Bytes::from_static(b"42"),
        Bytes::from_static(b"null"),
        Bytes::from_static(b"{\"email\": \"a\xff@b.co\"}"),
        Bytes::from_static(b"\xef\xbb\xbf{}garbage"),
    ];
    for path in PATHS {
        for body in &bodies {
            let answer = app
                .post_raw(path, Some("application/json"), Body::from(body.clone()))
                .await;
            answer.assert_error(400, "invalid_json");
        }
    }
}

#[tokio::test]
async fn missing_field_names_the_field() {
    let app = TestApp::new();
    let cases = [
        ("/send-otp/", json!({}), "email"),
        ("/send-otp/", json!({"email": null}), "email"),
        ("/send-otp/", json!({"email": ""}), "email"),
        ("/send-otp/", json!({"email": "   "}), "email"),
        ("/send-otp/", json!({"mobile": "+919812345678"}), "email"),
        ("/send-mobile-otp/", json!({"mobile": null}), "mobile"),
        ("/verify-otp/", json!({"otp": "123456"}), "email"),
        ("/verify-otp/", json!({"email": "a@b.co"}), "otp"),
        ("/verify-otp/", json!({"email": "a@b.co", "otp": ""}), "otp"),
        (
            "/verify-mobile-otp/",
            json!({"mobile": "+919812345678", "otp": null}),
            "otp",
        ),
    ];
    for (path, body, field) in cases {
        let answer = app.post(path, body.clone()).await;
        answer.assert_error(400, "missing_field");
        assert_eq!(answer.body["field"], field, "{path} {body}");
    }
}

#[tokio::test]
async fn unknown_extra_fields_are_ignored() {
    let app = TestApp::new();
    app.post(
        "/send-otp/",
        json!({"email": "a@b.co", "name": "Ada", "x": [1]}),
    )
    .await
    .assert_success();
}

#[tokio::test]
async fn invalid_email_for_hostile_and_wrong_type_values() {
    let app = TestApp::new();
    let values = [
        json!("not-an-email"),
        json!("a@b"),
        json!("a@b.co\r\nBcc: victim@example.com"),
        json!("a@b.co\nSubject: hi"),
        json!("<a@b.co>"),
        json!("a@b.co, c@d.co"),
        json!("jörg@bücher.de"),
        json!("a".repeat(300) + "@b.co"),
        json!(42),
        json!(true),
        json!(["a@b.co"]),
        json!({"email": "a@b.co"}),
    ];
    for value in values {
        let answer = app.post("/send-otp/", json!({ "email": value })).await;
        answer.assert_error(400, "invalid_email");
        let answer = app
            .post("/verify-otp/", json!({ "email": value, "otp": "123456" }))
            .await;
        answer.assert_error(400, "invalid_email");
    }
    assert!(app.outbox.messages().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn invalid_mobile_without_region_and_for_bad_numbers() {
    let app = TestApp::new();
    for value in [
        json!("9812345678"),
        json!("+91 98123"),
        json!("+0000000000"),
        json!("+1 415 555 0123\r\nx"),
        json!("call me"),
        json!(919812345678u64),
        json!(["+919812345678"]),
    ] {
        let answer = app
            .post("/send-mobile-otp/", json!({ "mobile": value }))
            .await;
        answer.assert_error(400, "invalid_mobile");
    }
    assert!(app.outbox.messages().is_empty());
}

#[tokio::test]
async fn default_region_reads_numbers_without_plus_and_normalizes_to_e164() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(builder_with(&outbox).default_region(Region::IN), outbox);
    app.send_mobile("98123 45678").await.assert_success();
    let code = app.code_for("+919812345678");
    let answer = app.verify_mobile("+91-98123-45678", &code).await;
    answer.assert_success();
    assert_eq!(answer.body["verified"], json!({"mobile": "+919812345678"}));
}

#[tokio::test]
async fn invalid_otp_format_for_wrong_length_type_or_characters() {
    let app = TestApp::new();
    app.send_email("a@b.co").await.assert_success();
    for otp in [
        json!("12345"),
        json!("1234567"),
        json!("12a456"),
        json!("١٢٣٤٥٦"),
        json!("１２３４５６"),
        json!(123456),
        json!(["123456"]),
    ] {
        let answer = app
            .post("/verify-otp/", json!({ "email": "a@b.co", "otp": otp }))
            .await;
        answer.assert_error(400, "invalid_otp_format");
    }
    // Malformed codes cost no attempt: the right code still works.
    let code = app.code_for("a@b.co");
    app.verify_email("a@b.co", &code).await.assert_success();
}

#[tokio::test]
async fn wrong_codes_count_down_then_destroy_the_code() {
    let app = TestApp::new();
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    let wrong = wrong_code(&code);
    for left in [4, 3, 2, 1] {
        let answer = app.verify_email("a@b.co", &wrong).await;
        answer.assert_error(400, "otp_invalid");
        assert_eq!(answer.body["attempts_left"], left);
    }
    app.verify_email("a@b.co", &wrong)
        .await
        .assert_error(429, "attempts_exceeded");
    // The code is destroyed: even the right one is now expired.
    app.verify_email("a@b.co", &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test]
async fn right_code_on_the_last_attempt_still_succeeds() {
    let app = TestApp::new();
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    for _ in 0..4 {
        app.verify_email("a@b.co", &wrong_code(&code))
            .await
            .assert_error(400, "otp_invalid");
    }
    app.verify_email("a@b.co", &code).await.assert_success();
}

#[tokio::test]
async fn otp_expired_when_never_sent_or_already_used() {
    let app = TestApp::new();
    app.verify_email("never@b.co", "123456")
        .await
        .assert_error(400, "otp_expired");
    let token = app.prove_email("a@b.co").await;
    assert!(!token.is_empty());
    let code = app.code_for("a@b.co");
    app.verify_email("a@b.co", &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test(start_paused = true)]
async fn otp_expired_after_the_ttl() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).code_ttl(Duration::from_secs(60)),
        outbox,
    );
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    tokio::time::advance(Duration::from_secs(61)).await;
    app.verify_email("a@b.co", &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test]
async fn a_resend_replaces_the_code_and_the_old_one_is_simply_wrong() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).resend_cooldown(Duration::ZERO),
        outbox,
    );
    app.send_email("a@b.co").await.assert_success();
    let first = app.code_for("a@b.co");
    let second = loop {
        app.send_email("a@b.co").await.assert_success();
        let code = app.code_for("a@b.co");
        if code != first {
            break code;
        }
    };
    let answer = app.verify_email("a@b.co", &first).await;
    answer.assert_error(400, "otp_invalid");
    assert_eq!(answer.body["attempts_left"], 4);
    app.verify_email("a@b.co", &second).await.assert_success();
}

#[tokio::test]
async fn method_not_allowed_with_allow_header_on_every_otp_path() {
    let app = TestApp::new();
    for path in PATHS {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let answer = app
                .request(
                    Request::builder()
                        .method(method.clone())
                        .uri(path.trim_end_matches('/'))
                        .header("content-type", "application/json")
                        .body(Body::from("{}"))
                        .unwrap(),
                )
                .await;
            answer.assert_error(405, "method_not_allowed");
            assert_eq!(answer.header("allow"), "POST");
        }
    }
}

#[tokio::test]
// In process no Content-Length is set: both halves go through the streaming
// limit. The declared length and the early stop are proven over a real
// socket in `body_limit.rs`.
async fn payload_too_large_with_a_whole_body_and_with_a_stream() {
    let app = TestApp::new();
    let big = json!({ "email": "a@b.co", "pad": "x".repeat(5000) }).to_string();
    let answer = app
        .post_raw("/send-otp/", Some("application/json"), Body::from(big))
        .await;
    answer.assert_error(413, "payload_too_large");

    // No Content-Length: the limit is enforced while reading the stream.
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024])));
    let body = Body::from_stream(stream::iter(chunks));
    let answer = app
        .post_raw("/send-otp/", Some("application/json"), body)
        .await;
    answer.assert_error(413, "payload_too_large");
    assert!(app.outbox.messages().is_empty());
}

#[tokio::test]
async fn unsupported_media_type_unless_json() {
    let app = TestApp::new();
    let body = || Body::from(json!({"email": "a@b.co"}).to_string());
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
    ] {
        let answer = app.post_raw("/send-otp/", content_type, body()).await;
        answer.assert_error(415, "unsupported_media_type");
    }
    app.post_raw(
        "/send-otp/",
        Some("application/json; charset=utf-8"),
        body(),
    )
    .await
    .assert_success();
    app.post_raw(
        "/send-otp",
        Some("application/merge-patch+json"),
        Body::from(json!({"email": "c@b.co"}).to_string()),
    )
    .await
    .assert_success();
}

#[tokio::test]
async fn rate_limited_by_the_resend_cooldown_with_retry_after() {
    let app = TestApp::new();
    app.send_email("a@b.co").await.assert_success();
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(429, "rate_limited");
    let retry_after: u64 = answer.header("retry-after").parse().unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(answer.body["retry_after"], retry_after);
    assert_eq!(app.outbox.messages().len(), 1);
    // Another contact is not affected.
    app.send_email("other@b.co").await.assert_success();
}

#[tokio::test(start_paused = true)]
async fn rate_limited_by_the_send_quota_until_the_window_ends() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).resend_cooldown(Duration::from_secs(1)),
        outbox,
    );
    for _ in 0..5 {
        app.send_email("a@b.co").await.assert_success();
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(429, "rate_limited");
    let retry_after: u64 = answer.header("retry-after").parse().unwrap();
    assert!((580..=600).contains(&retry_after), "{retry_after}");
    // After the window the victim can get a code and verify.
    tokio::time::advance(Duration::from_secs(retry_after)).await;
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    app.verify_email("a@b.co", &code).await.assert_success();
}

#[tokio::test]
async fn delivery_failed_deletes_the_code_and_releases_the_cooldown() {
    let outbox = MemoryOutbox::failing();
    let app = TestApp::with(builder_with(&outbox), outbox.clone());
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(502, "delivery_failed");
    assert!(
        !answer.body["message"]
            .as_str()
            .unwrap()
            .contains("MemoryOutbox")
    );
    // The undelivered code does not exist.
    app.verify_email("a@b.co", "123456")
        .await
        .assert_error(400, "otp_expired");
    // The user may retry at once: no cooldown for a message never received.
    outbox.set_failing(false);
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    app.verify_email("a@b.co", &code).await.assert_success();
}

/// A store whose every operation fails the same way.
#[derive(Debug)]
struct BrokenStore {
    unavailable: bool,
}

impl BrokenStore {
    fn fail(&self) -> StoreError {
        let source = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "redis://10.0.0.7:6379 connection refused",
        );
        if self.unavailable {
            StoreError::unavailable(source)
        } else {
            StoreError::corrupt(source)
        }
    }
}

#[async_trait]
impl OtpStore for BrokenStore {
    async fn reserve_send(
        &self,
        _: &StoreKey,
        _: &SendLimits,
    ) -> Result<SendReservation, StoreError> {
        Err(self.fail())
    }
    async fn release_cooldown(&self, _: &StoreKey) -> Result<(), StoreError> {
        Err(self.fail())
    }
    async fn put_code(&self, _: &StoreKey, _: &CodeRecord, _: Duration) -> Result<(), StoreError> {
        Err(self.fail())
    }
    async fn begin_attempt(&self, _: &StoreKey, _: u32) -> Result<Attempt, StoreError> {
        Err(self.fail())
    }
    async fn remove_code(&self, _: &StoreKey, _: &[u8; 16]) -> Result<bool, StoreError> {
        Err(self.fail())
    }
    async fn spend_grant(&self, _: &StoreKey, _: Duration) -> Result<bool, StoreError> {
        Err(self.fail())
    }
    async fn record_failure(
        &self,
        _: &StoreKey,
        _: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError> {
        Err(self.fail())
    }
    async fn reset_failures(&self, _: &StoreKey) -> Result<(), StoreError> {
        Err(self.fail())
    }
}

fn assert_no_internals(answer: &Answer) {
    let raw = String::from_utf8_lossy(&answer.raw);
    for leak in ["redis", "10.0.0.7", "refused", "6379"] {
        assert!(!raw.to_lowercase().contains(leak), "{raw} leaks {leak}");
    }
}

#[tokio::test]
async fn store_unavailable_fails_closed_without_leaking_internals() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).store(BrokenStore { unavailable: true }),
        outbox.clone(),
    );
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(503, "store_unavailable");
    assert_no_internals(&answer);
    let answer = app.verify_email("a@b.co", "123456").await;
    answer.assert_error(503, "store_unavailable");
    assert_no_internals(&answer);
    assert!(outbox.messages().is_empty());
}

#[tokio::test]
async fn internal_for_unexpected_store_answers() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).store(BrokenStore { unavailable: false }),
        outbox,
    );
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(500, "internal");
    assert_no_internals(&answer);
}

#[tokio::test]
async fn overloaded_when_the_hashing_pool_is_full() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(builder_with(&outbox).hash_pool_size(1, 0), outbox);
    // Hold the pool's only place, as a long-running hash would.
    let permit = app.otp.hash_pool().reserve().unwrap();
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(503, "overloaded");
    assert_eq!(answer.header("retry-after"), "1");
    // The failed send did not start a cooldown...
    drop(permit);
    app.send_email("a@b.co").await.assert_success();
    // ...and an overloaded verify costs no attempt.
    let code = app.code_for("a@b.co");
    let permit = app.otp.hash_pool().reserve().unwrap();
    app.verify_email("a@b.co", &wrong_code(&code))
        .await
        .assert_error(503, "overloaded");
    drop(permit);
    let answer = app.verify_email("a@b.co", &wrong_code(&code)).await;
    answer.assert_error(400, "otp_invalid");
    assert_eq!(answer.body["attempts_left"], 4);
}

#[tokio::test]
async fn passthrough_requests_reach_the_host_unchanged() {
    let app = TestApp::new();
    let answer = app
        .request(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.raw[..], b"home page");

    // Any body, any content type, even above the OTP body limit.
    let big = "y".repeat(10_000);
    let answer = app
        .post_raw("/echo", Some("text/plain"), Body::from(big.clone()))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.raw, Bytes::from(format!("echo:{big}")));

    // Unknown paths get the host's own 404, not ours.
    let answer = app
        .request(Request::get("/send-otp/extra").body(Body::empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.raw.is_empty());
}
