//! # admin: the operator's API behind the host's own authentication
//!
//! ```text
//! ADMIN_TOKEN=$(openssl rand -hex 32) cargo run --example admin --features axum
//! ```
//!
//! `tower-otp` mounts no admin route. This example exposes
//! [`Otp::admin`](tower_otp::Otp::admin) as five JSON routes, each behind
//! a bearer token read from `ADMIN_TOKEN` and compared in constant time (a
//! real host would use its own staff login instead):
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/contacts/{contact}` | what is pending: codes by purpose (seconds and attempts left), sends in the window, cooldown, failure budget |
//! | `DELETE /admin/contacts/{contact}/codes[?purpose=login]` | cancel the pending code of one purpose, or of all |
//! | `POST /admin/contacts/{contact}/unlock` | reset the failure budget, the cooldown and the quota |
//! | `GET /admin/sms-ranges` | the number ranges the SMS fraud breaker blocks (`OTP_SMS_BREAKER=true`): range, seconds left, sent and verified when it tripped |
//! | `DELETE /admin/sms-ranges/{range}` | lift a range's block (`%2B447400`) |
//!
//! `{contact}` is an email address or a mobile number (URL-encoded: `+` is
//! `%2B`). The rest of the configuration comes from the environment
//! (`OtpBuilder::from_env`: `REDIS_OTP_URL` shares codes and limits with
//! other instances; build with `--features axum,redis` for it). Listens on
//! 127.0.0.1:3003 (`PORT` overrides); codes print to the console.
//!
//! ```text
//! curl -s -X POST localhost:3003/send-otp/ -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com"}'
//! curl -s localhost:3003/admin/contacts/ada@example.com -H "authorization: Bearer $ADMIN_TOKEN"
//! curl -s -X DELETE localhost:3003/admin/contacts/ada@example.com/codes -H "authorization: Bearer $ADMIN_TOKEN"
//! curl -s -X POST localhost:3003/admin/contacts/ada@example.com/unlock -H "authorization: Bearer $ADMIN_TOKEN"
//! curl -s localhost:3003/admin/sms-ranges -H "authorization: Bearer $ADMIN_TOKEN"
//! curl -s -X DELETE localhost:3003/admin/sms-ranges/%2B447400 -H "authorization: Bearer $ADMIN_TOKEN"
//! ```

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_otp::{
    OtpBuilder,
    admin::{Admin, AdminError},
};

#[derive(Clone)]
struct AdminState {
    admin: Admin,
    token: Arc<[u8]>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let token = std::env::var("ADMIN_TOKEN").unwrap_or_default();
    if token.len() < 32 {
        eprintln!("set ADMIN_TOKEN to a random value of at least 32 characters");
        std::process::exit(2);
    }
    let mut builder = OtpBuilder::from_env().expect("configuration from the environment");
    if std::env::var_os("OTP_SECRET").is_none() {
        builder = builder.random_secret().insecure_cookie(); // a local trial
    }
    let otp = builder.build().expect("valid configuration");
    let state = AdminState {
        admin: otp.admin(),
        token: token.into_bytes().into(),
    };

    let admin_routes = Router::new()
        .route("/admin/contacts/{contact}", get(pending))
        .route("/admin/contacts/{contact}/codes", delete(cancel))
        .route("/admin/contacts/{contact}/unlock", post(unlock))
        .route("/admin/sms-ranges", get(blocked_ranges))
        .route("/admin/sms-ranges/{range}", delete(lift_range))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    let app = admin_routes.layer(otp.layer());

    let port = std::env::var("PORT").unwrap_or_else(|_| "3003".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind");
    tracing::info!("admin example listening on http://127.0.0.1:{port}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("server error");
}

/// `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(&state.token)) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"status": "error", "code": "unauthorized"})),
        )
            .into_response()
    }
}

async fn pending(
    State(state): State<AdminState>,
    Path(contact): Path<String>,
) -> Result<Response, Response> {
    let contact = state.admin.parse_contact(&contact).map_err(refusal)?;
    let report = state.admin.pending(&contact).await.map_err(refusal)?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct CancelQuery {
    purpose: Option<String>,
}

async fn cancel(
    State(state): State<AdminState>,
    Path(contact): Path<String>,
    Query(query): Query<CancelQuery>,
) -> Result<Response, Response> {
    let contact = state.admin.parse_contact(&contact).map_err(refusal)?;
    let cancelled = state
        .admin
        .cancel(&contact, query.purpose.as_deref())
        .await
        .map_err(refusal)?;
    Ok(Json(json!({"status": "success", "cancelled": cancelled})).into_response())
}

async fn unlock(
    State(state): State<AdminState>,
    Path(contact): Path<String>,
) -> Result<Response, Response> {
    let contact = state.admin.parse_contact(&contact).map_err(refusal)?;
    state.admin.unlock(&contact).await.map_err(refusal)?;
    Ok(Json(json!({"status": "success"})).into_response())
}

async fn blocked_ranges(State(state): State<AdminState>) -> Result<Response, Response> {
    let blocks = state.admin.blocked_ranges().await.map_err(refusal)?;
    Ok(Json(json!({"status": "success", "blocked": blocks})).into_response())
}

async fn lift_range(
    State(state): State<AdminState>,
    Path(range): Path<String>,
) -> Result<Response, Response> {
    let lifted = state
        .admin
        .lift_range_block(&range)
        .await
        .map_err(refusal)?;
    Ok(Json(json!({"status": "success", "lifted": lifted})).into_response())
}

/// Plain words for the operator; store internals go to the log only.
fn refusal(error: AdminError) -> Response {
    let (status, code) = match &error {
        AdminError::InvalidContact(_) => (StatusCode::BAD_REQUEST, "invalid_contact"),
        AdminError::UnknownPurpose => (StatusCode::BAD_REQUEST, "invalid_purpose"),
        AdminError::InvalidRange => (StatusCode::BAD_REQUEST, "invalid_range"),
        AdminError::Store(e) if e.is_unsupported() => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
        AdminError::Store(e) if e.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    if status.is_server_error() {
        tracing::error!(error = %error, "admin request failed");
    }
    (status, Json(json!({"status": "error", "code": code}))).into_response()
}
