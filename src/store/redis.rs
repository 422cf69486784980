//! [`RedisStore`]: codes, attempts, cooldowns and quotas in Redis, shared by
//! every application instance that points at the same Redis.
//!
//! Each multi-step operation of [`OtpStore`] is **one Lua script** (in
//! `src/store/lua/`), sent by SHA with `EVALSHA` and loaded on the first
//! `NOSCRIPT` answer, so it is atomic on the server: parallel verifies on
//! any number of instances cannot get extra guesses or use a code twice.
//! Every script touches the keys of **one contact**, which share a hash tag
//! (one cluster slot), so it runs unchanged on Redis Cluster.
//! Expiry is Redis's own (`PEXPIRE`); nothing sweeps. Cooldowns and quota
//! windows are measured with the Redis server's clock (`TIME`), so app
//! instances with skewed clocks still agree.
//!
//! # Keys
//!
//! Keys never contain a raw email address or phone number: the engine passes
//! a [`StoreKey`], a keyed digest of the normalized contact. A contact's
//! keys share a hash tag, so they live in one cluster slot:
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `<prefix>{<digest>}` (the contact's key) | hash | per pending code: `rec` (salt, secret id, Argon2 hash: 52 bytes), `att` (attempts used), `exp` (the code's expiry, ms), named `rec:<purpose>`, `att:<purpose>`, `exp:<purpose>` for a purpose other than the default; the send record: `cd` (cooldown end), `n` (sends in the window), `we` (window end), in ms | at the latest end of what it holds (code expiries, cooldown end, window end); deleted when nothing is left |
//! | `<prefix>{<digest>}:fail` | hash | `n` (consecutive wrong codes), `lu` (locked until, ms) | [`FailureBudget::keep`] (24 h) after the last failure, or when the lock ends if later; deleted by a success or an unlock |
//!
//! A contact's codes and its send record share **one key** because Redis
//! spends about 100 bytes on each key of its own (the key, its expiry
//! entry, its slots in the key space), so a pending code with the send
//! record its send created costs under 300 bytes (`BENCHMARKS.md`, "Bytes
//! per pending code"). The hash stays a listpack (compact, one allocation).
//! Redis before 7.4 cannot expire a hash's fields, so each code carries its
//! own expiry (`exp`) and every script treats a code past it as missing,
//! and a send record whose cooldown and window have both ended likewise;
//! each script that writes the key drops the parts that have ended and
//! sets the key's expiry to the latest end of the rest (or deletes it).
//!
//! The failure budget costs no extra round trip on the way to a verify:
//! `begin_attempt` reads the lock in the same script that takes the
//! attempt, a success deletes the failure record in the same script that
//! consumes the code (`consume_code`), and only a wrong code runs one more
//! script (`record_failure`).
//!
//! The operator's reads ([`inspect_code`](OtpStore::inspect_code),
//! [`inspect_sends`](OtpStore::inspect_sends),
//! [`inspect_failures`](OtpStore::inspect_failures)) are one script each
//! (values and server time in one round trip); cancel
//! ([`delete_code`](OtpStore::delete_code)) and unlock
//! ([`clear_sends`](OtpStore::clear_sends)) are one script each (the
//! code's or the send record's fields go, the rest of the contact's key
//! stays).
//!
//! The SMS fraud breaker's number ranges
//! ([`record_range_send`](OtpStore::record_range_send) and its siblings)
//! live under one hash tag, `<prefix>{sms-ranges}`, one script per
//! operation: see [`RedisStore::range_key`].
//!
//! The prefix defaults to [`DEFAULT_PREFIX`] (`otp:`); use one per
//! application (or per environment) that shares a Redis.
//!
//! # Connections: one round trip per operation
//!
//! The store keeps its own pool (deadpool) of redis-rs **multiplexed**
//! connections (on a cluster: cluster connections, which follow
//! redirections and slot moves themselves). A connection used in the last
//! 5 s is handed out as is, so a store operation is one `EVALSHA`
//! round trip; an idler one is checked with one `PING` first.
//! (deadpool-redis's own pool sends `UNWATCH` + `PING` before every use,
//! which doubles the cost; it is still accepted through
//! [`RedisStore::from_pool`].) The most recently used connection is handed
//! out first, so light traffic keeps one connection warm.
//!
//! A pooled connection is a handle shared by every request, not held for
//! the length of one: it is cloned out of the pool, which gets it back at
//! once, and the store keeps the handle it cloned last. While that
//! connection is sound (a failed one is never reused) and was used in the
//! last 5 s, requests clone the kept handle without a pool checkout (no
//! semaphore, lock, recycle check or timer of the pool's: about 1.5 µs of
//! CPU less per operation, BENCHMARKS.md, issue 21.1). On a single node,
//! redis-rs pipelines the operations of many callers on one multiplexed
//! connection (one write and one read carry several of them), which costs
//! less CPU per operation than one
//! operation per connection at a time. On a cluster (multiplexed over one
//! connection per node, repairing itself), requests for keys on a dead
//! master never hold a connection that requests for healthy masters need.
//! A single node's connection that is lost or stops answering is marked
//! broken and never handed out again.
//!
//! # Failures and timeouts
//!
//! Every operation (waiting for a pooled connection, connecting, the
//! command itself) is bounded by one timeout, [`DEFAULT_TIMEOUT`] unless set.
//! Within a send or a verify, the store calls **together** get that timeout
//! (the contact and country limits' shared counters included; the per-IP
//! check made before the body is read has its own): a call has what the earlier
//! calls of the same request left, so a request that makes three calls
//! to a Redis that stopped answering waits one timeout, not three. Time
//! spent hashing or delivering is not counted.
//! A Redis that is down, unreachable or too slow gives
//! [`StoreError::unavailable`], which the routes answer with 503
//! `store_unavailable`: the store fails closed and no check is skipped.
//! A connection that broke or did not answer in time never goes back to
//! the pool; one that broke (say Redis restarted) is replaced and the
//! operation sent once more on another connection, within the same
//! timeout. (Had the first copy reached Redis before the connection broke,
//! a send or an attempt may then count twice: the error is on the safe
//! side.) So when Redis comes back, the next request succeeds without
//! restarting the app.
//!
//! # Eviction
//!
//! Run the store's Redis with `maxmemory-policy noeviction` (Redis's own
//! default) wherever a `maxmemory` is set. Every key the store writes has a
//! TTL, so any other policy (`volatile-lru`, the default of several managed
//! services, included) lets Redis drop them early under memory pressure:
//! a spent single-use grant's marker, a failure budget's lock, a send
//! cooldown. A client who fills the memory would choose when. Under
//! `noeviction` a full Redis refuses writes, which the store answers as
//! unavailable (fail closed). The store reads `INFO memory` on its first
//! connection (on a host's pool, on the first [`RedisStore::ping`]) and
//! logs an error naming the policy if keys can be evicted.
//!
//! # Replicas and failover
//!
//! Redis replicates asynchronously: the last writes before a master dies
//! can be missing on the replica that takes over. A code sent just before
//! is then gone (the user asks for a new one), but a lost attempt count or
//! single-use delete would hand out extra guesses or a second success.
//! [`RedisStoreBuilder::wait_for_replicas`] (`OTP_REDIS_WAIT_REPLICAS`,
//! `OTP_REDIS_WAIT_MS`) makes the store send `WAIT n ms` after each attempt
//! count, failure count, code consumption and grant spend, in the same
//! pipeline as the script (so on the node that ran it, in the same round
//! trip); fewer acknowledgements fail closed (503 `store_unavailable`).
//! Run at least n+1 replicas per master when it is on.
//!
//! When a cluster master dies, answers for keys in its slots are 503
//! `store_unavailable` (a few quick retries, then the error) until its
//! replica is promoted; keys on the other masters keep being served (set
//! `cluster-require-full-coverage no` on the nodes, or Redis itself refuses
//! every key with `CLUSTERDOWN` from the moment the master is marked failed
//! until the promotion); service resumes without a restart.
//!
//! # TLS
//!
//! With the `redis-tls` feature, `rediss://` URLs connect over TLS
//! (rustls), trusting the system's roots, or a CA of your own given with
//! [`RedisStoreBuilder::tls_root_certificate`]; a Redis that authenticates
//! clients by certificate gets one from
//! [`RedisStoreBuilder::tls_client_certificate`]. rustls's `ring` provider
//! is enabled; if your build also enables `aws-lc-rs`, install one as the
//! process default (`CryptoProvider::install_default`) before the first
//! connection.
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
//! The constructors above take URLs and plain settings only, so this
//! crate's users do not depend on the versions of the Redis client or pool
//! crates it uses. As an escape hatch, a host that already has a
//! deadpool-redis pool passes it in with [`RedisStore::from_pool`] or
//! [`RedisStore::from_cluster_pool`] (or the matching `builder_from_*` to
//! set a prefix and timeout); that ties the host to this crate's
//! deadpool-redis version, and costs two round trips per operation.
//!
//! From the environment, `REDIS_OTP_URL` selects this store in
//! [`OtpBuilder::from_env`](crate::OtpBuilder::from_env): one URL for a
//! single node, or a comma-separated list of seed URLs for a cluster.

