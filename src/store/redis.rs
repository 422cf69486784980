//! [`RedisStore`]: codes, attempts, cooldowns and quotas in Redis, shared by
//! every application instance that points at the same Redis.
//!
//! Each multi-step operation of [`OtpStore`] is **one Lua script** (in
//! `src/store/lua/`), sent by SHA with `EVALSHA` and loaded on the first
//! `NOSCRIPT` answer, so it is atomic on the server: parallel verifies on
//! any number of instances cannot get extra guesses or use a code twice.
//! Every script touches **one key**, so it runs unchanged on Redis Cluster.
//! Expiry is Redis's own (`PEXPIRE`); nothing sweeps. Cooldowns and quota
//! windows are measured with the Redis server's clock (`TIME`), so app
//! instances with skewed clocks still agree.
//!
//! # Keys
//!
//! Keys never contain a raw email address or phone number: the engine passes
//! a [`StoreKey`], a keyed digest of the normalized contact. A contact's two
//! keys share a hash tag, so they live in one cluster slot:
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `<prefix>{<digest>}:code` | hash | `rec` (salt, secret id, Argon2 hash), `att` (attempts used) | after the code TTL |
//! | `<prefix>{<digest>}:send` | hash | `cd` (cooldown end), `n` (sends), `we` (window end), in ms | at the later of cooldown end and window end |
//!
//! The prefix defaults to [`DEFAULT_PREFIX`] (`otp:`); use one per
//! application (or per environment) that shares a Redis.
//!
//! # Failures and timeouts
//!
//! Every operation (waiting for a pooled connection, connecting, the
//! command itself) is bounded by one timeout, [`DEFAULT_TIMEOUT`] unless set.
//! A Redis that is down, unreachable or too slow gives
//! [`StoreError::unavailable`], which the routes answer with 503
//! `store_unavailable`: the store fails closed and no check is skipped. The
//! pool drops broken connections and opens new ones, so when Redis comes
//! back the next request succeeds without restarting the app.
//!
//! # Single node and cluster
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_otp::{Otp, store::RedisStore};
//!
//! # fn main() -> Result<(), tower_otp::ConfigError> {
//! // One Redis (or a primary behind a proxy / Sentinel address).
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .prefix("myapp:otp:")
//!     .pool_size(16)
//!     .timeout(Duration::from_millis(500))
//!     .build()?;
//!
//! // Redis Cluster: give one or more seed nodes; the client discovers the rest.
//! let cluster = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!     .build()?;
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .store(store)
//!     .build()?;
//! # let _ = (otp, cluster);
//! # Ok(())
//! # }
//! ```
//!
//! A host that already has a deadpool-redis pool passes it in with
//! [`RedisStore::new`] or [`RedisStore::from_cluster_pool`] (or the
//! matching `builder_from_*` to set a prefix and timeout).
//!
//! From the environment, `REDIS_OTP_URL` selects this store in
//! [`OtpBuilder::from_env`](crate::OtpBuilder::from_env): one URL for a
//! single node, or a comma-separated list of seed URLs for a cluster.

use std::{fmt, sync::LazyLock, time::Duration};

use async_trait::async_trait;
use deadpool_redis::{
    PoolConfig, Runtime, Timeouts,
    redis::{ErrorKind, FromRedisValue, RedisError, Script, ScriptInvocation},
};

use super::{Attempt, CodeRecord, OtpStore, SendLimits, SendReservation, StoreError, StoreKey};
use crate::ConfigError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "otp:";

/// The default bound on one store operation (pool wait, connect and
/// command together).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The Lua scripts, hashed once per process.
struct Scripts {
    reserve_send: Script,
    release_cooldown: Script,
    put_code: Script,
    begin_attempt: Script,
    remove_code: Script,
    gcra: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve_send: Script::new(include_str!("lua/reserve_send.lua")),
    release_cooldown: Script::new(include_str!("lua/release_cooldown.lua")),
    put_code: Script::new(include_str!("lua/put_code.lua")),
    begin_attempt: Script::new(include_str!("lua/begin_attempt.lua")),
    remove_code: Script::new(include_str!("lua/remove_code.lua")),
    gcra: Script::new(include_str!("lua/gcra.lua")),
});

