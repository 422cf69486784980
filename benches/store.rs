//! Store latency: `put_code` and `begin_attempt` on `MemoryStore` and on
//! `RedisStore`, next to a raw `EVALSHA` of the same script on a bare
//! redis-rs multiplexed connection in the same runtime (the floor: one
//! round trip).
//!
//! - single node: the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`);
//! - cluster: the seed nodes in `REDIS_CLUSTER_URLS` (comma-separated), if set.
//!
//! Each Redis group runs twice: on a multi-thread runtime with one worker
//! (`store/redis`, `store/cluster`) and on a current-thread runtime
//! (`store/redis-1t`, `store/cluster-1t`), which is how
//! `redis-benchmark -c 1` runs and so the fair floor to compare with. The
//! single-node groups also run the store on a deadpool-redis pool
//! (`*-deadpool-redis`: `RedisStore::from_pool`, the store's pool before
//! this crate kept its own), which checks each connection with `UNWATCH` +
//! `PING` before every operation.
//!
//! Keys go under a random prefix and are deleted afterwards. The Redis parts
//! are skipped with a note when Redis is unreachable.
//!
//! `cargo bench --all-features --bench store -- --warm-up-time 1 --measurement-time 3`
//!
//! `STORE_FOOTPRINT=100000 cargo bench --all-features --bench store` instead
//! prints the `MemoryStore`'s resident memory per pending code and, with the
//! `redis` feature, the Redis memory per pending code: a private
//! `redis-server` (port `STORE_FOOTPRINT_REDIS_PORT`, default 6390, no
//! persistence) started and killed by the bench, filled through
//! `RedisStore`, `used_memory` (`INFO memory`) before and after.

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, criterion_main};
use rand::RngExt;
use tokio::runtime::Runtime;
use tower_otp::store::{CodeRecord, MemoryStore, OtpStore, StoreKey};

fn record() -> CodeRecord {
    CodeRecord::new(rand::rng().random(), vec![7; 32], 1)
}

fn key() -> StoreKey {
    StoreKey::new(format!("{:032x}", rand::rng().random::<u128>()))
}

fn bench_store(c: &mut Criterion, rt: &Runtime, name: &str, store: Arc<dyn OtpStore>) {
    let mut group = c.benchmark_group(format!("store/{name}"));
    let ttl = Duration::from_secs(300);
    let put_key = key();
    let rec = record();
    group.bench_function("put_code", |b| {
        b.to_async(rt)
            .iter(|| async { store.put_code(&put_key, &rec, ttl).await.unwrap() });
    });
    let attempt_key = key();
    rt.block_on(store.put_code(&attempt_key, &rec, ttl))
        .unwrap();
    group.bench_function("begin_attempt", |b| {
        b.to_async(rt)
            .iter(|| async { store.begin_attempt(&attempt_key, u32::MAX).await.unwrap() });
    });
    group.finish();
    rt.block_on(async {
        store.remove_code(&put_key, &rec.salt).await.unwrap();
        store.remove_code(&attempt_key, &rec.salt).await.unwrap();
    });
}

#[cfg(feature = "redis")]
mod redis_part {
    use super::*;
    use redis::{Script, aio::ConnectionLike};
    use tower_otp::store::RedisStore;

    /// `put_code`'s and `begin_attempt`'s scripts, as the store sends them.
    /// (Each is the shared helpers of `contact.lua` and then its own file.)
    const PUT_CODE: &str = concat!(
        include_str!("../src/store/lua/contact.lua"),
        include_str!("../src/store/lua/put_code.lua")
    );
    const BEGIN_ATTEMPT: &str = concat!(
        include_str!("../src/store/lua/contact.lua"),
        include_str!("../src/store/lua/begin_attempt.lua")
    );

    fn prefix() -> String {
        format!("otp-bench:{:016x}:", rand::rng().random::<u64>())
    }

