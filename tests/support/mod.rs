//! Helpers shared by the `delivery_*` tests: a fast-hashing builder and a
//! JSON POST through the layer (in process, with `oneshot`).

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_otp::{Otp, OtpBuilder, delivery::RetryPolicy, hash::HashParams};

pub const MOBILE: &str = "+14155550123";

/// A builder with a test secret, fast hashing and quick retries (3 tries).
pub fn builder() -> OtpBuilder {
    Otp::builder()
        .secret("delivery tests secret, 32 bytes!")
        .hash_params(HashParams::insecure_fast())
        .retry_policy(RetryPolicy {
            max_tries: 3,
            initial_backoff: Duration::from_millis(10),
        })
}

/// POSTs `body` as JSON to `path` through `otp`'s layer; the status and the
/// JSON answer.
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
