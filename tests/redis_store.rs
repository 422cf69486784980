//! `RedisStore` on a single Redis: what lands in Redis (no raw contact in
//! keys, TTLs set, one hash tag per contact), scripts called by SHA, error
//! classification, two app instances sharing one Redis, and `REDIS_OTP_URL`
//! in `OtpBuilder::from_env_with`.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::redis_server::{
    RedisServer, binaries_available, random_prefix, raw_connection, shared_redis,
};
use http::StatusCode;
use redis::AsyncCommands;
use tower_otp::test_util::{
    Harness, code_for, email, random_key, random_secret, record, send, verify, wrong,
};
use tower_otp::{
    Contact, Email, Otp, OtpBuilder,
    delivery::MemoryOutbox,
    hash::HashParams,
    store::{OtpStore, RedisStore},
};

fn contact(email: &str) -> Contact {
    Contact::Email(Email::parse(email).unwrap())
}

async fn keys_with_prefix(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn keys_carry_no_contact_and_expire_on_their_own() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let prefix = random_prefix();
    let store = RedisStore::builder(&url).prefix(&prefix).build().unwrap();
    let harness = Harness::new(store.clone(), ());
    let (otp, outbox) = harness.otp(|b| {
        b.code_ttl(Duration::from_secs(120))
            .resend_cooldown(Duration::from_secs(20))
            .send_quota(5, Duration::from_secs(300))
    });
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);

    let key = otp.store_key(&contact(&email));
    let mut conn = raw_connection(&url).await;
    let keys = keys_with_prefix(&mut conn, &prefix).await;
    let code_key = format!("{prefix}{{{key}}}:code");
    let send_key = format!("{prefix}{{{key}}}:send");
    assert_eq!(keys, vec![code_key.clone(), send_key.clone()]);
    assert_eq!(store.code_key(&key), code_key);
    assert_eq!(store.send_key(&key), send_key);

    // No part of the address appears in any key or value.
    let local = email.split('@').next().unwrap();
    for k in &keys {
        assert!(
            !k.contains(local) && !k.to_lowercase().contains("example"),
            "{k}"
        );
        let values: Vec<(String, Vec<u8>)> = conn.hgetall(k).await.unwrap();
        for (field, value) in values {
            let text = String::from_utf8_lossy(&value).to_lowercase();
            assert!(
                !text.contains(local) && !text.contains("example.com"),
                "{k} {field}"
            );
        }
    }
    // The code is not stored in clear either.
    let code = code_for(&outbox, &email);
    let rec: Vec<u8> = conn.hget(&code_key, "rec").await.unwrap();
    assert!(!rec.windows(code.len()).any(|w| w == code.as_bytes()));

    // Redis expires both keys itself: the code after its TTL, the send
    // record at the end of the quota window.
    let code_ttl: i64 = conn.pttl(&code_key).await.unwrap();
    assert!((110_000..=120_000).contains(&code_ttl), "{code_ttl}");
    let send_ttl: i64 = conn.pttl(&send_key).await.unwrap();
    assert!((290_000..=300_000).contains(&send_ttl), "{send_ttl}");

    // Verifying consumes the code key; the send record stays for the limits.
    assert_eq!(verify(&otp, &email, &code).await.0, StatusCode::OK);
    assert_eq!(
        keys_with_prefix(&mut conn, &prefix).await,
        vec![send_key.clone()]
    );
    let _: () = conn.del(&send_key).await.unwrap();
}

#[tokio::test]
async fn scripts_are_loaded_once_and_called_by_sha() {
    if binaries_available().is_none() {
        return;
    }
    let server = RedisServer::start().await;
    let store = RedisStore::builder(server.url())
        .prefix(random_prefix())
        .build()
        .unwrap();
    let key = random_key();
    let rec = record();
    let mut conn = raw_connection(&server.url()).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();

    for _ in 0..3 {
        store
            .put_code(&key, &rec, Duration::from_secs(60))
            .await
            .unwrap();
    }
    // Scripts vanish (e.g. a failover to a fresh replica): the store reloads.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.remove_code(&key, &rec.salt).await.unwrap());

    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let calls = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(calls("eval"), 0, "{stats}");
    // 4 put_code + 1 remove_code by SHA, plus one retry after each of the
    // 3 NOSCRIPT answers (first put_code, put_code after the flush, first
    // remove_code).
    assert_eq!(calls("evalsha"), 8, "{stats}");
    let evalsha = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap();
    assert!(evalsha.contains("failed_calls=3"), "{evalsha}");
    // put_code loaded twice (first use, after the flush), remove_code once.
    assert_eq!(calls("script|load"), 3, "{stats}");
}

#[tokio::test]
async fn wrong_data_in_a_key_is_an_internal_error_not_an_outage() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let prefix = random_prefix();
    let store = RedisStore::builder(&url).prefix(&prefix).build().unwrap();
    let key = random_key();
    let mut conn = raw_connection(&url).await;
    let _: () = conn
        .set_ex(store.code_key(&key), "not a hash", 60)
        .await
        .unwrap();
    let err = store.begin_attempt(&key, 5).await.unwrap_err();
    assert!(!err.is_unavailable(), "{err}");

    // Through the layer: 500 internal, with no Redis text in the body.
    let harness = Harness::new(store.clone(), ());
    let (otp, _) = harness.otp(|b| b);
    let email = email();
    let code_key = store.code_key(&otp.store_key(&contact(&email)));
    let _: () = conn.set_ex(&code_key, "not a hash", 60).await.unwrap();
    let (status, _, body) = verify(&otp, &email, "123456").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "internal");
    assert!(
        !body.to_string().to_lowercase().contains("wrongtype"),
        "{body}"
    );
    let _: () = conn.del(&[store.code_key(&key), code_key]).await.unwrap();
}

