//! Rate-limit counters kept in a store shared by every instance: a GCRA
//! limiter over any key, quota and period (Redis: one Lua script per check,
//! on one key).
//!
//! The limiter ([`crate::limit`]) uses it for every rule when one is
//! configured; it lives with the stores so that a store can implement it
//! without knowing the limiter.

use std::{fmt, time::Duration};

use async_trait::async_trait;

use super::StoreError;

/// The answer of one GCRA check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

impl GcraDecision {
    /// An allowed request with `remaining` left, full again after `reset`.
    pub fn allowed(remaining: u32, reset: Duration) -> Self {
        Self {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
            reset,
        }
    }

    /// A refused request, allowed again after `retry_after`.
    pub fn refused(retry_after: Duration, reset: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            retry_after,
            reset,
        }
    }
}

/// A rate limiter shared by every instance (GCRA: `quota` requests per
/// `period`, with a burst of `quota`).
#[async_trait]
pub trait SharedRateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Checks and counts one request for `key` (e.g. `otp-send:198.51.100.7`).
    async fn check(
        &self,
        key: &str,
        quota: u32,
        period: Duration,
    ) -> Result<GcraDecision, StoreError>;
}