use std::{
    fmt,
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use deadpool::managed::{self, Metrics, PoolConfig, QueueMode, RecycleResult, Timeouts};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, FromRedisValue, RedisError, RedisFuture,
    RedisResult, RedisWrite, Script, ServerErrorKind, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};

use super::deadline;
mod eviction;
mod ranges;

use super::ranges::{RangeBlock, RangeLimits, RangeVerdict};
use super::{
    Attempt, CodeRecord, CodeStatus, FailureBudget, FailureOutcome, FailureStatus, OtpStore,
    SendLimits, SendReservation, SendStatus, StoreError, StoreKey,
};
use crate::ConfigError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "otp:";

/// The default bound on one store operation (pool wait, connect and
/// command together).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The default time a replica has to acknowledge a write, when the store
/// waits for replicas ([`RedisStoreBuilder::wait_for_replicas`]).
pub const DEFAULT_WAIT: Duration = Duration::from_millis(50);

/// How long a cluster client may take to connect to one node. redis-rs
/// refreshes its view of the cluster (after a `MOVED`, or a node lost)
/// while holding every request back, so a node that does not answer a
/// connect (a host gone, not a process) stalls all requests this long.
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How many times the cluster client retries a request (redirections,
/// a node lost, `TRYAGAIN`, `CLUSTERDOWN`), 10 to 100 ms apart.
const CLUSTER_RETRIES: u32 = 4;

/// A pooled connection used this recently is handed out again without a
/// `PING` first; an idler one is checked with one `PING`.
const FRESH: Duration = Duration::from_secs(5);

/// Milliseconds on one clock for the whole process: when a connection was
/// last used, shared by the pool and the kept handle (see [`LastLink`]).
fn clock_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A script on a contact's key: the shared helpers of
/// `lua/contact.lua` (the layout, the clock, `settle`), then `lua/<name>`.
macro_rules! contact_script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("lua/contact.lua"),
            include_str!(concat!("lua/", $name))
        ))
    };
}

/// The Lua scripts, hashed once per process.
struct Scripts {
    reserve_send: Script,
    release_cooldown: Script,
    put_code: Script,
    begin_attempt: Script,
    remove_code: Script,
    consume_code: Script,
    record_failure: Script,
    spend_grant: Script,
    gcra: Script,
    inspect_code: Script,
    inspect_sends: Script,
    inspect_failures: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve_send: contact_script!("reserve_send.lua"),
    release_cooldown: contact_script!("release_cooldown.lua"),
    put_code: contact_script!("put_code.lua"),
    begin_attempt: contact_script!("begin_attempt.lua"),
    remove_code: contact_script!("remove_code.lua"),
    consume_code: contact_script!("consume_code.lua"),
    record_failure: Script::new(include_str!("lua/record_failure.lua")),
    spend_grant: Script::new(include_str!("lua/spend_grant.lua")),
    gcra: Script::new(include_str!("lua/gcra.lua")),
    inspect_code: contact_script!("inspect_code.lua"),
    inspect_sends: contact_script!("inspect_sends.lua"),
    inspect_failures: Script::new(include_str!("lua/inspect_failures.lua")),
});

/// How the store's own pool opens connections.
enum Connector {
    /// One multiplexed connection per pooled object.
    Single {
        client: Client,
        config: AsyncConnectionConfig,
    },
    /// One cluster connection (itself multiplexed per node, following
    /// redirections and slot moves) per pooled object.
    Cluster(ClusterClient),
}

/// One pooled connection of the store's own pool (a cheap handle: clones
/// share the connection).
#[derive(Clone)]
enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection in the store's pool, with when it was last used.
struct Pooled {
    link: Link,
    /// When it was last handed out or used through the kept handle
    /// ([`clock_ms`]).
    used: Arc<AtomicU64>,
    /// Set by a request that saw the connection fail (lost, or no answer
    /// in time) on its clone of the handle: the pool then drops it at the
    /// next checkout instead of handing it out again.
    broken: Arc<AtomicBool>,
}

/// The store's deadpool manager. Unlike deadpool-redis's, which sends
/// `UNWATCH` + `PING` on every checkout (a second round trip per
/// operation), it hands out a connection used within `fresh` ([`FRESH`])
/// as is, checks an idler one with one `PING`, and never gets back a
/// connection the store saw fail: the store takes those out of the pool.
struct Manager {
    connector: Connector,
    fresh: Duration,
    /// Whether a connection has read the eviction policy ([`eviction`]):
    /// each new one tries until one gets an answer.
    eviction_checked: AtomicBool,
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = RedisError;

