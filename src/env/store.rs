//! The store chosen by `REDIS_OTP_URL`, and its replica acknowledgement
//! (`OTP_REDIS_WAIT_REPLICAS`, `OTP_REDIS_WAIT_MS`).

use super::Env;
use crate::{ConfigError, OtpBuilder};

/// `REDIS_OTP_URL` selects the Redis store: one URL for a single Redis, or a
/// comma-separated list of seed URLs for a Redis Cluster. Without the
/// `redis` feature a set `REDIS_OTP_URL` is an error rather than silently
/// ignored. `OTP_REDIS_WAIT_REPLICAS` (replicas that must acknowledge each
/// attempt count and single-use delete, 0 = off) and `OTP_REDIS_WAIT_MS`
/// (how long they have, default 50) are read with it.
pub(super) fn apply_redis(
    builder: OtpBuilder,
    value: &str,
    env: &Env<'_>,
) -> Result<OtpBuilder, ConfigError> {
    let replicas: u32 = env.parse("OTP_REDIS_WAIT_REPLICAS")?.unwrap_or(0);
    let wait_ms: u64 = env.parse("OTP_REDIS_WAIT_MS")?.unwrap_or(50);
    if wait_ms == 0 {
        return Err(ConfigError::invalid(
            "OTP_REDIS_WAIT_MS",
            "must be above zero (WAIT 0 waits forever)",
        ));
    }
    redis_from_env(
        builder,
        value,
        replicas,
        std::time::Duration::from_millis(wait_ms),
    )
}

#[cfg(feature = "redis")]
fn redis_from_env(
    builder: OtpBuilder,
    value: &str,
    replicas: u32,
    wait: std::time::Duration,
) -> Result<OtpBuilder, ConfigError> {
    use crate::store::RedisStore;
    let urls: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let store = match urls.as_slice() {
        [] => return Ok(builder),
        [one] => RedisStore::builder(*one),
        many => RedisStore::cluster_builder(many.iter().copied()),
    }
    .wait_for_replicas(replicas, wait)
    .build()
    .map_err(|e| ConfigError::invalid("REDIS_OTP_URL", e.to_string()))?;
    // A shared Redis means several instances: share every limit too (the
    // in-process limiter remains the fallback).
    let store = std::sync::Arc::new(store);
    Ok(builder.shared_store(store.clone()).shared_limits(store))
}

#[cfg(not(feature = "redis"))]
fn redis_from_env(
    _builder: OtpBuilder,
    _value: &str,
    _replicas: u32,
    _wait: std::time::Duration,
) -> Result<OtpBuilder, ConfigError> {
    Err(ConfigError::invalid(
        "REDIS_OTP_URL",
        "tower-otp was built without the `redis` feature",
    ))
}