/// The connection pool behind the store.
#[derive(Clone)]
enum Backend {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// An [`OtpStore`] in Redis (single node or cluster), on a deadpool-redis
/// pool. Cheap to clone: clones share the pool. See the
/// [module docs](self).
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URLs: they may carry a password.
        let (mode, status) = match &self.backend {
            Backend::Single(p) => ("single", p.status()),
            Backend::Cluster(p) => ("cluster", p.status()),
        };
        f.debug_struct("RedisStore")
            .field("mode", &mode)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("pool_max_size", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// Where a [`RedisStoreBuilder`] gets its connections.
enum Source {
    Url(String),
    ClusterUrls(Vec<String>),
    Pool(deadpool_redis::Pool),
    ClusterPool(deadpool_redis::cluster::Pool),
}

/// Builds a [`RedisStore`]. Made by [`RedisStore::builder`],
/// [`RedisStore::cluster_builder`], [`RedisStore::builder_from_pool`] or
/// [`RedisStore::builder_from_cluster_pool`].
#[must_use]
pub struct RedisStoreBuilder {
    source: Source,
    prefix: String,
    pool_size: Option<usize>,
    timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Url(_) => "url",
            Source::ClusterUrls(_) => "cluster urls",
            Source::Pool(_) => "pool",
            Source::ClusterPool(_) => "cluster pool",
        };
        f.debug_struct("RedisStoreBuilder")
            .field("source", &source)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            prefix: DEFAULT_PREFIX.to_owned(),
            pool_size: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The prefix of every key. Default [`DEFAULT_PREFIX`] (`otp:`). It may
    /// not contain `{` or `}` (they would break the cluster hash tag).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Most pooled connections. Default: deadpool's (4 per CPU). Ignored
    /// when the pool is given by the host.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// Bound on one store operation: waiting for a pooled connection,
    /// connecting and the command together. Default [`DEFAULT_TIMEOUT`].
    /// It also sets the pool's wait, create and recycle timeouts when the
    /// store builds the pool.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and creates the pool. No connection is opened
    /// yet: a Redis that is down now is not an error here (requests get 503
    /// until it is up).
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        if self.prefix.contains(['{', '}']) {
            return Err(ConfigError::invalid(
                "redis prefix",
                "must not contain '{' or '}' (the cluster hash tag)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("redis timeout", "must be above zero"));
        }
        if self.pool_size == Some(0) {
            return Err(ConfigError::invalid(
                "redis pool size",
                "must be at least 1",
            ));
        }
        let mut pool_config = PoolConfig::default();
        if let Some(size) = self.pool_size {
            pool_config.max_size = size;
        }
        pool_config.timeouts = Timeouts {
            wait: Some(self.timeout),
            create: Some(self.timeout),
            recycle: Some(self.timeout),
        };
        let backend = match self.source {
            Source::Url(url) => {
                let mut config = deadpool_redis::Config::from_url(url);
                config.pool = Some(pool_config);
                Backend::Single(
                    config
                        .create_pool(Some(Runtime::Tokio1))
                        .map_err(|e| backend_error(e.into()))?,
                )
            }
            Source::ClusterUrls(urls) => {
                if urls.is_empty() {
                    return Err(ConfigError::missing(
                        "redis cluster urls",
                        "at least one seed node URL is needed",
                    ));
                }
                let mut config = deadpool_redis::cluster::Config::from_urls(urls);
                config.pool = Some(pool_config);
                Backend::Cluster(
                    config
                        .create_pool(Some(Runtime::Tokio1))
                        .map_err(|e| backend_error(e.into()))?,
                )
            }
            Source::Pool(pool) => Backend::Single(pool),
            Source::ClusterPool(pool) => Backend::Cluster(pool),
        };
        Ok(RedisStore {
            backend,
            prefix: self.prefix,
            timeout: self.timeout,
        })
    }
}

fn backend_error(source: Box<dyn std::error::Error + Send + Sync>) -> ConfigError {
    ConfigError::Backend {
        what: "the Redis store",
        source,
    }
}

impl RedisStore {
    /// A store on a single Redis at `url` (`redis://[:password@]host:port[/db]`,
    /// or `rediss://` for TLS when the `redis` crate has TLS enabled), with
    /// the default prefix, pool size and timeout.
    pub fn from_url(url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(url).build()
    }

    /// A builder for a store on a single Redis at `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Url(url.into()))
    }

    /// A builder for a store on a Redis Cluster, given one or more seed node
    /// URLs (the client discovers the other nodes).
    pub fn cluster_builder<I, S>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Source::ClusterUrls(
            urls.into_iter().map(Into::into).collect(),
        ))
    }

    /// A store on a pool the host already has, with the default prefix and
    /// timeout. Configure the pool's own timeouts too (its wait timeout
    /// only applies with a runtime set).
    pub fn new(pool: deadpool_redis::Pool) -> Self {
        Self {
            backend: Backend::Single(pool),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A store on a Redis Cluster pool the host already has, with the
    /// default prefix and timeout.
    pub fn from_cluster_pool(pool: deadpool_redis::cluster::Pool) -> Self {
        Self {
            backend: Backend::Cluster(pool),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A builder on a pool the host already has (to set a prefix and
    /// timeout; `pool_size` is ignored).
    pub fn builder_from_pool(pool: deadpool_redis::Pool) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Pool(pool))
    }

    /// A builder on a Redis Cluster pool the host already has.
    pub fn builder_from_cluster_pool(pool: deadpool_redis::cluster::Pool) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::ClusterPool(pool))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// The Redis key holding `key`'s code (`<prefix>{<digest>}:code`). For
    /// diagnostics and tests.
    pub fn code_key(&self, key: &StoreKey) -> String {
        format!("{}{{{}}}:code", self.prefix, key.as_str())
    }

    /// The Redis key holding `key`'s cooldown and quota
    /// (`<prefix>{<digest>}:send`). For diagnostics and tests.
    pub fn send_key(&self, key: &StoreKey) -> String {
        format!("{}{{{}}}:send", self.prefix, key.as_str())
    }

    /// Sends `PING` (to every master of a cluster), within the timeout: a
    /// readiness check for hosts.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let cmd = deadpool_redis::redis::cmd("PING");
        self.bounded(async {
            match &self.backend {
                Backend::Single(pool) => {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    cmd.query_async::<()>(&mut conn).await.map_err(redis_error)
                }
                Backend::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    cmd.query_async::<()>(&mut conn).await.map_err(redis_error)
                }
            }
        })
        .await
    }

    /// Runs one script invocation on a pooled connection, within the
    /// timeout.
    async fn eval<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.bounded(async {
            match &self.backend {
                Backend::Single(pool) => {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    invocation
                        .invoke_async(&mut conn)
                        .await
                        .map_err(redis_error)
                }
                Backend::Cluster(pool) => {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    invocation
                        .invoke_async(&mut conn)
                        .await
                        .map_err(redis_error)
                }
            }
        })
        .await
    }

    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::unavailable(TimedOut(self.timeout))),
        }
    }
}

