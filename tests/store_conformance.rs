//! The store conformance suite (`tests/common/store_suite.rs`), run against
//! every store: `MemoryStore`, `RedisStore` on the shared Redis at
//! `REDIS_URL` (random key prefix per test), and `RedisStore` on a private
//! 3-master Redis Cluster started by the tests.

#[macro_use]
mod common;

use common::store_suite::Harness;
use tower_otp::store::MemoryStore;

store_conformance!(memory, || async {
    Some(Harness::new(MemoryStore::new(), ()))
});

#[cfg(feature = "redis")]
store_conformance!(redis_single, || async {
    let store = common::redis_server::shared_store(std::time::Duration::from_secs(5)).await?;
    Some(Harness::new(store, ()))
});

#[cfg(feature = "redis")]
store_conformance!(redis_cluster, || async {
    let cluster = common::redis_server::shared_cluster().await?;
    let store = tower_otp::store::RedisStore::cluster_builder(cluster.urls())
        .prefix(common::redis_server::random_prefix())
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("cluster store");
    Some(Harness::new(store, cluster))
});
