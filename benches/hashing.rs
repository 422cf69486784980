//! Argon2id hashing throughput: the naive call (a fresh `Argon2` and freshly
//! allocated memory for every hash, as `hash_password_into` does) against the
//! crate's hashing pool (dedicated threads reusing their memory blocks), with
//! one caller and with two concurrent callers (what a 2-core server gets).
//!
//! The pool runs the backend the features select; run the bench once per
//! backend (groups are named after it, so the two runs do not overwrite each
//! other). `naive_single` is RustCrypto's `argon2` in both runs: the same-run
//! reference.
//!
//! ```text
//! cargo bench --bench hashing                                              # rustcrypto-argon2
//! cargo bench --no-default-features --features simd-argon2 --bench hashing # argon2-rust
//! ```
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool, backend},
};

const SECRET: &str = "benchmark secret, 32 bytes long!";
const CODE: &str = "123456";
const SALT: [u8; 16] = [7; 16];

/// The parameter sets the performance issue asks for; the first is the default.
const SETS: [(u32, u32, u32); 4] = [(19_456, 2, 1), (65_536, 3, 4), (4_096, 3, 1), (1_024, 1, 1)];

fn label((m, t, p): (u32, u32, u32)) -> String {
    format!("m={m},t={t},p={p}")
}

fn hashing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    for set in SETS {
        let (m, t, p) = set;
        let params = HashParams {
            m_cost: m,
            t_cost: t,
            p_cost: p,
        };
        let pool = HashPool::new(params, Secret::new(SECRET), &[], 2, 64).expect("pool");
        let mut group = c.benchmark_group(format!("hash/{}/{}", backend::NAME, label(set)));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if m > 20_000 { 20 } else { 8 }));

        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter("naive_single"), |b| {
            let argon_params = Params::new(m, t, p, Some(32)).expect("params");
            b.iter(|| {
                let argon = Argon2::new_with_secret(
                    SECRET.as_bytes(),
                    Algorithm::Argon2id,
                    Version::V0x13,
                    argon_params.clone(),
                )
                .expect("argon2");
                let mut out = [0u8; 32];
                argon
                    .hash_password_into(CODE.as_bytes(), &SALT, &mut out)
                    .expect("hash");
                out
            });
        });
        // The backend the pool runs, called directly on this thread with its
        // memory reused: what one caller through the pool is measured against.
        group.bench_function(BenchmarkId::from_parameter("direct_single"), |b| {
            let mut direct = backend::Direct::new(params).expect("backend");
            b.iter(|| {
                direct
                    .hash(SECRET.as_bytes(), CODE.as_bytes(), &SALT)
                    .expect("hash")
            });
        });
        group.bench_function(BenchmarkId::from_parameter("pool_single"), |b| {
            b.to_async(&runtime)
                .iter(|| async { pool.hash(CODE, &SALT).await.expect("hash") });
        });
        // Two callers at once: each iteration completes two hashes.
        group.throughput(Throughput::Elements(2));
        group.bench_function(BenchmarkId::from_parameter("pool_two_callers"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    let one = async {
                        for _ in 0..iters {
                            pool.hash(CODE, &SALT).await.expect("hash");
                        }
                    };
                    let two = async {
                        for _ in 0..iters {
                            pool.hash(CODE, &SALT).await.expect("hash");
                        }
                    };
                    tokio::join!(one, two);
                    start.elapsed()
                })
            });
        });
        if set == SETS[0] {
            group.throughput(Throughput::Elements(1));
            let hash = runtime.block_on(pool.hash(CODE, &SALT)).expect("hash");
            let id = pool.current_secret_id();
            group.bench_function(BenchmarkId::from_parameter("pool_verify"), |b| {
                b.to_async(&runtime).iter(|| async {
                    assert!(
                        pool.verify(CODE, &SALT, id, &hash[..])
                            .await
                            .expect("verify")
                    );
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, hashing);
criterion_main!(benches);
