use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{ResponseBody, ResponseFuture};
use crate::{
    engine::Engine,
    extract::OtpHandle,
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
                if self.engine.sniffer.may_carry(request.headers()) {
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
    /// Bit `n` set when some entry is `n` bytes long (bit 63: 63 or more):
    /// most passthrough paths are turned away on their length alone.
    lengths: u64,
}

#[inline]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
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
        let lengths = entries
            .iter()
            .fold(0, |bits, (path, _)| bits | length_bit(path.len()));
        Self { entries, lengths }
    }

    /// The route served at `path`, if any.
    #[inline]
    pub(crate) fn find(&self, path: &str) -> Option<Route> {
        if self.lengths & length_bit(path.len()) == 0 {
            return None;
        }
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, route)| *route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoutePaths;

    #[test]
    fn finds_each_path_with_and_without_slash_whatever_its_length() {
        for prefix in ["", "/api", &format!("/{}", "long".repeat(20))] {
            let table = RouteTable::new(&RoutePaths {
                prefix: prefix.to_owned(),
                ..RoutePaths::default()
            });
            assert_eq!(
                table.find(&format!("{prefix}/send-otp/")),
                Some(Route::SendEmail)
            );
            assert_eq!(
                table.find(&format!("{prefix}/send-otp")),
                Some(Route::SendEmail)
            );
            assert_eq!(
                table.find(&format!("{prefix}/verify-mobile-otp")),
                Some(Route::VerifyMobile)
            );
            // Same length as an OTP path, or longer than 63 bytes: compared in full.
            assert_eq!(table.find(&format!("{prefix}/send-otx/")), None);
            assert_eq!(
                table.find(&format!("{prefix}/send-otp/{}", "x".repeat(70))),
                None
            );
            assert_eq!(table.find("/"), None);
        }
    }
}
