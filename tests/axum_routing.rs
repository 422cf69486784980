//! The routes fit axum's routing: `otp.router()` nested under a prefix (or
//! merged), with `otp.gate_layer()` for the extractors; and the one-line
//! `otp.layer()` with `.prefix()` on the outermost router.

mod common;

use common::app;

use axum::{Router, body::Body, routing::get};
use http::Request;
use serde_json::json;
use tower_otp::{VerifiedEmail, delivery::MemoryOutbox};

fn me() -> Router {
    Router::new().route(
        "/me",
        get(|VerifiedEmail(e, _): VerifiedEmail| async move { e.as_str().to_owned() }),
    )
}

async fn prove(app: &app::TestApp, prefix: &str) -> String {
    let sent = app
        .post(
            &format!("{prefix}/send-otp/"),
            json!({"email": "ada@example.com"}),
        )
        .await;
    sent.assert_success();
    let code = app.code_for("ada@example.com");
    let verified = app
        .post(
            &format!("{prefix}/verify-otp"),
            json!({"email": "ada@example.com", "otp": code}),
        )
        .await;
    verified.assert_success();
    verified.token()
}

fn with_router(router: Router, outbox: MemoryOutbox, otp: tower_otp::Otp) -> app::TestApp {
    app::TestApp {
        otp,
        outbox,
        router,
    }
}

#[tokio::test]
async fn router_nested_under_a_prefix_with_the_gate_layer() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox).build().unwrap();
    let router = Router::new()
        .nest("/api", otp.router())
        .merge(me())
        .layer(otp.gate_layer());
    let app = with_router(router, outbox, otp);

    let token = prove(&app, "/api").await;
    let answer = app.get_with_token("/me", &token).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.raw, "ada@example.com");
    // Without a grant, the gate answers 401; the routes are not served at
    // the top level (the gate serves no route).
    app.get_with_token("/me", "forged")
        .await
        .assert_error(401, "verification_required");
    let top = app
        .post("/send-otp/", json!({"email": "bob@example.com"}))
        .await;
    assert_eq!(top.status, 404);
    // Other methods on a nested OTP path: the contract's 405.
    let answer = app
        .request(Request::get("/api/send-otp/").body(Body::empty()).unwrap())
        .await;
    answer.assert_error(405, "method_not_allowed");
    assert_eq!(answer.header("allow"), "POST");
}

#[tokio::test]
async fn router_merged_keeps_the_configured_prefix() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox).prefix("/v1").build().unwrap();
    let router = me().merge(otp.router()).layer(otp.gate_layer());
    let app = with_router(router, outbox, otp);
    let token = prove(&app, "/v1").await;
    assert_eq!(app.get_with_token("/me", &token).await.status, 200);
}

#[tokio::test]
async fn the_layer_with_a_prefix_on_the_outermost_router() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox)
        .prefix("/api")
        .build()
        .unwrap();
    let router = me().layer(otp.layer());
    let app = with_router(router, outbox, otp);
    let token = prove(&app, "/api").await;
    assert_eq!(app.get_with_token("/me", &token).await.status, 200);
}