/// The operation did not finish within the store's timeout.
#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis did not answer within {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// An answer that does not have the shape the script returns.
#[derive(Debug)]
struct Unexpected(&'static str);

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected answer from a Redis script: {}", self.0)
    }
}

impl std::error::Error for Unexpected {}

fn pool_error(error: deadpool_redis::PoolError) -> StoreError {
    match error {
        deadpool_redis::PoolError::Backend(e) => redis_error(e),
        other => StoreError::unavailable(other),
    }
}

/// Errors about the data or the scripts are `corrupt` (500); everything
/// else (I/O, refused, timeouts, cluster moving or down, loading, auth, out
/// of memory, too many clients) is `unavailable` (503).
fn redis_error(error: RedisError) -> StoreError {
    let overloaded = matches!(
        error.code(),
        Some("OOM" | "BUSY" | "LOADING" | "MASTERDOWN")
    ) || error
        .detail()
        .is_some_and(|d| d.contains("max number of clients"));
    match error.kind() {
        ErrorKind::TypeError
        | ErrorKind::ResponseError
        | ErrorKind::ExtensionError
        | ErrorKind::CrossSlot
            if !overloaded =>
        {
            StoreError::corrupt(error)
        }
        _ => StoreError::unavailable(error),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl OtpStore for RedisStore {
    async fn reserve_send(
        &self,
        key: &StoreKey,
        limits: &SendLimits,
    ) -> Result<SendReservation, StoreError> {
        let mut invocation = SCRIPTS.reserve_send.prepare_invoke();
        invocation
            .key(self.send_key(key))
            .arg(millis(limits.cooldown))
            .arg(limits.quota)
            .arg(millis(limits.window).max(1));
        let (status, retry_ms): (i64, u64) = self.eval(&invocation).await?;
        let retry_after = Duration::from_millis(retry_ms);
        match status {
            0 => Ok(SendReservation::Granted),
            1 => Ok(SendReservation::Cooldown { retry_after }),
            2 => Ok(SendReservation::QuotaExceeded { retry_after }),
            _ => Err(StoreError::corrupt(Unexpected("reserve_send status"))),
        }
    }

    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut invocation = SCRIPTS.release_cooldown.prepare_invoke();
        invocation.key(self.send_key(key));
        let _released: i64 = self.eval(&invocation).await?;
        Ok(())
    }

    async fn put_code(
        &self,
        key: &StoreKey,
        record: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut invocation = SCRIPTS.put_code.prepare_invoke();
        invocation
            .key(self.code_key(key))
            .arg(record.to_bytes())
            .arg(millis(ttl).max(1));
        let _stored: i64 = self.eval(&invocation).await?;
        Ok(())
    }

    async fn begin_attempt(
        &self,
        key: &StoreKey,
        max_attempts: u32,
    ) -> Result<Attempt, StoreError> {
        let mut invocation = SCRIPTS.begin_attempt.prepare_invoke();
        invocation.key(self.code_key(key)).arg(max_attempts);
        let (status, record, used): (i64, Vec<u8>, u32) = self.eval(&invocation).await?;
        match status {
            0 => Ok(Attempt::NoCode),
            1 => Ok(Attempt::Exhausted),
            2 => {
                let record = CodeRecord::from_bytes(&record)
                    .ok_or_else(|| StoreError::corrupt(Unexpected("malformed code record")))?;
                Ok(Attempt::Granted {
                    record,
                    attempts_used: used,
                })
            }
            _ => Err(StoreError::corrupt(Unexpected("begin_attempt status"))),
        }
    }

    async fn remove_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let mut invocation = SCRIPTS.remove_code.prepare_invoke();
        invocation.key(self.code_key(key)).arg(&salt[..]);
        let removed: i64 = self.eval(&invocation).await?;
        Ok(removed == 1)
    }
}