    /// The floor: `EVALSHA` of `put_code`'s and `begin_attempt`'s scripts,
    /// same arguments, on a bare connection (`conn`), one caller at a time.
    fn bench_raw<C: ConnectionLike + Clone + Send + 'static>(
        c: &mut Criterion,
        rt: &Runtime,
        name: &str,
        conn: C,
        key: String,
    ) {
        let script = Script::new(PUT_CODE);
        let rec = record().to_bytes();
        let mut group = c.benchmark_group(format!("store/{name}"));
        group.bench_function("raw_evalsha_put_code", |b| {
            b.to_async(rt).iter(|| {
                let mut conn = conn.clone();
                let (script, key, rec) = (&script, &key, &rec);
                async move {
                    let _: i64 = script
                        .key(key)
                        .arg(&rec[..])
                        .arg(300_000)
                        .arg("")
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                }
            });
        });
        let begin = Script::new(BEGIN_ATTEMPT);
        group.bench_function("raw_evalsha_begin_attempt", |b| {
            b.to_async(rt).iter(|| {
                let mut conn = conn.clone();
                let (begin, key) = (&begin, &key);
                async move {
                    let _: (i64, Vec<u8>, u32) = begin
                        .key(key)
                        .arg(u32::MAX)
                        .arg("")
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                }
            });
        });
        group.finish();
        rt.block_on(async {
            let mut conn = conn.clone();
            let _: () = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        });
    }

    pub(super) fn single(c: &mut Criterion, rt: &Runtime, label: &str) {
        let url = std::env::var("REDIS_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let store = RedisStore::builder(&url)
            .prefix(prefix())
            .build()
            .expect("redis store");
        if let Err(e) = rt.block_on(store.ping()) {
            eprintln!(
                "NOTE: skipping the RedisStore benchmarks: Redis at {url} is unreachable ({e})"
            );
            return;
        }
        let conn = rt
            .block_on(
                redis::Client::open(url.as_str())
                    .unwrap()
                    .get_multiplexed_async_connection(),
            )
            .expect("raw connection");
        bench_raw(c, rt, label, conn, format!("{}{{raw}}", prefix()));
        bench_store(c, rt, label, Arc::new(store));
        // The same store on a deadpool-redis pool (the `from_pool` escape
        // hatch, and what the store used before): `UNWATCH` + `PING` on
        // every checkout.
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("deadpool-redis pool");
        let store = RedisStore::builder_from_pool(pool)
            .prefix(prefix())
            .build()
            .expect("redis store on a deadpool-redis pool");
        bench_store(c, rt, &format!("{label}-deadpool-redis"), Arc::new(store));
    }

    /// `used_memory` of the Redis behind `conn`, in bytes.
    async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(conn)
            .await
            .expect("INFO memory");
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory in INFO memory")
    }

    /// With `STORE_FOOTPRINT=<n>`: starts a private `redis-server` (port
    /// `STORE_FOOTPRINT_REDIS_PORT`, default 6390; no RDB, no AOF), fills
    /// it through `RedisStore` (default prefix `otp:`) with `n` pending
    /// codes (32-hex-digit digests, 52-byte records, TTL 300 s) and then
    /// their `n` send records (cooldown 30 s, quota 5 per 600 s), and
    /// prints the `used_memory` delta per code, per send record and per
    /// pending code with its send record. The server is killed afterwards.
    pub(super) fn footprint(rt: &Runtime, n: usize) {
        let port: u16 = std::env::var("STORE_FOOTPRINT_REDIS_PORT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6390);
        let dir = std::env::temp_dir().join(format!("tower-otp-footprint-{port}"));
        let _ = std::fs::create_dir_all(&dir);
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("NOTE: skipping the Redis footprint: `redis-server` cannot be started");
            return;
        };
        let url = format!("redis://127.0.0.1:{port}");
        rt.block_on(redis_footprint(&url, n));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn redis_footprint(url: &str, n: usize) {
        let client = redis::Client::open(url).unwrap();
        let mut conn = None;
        for _ in 0..250 {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(mut conn) = conn else {
            eprintln!(
                "NOTE: skipping the Redis footprint: the private redis-server did not answer"
            );
            return;
        };
        let version: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .unwrap();
        let version = version
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        let store = RedisStore::builder(url)
            .pool_size(8)
            .build()
            .expect("redis store");
        let limits =
            tower_otp::store::SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
        let ttl = Duration::from_secs(300);
        // Load the scripts and open the pool's connections first.
        let warm = key();
        let warm_rec = record();
        let warm_calls = (0..8).map(|_| async {
            store.put_code(&warm, &warm_rec, ttl).await.unwrap();
            store.reserve_send(&warm, &limits).await.unwrap();
        });
        futures_util::future::join_all(warm_calls).await;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        let keys: Vec<StoreKey> = (0..n).map(|_| key()).collect();
        let records: Vec<CodeRecord> = (0..n).map(|_| record()).collect();
        let settle = || tokio::time::sleep(Duration::from_millis(300));
        settle().await;
        let before = used_memory(&mut conn).await;
        for chunk in keys.chunks(64).zip(records.chunks(64)) {
            let calls = chunk
                .0
                .iter()
                .zip(chunk.1)
                .map(|(k, r)| store.put_code(k, r, ttl));
            for result in futures_util::future::join_all(calls).await {
                result.unwrap();
            }
        }
        settle().await;
        let codes = used_memory(&mut conn).await;
        for chunk in keys.chunks(64) {
            let calls = chunk.iter().map(|k| store.reserve_send(k, &limits));
            for result in futures_util::future::join_all(calls).await {
                result.unwrap();
            }
        }
        settle().await;
        let sends = used_memory(&mut conn).await;
        let keys_now: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / n as f64;
        eprintln!(
            "Redis {version} footprint, {n} entries ({keys_now} keys): {:.0} B per code, {:.0} B per send record, {:.0} B per pending code with its send record (used_memory delta)",
            per(before, codes),
            per(codes, sends),
            per(before, sends)
        );
    }

    pub(super) fn cluster(c: &mut Criterion, rt: &Runtime, label: &str) {
        let Some(urls) = std::env::var("REDIS_CLUSTER_URLS")
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            eprintln!("NOTE: skipping the Redis Cluster benchmarks: REDIS_CLUSTER_URLS is not set");
            return;
        };
        let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
        let store = RedisStore::cluster_builder(urls.clone())
            .prefix(prefix())
            .build()
            .expect("redis cluster store");
        if let Err(e) = rt.block_on(store.ping()) {
            eprintln!("NOTE: skipping the Redis Cluster benchmarks: unreachable ({e})");
            return;
        }
        let conn = rt
            .block_on(
                redis::cluster::ClusterClient::new(urls)
                    .unwrap()
                    .get_async_connection(),
            )
            .expect("raw cluster connection");
        bench_raw(c, rt, label, conn, format!("{}{{raw}}", prefix()));
        bench_store(c, rt, label, Arc::new(store));
    }
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// With `STORE_FOOTPRINT=<n>`: fills a `MemoryStore` with `n` pending codes
/// (32-hex-digit keys, 32-byte hashes, as the engine makes them), then
/// with their `n` send records, and prints the resident memory per entry.
fn footprint(rt: &Runtime, n: usize) {
    let store = MemoryStore::with_max_entries(n);
    let keys: Vec<StoreKey> = (0..n).map(|_| key()).collect();
    let records: Vec<CodeRecord> = (0..n).map(|_| record()).collect();
    let limits =
        tower_otp::store::SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    let before = resident_bytes().unwrap_or(0);
    rt.block_on(async {
        for (k, r) in keys.iter().zip(&records) {
            store
                .put_code(k, r, Duration::from_secs(300))
                .await
                .unwrap();
        }
    });
    let codes = resident_bytes().unwrap_or(0);
    rt.block_on(async {
        for k in &keys {
            store.reserve_send(k, &limits).await.unwrap();
        }
    });
    let sends = resident_bytes().unwrap_or(0);
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64;
    eprintln!(
        "MemoryStore footprint, {n} entries: {:.0} B per code, {:.0} B per send record, {:.0} B per pending code with its send record (resident memory delta)",
        per(before, codes),
        per(codes, sends),
        per(before, sends)
    );
    drop(store);
}

fn benches(c: &mut Criterion) {
    // As a server runs: the caller and the connection's task may be on
    // different threads (here: criterion's thread and the one worker).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // One thread, like `redis-benchmark -c 1`: the round trip without the
    // hand-offs between threads (the `-1t` groups).
    let rt1 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(n) = std::env::var("STORE_FOOTPRINT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        footprint(&rt, n);
        #[cfg(feature = "redis")]
        redis_part::footprint(&rt, n);
        return;
    }
    bench_store(c, &rt, "memory", Arc::new(MemoryStore::new()));
    #[cfg(feature = "redis")]
    {
        redis_part::single(c, &rt, "redis");
        redis_part::single(c, &rt1, "redis-1t");
        redis_part::cluster(c, &rt, "cluster");
        redis_part::cluster(c, &rt1, "cluster-1t");
    }
    #[cfg(not(feature = "redis"))]
    eprintln!("NOTE: skipping the RedisStore benchmarks: built without the `redis` feature");
}

/// criterion's generated group function carries no docs.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(store, super::benches);
}

criterion_main!(group::store);