    async fn create(&self) -> Result<Pooled, RedisError> {
        let mut link = match &self.connector {
            Connector::Single { client, config } => Link::Single(
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?,
            ),
            Connector::Cluster(client) => Link::Cluster(client.get_async_connection().await?),
        };
        if !self.eviction_checked.load(Ordering::Relaxed) {
            eviction::check(&mut link, &self.eviction_checked).await;
        }
        Ok(Pooled {
            link,
            used: Arc::new(AtomicU64::new(clock_ms())),
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(&self, conn: &mut Pooled, _: &Metrics) -> RecycleResult<RedisError> {
        if conn.broken.load(Ordering::Relaxed) {
            return Err(managed::RecycleError::message("the connection failed"));
        }
        let now = clock_ms();
        if u128::from(now.saturating_sub(conn.used.load(Ordering::Relaxed)))
            < self.fresh.as_millis()
        {
            return Ok(());
        }
        if let Err(e) = redis::cmd("PING").query_async::<()>(&mut conn.link).await {
            // Dropped by the pool; a kept clone of the handle is not used
            // either.
            conn.broken.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
        conn.used.store(clock_ms(), Ordering::Relaxed);
        Ok(())
    }
}

type OwnPool = managed::Pool<Manager>;

/// The connection the store's own pool handed out last, kept so that a
/// request clones its handle without a pool checkout (its semaphore, its
/// lock, its recycle check, its timer) while the connection is sound (not
/// marked broken) and fresh (used within `fresh`, as the pool would hand it
/// out without a `PING`). Otherwise the request checks one out of the
/// pool, which pings an idle one, and keeps that one here instead.
struct LastLink {
    fresh: Duration,
    kept: Mutex<Option<Kept>>,
}

/// A pooled connection's handle and shared state, kept by [`LastLink`].
struct Kept {
    link: Link,
    broken: Arc<AtomicBool>,
    used: Arc<AtomicU64>,
}

impl LastLink {
    fn new(fresh: Duration) -> Self {
        Self {
            fresh,
            kept: Mutex::new(None),
        }
    }

    /// A clone of the kept handle, if it is sound and fresh (and then used
    /// now).
    fn get(&self) -> Option<(Link, Arc<AtomicBool>)> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = kept.as_ref()?;
        if kept.broken.load(Ordering::Relaxed) {
            return None;
        }
        let now = clock_ms();
        let idle = now.saturating_sub(kept.used.load(Ordering::Relaxed));
        if u128::from(idle) >= self.fresh.as_millis() {
            return None;
        }
        kept.used.store(now, Ordering::Relaxed);
        Some((kept.link.clone(), Arc::clone(&kept.broken)))
    }

    /// Keeps `conn`'s handle (just checked out, so fresh).
    fn keep(&self, conn: &Pooled) {
        *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(Kept {
            link: conn.link.clone(),
            broken: Arc::clone(&conn.broken),
            used: Arc::clone(&conn.used),
        });
    }

    /// Stops handing out `conn` (a request holds it to itself).
    fn forget(&self, conn: &Pooled) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept
            .as_ref()
            .is_some_and(|kept| Arc::ptr_eq(&kept.broken, &conn.broken))
        {
            *kept = None;
        }
    }
}

/// The connections behind the store.
#[derive(Clone)]
enum Backend {
    /// The store's own pool (single node or cluster): one round trip per
    /// operation.
    Own {
        pool: OwnPool,
        cluster: bool,
        last: Arc<LastLink>,
    },
    /// A deadpool-redis pool given by the host.
    HostSingle(deadpool_redis::Pool),
    /// A deadpool-redis cluster pool given by the host.
    HostCluster(deadpool_redis::cluster::Pool),
}

impl Backend {
    fn mode(&self) -> &'static str {
        match self {
            Self::Own { cluster: true, .. } | Self::HostCluster(_) => "cluster",
            Self::Own { cluster: false, .. } | Self::HostSingle(_) => "single",
        }
    }

    fn max_size(&self) -> usize {
        match self {
            Self::Own { pool, .. } => pool.status().max_size,
            Self::HostSingle(pool) => pool.status().max_size,
            Self::HostCluster(pool) => pool.status().max_size,
        }
    }
}

/// An [`OtpStore`] in Redis (single node or cluster), on a pool of
/// multiplexed connections: one round trip per operation. Cheap to clone:
/// clones share the pool. See the [module docs](self).
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    prefix: String,
    timeout: Duration,
    wait: Option<Wait>,
    /// Whether the eviction policy was read (on a host's pool, by the first
    /// [`ping`](Self::ping); the store's own pool reads it on connecting).
    eviction_checked: Arc<AtomicBool>,
}

/// Replica acknowledgement: after each attempt count and single-use delete,
/// `WAIT replicas timeout` on the node that ran the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    replicas: u32,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URLs: they may carry a password.
        f.debug_struct("RedisStore")
            .field("mode", &self.backend.mode())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("wait", &self.wait)
            .field("pool_max_size", &self.backend.max_size())
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

/// Certificates for `rediss://` connections.
#[cfg(feature = "redis-tls")]
#[derive(Default)]
struct TlsOptions {
    root_pem: Option<Vec<u8>>,
    client_pem: Option<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>,
}

#[cfg(feature = "redis-tls")]
impl TlsOptions {
    fn is_set(&self) -> bool {
        self.root_pem.is_some() || self.client_pem.is_some()
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client_pem
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.to_vec(),
                }),
            root_cert: self.root_pem.clone(),
        }
    }
}

/// Builds a [`RedisStore`]. Made by [`RedisStore::builder`],
/// [`RedisStore::cluster_builder`], [`RedisStore::builder_from_pool`] or
/// [`RedisStore::builder_from_cluster_pool`].
#[must_use]
pub struct RedisStoreBuilder {
    source: Source,
    prefix: String,
    pool_size: Option<usize>,
    /// How recently a connection must have been used to be handed out
    /// without a `PING` ([`FRESH`]; shorter in a unit test).
    fresh: Duration,
    timeout: Duration,
    wait: Option<Wait>,
    #[cfg(feature = "redis-tls")]
    tls: TlsOptions,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Url(_) => "url",
            Source::ClusterUrls(_) => "cluster urls",
            Source::Pool(_) => "pool",
            Source::ClusterPool(_) => "cluster pool",
        };
        let mut debug = f.debug_struct("RedisStoreBuilder");
        debug
            .field("source", &source)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("wait", &self.wait);
        #[cfg(feature = "redis-tls")]
        debug
            .field("tls_root_certificate", &self.tls.root_pem.is_some())
            .field("tls_client_certificate", &self.tls.client_pem.is_some());
        debug.finish()
    }
}

