use std::sync::Arc;

use tower_layer::Layer;

use super::{LayerState, OtpService};

/// A [`Layer`] that serves the OTP routes in front of an inner service.
///
/// Made by [`Otp::layer`](crate::Otp::layer); cheap to clone.
#[must_use]
#[derive(Debug, Clone)]
pub struct OtpLayer {
    state: Arc<LayerState>,
}

impl OtpLayer {
    pub(crate) fn new(state: Arc<LayerState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for OtpLayer {
    type Service = OtpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::extract::note_layer_mounted();
        OtpService::new(inner, Arc::clone(&self.state))
    }
}
