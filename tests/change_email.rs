//! The change-of-address example (`examples/change_email.rs`): a signed-in
//! user proves a new address with purpose `change_contact`; only a grant for
//! that purpose changes it.

mod common;

#[path = "../examples/change_email.rs"]
#[allow(dead_code, unreachable_pub)]
mod change_email;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use axum::{Router, body::Body};
use http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_otp::delivery::MemoryOutbox;

const NEW: &str = "ada@new.example";

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_new_address_proven_for_change_contact_replaces_the_old_one() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox).build().unwrap();
    let accounts: change_email::Accounts = Arc::new(RwLock::new(HashMap::from([(
        "ada".to_owned(),
        "ada@old.example".to_owned(),
    )])));
    let app = change_email::app(&otp, accounts.clone());
    let ada = [("x-user", "ada")];

    // A grant for the default purpose (or sign-in) changes nothing.
    call(&app, "POST", "/send-otp/", &[], json!({"email": NEW})).await;
    let code = outbox.last_code_for(NEW).unwrap();
    let (_, verified) = call(
        &app,
        "POST",
        "/verify-otp/",
        &[],
        json!({"email": NEW, "otp": code}),
    )
    .await;
    let default_token = verified["token"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        "POST",
        "/account/email",
        &[("x-user", "ada"), ("x-verification-token", &default_token)],
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("verification_required"))
    );
    assert_eq!(accounts.read().unwrap()["ada"], "ada@old.example");

    // The flow: send and verify with purpose change_contact, then change.
    let otp = common::builder_with(&outbox).build().unwrap();
    let app = change_email::app(&otp, accounts.clone());
    let (status, _) = call(
        &app,
        "POST",
        "/send-otp/",
        &ada,
        json!({"email": NEW, "purpose": "change_contact"}),
    )
    .await;
    assert_eq!(status, 200);
    let code = outbox.last_code_for(NEW).unwrap();
    let (status, verified) = call(
        &app,
        "POST",
        "/verify-otp/",
        &ada,
        json!({"email": NEW, "otp": code, "purpose": "change_contact"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(verified["purpose"], "change_contact");
    let token = verified["token"].as_str().unwrap().to_owned();

    // Not signed in: the proof alone is not enough.
    let (status, _) = call(
        &app,
        "POST",
        "/account/email",
        &[("x-verification-token", &token)],
        json!({}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(accounts.read().unwrap()["ada"], "ada@old.example");

    let (status, body) = call(
        &app,
        "POST",
        "/account/email",
        &[("x-user", "ada"), ("x-verification-token", &token)],
        json!({}),
    )
    .await;
    assert_eq!((status, body["email"].as_str()), (200, Some(NEW)));
    let (_, me) = call(&app, "GET", "/account", &ada, Value::Null).await;
    assert_eq!(me["email"], NEW);
}
