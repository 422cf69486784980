//! Grant v2 (DESIGN.md "Grant v2"): each proven contact keeps its own expiry
//! (a merge never extends a proof), proofs from a grant that verifies only
//! under a rotated-out secret are not carried into a new grant, a grant for
//! another app id is refused, and grant headers are marked sensitive.

mod common;

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use common::{MOBILE, app::TestApp};
use http::{HeaderMap, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_otp::delivery::MemoryOutbox;

const EMAIL: &str = "ada@example.io";

async fn prove_mobile_holding(app: &TestApp, held: &str) -> String {
    app.send_mobile(MOBILE).await.assert_success();
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({ "mobile": MOBILE, "otp": app.code_for(MOBILE) }),
            &[("x-verification-token", held)],
        )
        .await;
    answer.assert_success();
    answer.token()
}

fn payload(token: &str) -> Value {
    let body = token.split_once('.').unwrap().0;
    serde_json::from_slice(&B64.decode(body).unwrap()).unwrap()
}

#[tokio::test]
async fn verifying_a_second_contact_never_extends_the_first() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).grant_ttl(Duration::from_secs(4)),
        outbox,
    );
    // Expiries are whole Unix seconds, so a 4 s grant lives 3 to 4 s: the
    // email's ends by `proven + 4 s`, the mobile's (issued 2 s or more
    // later) not before `proven + 5 s`.
    let first = app.prove_email(EMAIL).await;
    let proven = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let merged = prove_mobile_holding(&app, &first).await;
    assert_eq!(app.get_with_token("/email-only", &merged).await.status, 200);

    // The email's proof has ended, even though it was carried into a grant
    // issued about 2 s after it.
    tokio::time::sleep_until(proven + Duration::from_millis(4300)).await;
    assert_eq!(app.get_with_token("/email-only", &merged).await.status, 401);
    assert_eq!(
        app.get_with_token("/mobile-only", &merged).await.status,
        200
    );
    let any = app.get_with_token("/any", &merged).await;
    assert_eq!(any.body, json!({ "email": null, "mobile": MOBILE }));
}

#[tokio::test]
async fn a_grant_carries_each_contact_with_its_own_expiry() {
    let app = TestApp::new();
    let first = app.prove_email(EMAIL).await;
    let merged = prove_mobile_holding(&app, &first).await;
    let (first, merged) = (payload(&first), payload(&merged));
    assert_eq!(merged["v"], 2);
    assert_eq!(merged["aud"], "tower-otp");
    let proofs = merged["p"].as_array().unwrap();
    assert_eq!(proofs.len(), 2);
    let email = proofs.iter().find(|p| p["k"] == "e").unwrap();
    assert_eq!(email["v"], EMAIL);
    assert_eq!(email["p"], "verify");
    assert_eq!(
        email["x"], first["p"][0]["x"],
        "the merge kept the email's expiry"
    );
    assert_ne!(merged["j"], first["j"], "a new grant id");
}

#[tokio::test]
async fn proofs_signed_only_with_a_retired_secret_are_not_carried() {
    let outbox = MemoryOutbox::new();
    let old = TestApp::with(
        common::builder_with(&outbox).secret("the old secret, thirty-two bytes long"),
        outbox.clone(),
    );
    let held = old.prove_email(EMAIL).await;

    let rotated = TestApp::with(
        common::builder_with(&outbox)
            .secret("the new secret, thirty-two bytes long")
            .old_secret("the old secret, thirty-two bytes long"),
        outbox,
    );
    // Still accepted while the old secret is listed...
    assert_eq!(
        rotated.get_with_token("/email-only", &held).await.status,
        200
    );
    // ...but not laundered into a grant signed with the new one.
    let merged = prove_mobile_holding(&rotated, &held).await;
    assert_eq!(
        rotated.get_with_token("/mobile-only", &merged).await.status,
        200
    );
    assert_eq!(
        rotated.get_with_token("/email-only", &merged).await.status,
        401
    );
    assert_eq!(
        rotated.get_with_token("/register", &merged).await.status,
        405
    );

    // Once the old secret is removed, the new grant still proves the mobile
    // and nothing else.
    let retired = TestApp::with(
        common::builder().secret("the new secret, thirty-two bytes long"),
        MemoryOutbox::new(),
    );
    assert_eq!(
        retired.get_with_token("/email-only", &held).await.status,
        401
    );
    assert_eq!(
        retired.get_with_token("/email-only", &merged).await.status,
        401
    );
    assert_eq!(
        retired.get_with_token("/mobile-only", &merged).await.status,
        200
    );
}

#[tokio::test]
async fn a_grant_for_another_app_is_refused_even_with_the_same_secret() {
    let outbox = MemoryOutbox::new();
    let shop = TestApp::with(common::builder_with(&outbox).app_id("shop"), outbox);
    let token = shop.prove_email(EMAIL).await;
    assert_eq!(shop.get_with_token("/email-only", &token).await.status, 200);

    let blog = TestApp::with(common::builder().app_id("blog"), MemoryOutbox::new());
    blog.get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
    assert_eq!(blog.get_with_token("/maybe", &token).await.raw, "anonymous");

    // Without an app id, the audience comes from the app name.
    let named = TestApp::with(common::builder().app_name("My Blog"), MemoryOutbox::new());
    assert_eq!(
        named.get_with_token("/email-only", &token).await.status,
        401
    );
    let same = TestApp::with(common::builder().app_id("shop"), MemoryOutbox::new());
    assert_eq!(same.get_with_token("/email-only", &token).await.status, 200);
}

#[tokio::test]
async fn grant_headers_are_marked_sensitive() {
    let app = TestApp::new();
    app.send_email(EMAIL).await.assert_success();
    let answer = app.verify_email(EMAIL, &app.code_for(EMAIL)).await;
    let cookie = answer.headers.get(header::SET_COOKIE).unwrap();
    assert!(cookie.is_sensitive(), "Set-Cookie carrying the grant");
    assert!(!format!("{:?}", answer.headers).contains(&answer.token()));

    // A passthrough handler sees the request's token header as sensitive.
    let peek = Router::new()
        .route(
            "/peek",
            get(|headers: HeaderMap| async move {
                format!(
                    "{}",
                    headers.get("x-verification-token").unwrap().is_sensitive()
                )
            }),
        )
        .layer(app.otp.layer());
    let response = peek
        .oneshot(
            Request::get("/peek")
                .header("x-verification-token", answer.token())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"true");
}
