use std::sync::Arc;

use tower_layer::Layer;

use super::OtpService;
use crate::engine::Engine;

/// A [`Layer`] that serves the OTP routes in front of an inner service.
///
/// Made by [`Otp::layer`](crate::Otp::layer); cheap to clone.
#[must_use]
#[derive(Debug, Clone)]
pub struct OtpLayer {
    engine: Arc<Engine>,
}

impl OtpLayer {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

impl<S> Layer<S> for OtpLayer {
    type Service = OtpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::extract::note_layer_mounted();
        OtpService::new(inner, Arc::clone(&self.engine))
    }
}
