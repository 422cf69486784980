//! Purposes (DESIGN.md "Purposes"): codes per (purpose, contact), shared
//! cooldown, quota and failure budget, `invalid_purpose`, the purpose in the
//! verify answer and in the grant, and typed extractors, tested through real
//! handlers: a grant for one purpose never satisfies another.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use axum::{Json, Router, body::Body, routing::get};
use common::app::TestApp;
use http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_otp::{
    Mobile, VerifiedContact, VerifiedEmail,
    delivery::{DeliveryError, MemoryOutbox, ProviderCheck, SmsVerifier},
    purpose::{AnyPurpose, Login, Reset},
};

tower_otp::purpose!(Checkout = "checkout");

const EMAIL: &str = "ada@example.io";

fn app(cooldown: Duration) -> TestApp {
    let outbox = MemoryOutbox::new();
    TestApp::with(
        common::builder_with(&outbox)
            .resend_cooldown(cooldown)
            .purpose::<Checkout>(),
        outbox,
    )
}

async fn send(app: &TestApp, purpose: Value) -> common::app::Answer {
    app.post("/send-otp/", json!({ "email": EMAIL, "purpose": purpose }))
        .await
}

async fn verify(app: &TestApp, purpose: Value, code: &str) -> common::app::Answer {
    app.post(
        "/verify-otp/",
        json!({ "email": EMAIL, "otp": code, "purpose": purpose }),
    )
    .await
}

#[tokio::test]
async fn a_code_for_one_purpose_does_not_verify_another() {
    let app = app(Duration::ZERO);
    send(&app, json!("login")).await.assert_success();
    let code = app.code_for(EMAIL);
    verify(&app, json!("reset"), &code)
        .await
        .assert_error(400, "otp_expired");
    verify(&app, Value::Null, &code)
        .await
        .assert_error(400, "otp_expired");
    let answer = verify(&app, json!("login"), &code).await;
    answer.assert_success();
    assert_eq!(answer.body["purpose"], "login");
    assert_eq!(answer.body["verified"]["email"], EMAIL);
}

#[tokio::test]
async fn sending_for_one_purpose_keeps_another_purposes_code() {
    let app = app(Duration::ZERO);
    app.send_email(EMAIL).await.assert_success();
    let default_code = app.code_for(EMAIL);
    send(&app, json!("checkout")).await.assert_success();
    let checkout_code = app.code_for(EMAIL);
    let answer = verify(&app, json!("checkout"), &checkout_code).await;
    answer.assert_success();
    assert_eq!(answer.body["purpose"], "checkout");
    let answer = app.verify_email(EMAIL, &default_code).await;
    answer.assert_success();
    assert_eq!(answer.body["purpose"], "verify");
}

#[tokio::test]
async fn cooldown_and_quota_belong_to_the_contact() {
    let app = app(Duration::from_secs(30));
    send(&app, json!("login")).await.assert_success();
    send(&app, json!("reset"))
        .await
        .assert_error(429, "rate_limited");
    app.send_email(EMAIL)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn the_failure_budget_is_shared_by_purposes() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .resend_cooldown(Duration::ZERO)
            .failure_budget(2),
        outbox,
    );
    send(&app, json!("login")).await.assert_success();
    let login = app.code_for(EMAIL);
    for _ in 0..2 {
        verify(&app, json!("login"), &common::app::wrong_code(&login))
            .await
            .assert_error(400, "otp_invalid");
    }
    send(&app, json!("reset")).await.assert_success();
    let reset = app.code_for(EMAIL);
    verify(&app, json!("reset"), &reset)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn unregistered_or_malformed_purposes_are_refused() {
    let app = app(Duration::ZERO);
    for bad in [
        json!("Login"),
        json!(""),
        json!(42),
        json!("unknown"),
        json!("a".repeat(40)),
        json!(["login"]),
    ] {
        for path in ["/send-otp/", "/verify-otp/"] {
            let answer = app
                .post(
                    path,
                    json!({ "email": EMAIL, "otp": "123456", "purpose": bad }),
                )
                .await;
            answer.assert_error(400, "invalid_purpose");
            assert_eq!(answer.body["field"], "purpose", "{bad}");
        }
    }
    assert!(app.outbox.messages().is_empty());
    // Not registered on another instance.
    let plain = TestApp::new();
    plain
        .post(
            "/send-otp/",
            json!({ "email": EMAIL, "purpose": "checkout" }),
        )
        .await
        .assert_error(400, "invalid_purpose");
    // Names are checked at build.
    assert!(common::builder().purpose_name("Check Out").build().is_err());
}