/// Limits shared by every instance on this Redis (GCRA in one Lua script,
/// one key per rule and client, contact or country).
#[async_trait]
impl super::rate::SharedRateLimiter for RedisStore {
    async fn check(
        &self,
        key: &str,
        quota: u32,
        period: Duration,
    ) -> Result<super::rate::GcraDecision, StoreError> {
        let quota = quota.max(1);
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        let interval = (period_ms / u64::from(quota)).max(1);
        let mut invocation = SCRIPTS.gcra.prepare_invoke();
        invocation
            .key(format!("{}{{rl:{key}}}", self.prefix))
            .arg(interval)
            .arg(quota);
        let (allowed, value, reset_ms): (i64, u64, u64) = self.eval(&invocation).await?;
        let reset = Duration::from_millis(reset_ms);
        Ok(if allowed == 1 {
            super::rate::GcraDecision::allowed(u32::try_from(value).unwrap_or(u32::MAX), reset)
        } else {
            super::rate::GcraDecision::refused(Duration::from_millis(value), reset)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag_and_hide_the_contact() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .prefix("app:")
            .build()
            .unwrap();
        let key = StoreKey::new("ab12");
        assert_eq!(store.code_key(&key), "app:{ab12}:code");
        assert_eq!(store.send_key(&key), "app:{ab12}:send");
    }

    #[test]
    fn prefix_with_braces_is_refused() {
        let err = RedisStore::builder("redis://127.0.0.1:1")
            .prefix("a{b}:")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
    }

    #[test]
    fn bad_url_is_a_config_error() {
        assert!(RedisStore::from_url("not a url").is_err());
    }
}