impl RedisStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            prefix: DEFAULT_PREFIX.to_owned(),
            pool_size: None,
            fresh: FRESH,
            timeout: DEFAULT_TIMEOUT,
            wait: None,
            #[cfg(feature = "redis-tls")]
            tls: TlsOptions::default(),
        }
    }

    /// The prefix of every key. Default [`DEFAULT_PREFIX`] (`otp:`). It may
    /// not contain `{` or `}` (they would break the cluster hash tag).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Most pooled connections. Default: 2 per CPU. Each is multiplexed
    /// and shared by every request (see the module docs), so under load
    /// only a few are open; the rest are spares for reconnecting.
    /// Ignored when the pool is given by the host.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// How recently a connection must have been used to be handed out
    /// without a `PING`: [`FRESH`] outside the unit tests that watch a
    /// connection go stale.
    #[cfg(test)]
    fn fresh(mut self, fresh: Duration) -> Self {
        self.fresh = fresh;
        self
    }

    /// Bound on one store operation: waiting for a pooled connection,
    /// connecting and the command together; within one send or verify,
    /// on all its store operations together. Default [`DEFAULT_TIMEOUT`].
    /// It also bounds connecting and the pool's wait and check when the
    /// store builds the pool.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Waits for `replicas` replicas to acknowledge each attempt count and
    /// each single-use delete (`WAIT replicas timeout` on the node that ran
    /// the script, in the same round trip), so that a failover cannot hand
    /// out extra guesses or a second success. Fewer acknowledgements
    /// within `timeout` make the operation fail closed:
    /// [`StoreError::unavailable`] (503 `store_unavailable`), the attempt
    /// counted but not granted. Off by default (`replicas` 0); from the
    /// environment, `OTP_REDIS_WAIT_REPLICAS` and `OTP_REDIS_WAIT_MS`
    /// (default [`DEFAULT_WAIT`]).
    ///
    /// Run at least `replicas + 1` replicas per master: after a failover the
    /// promoted replica still needs `replicas` of its own, or every verify
    /// on its slots answers 503 until one is added. The store's
    /// [`timeout`](Self::timeout) still bounds the whole operation.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = (replicas > 0).then_some(Wait { replicas, timeout });
        self
    }

    /// Trusts this certificate authority (PEM, one or more certificates)
    /// for `rediss://` connections, instead of the system's roots: for a
    /// Redis whose certificate comes from a private CA. Needs a `rediss://`
    /// URL (a `redis://` one is refused by [`build`](Self::build)).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) on `rediss://`
    /// connections, for a Redis that authenticates clients by certificate
    /// (`tls-auth-clients yes`, Redis's default).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_pem = Some((
            certificate_pem.into(),
            zeroize::Zeroizing::new(key_pem.into()),
        ));
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
        if self.wait.is_some_and(|w| w.timeout.is_zero()) {
            return Err(ConfigError::invalid(
                "redis wait timeout",
                "must be above zero (WAIT 0 waits forever)",
            ));
        }
        // A wait as long as the store timeout would turn every missing
        // acknowledgement into a timeout after the script already ran.
        if self.wait.is_some_and(|w| w.timeout >= self.timeout) {
            return Err(ConfigError::invalid(
                "redis wait timeout",
                "must be below the store timeout (OTP_REDIS_WAIT_MS)",
            ));
        }
        if self.pool_size == Some(0) {
            return Err(ConfigError::invalid(
                "redis pool size",
                "must be at least 1",
            ));
        }
        let connector = match self.source {
            Source::Pool(pool) => {
                return Ok(RedisStore::with_backend(
                    Backend::HostSingle(pool),
                    self.prefix,
                    self.timeout,
                )
                .with_wait(self.wait));
            }
            Source::ClusterPool(pool) => {
                return Ok(RedisStore::with_backend(
                    Backend::HostCluster(pool),
                    self.prefix,
                    self.timeout,
                )
                .with_wait(self.wait));
            }
            Source::Url(url) => {
                #[cfg(feature = "redis-tls")]
                let client = if self.tls.is_set() {
                    Client::build_with_tls(url, self.tls.certificates())
                } else {
                    Client::open(url)
                };
                #[cfg(not(feature = "redis-tls"))]
                let client = Client::open(url);
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    // The store bounds each operation itself.
                    .set_response_timeout(None);
                Connector::Single {
                    client: client.map_err(|e| backend_error(e.into()))?,
                    config,
                }
            }
            Source::ClusterUrls(urls) => {
                if urls.is_empty() {
                    return Err(ConfigError::missing(
                        "redis cluster urls",
                        "at least one seed node URL is needed",
                    ));
                }
                let builder = ClusterClientBuilder::new(urls)
                    .connection_timeout(self.timeout.min(CLUSTER_CONNECT_TIMEOUT))
                    .response_timeout(self.timeout)
                    // redis-rs's default (16 retries, the first after 1.28 s
                    // or more) kept a request for a dead master's key
                    // waiting until the timeout; a few quick retries follow a
                    // `MOVED` or a promotion, and otherwise answer at once.
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(10)
                    .max_retry_wait(100);
                #[cfg(feature = "redis-tls")]
                let builder = if self.tls.is_set() {
                    builder.certs(self.tls.certificates())
                } else {
                    builder
                };
                Connector::Cluster(builder.build().map_err(|e| backend_error(e.into()))?)
            }
        };
        let cluster = matches!(connector, Connector::Cluster(_));
        let mut config = PoolConfig::default();
        if let Some(size) = self.pool_size {
            config.max_size = size;
        }
        config.timeouts = Timeouts {
            wait: Some(self.timeout),
            create: Some(self.timeout),
            recycle: Some(self.timeout),
        };
        // The most recently used connection first: under light traffic one
        // connection stays warm (no `PING` needed) and the rest idle.
        config.queue_mode = QueueMode::Lifo;
        let pool = managed::Pool::builder(Manager {
            connector,
            fresh: self.fresh,
            eviction_checked: AtomicBool::new(false),
        })
        .config(config)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| backend_error(e.into()))?;
        Ok(RedisStore::with_backend(
            Backend::Own {
                pool,
                cluster,
                last: Arc::new(LastLink::new(self.fresh)),
            },
            self.prefix,
            self.timeout,
        )
        .with_wait(self.wait))
    }
}

fn backend_error(source: Box<dyn std::error::Error + Send + Sync>) -> ConfigError {
    ConfigError::Backend {
        what: "the Redis store",
        source,
    }
}

/// One request to Redis: a script, a plain command, or a script followed
/// by `WAIT` on the same node.
#[derive(Clone, Copy)]
enum Request<'a> {
    Script(&'a Call),
    Command(&'a Cmd),
    /// `EVALSHA` + `WAIT` in one pipeline (routed by the script's keys);
    /// the answer is `[script's answer, acknowledgements]`.
    Acked(&'a Call, Wait),
}

impl Request<'_> {
    async fn send(self, conn: &mut (impl ConnectionLike + Send)) -> RedisResult<Value> {
        match self {
            Self::Script(call) => {
                let evalsha = call.evalsha();
                match evalsha.query_async(conn).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        // Nothing ran: load the script and send it again.
                        call.script.prepare_invoke().load_async(conn).await?;
                        evalsha.query_async(conn).await
                    }
                    answer => answer,
                }
            }
            Self::Command(cmd) => cmd.query_async(conn).await,
            Self::Acked(call, wait) => {
                let mut pipe = redis::pipe();
                pipe.add_command(call.evalsha().clone()).add_command({
                    let mut cmd = redis::cmd("WAIT");
                    cmd.arg(wait.replicas).arg(millis(wait.timeout).max(1));
                    cmd
                });
                let mut values = conn.req_packed_commands(&pipe, 0, 2).await?;
                let no_script = values.first().is_some_and(|v| {
                    v.clone()
                        .extract_error()
                        .is_err_and(|e| e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
                });
                if no_script {
                    // Nothing ran: load the script and send both again.
                    call.script.prepare_invoke().load_async(conn).await?;
                    values = conn.req_packed_commands(&pipe, 0, 2).await?;
                }
                let [answer, acks]: [Value; 2] = values.try_into().map_err(|_| {
                    RedisError::from((ErrorKind::Parse, "EVALSHA + WAIT: not two answers"))
                })?;
                Ok(Value::Array(vec![
                    answer.extract_error()?,
                    acks.extract_error()?,
                ]))
            }
        }
    }
}

/// `<prefix>{<tag>}<suffix>`: a Redis key in the hash slot of `tag`.
#[derive(Clone, Copy)]
struct SlotKey<'a> {
    prefix: &'a str,
    tag: &'a str,
    suffix: &'a str,
}

impl fmt::Display for SlotKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{{}}}{}", self.prefix, self.tag, self.suffix)
    }
}