/// The gated handlers of a host app.
fn gated(app: &TestApp) -> Router {
    Router::new()
        .route("/default", get(|VerifiedEmail(e, _): VerifiedEmail| async move { e.as_str().to_owned() }))
        .route("/login", get(|VerifiedEmail(e, _): VerifiedEmail<Login>| async move { e.as_str().to_owned() }))
        .route("/reset", get(|VerifiedEmail(e, _): VerifiedEmail<Reset>| async move { e.as_str().to_owned() }))
        .route("/checkout", get(|VerifiedEmail(e, _): VerifiedEmail<Checkout>| async move { e.as_str().to_owned() }))
        .route(
            "/any",
            get(|c: VerifiedContact<AnyPurpose>| async move {
                Json(json!({ "email": c.email().map(|e| e.as_str().to_owned()), "purpose": c.purposes().0 }))
            }),
        )
        .route(
            "/maybe-reset",
            get(|c: Option<VerifiedContact<Reset>>| async move { c.is_some().to_string() }),
        )
        .layer(app.otp.layer())
}

async fn status(router: &Router, path: &str, token: &str) -> (u16, String) {
    let response = router
        .clone()
        .oneshot(
            Request::get(path)
                .header("x-verification-token", token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_grant_for_one_purpose_never_satisfies_another_extractor() {
    let app = app(Duration::ZERO);
    let router = gated(&app);
    send(&app, json!("login")).await.assert_success();
    let login = verify(&app, json!("login"), &app.code_for(EMAIL))
        .await
        .token();

    assert_eq!(
        status(&router, "/login", &login).await,
        (200, EMAIL.to_owned())
    );
    assert_eq!(status(&router, "/default", &login).await.0, 401);
    assert_eq!(status(&router, "/reset", &login).await.0, 401);
    assert_eq!(status(&router, "/checkout", &login).await.0, 401);
    assert_eq!(status(&router, "/maybe-reset", &login).await.1, "false");
    let (code, body) = status(&router, "/any", &login).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"email": EMAIL, "purpose": "login"})
    );

    // The untyped extractor means the default purpose.
    let default = app.prove_email(EMAIL).await;
    assert_eq!(status(&router, "/default", &default).await.0, 200);
    assert_eq!(status(&router, "/login", &default).await.0, 401);

    // A grant that holds a login proof and gains a reset proof satisfies both.
    send(&app, json!("reset")).await.assert_success();
    let both = app
        .post_with(
            "/verify-otp/",
            json!({ "email": EMAIL, "otp": app.code_for(EMAIL), "purpose": "reset" }),
            &[("x-verification-token", &login)],
        )
        .await
        .token();
    assert_eq!(status(&router, "/login", &both).await.0, 200);
    assert_eq!(status(&router, "/reset", &both).await.0, 200);
    assert_eq!(status(&router, "/default", &both).await.0, 401);
}

/// A provider that generates and checks codes itself keeps one pending
/// code per number: it serves the default purpose only.
#[derive(Debug)]
struct Provider;

#[async_trait]
impl SmsVerifier for Provider {
    async fn start(&self, _: &Mobile) -> Result<(), DeliveryError> {
        Ok(())
    }
    async fn check(&self, _: &Mobile, _: &str) -> Result<ProviderCheck, DeliveryError> {
        Ok(ProviderCheck::Approved)
    }
}

#[tokio::test]
async fn a_provider_verifier_serves_the_default_purpose_only() {
    let app = TestApp::with(
        common::builder().sms_verifier(Provider),
        MemoryOutbox::new(),
    );
    app.post(
        "/send-mobile-otp/",
        json!({ "mobile": common::MOBILE, "purpose": "login" }),
    )
    .await
    .assert_error(400, "invalid_purpose");
    app.send_mobile(common::MOBILE).await.assert_success();
}

#[tokio::test]
async fn events_carry_the_purpose() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).on_event(move |event: tower_otp::events::Event| {
            let _ = tx.send(event);
            std::future::ready(())
        }),
        outbox,
    );
    send(&app, json!("login")).await.assert_success();
    verify(&app, json!("login"), &app.code_for(EMAIL))
        .await
        .assert_success();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.purpose(), "login", "{:?}", event.kind());
    }
}

#[tokio::test]
async fn an_undelivered_code_of_a_purpose_is_deleted_like_a_default_one() {
    use std::sync::Arc;
    use tower_otp::{
        Contact, Email,
        delivery::memory::Failure,
        store::{MemoryStore, OtpStore},
    };
    let store = Arc::new(MemoryStore::new());
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .resend_cooldown(Duration::ZERO)
            .shared_store(store.clone() as Arc<dyn OtpStore>),
        outbox.clone(),
    );
    let key = app
        .otp
        .store_key(&Contact::Email(Email::parse(EMAIL).unwrap()));
    for purpose in [Value::Null, json!("login")] {
        outbox.fail_always(Failure::Permanent);
        send(&app, purpose.clone())
            .await
            .assert_error(502, "delivery_failed");
        let slot = match purpose.as_str() {
            Some(p) => key.with_purpose(p),
            None => key.clone(),
        };
        assert_eq!(
            store.attempts_used(&slot),
            None,
            "the undelivered {purpose} code is gone, not left to be guessed"
        );
    }
}
