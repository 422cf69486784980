//! Errors as RFC 9457 problem details: when the client prefers
//! `application/problem+json`, or always with `ErrorFormat::Problem`
//! (`OTP_ERROR_FORMAT=problem`). Routes, limit refusals and extractor
//! rejections all take the same shape; success bodies do not change.

mod common;

use common::app;

use app::TestApp;
use serde_json::json;
use tower_otp::{ErrorFormat, OtpBuilder, delivery::MemoryOutbox};

const PREFER_PROBLEM: (&str, &str) = ("accept", "application/problem+json, application/json;q=0.5");

#[track_caller]
fn assert_problem(answer: &app::Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), "application/problem+json");
    let body = &answer.body;
    assert_eq!(
        body["type"],
        format!("urn:tower-otp:error:{code}"),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body.get("message").is_none(), "{body}");
}

#[tokio::test]
async fn the_default_body_unless_the_client_prefers_problem_details() {
    let app = TestApp::new();
    // No preference, or JSON preferred: the seed's body.
    app.post("/send-otp/", json!({}))
        .await
        .assert_error(400, "missing_field");
    let answer = app
        .post_with(
            "/send-otp/",
            json!({}),
            &[("accept", "application/json, application/problem+json")],
        )
        .await;
    answer.assert_error(400, "missing_field");

    // Preferred: problem details with the contract's extra fields.
    let answer = app
        .post_with("/send-otp/", json!({}), &[PREFER_PROBLEM])
        .await;
    assert_problem(&answer, 400, "missing_field");
    assert_eq!(answer.body["field"], "email");

    app.send_email("ada@example.com").await.assert_success();
    let code = app.code_for("ada@example.com");
    let answer = app
        .post_with(
            "/verify-otp/",
            json!({"email": "ada@example.com", "otp": app::wrong_code(&code)}),
            &[PREFER_PROBLEM],
        )
        .await;
    assert_problem(&answer, 400, "otp_invalid");
    assert_eq!(answer.body["attempts_left"], 4);

    // The cooldown refusal keeps Retry-After and retry_after.
    let answer = app
        .post_with(
            "/send-otp/",
            json!({"email": "ada@example.com"}),
            &[PREFER_PROBLEM],
        )
        .await;
    assert_problem(&answer, 429, "rate_limited");
    assert!(answer.body["retry_after"].as_u64().is_some_and(|s| s > 0));
    assert!(!answer.header("retry-after").is_empty());

    // Success bodies never change.
    let answer = app
        .post_with(
            "/verify-otp/",
            json!({"email": "ada@example.com", "otp": code}),
            &[PREFER_PROBLEM],
        )
        .await;
    answer.assert_success();
}

#[tokio::test]
async fn extractor_rejections_and_edge_limits_take_the_same_shape() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(common::builder_with(&outbox).ip_limits(1, 30), outbox);
    let answer = app
        .request(
            http::Request::get("/email-only")
                .header("x-verification-token", "forged.token")
                .header(PREFER_PROBLEM.0, PREFER_PROBLEM.1)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&answer, 401, "verification_required");

    // The per-IP limit, refused before the body is read.
    let serve = app::serve(common::builder_with(&MemoryOutbox::new()).ip_limits(1, 30)).await;
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("{serve}/send-otp/"))
            .header("accept", PREFER_PROBLEM.1)
            .json(&json!({"email": "bob@example.com"}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let refused = send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
}

#[tokio::test]
async fn problem_format_always_when_configured_from_the_environment() {
    let outbox = MemoryOutbox::new();
    let builder = OtpBuilder::from_env_with(|k| match k {
        "OTP_SECRET" => Some(common::SECRET.into()),
        "OTP_ERROR_FORMAT" => Some("problem".into()),
        _ => None,
    })
    .unwrap()
    .hash_params(tower_otp::hash::HashParams::insecure_fast())
    .email_sender(outbox.clone());
    let app = TestApp::with(builder, outbox);
    assert_eq!(app.otp.config().error_format, ErrorFormat::Problem);
    let answer = app.post("/send-otp/", json!({"email": 42})).await;
    assert_problem(&answer, 400, "invalid_email");
    let answer = app.get_with_token("/email-only", "nope").await;
    assert_problem(&answer, 401, "verification_required");

    let err =
        OtpBuilder::from_env_with(|k| (k == "OTP_ERROR_FORMAT").then(|| "xml".into())).unwrap_err();
    assert!(err.to_string().contains("OTP_ERROR_FORMAT"), "{err}");
}
