//! Layer costs, in process through `tower::ServiceExt`:
//!
//! - `passthrough`: a bare axum handler vs the same router wrapped in
//!   `OtpLayer` (the layer around the router) and mounted with
//!   `Router::layer` (axum boxes each layered route); a do-nothing
//!   forwarding wrapper is the floor any layer starts from. Once with a
//!   header-less request, once with the headers a browser sends (the layer
//!   looks for a grant header and scans the Cookie header).
//! - `extractor`: a handler taking `VerifiedContact`, `VerifiedEmail` or
//!   `Option<VerifiedContact>` on a request with a valid grant, vs a handler
//!   with no extractor.
//! - `flow`: a full send + verify through the layer with `MemoryStore` and
//!   `MemoryOutbox` (default Argon2 parameters: two hashes per flow), and
//!   with `RedisStore` when Redis answers at `REDIS_URL`.
//!
//! ```text
//! cargo bench --bench layer
//! ```
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};
use tower_otp::{
    Otp, OtpBuilder, VerifiedContact, VerifiedEmail, delivery::MemoryOutbox, hash::HashParams,
    store::RedisStore,
};

const SECRET: &str = "benchmark secret, 32 bytes long!";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn get_root() -> Request<Body> {
    Request::get("/").body(Body::empty()).expect("request")
}

/// `GET /` as a browser sends it: ten headers, five cookies, no grant.
fn get_root_from_browser() -> Request<Body> {
    Request::get("/")
        .header("host", "app.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-GB,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .header("referer", "https://app.example.com/account")
        .header(
            "cookie",
            "session=5f2b9c1e0d8a4b7c9e3f1a2b3c4d5e6f; theme=dark; lang=en-GB; \
             _ga=GA1.1.123456789.1700000000; consent=analytics%3Dno%26ads%3Dno",
        )
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-mode", "navigate")
        .header("upgrade-insecure-requests", "1")
        .body(Body::empty())
        .expect("request")
}

fn passthrough(c: &mut Criterion) {
    let rt = runtime();
    let otp = Otp::builder()
        .secret(SECRET)
        .hash_params(HashParams::insecure_fast())
        .build()
        .expect("config");
    let bare: Router = Router::new().route("/", get(|| async { "hello" }));
    let wrapped = tower::ServiceBuilder::new()
        .layer(otp.layer())
        .service(bare.clone());
    let routed = bare.clone().layer(otp.layer());

    let mut group = c.benchmark_group("passthrough");
    group.bench_function("bare_router", |b| {
        b.to_async(&rt).iter(|| bare.clone().oneshot(get_root()));
    });
    group.bench_function("wrapped_in_otp_layer", |b| {
        b.to_async(&rt).iter(|| wrapped.clone().oneshot(get_root()));
    });
    let forwarding = Forwarding {
        inner: bare.clone(),
        _shared: Arc::new(()),
    };
    group.bench_function("forwarding_wrapper", |b| {
        b.to_async(&rt)
            .iter(|| forwarding.clone().oneshot(get_root()));
    });
    group.bench_function("router_layer_otp", |b| {
        b.to_async(&rt).iter(|| routed.clone().oneshot(get_root()));
    });
    group.finish();

    let mut group = c.benchmark_group("passthrough_browser_headers");
    group.bench_function("bare_router", |b| {
        b.to_async(&rt)
            .iter(|| bare.clone().oneshot(get_root_from_browser()));
    });
    group.bench_function("wrapped_in_otp_layer", |b| {
        b.to_async(&rt)
            .iter(|| wrapped.clone().oneshot(get_root_from_browser()));
    });
    group.finish();
}

/// Runs send + verify for `email` through `app`; panics on any failure.
async fn flow<S, B>(app: S, outbox: &MemoryOutbox, email: &str) -> String
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let sent = app
        .clone()
        .oneshot(post("/send-otp/", json!({ "email": email })))
        .await
        .expect("send");
    assert!(sent.status().is_success(), "send failed: {}", sent.status());
    let code = outbox.last_code_for(email).expect("code");
    let verified = app
        .clone()
        .oneshot(post("/verify-otp/", json!({ "email": email, "otp": code })))
        .await
        .expect("verify");
    assert!(verified.status().is_success());
    let body = verified
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("json");
    body["token"].as_str().expect("token").to_owned()
}

fn builder(outbox: &MemoryOutbox) -> OtpBuilder {
    Otp::builder()
        .secret(SECRET)
        .email_sender(outbox.clone())
        // The bench sends many codes to one address from no client IP.
        .resend_cooldown(std::time::Duration::ZERO)
        .send_quota(u32::MAX, std::time::Duration::from_secs(600))
}

fn extractors(c: &mut Criterion) {
    let rt = runtime();
    let outbox = MemoryOutbox::new();
    let otp = builder(&outbox)
        .hash_params(HashParams::insecure_fast())
        .build()
        .expect("config");
    let router: Router = Router::new()
        .route("/plain", get(|| async { "hello" }))
        .route("/contact", get(|_: VerifiedContact| async { "hello" }))
        .route("/email", get(|_: VerifiedEmail| async { "hello" }))
        .route(
            "/maybe",
            get(|_: Option<VerifiedContact>| async { "hello" }),
        );
    let app = tower::ServiceBuilder::new()
        .layer(otp.layer())
        .service(router);
    let token = rt.block_on(flow(app.clone(), &outbox, "bench@example.com"));

    let mut group = c.benchmark_group("extractor");
    for path in ["/plain", "/contact", "/email", "/maybe"] {
        group.bench_function(path.trim_start_matches('/'), |b| {
            b.to_async(&rt).iter(|| {
                let request = Request::get(path)
                    .header("x-verification-token", &token)
                    .body(Body::empty())
                    .expect("request");
                let app = app.clone();
                async move {
                    let response = app.oneshot(request).await.expect("response");
                    assert!(response.status().is_success());
                }
            });
        });
    }
    group.finish();
}

fn flows(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("flow");
    group.sample_size(20);

    let outbox = MemoryOutbox::new();
    let otp = builder(&outbox).build().expect("config");
    let app = tower::ServiceBuilder::new()
        .layer(otp.layer())
        .service(Router::new());
    group.bench_function("send_verify_memory", |b| {
        b.to_async(&rt)
            .iter(|| flow(app.clone(), &outbox, "flow@example.com"));
    });

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = RedisStore::builder(url)
        .prefix(format!("otp-bench:{}:", std::process::id()))
        .build()
        .ok()
        .map(Arc::new);
    match store {
        Some(store) if rt.block_on(store.ping()).is_ok() => {
            let outbox = MemoryOutbox::new();
            let otp = builder(&outbox)
                .shared_store(store)
                .build()
                .expect("config");
            let app = tower::ServiceBuilder::new()
                .layer(otp.layer())
                .service(Router::new());
            group.bench_function("send_verify_redis", |b| {
                b.to_async(&rt)
                    .iter(|| flow(app.clone(), &outbox, "flow@example.com"));
            });
        }
        _ => eprintln!("flow/send_verify_redis skipped: no Redis at REDIS_URL"),
    }
    group.finish();
}

criterion_group!(benches, passthrough, extractors, flows);
criterion_main!(benches);

/// The floor for any layer: a service that holds an `Arc` (as `OtpService`
/// holds its engine) and forwards every request and response untouched.
#[derive(Clone)]
struct Forwarding<S> {
    inner: S,
    _shared: Arc<()>,
}

impl<S: Service<Request<Body>>> Service<Request<Body>> for Forwarding<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> S::Future {
        self.inner.call(request)
    }
}
