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

/// A sign-in link under a nested router: the confirm page's form posts to
/// the path the browser fetched it from, prefix included (the handler sees
/// the path without it).
#[tokio::test]
async fn a_link_confirm_page_under_a_nested_router_posts_to_its_own_path() {
    let outbox = MemoryOutbox::new();
    let base = "https://app.example.com/api";
    let otp = common::builder_with(&outbox)
        .email_links(tower_otp::link::EmailLinks::new(base).redirect("/welcome"))
        .build()
        .unwrap();
    let router = Router::new()
        .nest("/api", otp.router())
        .merge(me())
        .layer(otp.gate_layer());
    let app = with_router(router, outbox, otp);
    app.post("/api/send-otp/", json!({"email": "ada@example.com"}))
        .await
        .assert_success();
    let message = app.outbox.last_to("ada@example.com").unwrap();
    let text = message.text();
    let start = text.find(&format!("{base}/otp/link/?t=")).expect("a link");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let link = url::Url::parse(&link).unwrap();

    let page = app
        .request(
            Request::get(&link[url::Position::BeforePath..])
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.raw).into_owned();
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form action");
    // Where a browser posts the form.
    let target = link.join(action).unwrap();
    assert_eq!(target.path(), "/api/otp/link/", "{action}");
    let token = link.query_pairs().find(|(k, _)| k == "t").unwrap().1;
    let answer = app
        .request(
            Request::post(target.path())
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "text/html")
                .body(Body::from(format!("t={token}")))
                .unwrap(),
        )
        .await;
    assert_eq!(
        answer.status,
        303,
        "{}",
        String::from_utf8_lossy(&answer.raw)
    );
    assert_eq!(answer.header("location"), "/welcome");
}
