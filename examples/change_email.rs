//! # change_email: a signed-in user proves a new address before it replaces the old one
//!
//! ```text
//! cargo run --example change_email
//! ```
//!
//! The user is signed in to the host app (here, a toy session: the
//! `x-user` header names them; a real app uses its own session). To change
//! their email address they prove the new one with purpose
//! `change_contact`:
//!
//! 1. `POST /send-otp/` with `{"email": "<new>", "purpose": "change_contact"}`;
//! 2. `POST /verify-otp/` with `{"email": "<new>", "otp": "<code>", "purpose": "change_contact"}`;
//! 3. `POST /account/email` with the grant (cookie or `x-verification-token`):
//!    the handler requires `VerifiedEmail<ChangeContact>`, so a grant made
//!    for sign-in or the default purpose cannot change anybody's address.
//!
//! Listens on 127.0.0.1:3004 (`PORT` overrides); codes print to the console.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde_json::{Value, json};
use tower_otp::{Otp, VerifiedEmail, purpose::ChangeContact};

/// The app's accounts: user name to email address (a database in a real app).
pub type Accounts = Arc<RwLock<HashMap<String, String>>>;

/// The signed-in user, from the toy session header.
fn signed_in(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Replaces the signed-in user's address with the one just proven for
/// `change_contact`.
async fn change_email(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    VerifiedEmail(new_email, _): VerifiedEmail<ChangeContact>,
) -> (StatusCode, Json<Value>) {
    let Some(user) = signed_in(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "error", "message": "Sign in first."})),
        );
    };
    let mut accounts = accounts.write().unwrap();
    let Some(email) = accounts.get_mut(&user) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"status": "error", "message": "No such account."})),
        );
    };
    *email = new_email.as_str().to_owned();
    (
        StatusCode::OK,
        Json(json!({"status": "success", "email": email})),
    )
}

/// The signed-in user's account.
async fn me(State(accounts): State<Accounts>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let email = signed_in(&headers).and_then(|user| accounts.read().unwrap().get(&user).cloned());
    match email {
        Some(email) => (StatusCode::OK, Json(json!({"email": email}))),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"status": "error"}))),
    }
}

/// The host app: its routes behind the OTP layer.
pub fn app(otp: &Otp, accounts: Accounts) -> Router {
    Router::new()
        .route("/account/email", post(change_email))
        .route("/account", get(me))
        .with_state(accounts)
        .layer(otp.layer())
}

#[allow(dead_code)] // the test includes this file for `app`
#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().init();
    let otp = Otp::builder()
        .random_secret()
        .insecure_cookie() // plain HTTP on localhost
        .build()
        .expect("valid configuration");
    let accounts: Accounts = Arc::new(RwLock::new(HashMap::from([(
        "ada".to_owned(),
        "ada@old.example".to_owned(),
    )])));
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3004);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tracing::info!("change_email example on http://{addr} (user \"ada\", header x-user: ada)");
    axum::serve(
        listener,
        app(&otp, accounts).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .unwrap();
}
