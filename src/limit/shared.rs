//! Per-IP limits that hold across instances: a GCRA limiter kept in a
//! shared store (Redis: one Lua script per check, on one key).
//!
//! Plug one in with
//! [`OtpBuilder::shared_ip_limits`](crate::OtpBuilder::shared_ip_limits); it
//! then replaces the in-process governor limiter, which stays as the
//! fallback: if the shared store cannot be reached, the check is made
//! in-process (logged), so an outage of the limiter's store neither blocks
//! every client nor lifts the limits.

use std::{fmt, time::Duration};

use async_trait::async_trait;

use crate::store::StoreError;

/// The answer of one GCRA check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// Whether the request is allowed (and was counted).
    pub allowed: bool,
    /// Requests left in the burst after this one.
    pub remaining: u32,
    /// When refused: time until one request is allowed again.
    pub retry_after: Duration,
    /// Time until the full burst is available again.
    pub reset: Duration,
}

/// A rate limiter shared by every instance (GCRA: `quota` requests per
/// `period`, with a burst of `quota`).
#[async_trait]
pub trait SharedRateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Checks and counts one request for `key` (e.g. `otp-send:198.51.100.7`)
    /// against `quota` requests per `period`.
    async fn check(
        &self,
        key: &str,
        quota: u32,
        period: Duration,
    ) -> Result<GcraDecision, StoreError>;
}
