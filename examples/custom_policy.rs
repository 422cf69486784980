//! # custom_policy: refuse codes for emails that are already registered
//!
//! ```text
//! cargo run --example custom_policy
//! ENUMERATION_SAFE=1 cargo run --example custom_policy
//! ```
//!
//! The Django recipe checked "is this email already registered?" before
//! sending a code. Here that check is a `ContactPolicy`: a registered email
//! gets 409 `contact_rejected` with the host's own message. With
//! `ENUMERATION_SAFE=1` the refusal is hidden instead: the answer, limits
//! and verify behaviour are those of any other address, and nothing is sent.
//!
//! Listens on 127.0.0.1:3002 (`PORT` overrides); codes print to the console.
//! Try: register once (send + verify the email and mobile, then
//! `POST /register`), then ask for a code for the same email again.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
};
use http::StatusCode;
use serde_json::{Value, json};
use tower_otp::{
    ApiError, Contact, Otp, VerifiedEmail, VerifiedMobile,
    policy::{PolicyDecision, from_fn},
};

/// The app's users (a database in a real app).
type Users = Arc<RwLock<HashSet<String>>>;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let users: Users = Arc::default();

    let registered = users.clone();
    let policy = from_fn(move |contact: Contact| {
        let taken = match &contact {
            Contact::Email(email) => registered
                .read()
                .expect("users lock")
                .contains(email.as_str()),
            Contact::Mobile(_) => false,
        };
        async move {
            if taken {
                PolicyDecision::reject(StatusCode::CONFLICT, "This email is already registered.")
            } else {
                PolicyDecision::Allow
            }
        }
    });

    let mut builder = Otp::builder()
        .random_secret()
        .insecure_cookie() // plain http on localhost
        .contact_policy(policy);
    if std::env::var("ENUMERATION_SAFE").is_ok_and(|v| v == "1") {
        builder = builder.enumeration_safe();
    }
    let otp = builder.build().expect("valid configuration");

    let app = Router::new()
        .route("/register", post(register))
        .with_state(users)
        .layer(otp.layer());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3002".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind");
    tracing::info!("custom_policy listening on http://127.0.0.1:{port}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("server error");
}

async fn register(
    State(users): State<Users>,
    VerifiedEmail(email, _): VerifiedEmail,
    VerifiedMobile(mobile, _): VerifiedMobile,
) -> Result<Json<Value>, Response> {
    let fresh = users
        .write()
        .expect("users lock")
        .insert(email.as_str().to_owned());
    if !fresh {
        // The crate's own error renderer: the same body (and `code`) as the
        // OTP routes' refusals.
        return Err(ApiError::contact_rejected(
            StatusCode::CONFLICT,
            "This email is already registered.",
        )
        .into_response());
    }
    Ok(Json(
        json!({"status": "success", "email": email.as_str(), "mobile": mobile.as_str()}),
    ))
}
