//! # production: a deployment template, configured entirely from the environment
//!
//! ```text
//! OTP_SECRET=$(openssl rand -base64 32) \
//! REDIS_OTP_URL=redis://127.0.0.1:6379 \
//! EMAIL_SERVER=SMTP EMAIL_HOST=smtp.example.com EMAIL_PORT=587 \
//! EMAIL_HOST_USER=apikey EMAIL_HOST_PASSWORD=... DEFAULT_FROM_EMAIL=no-reply@example.com \
//! SMS_SERVER=TWILIO_VERIFY TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... \
//! TWILIO_VERIFY_SERVICE_SID=VA... \
//! OTP_TRUSTED_PROXIES=10.0.0.0/8 OTP_SMS_ALLOWED_COUNTRIES=1,91 \
//! cargo run --example production
//! ```
//!
//! - Sets the production flag: it refuses to start without a real sender
//!   for each served channel (`OTP_CHANNELS=email` serves email only), with
//!   a missing, short or documented `OTP_SECRET`, an insecure cookie, weak
//!   hash parameters or test mode, naming the variable at fault.
//! - Redis (`REDIS_OTP_URL`, one URL or a comma-separated cluster seed list)
//!   holds codes, cooldowns, quotas and the per-IP limits for every instance.
//! - Email by SMTP (`EMAIL_SERVER=SMTP`) or SendGrid (`EMAIL_SERVER=SENDGRID`,
//!   `SENDGRID_API_KEY`); SMS by Twilio Verify or Twilio Messaging
//!   (`SMS_SERVER=TWILIO`, `TWILIO_FROM_NUMBER`).
//! - Behind a load balancer, list it in `OTP_TRUSTED_PROXIES` so client
//!   addresses come from `X-Forwarded-For` / `Forwarded` (right-most
//!   untrusted hop).
//! - Listens on `HOST:PORT` (default `0.0.0.0:8080`) and shuts down
//!   gracefully on Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    routing::{get, post},
};
use serde_json::{Value, json};
use tower_otp::{OtpBuilder, VerifiedEmail, VerifiedMobile};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .json()
        .init();

    // No `.random_secret()`: a missing OTP_SECRET is a start-up error.
    let otp = match OtpBuilder::from_env().and_then(|b| b.production().build()) {
        Ok(otp) => otp,
        Err(err) => {
            eprintln!("refusing to start: {err}");
            std::process::exit(2);
        }
    };

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/register", post(register))
        .layer(otp.layer());

    let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = match tokio::net::TcpListener::bind(format!("{host}:{port}")).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {host}:{port}: {err}");
            std::process::exit(1);
        }
    };
    tracing::info!(%host, %port, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .expect("server error");
}

async fn register(
    VerifiedEmail(email, _): VerifiedEmail,
    VerifiedMobile(mobile, _): VerifiedMobile,
) -> Json<Value> {
    // Create the account here.
    Json(json!({ "status": "success", "email": email.as_str(), "mobile": mobile.as_str() }))
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
