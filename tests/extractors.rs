//! Gating handlers with `VerifiedContact`, `VerifiedEmail`, `VerifiedMobile`
//! and their `Option<…>` forms.

mod common;

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use common::{app::TestApp, builder_with};
use http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use tower_otp::{Otp, VerifiedContact, delivery::MemoryOutbox, hash::HashParams};

#[tokio::test]
async fn no_grant_is_a_401_json_rejection() {
    let app = TestApp::new();
    for path in ["/email-only", "/mobile-only", "/any"] {
        let answer = app
            .request(Request::get(path).body(Body::empty()).unwrap())
            .await;
        answer.assert_error(401, "verification_required");
    }
}

#[tokio::test]
async fn the_grant_works_from_the_header_and_from_the_cookie() {
    let app = TestApp::new();
    let token = app.prove_email("a@b.co").await;
    let answer = app.get_with_token("/email-only", &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.raw[..], b"a@b.co");

    let answer = app
        .request(
            Request::get("/email-only")
                .header(
                    "cookie",
                    format!("theme=dark; __Host-otp_verification={token}"),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.raw[..], b"a@b.co");
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = TestApp::new();
    let token = app.prove_email("a@b.co").await;
    let (payload, mac) = token.split_once('.').unwrap();
    let claims = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
    let forged_claims = claims.replace("a@b.co", "admin@b.co");
    assert_ne!(claims, forged_claims);
    let forged = format!("{}.{mac}", B64.encode(forged_claims));
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    for bad in [
        forged.as_str(),
        flipped.as_str(),
        payload,
        "garbage",
        "a.b.c",
    ] {
        let answer = app.get_with_token("/email-only", bad).await;
        answer.assert_error(401, "verification_required");
        let answer = app.get_with_token("/maybe", bad).await;
        assert_eq!(
            &answer.raw[..],
            b"anonymous",
            "Option<…> gives None for {bad}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).grant_ttl(Duration::from_secs(1)),
        outbox,
    );
    let token = app.prove_email("a@b.co").await;
    assert_eq!(
        app.get_with_token("/email-only", &token).await.status,
        StatusCode::OK
    );
    // Grant expiry is wall-clock (it must hold across instances), in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
    assert_eq!(
        &app.get_with_token("/maybe", &token).await.raw[..],
        b"anonymous"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = TestApp::new();
    let outbox = MemoryOutbox::new();
    let other = TestApp::with(
        Otp::builder()
            .secret("a completely different secret!!")
            .hash_params(HashParams::insecure_fast())
            .email_sender(outbox.clone()),
        outbox,
    );
    let foreign = other.prove_email("a@b.co").await;
    app.get_with_token("/email-only", &foreign)
        .await
        .assert_error(401, "verification_required");
}

#[tokio::test]
async fn an_email_grant_does_not_satisfy_a_mobile_requirement() {
    let app = TestApp::new();
    let token = app.prove_email("a@b.co").await;
    app.get_with_token("/mobile-only", &token)
        .await
        .assert_error(401, "verification_required");
    let answer = app.get_with_token("/any", &token).await;
    assert_eq!(answer.body, json!({"email": "a@b.co", "mobile": null}));
    // Register needs both.
    let answer = app
        .request(
            Request::post("/register")
                .header("x-verification-token", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    answer.assert_error(401, "verification_required");
}

#[tokio::test]
async fn verifying_the_second_channel_adds_to_the_grant() {
    let app = TestApp::new();
    let email_token = app.prove_email("a@b.co").await;
    app.send_mobile("+14155550123").await.assert_success();
    let code = app.code_for("+14155550123");
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({"mobile": "+1 415 555 0123", "otp": code}),
            &[("x-verification-token", &email_token)],
        )
        .await;
    answer.assert_success();
    assert_eq!(
        answer.body["verified"],
        json!({"email": "a@b.co", "mobile": "+14155550123"})
    );
    let both = answer.token();
    let answer = app
        .request(
            Request::post("/register")
                .header("cookie", format!("__Host-otp_verification={both}"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    answer.assert_success();
    assert_eq!(
        answer.body,
        json!({"status": "success", "email": "a@b.co", "mobile": "+14155550123"})
    );
}

#[tokio::test]
async fn a_tampered_held_grant_adds_nothing() {
    let app = TestApp::new();
    app.send_mobile("+14155550123").await.assert_success();
    let code = app.code_for("+14155550123");
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({"mobile": "+14155550123", "otp": code}),
            &[("x-verification-token", "forged.token")],
        )
        .await;
    answer.assert_success();
    assert_eq!(answer.body["verified"], json!({"mobile": "+14155550123"}));
}

#[tokio::test]
async fn rotated_secrets_still_accept_old_grants_and_codes() {
    let outbox = MemoryOutbox::new();
    let old = TestApp::with(builder_with(&outbox), outbox.clone());
    let token = old.prove_email("a@b.co").await;
    // A code sent before the rotation, shared store as two deploys would have.
    let store = std::sync::Arc::new(tower_otp::MemoryStore::new());
    let before = TestApp::with(
        builder_with(&outbox).shared_store(store.clone()),
        outbox.clone(),
    );
    before.send_email("late@b.co").await.assert_success();
    let code = before.code_for("late@b.co");
    before.send_email("other@b.co").await.assert_success();
    let other_code = before.code_for("other@b.co");

    let rotated = TestApp::with(
        Otp::builder()
            .secret("the new secret after rotation!!")
            .old_secret(common::SECRET)
            .hash_params(HashParams::insecure_fast())
            .email_sender(outbox.clone())
            .shared_store(store.clone()),
        outbox.clone(),
    );
    let answer = rotated.get_with_token("/email-only", &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    rotated
        .verify_email("late@b.co", &code)
        .await
        .assert_success();

    // Without the old secret listed, both are refused.
    let fresh = TestApp::with(
        Otp::builder()
            .secret("the new secret after rotation!!")
            .hash_params(HashParams::insecure_fast())
            .email_sender(outbox.clone())
            .shared_store(store),
        outbox,
    );
    fresh
        .get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
    // The code made under the old secret (still live in the shared store)
    // is refused too.
    let answer = fresh.verify_email("other@b.co", &other_code).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(
        matches!(answer.code(), "otp_invalid" | "otp_expired"),
        "{}",
        answer.body
    );
    assert!(answer.body.get("token").is_none(), "{}", answer.body);
}

#[tokio::test]
async fn with_a_custom_token_header_the_default_header_is_just_an_invalid_grant() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox).token_header(http::HeaderName::from_static("x-otp-token")),
        outbox,
    );
    let token = app.prove_email("a@b.co").await;
    app.get_with_token("/email-only", "junk")
        .await
        .assert_error(401, "verification_required");
    // The configured header works; the default one is not read.
    let answer = app
        .request(
            Request::get("/email-only")
                .header("x-otp-token", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    app.get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
}

#[tokio::test]
async fn a_grant_reaching_a_handler_without_the_layer_is_an_internal_error() {
    let app = TestApp::new();
    let token = app.prove_email("a@b.co").await;
    // Same handlers, but this router forgot the layer.
    let router: Router = Router::new()
        .route("/any", get(|_: VerifiedContact| async { "unreachable" }))
        .route(
            "/maybe",
            get(|_: Option<VerifiedContact>| async { "unreachable" }),
        );
    for path in ["/any", "/maybe"] {
        let response = router
            .clone()
            .oneshot(
                Request::get(path)
                    .header("cookie", format!("otp_verification={token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("OtpLayer"));
    }
}
