//! The store conformance suite (`tower_otp::test_util`, feature `test-util`),
//! run against every store: `MemoryStore`, `RedisStore` on the shared Redis
//! at `REDIS_URL` (random key prefix per test), and `RedisStore` on a private
//! 3-master Redis Cluster started by the tests.

mod common;

use tower_otp::{store::MemoryStore, test_util::Harness};

tower_otp::store_conformance!(memory, || async {
    Some(Harness::new(MemoryStore::new(), ()))
});

#[cfg(feature = "redis")]
tower_otp::store_conformance!(redis_single, || async {
    let store =
        crate::common::redis_server::shared_store(std::time::Duration::from_secs(5)).await?;
    Some(Harness::new(store, ()))
});

#[cfg(feature = "redis")]
tower_otp::store_conformance!(redis_cluster, || async {
    let cluster = crate::common::redis_server::shared_cluster().await?;
    let store = tower_otp::store::RedisStore::cluster_builder(cluster.urls())
        .prefix(crate::common::redis_server::random_prefix())
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("cluster store");
    Some(Harness::new(store, cluster))
});