/// A script call, sent as `EVALSHA` (alone, or in a pipeline with `WAIT`),
/// with the script at hand to load it where the server lacks it. The
/// command is written once, as the call is built: a resend (after
/// `NOSCRIPT`) sends the same bytes.
struct Call {
    script: &'static Script,
    evalsha: Cmd,
}

impl Call {
    /// `EVALSHA <sha> <number of keys> <keys>`; the arguments follow with
    /// [`arg`](Self::arg).
    fn new<const N: usize>(script: &'static Script, keys: [&dyn fmt::Display; N]) -> Self {
        // Room for every script's arguments with a short prefix (the
        // longest, `begin_attempt` with two keys and `put_code` with a
        // record, write about 200 bytes), so the command is not regrown on
        // the way (measured: BENCHMARKS.md, issue 21.1, reallocations per
        // request); a long prefix costs one regrowth.
        let mut evalsha = Cmd::with_capacity(N + 8, 256);
        evalsha.arg("EVALSHA").arg(script.get_hash()).arg(N);
        for key in keys {
            evalsha.write_arg_fmt(key);
        }
        Self { script, evalsha }
    }

    fn arg(mut self, arg: impl redis::ToRedisArgs) -> Self {
        self.evalsha.arg(arg);
        self
    }

    fn evalsha(&self) -> &Cmd {
        &self.evalsha
    }
}

/// Fewer replicas acknowledged a write than the store waits for.
#[derive(Debug)]
struct NotAcknowledged {
    wanted: u32,
    got: i64,
    within: Duration,
}

impl fmt::Display for NotAcknowledged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} replicas acknowledged the write within {:?}",
            self.got, self.wanted, self.within
        )
    }
}

impl std::error::Error for NotAcknowledged {}

impl RedisStore {
    fn with_backend(backend: Backend, prefix: String, timeout: Duration) -> Self {
        let own = matches!(backend, Backend::Own { .. });
        Self {
            backend,
            prefix,
            timeout,
            wait: None,
            eviction_checked: Arc::new(AtomicBool::new(own)),
        }
    }

    fn with_wait(mut self, wait: Option<Wait>) -> Self {
        self.wait = wait;
        self
    }

    /// A store on a single Redis at `url` (`redis://[:password@]host:port[/db]`,
    /// or `rediss://` for TLS with the `redis-tls` feature), with the
    /// default prefix, pool size and timeout.
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

