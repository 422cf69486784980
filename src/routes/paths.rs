//! The paths the routes are served at.

/// The route paths, relative to [`prefix`](Self::prefix). Each is
/// served with and without a trailing slash.
/// It will grow (more routes), so it is `non_exhaustive`: start from
/// [`RoutePaths::default`] and set fields.
///
/// ```
/// let mut paths = tower_otp::RoutePaths::default();
/// paths.prefix = "/api".into();
/// paths.send_email = "/email/send/".into();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutePaths {
    /// Prepended to every path, e.g. `/api`. Empty by default.
    pub prefix: String,
    /// Send an email code. Default `/send-otp/`.
    pub send_email: String,
    /// Verify an email code. Default `/verify-otp/`.
    pub verify_email: String,
    /// Send an SMS code. Default `/send-mobile-otp/`.
    pub send_mobile: String,
    /// Verify an SMS code. Default `/verify-mobile-otp/`.
    pub verify_mobile: String,
    /// The email sign-in link (served only with email links on). Default
    /// `/otp/link/`.
    pub link: String,
    /// The email "this wasn't me" link (served only with email links on).
    /// Default `/otp/cancel/`.
    pub cancel: String,
}

impl Default for RoutePaths {
    /// The Django recipe's paths, so its page and JavaScript work unchanged.
    fn default() -> Self {
        Self {
            prefix: String::new(),
            send_email: "/send-otp/".into(),
            verify_email: "/verify-otp/".into(),
            send_mobile: "/send-mobile-otp/".into(),
            verify_mobile: "/verify-mobile-otp/".into(),
            link: "/otp/link/".into(),
            cancel: "/otp/cancel/".into(),
        }
    }
}
