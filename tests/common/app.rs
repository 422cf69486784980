//! Test app for the HTTP-level tests: an axum Router with a passthrough page
//! and gated handlers, behind the real `OtpLayer`, driven in process.

use std::time::Duration;

use axum::{
    Json, Router,
    body::Body,
    routing::{get, post},
};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_otp::{
    Otp, OtpBuilder, VerifiedContact, VerifiedEmail, VerifiedMobile, delivery::MemoryOutbox,
};

/// A response as the client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a contract error: status, code and the common shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["status"], "error", "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
        assert!(self.header("content-type").starts_with("application/json"));
    }

    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        assert_eq!(self.body["status"], "success", "body: {}", self.body);
    }

    pub fn token(&self) -> String {
        self.body["token"].as_str().unwrap_or_default().to_owned()
    }
}

/// The host app: passthrough routes and gated routes behind the layer.
#[derive(Clone)]
pub struct TestApp {
    pub otp: Otp,
    pub outbox: MemoryOutbox,
    pub router: Router,
}

impl TestApp {
    pub fn new() -> Self {
        let outbox = MemoryOutbox::new();
        Self::with(super::builder_with(&outbox), outbox)
    }

    pub fn with(builder: OtpBuilder, outbox: MemoryOutbox) -> Self {
        let otp = builder.build().expect("valid test configuration");
        let router = host_routes().layer(otp.layer());
        Self {
            otp,
            outbox,
            router,
        }
    }

    pub async fn request(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.request(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Body) -> Answer {
        let mut request = Request::post(path);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        self.request(request.body(body).unwrap()).await
    }

    pub async fn send_email(&self, email: &str) -> Answer {
        self.post("/send-otp/", json!({ "email": email })).await
    }

    pub async fn verify_email(&self, email: &str, otp: &str) -> Answer {
        self.post("/verify-otp/", json!({ "email": email, "otp": otp }))
            .await
    }

    pub async fn send_mobile(&self, mobile: &str) -> Answer {
        self.post("/send-mobile-otp/", json!({ "mobile": mobile }))
            .await
    }

    pub async fn verify_mobile(&self, mobile: &str, otp: &str) -> Answer {
        self.post(
            "/verify-mobile-otp/",
            json!({ "mobile": mobile, "otp": otp }),
        )
        .await
    }

    /// The code in the newest message to `recipient`.
    pub fn code_for(&self, recipient: &str) -> String {
        self.outbox
            .last_code_for(recipient)
            .unwrap_or_else(|| panic!("no code was sent to {recipient}"))
    }

    /// Sends and verifies `email`, returning the grant token.
    pub async fn prove_email(&self, email: &str) -> String {
        self.send_email(email).await.assert_success();
        let answer = self.verify_email(email, &self.code_for(email)).await;
        answer.assert_success();
        answer.token()
    }

    /// A GET with the grant in the token header.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Answer {
        self.request(
            Request::get(path)
                .header("x-verification-token", token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }
}

/// A wrong code of the right shape (differs from `code` in every digit).
pub fn wrong_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

pub fn host_routes() -> Router {
    Router::new()
        .route("/", get(|| async { "home page" }))
        .route(
            "/echo",
            post(|body: String| async move { format!("echo:{body}") }),
        )
        .route(
            "/register",
            post(
                |VerifiedEmail(e, _): VerifiedEmail, VerifiedMobile(m, _): VerifiedMobile| async move {
                    Json(json!({"status": "success", "email": e.as_str(), "mobile": m.as_str()}))
                },
            ),
        )
        .route(
            "/email-only",
            get(|VerifiedEmail(e, _): VerifiedEmail| async move { e.as_str().to_owned() }),
        )
        .route(
            "/mobile-only",
            get(|VerifiedMobile(m, _): VerifiedMobile| async move { m.as_str().to_owned() }),
        )
        .route(
            "/any",
            get(|c: VerifiedContact| async move {
                Json(json!({
                    "email": c.email().map(|e| e.as_str().to_owned()),
                    "mobile": c.mobile().map(|m| m.as_str().to_owned()),
                }))
            }),
        )
        .route(
            "/maybe",
            get(|c: Option<VerifiedContact>| async move {
                match c {
                    Some(c) => c.email().map_or("mobile", |e| e.as_str()).to_owned(),
                    None => "anonymous".to_owned(),
                }
            }),
        )
}

/// Serves the host routes behind `builder`'s layer on 127.0.0.1:0 with
/// `ConnectInfo` (so the client IP is known); returns the base URL.
pub async fn serve(builder: OtpBuilder) -> String {
    let otp = builder.build().expect("valid test configuration");
    let app = host_routes().layer(otp.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A JSON POST over a real socket to `base` + `path` with extra `headers`:
/// the status, the headers and the JSON body (`Null` when not JSON).
pub async fn post_http(
    base: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}