    /// A store on a deadpool-redis pool the host already has, with the
    /// default prefix and timeout.
    #[deprecated(
        since = "0.1.0",
        note = "use `RedisStore::from_pool` (same behaviour, clearer name), or `RedisStore::builder(url)`"
    )]
    pub fn new(pool: deadpool_redis::Pool) -> Self {
        Self::from_pool(pool)
    }

    /// A store on a deadpool-redis pool the host already has, with the
    /// default prefix and timeout: an escape hatch that ties the host to
    /// the deadpool-redis version this crate uses. Prefer
    /// [`builder`](Self::builder): deadpool-redis checks every connection
    /// it hands out with `UNWATCH` + `PING`, so each operation costs two
    /// round trips on such a pool instead of one. Configure the pool's own
    /// timeouts too (its wait timeout only applies with a runtime set).
    pub fn from_pool(pool: deadpool_redis::Pool) -> Self {
        Self::with_backend(
            Backend::HostSingle(pool),
            DEFAULT_PREFIX.to_owned(),
            DEFAULT_TIMEOUT,
        )
    }

    /// A store on a deadpool-redis cluster pool the host already has, with
    /// the default prefix and timeout. See [`from_pool`](Self::from_pool).
    pub fn from_cluster_pool(pool: deadpool_redis::cluster::Pool) -> Self {
        Self::with_backend(
            Backend::HostCluster(pool),
            DEFAULT_PREFIX.to_owned(),
            DEFAULT_TIMEOUT,
        )
    }

    /// A builder on a deadpool-redis pool the host already has (to set a
    /// prefix and timeout; `pool_size` is ignored). See
    /// [`from_pool`](Self::from_pool).
    pub fn builder_from_pool(pool: deadpool_redis::Pool) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Source::Pool(pool))
    }

    /// A builder on a deadpool-redis cluster pool the host already has. See
    /// [`from_pool`](Self::from_pool).
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
        self.backend.mode() == "cluster"
    }

    /// The Redis key holding `key`'s code: the contact's key,
    /// `<prefix>{<digest>}`, whatever the purpose (a hash that also holds
    /// the contact's send record, so the same key as
    /// [`send_key`](Self::send_key)). The code's fields are `rec`, `att` and
    /// `exp` for the default purpose, `rec:<purpose>`, `att:<purpose>` and
    /// `exp:<purpose>` for another ([`code_field`](Self::code_field)). For
    /// diagnostics and tests.
    pub fn code_key(&self, key: &StoreKey) -> String {
        self.contact_key(key)
    }

    /// The name of one of `key`'s code fields (`rec`, `att` or `exp`) in
    /// [`code_key`](Self::code_key): the name itself for the default
    /// purpose, `<name>:<purpose>` for another. For diagnostics and tests.
    pub fn code_field(&self, key: &StoreKey, name: &str) -> String {
        format!("{name}{}", purpose_suffix(key))
    }

    /// The Redis key holding `key`'s cooldown and quota (fields `cd`, `n`,
    /// `we`): the contact's key, `<prefix>{<digest>}`, the same as
    /// [`code_key`](Self::code_key). For diagnostics and tests.
    pub fn send_key(&self, key: &StoreKey) -> String {
        self.contact_key(key)
    }

    /// The contact's key, `<prefix>{<digest>}`: its codes and send record.
    fn contact_key(&self, key: &StoreKey) -> String {
        self.slot(key, "").to_string()
    }

    /// `<prefix>{<digest>}<suffix>`: a key in the contact's hash slot, written
    /// straight into a command (no string of its own).
    fn slot<'a>(&'a self, key: &'a StoreKey, suffix: &'a str) -> SlotKey<'a> {
        SlotKey {
            prefix: &self.prefix,
            tag: key.as_str(),
            suffix,
        }
    }

    /// The Redis key holding `key`'s failure budget
    /// (`<prefix>{<digest>}:fail`). For diagnostics and tests.
    pub fn failure_key(&self, key: &StoreKey) -> String {
        self.slot(key, ":fail").to_string()
    }

    /// Sends `PING`, within the timeout: a readiness check for hosts. On a
    /// pool given by the host, the first check also reads whether Redis may
    /// evict the store's keys, and logs an error if so (the store's own
    /// pool does this on its first connection): see the module docs.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        self.query::<()>(Request::Command(&cmd)).await?;
        if !self.eviction_checked.load(Ordering::Relaxed) {
            // On a host's pool (the store's own reads it on connecting).
            let done = &self.eviction_checked;
            let read = async {
                match &self.backend {
                    Backend::HostSingle(pool) => {
                        if let Ok(mut conn) = pool.get().await {
                            eviction::check(&mut conn, done).await;
                        }
                    }
                    Backend::HostCluster(pool) => {
                        if let Ok(mut conn) = pool.get().await {
                            eviction::check(&mut conn, done).await;
                        }
                    }
                    Backend::Own { .. } => {}
                }
            };
            // Not answering in time is the next readiness check's to retry.
            let _ = tokio::time::timeout(deadline::remaining(self.timeout), read).await;
        }
        Ok(())
    }

    /// Runs one script, within the timeout.
    async fn eval<T: FromRedisValue>(&self, call: &Call) -> Result<T, StoreError> {
        self.query(Request::Script(call)).await
    }

    /// Runs one script that counts an attempt or deletes something
    /// single-use; with [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas)
    /// set, followed by `WAIT` on the same node, and refused (unavailable)
    /// when too few replicas acknowledge.
    async fn eval_acked<T: FromRedisValue>(&self, call: &Call) -> Result<T, StoreError> {
        let Some(wait) = self.wait else {
            return self.eval(call).await;
        };
        let (answer, acks): (Value, i64) = self.query(Request::Acked(call, wait)).await?;
        if acks < i64::from(wait.replicas) {
            return Err(StoreError::unavailable(NotAcknowledged {
                wanted: wait.replicas,
                got: acks,
                within: wait.timeout,
            }));
        }
        T::from_redis_value(answer).map_err(|e| StoreError::corrupt(RedisError::from(e)))
    }

    async fn query<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, StoreError> {
        let value = self.send(request).await?;
        T::from_redis_value(value).map_err(|e| StoreError::corrupt(RedisError::from(e)))
    }

    /// Sends one request on a pooled connection; the whole of it (pool
    /// wait, connecting, the request) within what is left of the timeout
    /// for the current request (see [`deadline`]).
    async fn send(&self, request: Request<'_>) -> Result<Value, StoreError> {
        let budget = deadline::remaining(self.timeout);
        let _charge = deadline::Charge::start();
        let deadline = tokio::time::Instant::now() + budget;
        let timed_out = || StoreError::unavailable(TimedOut(budget));
        let (pool, last) = match &self.backend {
            Backend::Own { pool, last, .. } => (pool, last),
            Backend::HostSingle(pool) => {
                let operation = async {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    request.send(&mut conn).await.map_err(redis_error)
                };
                return tokio::time::timeout_at(deadline, operation)
                    .await
                    .unwrap_or_else(|_| Err(timed_out()));
            }
            Backend::HostCluster(pool) => {
                let operation = async {
                    let mut conn = pool.get().await.map_err(pool_error)?;
                    request.send(&mut conn).await.map_err(redis_error)
                };
                return tokio::time::timeout_at(deadline, operation)
                    .await
                    .unwrap_or_else(|_| Err(timed_out()));
            }
        };
        // A pooled connection is a handle shared by every request, not held
        // for the length of one: redis-rs multiplexes it (a single node's
        // connection pipelines the requests of many callers, so one write
        // and one read carry several of them; a cluster's is multiplexed
        // over one connection per node and repairs itself). The handle is
        // cloned and the pooled object goes back at once. Holding it (the
        // pool's way) put one request at a time on each connection, with
        // the others queued on the pool; on a cluster it let the requests
        // waiting on a dead master take every pooled connection, so
        // requests for healthy masters queued behind them.
        //
        // The exception is a script followed by `WAIT` on a single node:
        // `WAIT` blocks its connection on the server, so everything
        // pipelined behind it would wait too (a lagging replica would stall
        // every request). Such a request holds its pooled connection to
        // itself and takes it out of the kept slot, and the others take
        // other connections (a request that cloned it a moment before may
        // still queue behind its `WAIT`, as with the pool alone).
        //
        // A single node's connection whose server went away (a restart, a
        // failover behind the same address) fails at once: it is marked
        // broken, so the pool drops it, and the request goes to another (or
        // a new) connection, at most once per pooled connection and always
        // within the deadline. A cluster connection is never replaced for
        // that: rebuilding it after a timeout rebuilt the whole topology,
        // dead node included.
        let cluster = matches!(self.backend, Backend::Own { cluster: true, .. });
        let hold = !cluster && matches!(request, Request::Acked(..));
        let mut retries = pool.status().max_size;
        loop {
            let kept = if hold { None } else { last.get() };
            let (mut link, broken, _held) = match kept {
                Some((link, broken)) => (link, broken, None),
                None => match tokio::time::timeout_at(deadline, pool.get()).await {
                    Ok(Ok(conn)) => {
                        conn.used.store(clock_ms(), Ordering::Relaxed);
                        if hold {
                            last.forget(&conn);
                        } else {
                            last.keep(&conn);
                        }
                        let link = conn.link.clone();
                        let broken = Arc::clone(&conn.broken);
                        (link, broken, hold.then_some(conn))
                    }
                    Ok(Err(e)) => return Err(pool_error(e)),
                    Err(_) => return Err(timed_out()),
                },
            };
            match tokio::time::timeout_at(deadline, request.send(&mut link)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if !cluster && connection_lost(&e) => {
                    // Never handed out again.
                    broken.store(true, Ordering::Relaxed);
                    if retries == 0 {
                        return Err(redis_error(e));
                    }
                    retries -= 1;
                    tracing::debug!(error = %e, "Redis connection lost; retrying on another");
                }
                // The server answered (with an error): the connection is
                // fine.
                Ok(Err(e)) => return Err(redis_error(e)),
                Err(_) => {
                    // No answer in time: the connection is suspect (a
                    // frozen or partitioned server); open a new one next
                    // time rather than queue behind it.
                    if !cluster {
                        broken.store(true, Ordering::Relaxed);
                    }
                    return Err(timed_out());
                }
            }
        }
    }
}

