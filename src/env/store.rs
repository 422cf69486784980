//! The store chosen by `REDIS_OTP_URL`.

use super::Env;
use crate::{ConfigError, OtpBuilder};

/// `REDIS_OTP_URL` selects the Redis store: one URL for a single Redis, or a
/// comma-separated list of seed URLs for a Redis Cluster. Without the
/// `redis` feature a set `REDIS_OTP_URL` is an error rather than silently
/// ignored.
pub(super) fn apply_redis(
    builder: OtpBuilder,
    value: &str,
    _env: &Env<'_>,
) -> Result<OtpBuilder, ConfigError> {
    redis_from_env(builder, value)
}

#[cfg(feature = "redis")]
fn redis_from_env(builder: OtpBuilder, value: &str) -> Result<OtpBuilder, ConfigError> {
    use crate::store::RedisStore;
    let urls: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let store = match urls.as_slice() {
        [] => return Ok(builder),
        [one] => RedisStore::builder(*one).build(),
        many => RedisStore::cluster_builder(many.iter().copied()).build(),
    }
    .map_err(|e| ConfigError::invalid("REDIS_OTP_URL", e.to_string()))?;
    // A shared Redis means several instances: share every limit too (the
    // in-process limiter remains the fallback).
    let store = std::sync::Arc::new(store);
    Ok(builder.shared_store(store.clone()).shared_limits(store))
}

#[cfg(not(feature = "redis"))]
fn redis_from_env(_builder: OtpBuilder, _value: &str) -> Result<OtpBuilder, ConfigError> {
    Err(ConfigError::invalid(
        "REDIS_OTP_URL",
        "tower-otp was built without the `redis` feature",
    ))
}