#[tokio::test]
async fn unreachable_redis_is_503_store_unavailable_within_the_timeout() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let harness = Harness::new(store, ());
    let (otp, outbox) = harness.otp(|b| b);
    let email = email();
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let (status, _, body) = send(&otp, &email).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "store_unavailable");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let (status, _, body) = verify(&otp, &email, "123456").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    assert!(
        outbox.messages().is_empty(),
        "nothing is sent without the store"
    );
}

/// Two `Otp` handles with the same secret and their own pools, as two app
/// instances behind a load balancer.
fn two_instances(
    url: &str,
    prefix: &str,
    configure: impl Fn(OtpBuilder) -> OtpBuilder,
) -> (Otp, Otp, MemoryOutbox) {
    let secret = random_secret();
    let outbox = MemoryOutbox::new();
    let make = || {
        let store = RedisStore::builder(url).prefix(prefix).build().unwrap();
        configure(
            Otp::builder()
                .secret(secret.clone())
                .store(store)
                .email_sender(outbox.clone())
                .hash_params(HashParams::insecure_fast()),
        )
        .build()
        .unwrap()
    };
    (make(), make(), outbox)
}

#[tokio::test]
async fn two_instances_share_codes_attempts_cooldowns_and_quotas() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let prefix = random_prefix();
    let (a, b, outbox) = two_instances(&url, &prefix, |b| b);

    // A code sent through one verifies through the other, once.
    let email1 = email();
    assert_eq!(send(&a, &email1).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email1);
    let (status, _, body) = verify(&b, &email1, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, body) = verify(&a, &email1, &code).await;
    assert_eq!(body["code"], "otp_expired");

    // The cooldown set through one holds on the other.
    let email2 = email();
    assert_eq!(send(&a, &email2).await.0, StatusCode::OK);
    let (status, _, body) = send(&b, &email2).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");

    // Attempts are counted across instances.
    let code2 = code_for(&outbox, &email2);
    for _ in 0..2 {
        assert_eq!(
            verify(&a, &email2, &wrong(&code2)).await.0,
            StatusCode::BAD_REQUEST
        );
    }
    let (_, _, body) = verify(&b, &email2, &wrong(&code2)).await;
    assert_eq!(body["attempts_left"], 2, "{body}");

    // The quota set through one holds on the other.
    let prefix = random_prefix();
    let (a, b, _) = two_instances(&url, &prefix, |b| {
        b.resend_cooldown(Duration::ZERO)
            .send_quota(2, Duration::from_secs(600))
    });
    let email3 = email();
    assert_eq!(send(&a, &email3).await.0, StatusCode::OK);
    assert_eq!(send(&b, &email3).await.0, StatusCode::OK);
    let (status, _, body) = send(&a, &email3).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _, _) = send(&b, &email3).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

fn env<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn redis_otp_url_selects_the_redis_store() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let secret = random_secret();
    let outbox = MemoryOutbox::new();
    let vars = [
        ("OTP_SECRET", secret.clone()),
        ("REDIS_OTP_URL", url.clone()),
    ];
    let otp = OtpBuilder::from_env_with(env(&vars))
        .unwrap()
        .email_sender(outbox.clone())
        .hash_params(HashParams::insecure_fast())
        .build()
        .unwrap();
    assert!(format!("{otp:?}").contains("RedisStore"));
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    // The code is in Redis under the default prefix.
    let key = otp.store_key(&contact(&email));
    let code_key = format!("otp:{{{key}}}:code");
    let send_key = format!("otp:{{{key}}}:send");
    let mut conn = raw_connection(&url).await;
    let exists: bool = conn.exists(&code_key).await.unwrap();
    let _: () = conn.del(&[&code_key, &send_key]).await.unwrap();
    assert!(exists);

    // Without it: the memory store, nothing in Redis.
    let vars = [("OTP_SECRET", secret)];
    let otp = OtpBuilder::from_env_with(env(&vars))
        .unwrap()
        .email_sender(outbox.clone())
        .hash_params(HashParams::insecure_fast())
        .build()
        .unwrap();
    assert!(format!("{otp:?}").contains("MemoryStore"));
    let email2 = tower_otp::test_util::email();
    assert_eq!(send(&otp, &email2).await.0, StatusCode::OK);
    let key = otp.store_key(&contact(&email2));
    let exists: bool = conn.exists(format!("otp:{{{key}}}:code")).await.unwrap();
    assert!(!exists);
}

#[test]
fn redis_otp_url_forms() {
    let secret = random_secret();
    // Several URLs: a cluster, seeded by each.
    let vars = [
        ("OTP_SECRET", secret.clone()),
        (
            "REDIS_OTP_URL",
            "redis://127.0.0.1:7000, redis://127.0.0.1:7001".to_owned(),
        ),
    ];
    let otp = OtpBuilder::from_env_with(env(&vars))
        .unwrap()
        .build()
        .unwrap();
    let debug = format!("{otp:?}");
    assert!(
        debug.contains("RedisStore") && debug.contains("\"cluster\""),
        "{debug}"
    );

    // A bad URL names the variable.
    let vars = [
        ("OTP_SECRET", secret),
        ("REDIS_OTP_URL", "nonsense".to_owned()),
    ];
    let err = OtpBuilder::from_env_with(env(&vars)).unwrap_err();
    assert!(err.to_string().contains("REDIS_OTP_URL"), "{err}");

    // The password of a URL never shows in Debug output.
    let store = RedisStore::from_url("redis://:hunter2hunter2@127.0.0.1:6379").unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
}
