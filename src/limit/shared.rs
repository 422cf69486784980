//! Limits that hold across instances: every rule of the limiter can keep its
//! counts in a store shared by every instance (Redis: one GCRA Lua script
//! per check, on one key).
//!
//! Plug one in with
//! [`OtpBuilder::shared_limits`](crate::OtpBuilder::shared_limits); it then
//! replaces the in-process governor limiter for every rule (per-IP, per
//! contact, per country), which stays as the fallback: if the shared store
//! cannot be reached, the check is made in-process (logged), so an outage of
//! the limiter's store neither blocks every client nor lifts the limits.

pub use crate::store::rate::{GcraDecision, SharedRateLimiter};
