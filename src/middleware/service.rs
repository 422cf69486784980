use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{ResponseBody, ResponseFuture};
use crate::{
    config::{DEFAULT_TOKEN_HEADER, GRANT_COOKIE},
    engine::Engine,
    extract::OtpHandle,
    grant::GrantCodec,
    routes::{self, BoxError, Route},
};

/// The service made by [`OtpLayer`](super::OtpLayer).
///
/// Requests to the four OTP paths are answered here; every other request
/// goes to the inner service as it is; when it may carry a grant, an
/// [`OtpHandle`] is added to its extensions so that the extractors can check
/// it.
#[derive(Debug, Clone)]
pub struct OtpService<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S> OtpService<S> {
    pub(crate) fn new(inner: S, engine: Arc<Engine>) -> Self {
        Self { inner, engine }
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
        match self.engine.routes.find(request.uri().path()) {
            None => {
                // Only requests that may carry a grant get the handle: the
                // others pass through without any allocation.
                let config = &self.engine.config;
                let headers = request.headers();
                // The default header too: the extractor reads a grant-looking
                // request without a handle as "layer not mounted".
                if GrantCodec::may_carry(headers, &config.token_header, GRANT_COOKIE)
                    || headers.contains_key(DEFAULT_TOKEN_HEADER)
                {
                    request
                        .extensions_mut()
                        .insert(OtpHandle::new(Arc::clone(&self.engine)));
                }
                ResponseFuture::inner(self.inner.call(request))
            }
            Some(route) => ResponseFuture::otp(Box::pin(routes::handle(
                Arc::clone(&self.engine),
                route,
                request,
            ))),
        }
    }
}

/// The OTP paths, each with and without its trailing slash, prefix applied.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    entries: Vec<(String, Route)>,
}

impl RouteTable {
    pub(crate) fn new(paths: &crate::config::RoutePaths) -> Self {
        let prefix = paths.prefix.trim_end_matches('/');
        let mut entries = Vec::with_capacity(8);
        for (path, route) in [
            (&paths.send_email, Route::SendEmail),
            (&paths.verify_email, Route::VerifyEmail),
            (&paths.send_mobile, Route::SendMobile),
            (&paths.verify_mobile, Route::VerifyMobile),
        ] {
            let bare = format!("{prefix}{}", path.trim_end_matches('/'));
            entries.push((format!("{bare}/"), route));
            entries.push((bare, route));
        }
        Self { entries }
    }

    /// The route served at `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<Route> {
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, route)| *route)
    }
}