/// Whether the connection itself failed (closed, reset, broken), as
/// opposed to the server answering with an error.
fn connection_lost(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Io && !error.is_timeout()
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

fn pool_error<E>(error: managed::PoolError<E>) -> StoreError
where
    E: Into<RedisError> + fmt::Debug + fmt::Display,
    managed::PoolError<E>: std::error::Error + Send + Sync + 'static,
{
    match error {
        managed::PoolError::Backend(e) => redis_error(e.into()),
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
        ErrorKind::UnexpectedReturnType
        | ErrorKind::Parse
        | ErrorKind::Extension
        | ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::NoScript
            | ServerErrorKind::CrossSlot,
        ) if !overloaded => StoreError::corrupt(error),
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
        let call = Call::new(&SCRIPTS.reserve_send, [&self.slot(key, "")])
            .arg(millis(limits.cooldown))
            .arg(limits.quota)
            .arg(millis(limits.window).max(1));
        let (status, retry_ms): (i64, u64) = self.eval(&call).await?;
        let retry_after = Duration::from_millis(retry_ms);
        match status {
            0 => Ok(SendReservation::Granted),
            1 => Ok(SendReservation::Cooldown { retry_after }),
            2 => Ok(SendReservation::QuotaExceeded { retry_after }),
            _ => Err(StoreError::corrupt(Unexpected("reserve_send status"))),
        }
    }

    async fn release_cooldown(&self, key: &StoreKey) -> Result<(), StoreError> {
        let call = Call::new(&SCRIPTS.release_cooldown, [&self.slot(key, "")]);
        let _released: i64 = self.eval(&call).await?;
        Ok(())
    }

    async fn put_code(
        &self,
        key: &StoreKey,
        record: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let call = Call::new(&SCRIPTS.put_code, [&self.slot(key, "")])
            .arg(record.to_bytes())
            .arg(millis(ttl).max(1))
            .arg(purpose_suffix(key));
        let _stored: i64 = self.eval(&call).await?;
        Ok(())
    }

    async fn begin_attempt(
        &self,
        key: &StoreKey,
        max_attempts: u32,
    ) -> Result<Attempt, StoreError> {
        let call = Call::new(
            &SCRIPTS.begin_attempt,
            [&self.slot(key, ""), &self.slot(key, ":fail")],
        )
        .arg(max_attempts)
        .arg(purpose_suffix(key));
        let (status, record, value): (i64, Vec<u8>, u64) = self.eval_acked(&call).await?;
        let used = u32::try_from(value).unwrap_or(u32::MAX);
        match status {
            0 => Ok(Attempt::NoCode),
            1 => Ok(Attempt::Exhausted),
            3 => Ok(Attempt::Locked {
                retry_after: Duration::from_millis(value),
            }),
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
        let call = Call::new(&SCRIPTS.remove_code, [&self.slot(key, "")])
            .arg(&salt[..])
            .arg(purpose_suffix(key));
        let removed: i64 = self.eval(&call).await?;
        Ok(removed == 1)
    }

    async fn consume_code(&self, key: &StoreKey, salt: &[u8; 16]) -> Result<bool, StoreError> {
        let call = Call::new(
            &SCRIPTS.consume_code,
            [&self.slot(key, ""), &self.slot(key, ":fail")],
        )
        .arg(&salt[..])
        .arg(purpose_suffix(key));
        let removed: i64 = self.eval_acked(&call).await?;
        Ok(removed == 1)
    }

    async fn record_failure(
        &self,
        key: &StoreKey,
        budget: &FailureBudget,
    ) -> Result<FailureOutcome, StoreError> {
        let call = Call::new(&SCRIPTS.record_failure, [&self.slot(key, ":fail")])
            .arg(budget.limit.max(1))
            .arg(millis(budget.first_lock))
            .arg(millis(budget.max_lock))
            .arg(millis(budget.keep).max(1));
        let (failures, lock_ms, was_locked): (u64, u64, u64) = self.eval_acked(&call).await?;
        let failures = u32::try_from(failures).unwrap_or(u32::MAX);
        let locked_for = (failures >= budget.limit.max(1)).then(|| Duration::from_millis(lock_ms));
        Ok(FailureOutcome::new(failures, locked_for).with_was_locked(was_locked == 1))
    }

    async fn reset_failures(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.failure_key(key));
        let _deleted: i64 = self.query(Request::Command(&cmd)).await?;
        Ok(())
    }

    async fn spend_grant(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let call =
            Call::new(&SCRIPTS.spend_grant, [&self.slot(key, ":spent")]).arg(millis(ttl).max(1));
        let first: i64 = self.eval_acked(&call).await?;
        Ok(first == 1)
    }

    async fn inspect_code(&self, key: &StoreKey) -> Result<Option<CodeStatus>, StoreError> {
        let call = Call::new(&SCRIPTS.inspect_code, [&self.slot(key, "")]).arg(purpose_suffix(key));
        let (live, ttl_ms, used): (i64, u64, u64) = self.eval(&call).await?;
        Ok((live == 1).then(|| {
            CodeStatus::new(
                Duration::from_millis(ttl_ms),
                u32::try_from(used).unwrap_or(u32::MAX),
            )
        }))
    }

    async fn inspect_sends(&self, key: &StoreKey) -> Result<Option<SendStatus>, StoreError> {
        let call = Call::new(&SCRIPTS.inspect_sends, [&self.slot(key, "")]);
        let (found, sends, window_ms, cooldown_ms): (i64, u64, u64, u64) = self.eval(&call).await?;
        Ok((found == 1).then(|| {
            SendStatus::new(
                u32::try_from(sends).unwrap_or(u32::MAX),
                Duration::from_millis(window_ms),
                Duration::from_millis(cooldown_ms),
            )
        }))
    }

    async fn inspect_failures(&self, key: &StoreKey) -> Result<Option<FailureStatus>, StoreError> {
        let call = Call::new(&SCRIPTS.inspect_failures, [&self.slot(key, ":fail")]);
        let (found, failures, lock_ms): (i64, u64, u64) = self.eval(&call).await?;
        Ok((found == 1).then(|| {
            FailureStatus::new(
                u32::try_from(failures).unwrap_or(u32::MAX),
                (lock_ms > 0).then(|| Duration::from_millis(lock_ms)),
            )
        }))
    }

    async fn delete_code(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // A script, so that it can be acknowledged by replicas (a cancelled
        // code must not come back after a failover).
        let call = Call::new(&DELETE_CODE, [&self.slot(key, "")]).arg(purpose_suffix(key));
        let deleted: i64 = self.eval_acked(&call).await?;
        Ok(deleted > 0)
    }

    async fn clear_sends(&self, key: &StoreKey) -> Result<bool, StoreError> {
        // One script: the send fields go, the contact's codes stay, and
        // the key's expiry follows what is left.
        let call = Call::new(&CLEAR_SENDS, [&self.slot(key, "")]);
        let deleted: i64 = self.eval(&call).await?;
        Ok(deleted > 0)
    }

    async fn record_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        self.range_send(range, limits, true).await
    }

    async fn check_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<RangeVerdict, StoreError> {
        self.range_send(range, limits, false).await
    }

    async fn record_range_verify(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        self.range_verify(range, limits).await
    }

    async fn blocked_ranges(&self) -> Result<Vec<RangeBlock>, StoreError> {
        self.range_blocks().await
    }

    async fn lift_range_block(&self, range: &str) -> Result<bool, StoreError> {
        self.range_lift(range).await
    }
    async fn release_range_send(
        &self,
        range: &str,
        limits: &RangeLimits,
    ) -> Result<(), StoreError> {
        self.range_release(range, limits).await
    }

    async fn put_link(
        &self,
        key: &StoreKey,
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.link_key(key))
            .arg(record)
            .arg("PX")
            .arg(millis(ttl).max(1));
        let _: () = self.query(Request::Command(&cmd)).await?;
        Ok(())
    }

    async fn get_link(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.link_key(key));
        self.query(Request::Command(&cmd)).await
    }

    async fn delete_link(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.link_key(key));
        let deleted: i64 = self.query(Request::Command(&cmd)).await?;
        Ok(deleted > 0)
    }

    async fn block_sends(&self, key: &StoreKey, block: Duration) -> Result<(), StoreError> {
        // Acknowledged like a single-use delete: a failover must not drop
        // the block a "this wasn't me" asked for.
        let call = Call::new(&BLOCK_SENDS, [&self.slot(key, "")]).arg(millis(block).max(1));
        let _blocked: i64 = self.eval_acked(&call).await?;
        Ok(())
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
        // A zero quota is read as one: a limiter that admits nobody is a
        // switch, not a rate.
        let quota = quota.max(1);
        let interval = (millis(period) / u64::from(quota)).max(1);
        let call = Call::new(
            &SCRIPTS.gcra,
            [&format_args!("{}{{rl:{key}}}", self.prefix)],
        )
        .arg(interval)
        .arg(quota);
        let (allowed, value, reset_ms): (i64, u64, u64) = self.eval(&call).await?;
        let reset = Duration::from_millis(reset_ms);
        Ok(if allowed == 1 {
            super::rate::GcraDecision::allowed(u32::try_from(value).unwrap_or(u32::MAX), reset)
        } else {
            super::rate::GcraDecision::refused(Duration::from_millis(value), reset)
        })
    }
}

