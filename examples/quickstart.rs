//! # quickstart: the reference app
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Serves on <http://127.0.0.1:3000> (`PORT` overrides; `HOST` sets the bind
//! address) with zero configuration: the memory store, codes printed to the
//! console, and a random secret (with a warning) when `OTP_SECRET` is unset.
//!
//! - `GET /`: a registration page whose JavaScript drives the four routes.
//! - `POST /send-otp/`, `/verify-otp/`, `/send-mobile-otp/`,
//!   `/verify-mobile-otp/`: served by the `tower-otp` layer.
//! - `POST /register`: runs only once both the email and the mobile number
//!   are verified; answers `{"status":"success","email":…,"mobile":…}`.
//! - `GET /me`: what the caller's grant proves (`{"email":…,"mobile":…}`,
//!   `null` for what it does not), e.g. as `OTP_LINK_REDIRECT=/me`.
//! - `GET /ready`: the readiness probe: 200 `{"status":"ready"}` when the
//!   store and the senders answer, else 503 with the names of those that
//!   failed (the reasons go to the log only).
//!
//! Every environment variable of the README's Configuration tables is honoured through
//! `OtpBuilder::from_env` (e.g. `REDIS_OTP_URL` for Redis, `EMAIL_SERVER=SMTP`
//! with `EMAIL_HOST`…, `SMS_SERVER=TWILIO` with `TWILIO_*`…,
//! `OTP_WEBHOOK_URL` + `OTP_WEBHOOK_SECRET` for signed event webhooks,
//! `OTP_SMS_BREAKER=true` with `OTP_SMS_BREAKER_*` for the SMS fraud
//! breaker).
//!
//! Email links: with `OTP_LINK_BASE_URL=http://127.0.0.1:3000` (the address
//! the browser uses; plain HTTP also needs `OTP_COOKIE_SECURE=false`), each
//! code email also carries a sign-in link (`/otp/link/?t=…`: a confirm page,
//! then 303 to `OTP_LINK_REDIRECT`, default `/`, with the grant cookie) and
//! a "this wasn't me" link (`/otp/cancel/?t=…`: cancels the code and blocks
//! sends for `OTP_CANCEL_BLOCK_SECONDS`). `OTP_LINK_SAME_DEVICE=true` binds
//! the sign-in link to the browser that asked. Unset, the page and the
//! emails are exactly as without links.
//!
//! The page lets the user pick SMS or WhatsApp for the mobile code. The
//! console sender prints both; with `SMS_SERVER=TWILIO_VERIFY` WhatsApp
//! works as configured on the Verify Service, with `SMS_SERVER=TWILIO` once
//! `TWILIO_WHATSAPP_FROM` is set (and `TWILIO_WHATSAPP_CONTENT_SID` for
//! codes outside WhatsApp's 24-hour window); otherwise the page says
//! WhatsApp is not available. `OTP_WHATSAPP_FALLBACK_SMS=true` sends the
//! code by SMS when WhatsApp cannot reach the number.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::Html,
    routing::{get, post},
};
use serde_json::{Value, json};
use tower_otp::{Otp, OtpBuilder, VerifiedEmail, VerifiedMobile};

const PAGE: &str = include_str!("assets/register.html");

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_otp=info".into()),
        )
        .init();

    // A name for the messages unless OTP_APP_NAME gives one.
    let named = |b: OtpBuilder| match std::env::var_os("OTP_APP_NAME") {
        Some(_) => b,
        None => b.app_name("tower-otp quickstart"),
    };
    let otp = match OtpBuilder::from_env().and_then(|b| named(b).random_secret().build()) {
        Ok(otp) => otp,
        Err(err) => {
            eprintln!("configuration error: {err}");
            std::process::exit(2);
        }
    };

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/register", post(register))
        .route("/me", get(me))
        .route("/ready", get(ready))
        .with_state(otp.clone())
        .layer(otp.layer());

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let addr = format!("{host}:{port}");
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    tracing::info!("quickstart listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("server error");
}

/// Runs only when the caller holds a grant for both an email and a mobile.
async fn register(
    VerifiedEmail(email, _): VerifiedEmail,
    VerifiedMobile(mobile, _): VerifiedMobile,
) -> Json<Value> {
    Json(json!({
        "status": "success",
        "email": email.as_str(),
        "mobile": mobile.as_str(),
    }))
}

/// What the caller's grant proves, if anything.
async fn me(contact: Option<tower_otp::VerifiedContact>) -> Json<Value> {
    let email = contact
        .as_ref()
        .and_then(|c| c.email())
        .map(|e| e.as_str().to_owned());
    let mobile = contact
        .as_ref()
        .and_then(|c| c.mobile())
        .map(|m| m.as_str().to_owned());
    Json(json!({ "email": email, "mobile": mobile }))
}

/// The readiness probe: which dependency failed, never why (that is logged).
async fn ready(State(otp): State<Otp>) -> (StatusCode, Json<Value>) {
    let readiness = otp.readiness().await;
    if readiness.is_ready() {
        return (StatusCode::OK, Json(json!({"status": "ready"})));
    }
    for (name, check) in readiness.checks() {
        if let tower_otp::readiness::Check::Failed(reason) = check {
            tracing::error!(dependency = name, reason = %reason, "readiness check failed");
        }
    }
    let failed: Vec<&str> = readiness.failed().collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "failed": failed})),
    )
}
