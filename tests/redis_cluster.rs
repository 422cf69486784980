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
        // One key per contact (its code and send record), next to its
        // failure record in the same slot.
        let contact_key = store.code_key(&key);
        assert_eq!(contact_key, store.send_key(&key));
        let node = cluster.node_for_key(&contact_key).await;
        assert_eq!(node, cluster.node_for_key(&store.failure_key(&key)).await);
        masters.insert(node);

        // The key is on that master itself (no redirection), with a TTL.
        let mut conn = raw_connection(&format!("redis://127.0.0.1:{node}")).await;
        let ttl: i64 = conn.pttl(&contact_key).await.unwrap();
        assert!(ttl > 0, "{contact_key} has PTTL {ttl}");
        let held: bool = conn.hexists(&contact_key, "rec").await.unwrap();
        assert!(held, "the code is in {contact_key}");

        let (status, _, body) = verify(&otp, &user, &code_for(&outbox, &user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let held: bool = conn.hexists(&contact_key, "rec").await.unwrap();
        assert!(!held, "the used code is gone");
    }
    // 12 random digests over 3 masters: all on one master would mean the
    // hash tag is not the digest (odds (1/3)^11).
    assert!(masters.len() > 1, "{masters:?}");

    // The cluster view from a cluster-aware raw client agrees.
    let mut conn = cluster.raw_connection().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_in_redis_otp_url_make_a_working_cluster_store() {
    let Some(cluster) = shared_cluster().await else {
        return;
    };
    // The environment's form: a comma-separated list (with spaces).
    let urls = cluster.urls().join(", ");
    let vars = [
        (
            "OTP_SECRET".to_owned(),
            tower_otp::test_util::random_secret(),
        ),
        ("REDIS_OTP_URL".to_owned(), urls),
    ];
    let outbox = tower_otp::delivery::MemoryOutbox::new();
    let otp = tower_otp::OtpBuilder::from_env_with(move |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
    .email_sender(outbox.clone())
    .hash_params(tower_otp::hash::HashParams::insecure_fast())
    .build()
    .unwrap();
    // Contacts spread over the three masters: a client of one node would
    // meet MOVED for most of them. Each send lands in the cluster and its
    // code verifies.
    let mut conn = cluster.raw_connection().await;
    let mut masters = BTreeSet::new();
    for _ in 0..12 {
        let user = email();
        let (status, _, body) = send(&otp, &user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let key = otp.store_key(&Contact::Email(Email::parse(&user).unwrap()));
        let code_key = format!("otp:{{{key}}}");
        let exists: bool = conn.hexists(&code_key, "rec").await.unwrap();
        assert!(exists, "{code_key} is in the cluster");
        masters.insert(cluster.node_for_key(&code_key).await);
        let (status, _, body) = verify(&otp, &user, &code_for(&outbox, &user)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(masters.len() > 1, "{masters:?}");
}