/// The script of [`OtpStore::block_sends`].
static BLOCK_SENDS: LazyLock<Script> = LazyLock::new(|| contact_script!("block_sends.lua"));

/// Deletes a pending code (the admin API's cancel, the cancel link).
static DELETE_CODE: LazyLock<Script> = LazyLock::new(|| contact_script!("delete_code.lua"));

/// Deletes a send record (the admin API's unlock).
static CLEAR_SENDS: LazyLock<Script> = LazyLock::new(|| contact_script!("clear_sends.lua"));

/// The suffix of a code's field names in the contact's key: none for the
/// default purpose, `:<purpose>` for another.
fn purpose_suffix(key: &StoreKey) -> String {
    key.purpose()
        .map_or_else(String::new, |purpose| format!(":{purpose}"))
}

impl RedisStore {
    /// The key of the email link record next to `key`'s code:
    /// `<prefix>{<digest>}:link` (`:link:<purpose>` for other purposes), in
    /// the contact's hash slot.
    pub fn link_key(&self, key: &StoreKey) -> String {
        match key.purpose() {
            None => format!("{}{{{}}}:link", self.prefix, key.as_str()),
            Some(purpose) => format!("{}{{{}}}:link:{purpose}", self.prefix, key.as_str()),
        }
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
        assert_eq!(store.code_key(&key), "app:{ab12}");
        assert_eq!(store.send_key(&key), "app:{ab12}");
        assert_eq!(store.failure_key(&key), "app:{ab12}:fail");
        // Codes of other purposes: fields of the same key.
        let login = key.with_purpose("login");
        assert_eq!(store.code_key(&login), "app:{ab12}");
        assert_eq!(store.code_field(&key, "rec"), "rec");
        assert_eq!(store.code_field(&login, "exp"), "exp:login");
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

    /// A private `redis-server` on a free port, killed on drop.
    struct Server {
        child: Option<std::process::Child>,
        port: u16,
        dir: std::path::PathBuf,
    }

    impl Server {
        fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let dir = std::env::temp_dir().join(format!("tower-otp-unit-redis-{port}"));
            std::fs::create_dir_all(&dir).ok()?;
            let mut server = Self {
                child: None,
                port,
                dir,
            };
            server.spawn().then_some(server)
        }

        fn spawn(&mut self) -> bool {
            let Ok(child) = std::process::Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            else {
                return false;
            };
            self.child = Some(child);
            let client = Client::open(self.url()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(mut conn) = client.get_connection()
                    && redis::cmd("PING").query::<String>(&mut conn).is_ok()
                {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Every pooled connection answered a moment ago, so none is checked
    /// when handed out; Redis restarts; the next operations still succeed
    /// (each lost connection is dropped and the operation sent again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_behind_warm_connections_fails_no_operation() {
        let Some(mut server) = Server::start() else {
            eprintln!("SKIPPED: `redis-server` cannot be started here");
            return;
        };
        let store = RedisStore::builder(server.url())
            .pool_size(4)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let (a, b, c, d) = tokio::join!(store.ping(), store.ping(), store.ping(), store.ping());
        for result in [a, b, c, d] {
            result.unwrap();
        }
        assert!(store.backend.max_size() == 4);

        server.kill();
        assert!(server.spawn(), "restart redis-server");
        for _ in 0..4 {
            store.ping().await.unwrap();
        }
        // While it is down: unavailable, within the timeout.
        server.kill();
        let start = Instant::now();
        assert!(store.ping().await.unwrap_err().is_unavailable());
        assert!(start.elapsed() < Duration::from_secs(3));
    }
    /// `n` attempts on `key`'s code at once, each from a task of its own.
    async fn attempts_at_once(store: &RedisStore, key: &str, max: u32, n: usize) -> Vec<Attempt> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let store = store.clone();
                let key = StoreKey::new(key);
                tokio::spawn(async move { store.begin_attempt(&key, max).await })
            })
            .collect();
        let mut attempts = Vec::with_capacity(n);
        for task in tasks {
            attempts.push(task.await.unwrap().unwrap());
        }
        attempts
    }

    /// `PING`s the server has answered so far.
    fn pings(conn: &mut redis::Connection) -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    }

    /// Requests share the connection that answered last, without a pool
    /// checkout: many at once open no second connection and send no
    /// `PING`; once that connection has been idle past its freshness, the next
    /// request goes through the pool, which checks it with one `PING`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_share_the_fresh_connection_and_a_stale_one_is_pinged() {
        let Some(server) = Server::start() else {
            eprintln!("SKIPPED: `redis-server` cannot be started here");
            return;
        };
        let fresh = Duration::from_secs(1);
        let store = RedisStore::builder(server.url())
            .pool_size(8)
            .fresh(fresh)
            .build()
            .unwrap();
        let mut admin = Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let key = StoreKey::new("shared");
        store.begin_attempt(&key, 5).await.unwrap();
        let pings_before = pings(&mut admin);
        for _ in 0..5 {
            for attempt in attempts_at_once(&store, "shared", 5, 32).await {
                assert_eq!(attempt, Attempt::NoCode);
            }
        }
        assert_eq!(
            pings(&mut admin),
            pings_before,
            "a fresh connection is not pinged"
        );
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
        assert_eq!(
            clients.lines().count(),
            2,
            "the store's one connection and this one: {clients}"
        );

        tokio::time::sleep(fresh + Duration::from_millis(100)).await;
        store.begin_attempt(&key, 5).await.unwrap();
        assert_eq!(pings(&mut admin), pings_before + 1, "a stale one is");
        store.begin_attempt(&key, 5).await.unwrap();
        assert_eq!(pings(&mut admin), pings_before + 1, "and then fresh again");
    }

    /// After `SCRIPT FLUSH` (or a restart that lost the scripts), a script
    /// the server no longer knows is loaded and sent again, and none runs
    /// twice: after one attempt, eight concurrent ones on the same code are
    /// counted 2 to 9, once each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_script_flush_scripts_are_loaded_and_each_runs_once() {
        let Some(server) = Server::start() else {
            eprintln!("SKIPPED: `redis-server` cannot be started here");
            return;
        };
        let store = RedisStore::builder(server.url()).build().unwrap();
        let key = StoreKey::new("flushed");
        let record = CodeRecord::new([9; 16], vec![1; 32], 1);
        store
            .put_code(&key, &record, Duration::from_secs(60))
            .await
            .unwrap();
        // The scripts are loaded (each ran once), then the server loses them.
        let first = store.begin_attempt(&key, 100).await.unwrap();
        assert!(matches!(
            first,
            Attempt::Granted {
                attempts_used: 1,
                ..
            }
        ));
        assert_eq!(
            store
                .inspect_code(&key)
                .await
                .unwrap()
                .unwrap()
                .attempts_used,
            1
        );
        let mut conn = Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
        let mut counts = Vec::new();
        for attempt in attempts_at_once(&store, "flushed", 100, 8).await {
            match attempt {
                Attempt::Granted { attempts_used, .. } => counts.push(attempts_used),
                other => panic!("expected an attempt, got {other:?}"),
            }
        }
        counts.sort_unstable();
        assert_eq!(counts, (2..=9).collect::<Vec<u32>>());
        let status = store.inspect_code(&key).await.unwrap().unwrap();
        assert_eq!(status.attempts_used, 9);
    }
}
