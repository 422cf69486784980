//! Store latency: `put_code` and `begin_attempt` on `MemoryStore` and on
//! `RedisStore` (the Redis at `REDIS_URL`, default `redis://127.0.0.1:6379`,
//! under a random key prefix that is deleted afterwards). The Redis part is
//! skipped with a note when Redis is unreachable.
//!
//! `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, criterion_main};
use rand::Rng;
use tokio::runtime::Runtime;
use tower_otp::store::{CodeRecord, MemoryStore, OtpStore, StoreKey};

fn record() -> CodeRecord {
    CodeRecord {
        salt: rand::rng().random(),
        hash: vec![7; 32],
        secret_id: 1,
    }
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
fn redis_store(rt: &Runtime) -> Option<Arc<dyn OtpStore>> {
    use tower_otp::store::RedisStore;
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("otp-bench:{:016x}:", rand::rng().random::<u64>());
    let store = RedisStore::builder(&url)
        .prefix(prefix)
        .build()
        .expect("redis store");
    match rt.block_on(store.ping()) {
        Ok(()) => Some(Arc::new(store)),
        Err(e) => {
            eprintln!(
                "NOTE: skipping the RedisStore benchmarks: Redis at {url} is unreachable ({e})"
            );
            None
        }
    }
}

#[cfg(not(feature = "redis"))]
fn redis_store(_rt: &Runtime) -> Option<Arc<dyn OtpStore>> {
    eprintln!("NOTE: skipping the RedisStore benchmarks: built without the `redis` feature");
    None
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    bench_store(c, &rt, "memory", Arc::new(MemoryStore::new()));
    if let Some(store) = redis_store(&rt) {
        bench_store(c, &rt, "redis", store);
    }
}

/// criterion's generated group function carries no docs.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(store, super::benches);
}

criterion_main!(group::store);
