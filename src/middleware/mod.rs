//! The Tower middleware: [`OtpLayer`] wraps any service in an [`OtpService`].
//!
//! The service serves the four OTP routes itself and passes every other
//! request to the inner service untouched: same request, same response, same
//! body, streamed, never buffered. The decision is made synchronously in
//! `call`, and the passthrough path neither boxes nor clones the inner
//! service; only the OTP branch holds a boxed future.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_otp::Otp;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
//! let app = ServiceBuilder::new().layer(otp.layer()).service(service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//! }));
//!
//! // Not an OTP path: the inner service answers.
//! let res = app.clone().oneshot(Request::get("/").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // An OTP path with the wrong method: 405 with `Allow: POST`.
//! let res = app.oneshot(Request::get("/send-otp/").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
//! assert_eq!(res.headers()["allow"], "POST");
//! # });
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::OtpLayer;
pub use service::OtpService;

use std::sync::Arc;

use crate::routes::{RouteContext, table::RouteTable};

/// The layer's own state: which paths it serves, and what its routes and
/// the extractors' checker need.
#[derive(Debug)]
pub(crate) struct LayerState {
    pub(crate) table: RouteTable,
    pub(crate) ctx: Arc<RouteContext>,
}

/// Static proof that the layer, the service and its futures can cross
/// threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<OtpLayer>();
    send_sync::<OtpService<()>>();
    send_sync::<ResponseBody<http_body_util::Full<bytes::Bytes>>>();
    send::<ResponseFuture<std::future::Ready<()>>>();
    send_sync::<crate::extract::GrantChecker>();
}
