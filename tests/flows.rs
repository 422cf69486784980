//! Whole flows: concurrency properties through the layer, real HTTP with
//! axum and with a plain hyper `service_fn`.

mod common;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use common::{
    app::{TestApp, wrong_code},
    builder_with,
};
use futures_util::future::join_all;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_otp::{
    MemoryStore, OtpStore, StoreError,
    delivery::MemoryOutbox,
    store::{
        Attempt, CodeRecord, FailureBudget, FailureOutcome, SendLimits, SendReservation, StoreKey,
    },
    verify_parts,
};

/// Counts the attempts the store granted, i.e. the guesses that were hashed.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    granted: AtomicUsize,
}

#[async_trait]
impl OtpStore for CountingStore {
    async fn reserve_send(
        &self,
        k: &StoreKey,
        l: &SendLimits,
    ) -> Result<SendReservation, StoreError> {
        self.inner.reserve_send(k, l).await
    }
    async fn release_cooldown(&self, k: &StoreKey) -> Result<(), StoreError> {
        self.inner.release_cooldown(k).await
    }
    async fn put_code(&self, k: &StoreKey, r: &CodeRecord, t: Duration) -> Result<(), StoreError> {
        self.inner.put_code(k, r, t).await
    }
    async fn begin_attempt(&self, k: &StoreKey, max: u32) -> Result<Attempt, StoreError> {
        let attempt = self.inner.begin_attempt(k, max).await?;
        if matches!(attempt, Attempt::Granted { .. }) {
            self.granted.fetch_add(1, Ordering::SeqCst);
        }
        Ok(attempt)
    }
    async fn remove_code(&self, k: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        self.inner.remove_code(k, salt).await
    }
    async fn spend_grant(&self, k: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.spend_grant(k, ttl).await
    }
    async fn consume_code(&self, k: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        self.inner.consume_code(k, salt).await
    }
    async fn record_failure(
        &self,
        k: &StoreKey,
        budget: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError> {
        self.inner.record_failure(k, budget).await
    }
    async fn reset_failures(&self, k: &StoreKey) -> Result<(), StoreError> {
        self.inner.reset_failures(k).await
    }
}

fn counting_app() -> (TestApp, Arc<CountingStore>) {
    let store = Arc::new(CountingStore::default());
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox)
            .shared_store(store.clone())
            .hash_pool_size(2, 256),
        outbox,
    );
    (app, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_correct_verifies_succeed_exactly_once() {
    let (app, _) = counting_app();
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    let answers = join_all((0..100).map(|_| {
        let app = app.clone();
        let code = code.clone();
        tokio::spawn(async move { app.verify_email("a@b.co", &code).await })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let successes = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(successes, 1);
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert!(
            matches!(answer.code(), "otp_expired" | "attempts_exceeded"),
            "unexpected {}",
            answer.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_wrong_guesses_evaluate_at_most_max_attempts() {
    let (app, store) = counting_app();
    app.send_email("a@b.co").await.assert_success();
    let code = app.code_for("a@b.co");
    let wrong = wrong_code(&code);
    let answers = join_all((0..100).map(|_| {
        let app = app.clone();
        let wrong = wrong.clone();
        tokio::spawn(async move { app.verify_email("a@b.co", &wrong).await })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let hashed = store.granted.load(Ordering::SeqCst);
    assert!(hashed <= 5, "{hashed} guesses were evaluated");
    let invalid = answers.iter().filter(|a| a.code() == "otp_invalid").count();
    assert!(invalid <= 4, "{invalid} otp_invalid answers");
    // The rest were refused without a hash: attempts exhausted while the
    // code lived, then no live code once it was destroyed.
    assert!(answers.iter().any(|a| a.code() == "attempts_exceeded"));
    for answer in answers.iter().filter(|a| a.code() != "otp_invalid") {
        assert!(
            matches!(answer.code(), "attempts_exceeded" | "otp_expired"),
            "unexpected {}",
            answer.body
        );
    }
    // The code was destroyed: the right one is now refused.
    app.verify_email("a@b.co", &code)
        .await
        .assert_error(400, "otp_expired");
}

async fn body_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn full_registration_over_real_http_with_axum() {
    let outbox = MemoryOutbox::new();
    let base = common::app::serve(builder_with(&outbox).insecure_cookie()).await;
    // A browser-like client that keeps cookies: the grant travels as a cookie.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();

    let (status, _) = body_json(post("/register", json!({})).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    post("/send-otp/", json!({"email": "ada@example.com"}))
        .await
        .unwrap();
    let code = outbox.last_code_for("ada@example.com").unwrap();
    let (status, body) = body_json(
        post(
            "/verify-otp/",
            json!({"email": "ada@example.com", "otp": code}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    post("/send-mobile-otp/", json!({"mobile": "+14155550123"}))
        .await
        .unwrap();
    let code = outbox.last_code_for("+14155550123").unwrap();
    let (status, body) = body_json(
        post(
            "/verify-mobile-otp/",
            json!({"mobile": "+14155550123", "otp": code}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["verified"],
        json!({"email": "ada@example.com", "mobile": "+14155550123"})
    );

    let response = client
        .post(format!("{base}/register"))
        .send()
        .await
        .unwrap();
    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "email": "ada@example.com", "mobile": "+14155550123"})
    );
}

async fn plain_app(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/whoami" {
        return Ok(match verify_parts(&parts) {
            Ok(contact) => Response::new(Full::from(contact.email().unwrap().as_str().to_owned())),
            Err(rejection) => tower_otp::ApiError::from(rejection).to_response(),
        });
    }
    let bytes = body.collect().await.unwrap().to_bytes();
    let mut response = Response::new(Full::new(bytes));
    response
        .headers_mut()
        .insert("x-inner", "yes".parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn the_layer_wraps_a_plain_hyper_service_fn() {
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    let outbox = MemoryOutbox::new();
    let otp = builder_with(&outbox).build().unwrap();
    let service = ServiceBuilder::new()
        .layer(otp.layer())
        .service_fn(plain_app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    // Passthrough: the inner service sees the body and answers untouched.
    let payload = "z".repeat(20_000);
    let response = client
        .post(format!("{base}/anything"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-inner"], "yes");
    assert_eq!(response.text().await.unwrap(), payload);

    // OTP routes and the framework-free gate.
    let response = client
        .post(format!("{base}/send-otp"))
        .json(&json!({"email": "h@b.co"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let code = outbox.last_code_for("h@b.co").unwrap();
    let (_, body) = body_json(
        client
            .post(format!("{base}/verify-otp"))
            .json(&json!({"email": "h@b.co", "otp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let response = client.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client
        .get(format!("{base}/whoami"))
        .header("x-verification-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "h@b.co");
}
