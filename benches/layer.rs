//! Layer overhead: a bare axum handler vs the same handler behind `OtpLayer`
//! (passthrough path), in process through `tower::ServiceExt`.
//!
//! ```text
//! cargo bench --bench layer
//! ```
#![allow(missing_docs)] // criterion_group! generates undocumented items

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_otp::{Otp, hash::HashParams};

fn passthrough(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let otp = Otp::builder()
        .secret("benchmark secret, 32 bytes long!")
        .hash_params(HashParams::insecure_fast())
        .build()
        .expect("config");
    let bare: Router = Router::new().route("/", get(|| async { "hello" }));
    let layered = bare.clone().layer(otp.layer());

    let mut group = c.benchmark_group("passthrough");
    group.bench_function("bare_handler", |b| {
        let service = bare.clone();
        b.to_async(&runtime).iter(|| {
            let request = Request::get("/").body(Body::empty()).expect("request");
            service.clone().oneshot(request)
        });
    });
    group.bench_function("behind_otp_layer", |b| {
        let service = layered.clone();
        b.to_async(&runtime).iter(|| {
            let request = Request::get("/").body(Body::empty()).expect("request");
            service.clone().oneshot(request)
        });
    });
    group.finish();
}

criterion_group!(benches, passthrough);
criterion_main!(benches);
