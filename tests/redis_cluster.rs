//! `RedisStore` on a private 3-master Redis Cluster: one contact's keys
//! share a hash tag, so they live in one slot on one master, and every
//! script touches only that key. (The full conformance suite also runs on
//! the cluster, in `store_conformance.rs`.)
#![cfg(feature = "redis")]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::redis_server::{random_prefix, raw_connection, shared_cluster};
use http::StatusCode;
use redis::AsyncCommands;
use tower_otp::test_util::{Harness, code_for, email, send, verify};
use tower_otp::{Contact, Email, store::RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_keys_live_in_one_slot_and_contacts_spread_over_masters() {
    let Some(cluster) = shared_cluster().await else {
        return;
    };
    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix(random_prefix())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(store.is_cluster());
    store.ping().await.unwrap();
    let harness = Harness::new(store.clone(), ());
    let (otp, outbox) = harness.otp(|b| b);

    let mut masters = BTreeSet::new();
    for _ in 0..12 {
        let user = email();
        assert_eq!(send(&otp, &user).await.0, StatusCode::OK);
        let key = otp.store_key(&Contact::Email(Email::parse(&user).unwrap()));
        let (code_key, send_key) = (store.code_key(&key), store.send_key(&key));
        let node = cluster.node_for_key(&code_key).await;
        assert_eq!(node, cluster.node_for_key(&send_key).await);
        masters.insert(node);

        // Both keys are on that master itself (no redirection), with TTLs.
        let mut conn = raw_connection(&format!("redis://127.0.0.1:{node}")).await;
        for k in [&code_key, &send_key] {
            let ttl: i64 = conn.pttl(k).await.unwrap();
            assert!(ttl > 0, "{k} has PTTL {ttl}");
        }

        let (status, _, body) = verify(&otp, &user, &code_for(&outbox, &user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let exists: bool = conn.exists(&code_key).await.unwrap();
        assert!(!exists, "the used code is gone");
    }
    // 12 random digests over 3 masters: all on one master would mean the
    // hash tag is not the digest (odds (1/3)^11).
    assert!(masters.len() > 1, "{masters:?}");

    // The cluster view from a cluster-aware raw client agrees.
    let mut conn = cluster.raw_connection().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}
