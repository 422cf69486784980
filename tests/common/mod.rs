//! The helpers every test binary shares (`mod common;`), in one place: the
//! base builder, a JSON POST through the layer, the skip rule for missing
//! services, the axum test app, Redis and SMTP servers. Each test binary
//! uses only some of them.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod app;
pub mod audit;
#[cfg(unix)]
pub mod browser;
pub mod logs;
#[cfg(feature = "redis")]
pub mod redis_server;
pub mod skip;
pub mod smtp_server;

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_otp::{
    Otp, OtpBuilder,
    delivery::{MemoryOutbox, RetryPolicy},
    hash::HashParams,
};

/// The tests' server secret (32+ bytes).
pub const SECRET: &str = "test secret: thirty-two bytes long!";
/// A mobile number every region accepts.
pub const MOBILE: &str = "+14155550123";

/// A builder with the test secret, tiny Argon2 parameters and quick
/// delivery retries (3 tries, 10 ms apart).
pub fn builder() -> OtpBuilder {
    Otp::builder()
        .secret(SECRET)
        .hash_params(HashParams::insecure_fast())
        .retry_policy(RetryPolicy::new(3, Duration::from_millis(10)))
}

/// [`builder`] delivering emails and SMS into `outbox`.
pub fn builder_with(outbox: &MemoryOutbox) -> OtpBuilder {
    builder()
        .email_sender(outbox.clone())
        .sms_sender(outbox.clone())
}

/// POSTs `body` as JSON to `path` through `otp`'s layer (in process, with
/// `oneshot`); the status and the JSON answer.
pub async fn post(otp: &Otp, path: &str, body: Value) -> (StatusCode, Value) {
    let app = ServiceBuilder::new().layer(otp.layer()).service(service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        },
    ));
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

/// The six-digit run in `text` (the code in a message).
pub fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}
