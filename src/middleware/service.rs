use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{LayerState, ResponseBody, ResponseFuture};
use crate::routes::{self, BoxError};

/// The service made by [`OtpLayer`](super::OtpLayer).
///
/// Requests to the four OTP paths are answered here; every other request
/// goes to the inner service as it is; when it may carry a grant, a
/// [`GrantChecker`](crate::extract::GrantChecker) is added to its extensions
/// so that the extractors can check it.
#[derive(Debug, Clone)]
pub struct OtpService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S> OtpService<S> {
    pub(crate) fn new(inner: S, state: Arc<LayerState>) -> Self {
        Self { inner, state }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OtpService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.state.table.find(request.uri().path()) {
            None => {
                // Only requests that may carry a grant get the checker: the
                // others pass through without any allocation.
                let checker = &self.state.ctx.checker;
                if checker.location().may_carry(request.headers()) {
                    checker.location().mark_sensitive(request.headers_mut());
                    request.extensions_mut().insert(checker.clone());
                }
                ResponseFuture::inner(self.inner.call(request))
            }
            Some(route) => ResponseFuture::otp(Box::pin(routes::handle(
                Arc::clone(&self.state.ctx),
                route,
                request,
            ))),
        }
    }
}
