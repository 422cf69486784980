//! `RedisStore` on a single Redis: what lands in Redis (no raw contact in
//! keys, TTLs set, one key per contact for its codes and send record, and
//! what a pending code costs), scripts called by SHA, error classification,
//! two app instances sharing one Redis, and `REDIS_OTP_URL` in
//! `OtpBuilder::from_env_with`.
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
    store::{Attempt, OtpStore, RedisStore, SendLimits, SendReservation},
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
    // One key per contact: its code and its send record.
    let contact_key = format!("{prefix}{{{key}}}");
    assert_eq!(keys, vec![contact_key.clone()]);
    assert_eq!(store.code_key(&key), contact_key);
    assert_eq!(store.send_key(&key), contact_key);
    let mut fields: Vec<String> = conn.hkeys(&contact_key).await.unwrap();
    fields.sort();
    assert_eq!(fields, ["att", "cd", "exp", "n", "rec", "we"]);
    // Still a listpack (compact) with the 52-byte record in it.
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(&contact_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(encoding, "listpack");

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
    let rec: Vec<u8> = conn.hget(&contact_key, "rec").await.unwrap();
    assert_eq!(rec.len(), 52, "salt, secret id, hash");
    assert!(!rec.windows(code.len()).any(|w| w == code.as_bytes()));

    // The code carries its own expiry (server clock, ms); Redis expires
    // the key itself at the latest end: here the quota window's.
    let now = server_ms(&mut conn).await;
    let exp: i64 = conn.hget(&contact_key, "exp").await.unwrap();
    assert!((110_000..=120_000).contains(&(exp - now)), "{}", exp - now);
    let ttl: i64 = conn.pttl(&contact_key).await.unwrap();
    assert!((290_000..=300_000).contains(&ttl), "{ttl}");

    // Verifying consumes the code's fields; the send record stays for the
    // limits, and so does the key, until the end of the window.
    assert_eq!(verify(&otp, &email, &code).await.0, StatusCode::OK);
    assert_eq!(
        keys_with_prefix(&mut conn, &prefix).await,
        vec![contact_key.clone()]
    );
    let mut fields: Vec<String> = conn.hkeys(&contact_key).await.unwrap();
    fields.sort();
    assert_eq!(fields, ["cd", "n", "we"]);
    let ttl: i64 = conn.pttl(&contact_key).await.unwrap();
    assert!((290_000..=300_000).contains(&ttl), "{ttl}");
    let _: () = conn.del(&contact_key).await.unwrap();
}

/// The Redis server's clock, in ms (the one the scripts use).
async fn server_ms(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// What is left of the key's life, in ms (-2: no key).
async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    conn.pttl(key).await.unwrap()
}

/// A code past its expiry still sits in the contact's key while the send
/// record keeps the key alive, and every operation answers as if it were
/// missing, the same answers as a code Redis expired.
#[tokio::test]
async fn an_expired_code_in_the_contact_key_answers_like_a_missing_one() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let store = RedisStore::builder(&url)
        .prefix(random_prefix())
        .build()
        .unwrap();
    let mut conn = raw_connection(&url).await;
    let key = random_key();
    let login = key.with_purpose("login");
    let contact_key = store.code_key(&key);
    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    store.reserve_send(&key, &limits).await.unwrap();
    let (rec, other) = (record(), record());
    store
        .put_code(&key, &rec, Duration::from_millis(300))
        .await
        .unwrap();
    store
        .put_code(&login, &other, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(matches!(
        store.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted { .. }
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The fields are still there (the window holds the key) ...
    let held: bool = conn.hexists(&contact_key, "rec").await.unwrap();
    assert!(held, "the expired code's fields are still in the key");
    // ... and answer like a missing code, for every operation.
    assert_eq!(store.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);
    assert_eq!(store.inspect_code(&key).await.unwrap(), None);
    assert!(!store.remove_code(&key, &rec.salt).await.unwrap());
    assert!(!store.consume_code(&key, &rec.salt).await.unwrap());
    assert!(!store.delete_code(&key).await.unwrap());
    assert_eq!(store.inspect_code(&login).await.unwrap(), None);
    assert!(!store.consume_code(&login, &other.salt).await.unwrap());
    // The send record is untouched.
    let sends = store.inspect_sends(&key).await.unwrap().expect("a record");
    assert_eq!(sends.sends, 1);
    assert!(matches!(
        store.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Cooldown { .. }
    ));
    // The next write drops the ended parts: only the send record is left.
    store.clear_sends(&key).await.unwrap();
    store.reserve_send(&key, &limits).await.unwrap();
    let mut fields: Vec<String> = conn.hkeys(&contact_key).await.unwrap();
    fields.sort();
    assert_eq!(fields, ["cd", "n", "we"]);
    // A new code in its place works as usual.
    store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            record: rec.clone(),
            attempts_used: 1
        }
    );
    assert!(store.consume_code(&key, &rec.salt).await.unwrap());
    let _: () = conn.del(&contact_key).await.unwrap();
}

/// The contact's key lives until the latest end of what it holds (code
/// expiries, cooldown end, window end): a write that adds a later part
/// lengthens it, one that removes the latest part shortens it, and the key
/// goes when nothing is left.
#[tokio::test]
async fn the_contact_key_expires_with_its_latest_part() {
    let Some(url) = shared_redis().await else {
        return;
    };
    let store = RedisStore::builder(&url)
        .prefix(random_prefix())
        .build()
        .unwrap();
    let mut conn = raw_connection(&url).await;
    let key = random_key();
    let reset = key.with_purpose("reset");
    let k = store.code_key(&key);
    let near = |ttl: i64, secs: i64| (secs * 1000 - 2_000..=secs * 1000).contains(&ttl);

    let rec = record();
    store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 60), "the code alone: {ttl}");

    // A send record with a longer window: the window's end.
    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    store.reserve_send(&key, &limits).await.unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 600), "window: {ttl}");

    // A code of another purpose that outlives the window: its expiry.
    let long = record();
    store
        .put_code(&reset, &long, Duration::from_secs(900))
        .await
        .unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 900), "longer code: {ttl}");

    // Used: back to the window.
    assert!(store.consume_code(&reset, &long.salt).await.unwrap());
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 600), "after the longer code went: {ttl}");

    // Unlock (send record cleared): back to the default code's expiry.
    assert!(store.clear_sends(&key).await.unwrap());
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 60), "after the unlock: {ttl}");
    assert_eq!(store.inspect_sends(&key).await.unwrap(), None);

    // A cancel of the last code: nothing left, no key.
    assert!(store.delete_code(&key).await.unwrap());
    assert_eq!(pttl(&mut conn, &k).await, -2, "nothing left");

    // A send block longer than the window: the block's end; releasing a
    // cooldown shortens it to the window's.
    let short = SendLimits::new(Duration::from_secs(20), 5, Duration::from_secs(40));
    store.reserve_send(&key, &short).await.unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 40), "short window: {ttl}");
    store.release_cooldown(&key).await.unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 40), "released cooldown, window left: {ttl}");
    store
        .block_sends(&key, Duration::from_secs(3600))
        .await
        .unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 3600), "blocked: {ttl}");
    store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    let ttl = pttl(&mut conn, &k).await;
    assert!(near(ttl, 3600), "a shorter code never shortens it: {ttl}");
    assert!(store.remove_code(&key, &rec.salt).await.unwrap());
    assert!(store.clear_sends(&key).await.unwrap());
    assert_eq!(pttl(&mut conn, &k).await, -2, "nothing left");

    // Once its cooldown and window have ended, a send record is gone: the
    // key ends with it (Redis expires it).
    let brief = SendLimits::new(Duration::from_millis(100), 5, Duration::from_millis(300));
    store.reserve_send(&key, &brief).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.inspect_sends(&key).await.unwrap(), None);
    assert_eq!(pttl(&mut conn, &k).await, -2);
}

/// Issue 21.3: a pending code, counted with the send record its send
/// created, costs at most 300 bytes of Redis memory (`used_memory` delta,
/// less client buffers, over 2 000 of them in a private `redis-server`;
/// `BENCHMARKS.md` has the figure for 10 000 and 100 000).
#[tokio::test]
async fn a_pending_code_costs_at_most_300_bytes() {
    if binaries_available().is_none() {
        return;
    }
    let server = RedisServer::start().await;
    let store = RedisStore::builder(server.url())
        .pool_size(4)
        .build()
        .unwrap();
    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    let ttl = Duration::from_secs(300);
    // Scripts loaded and connections open before the first reading.
    let warm = random_key();
    store.put_code(&warm, &record(), ttl).await.unwrap();
    store.reserve_send(&warm, &limits).await.unwrap();
    let mut conn = raw_connection(&server.url()).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // The data's memory: `used_memory` less the clients' buffers
    // (`mem_clients_normal`: the pool's query buffers, which vary with how
    // many requests were in flight, not with what is stored).
    let used = |info: String| -> u64 {
        let field = |name: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        let clients = field("mem_clients_normal:").unwrap_or(0);
        field("used_memory:").expect("used_memory") - clients
    };
    let before = used(server.info("memory").await);
    let n = 2_000;
    for _ in 0..n / 50 {
        let batch = (0..50).map(|_| async {
            let key = random_key();
            store.put_code(&key, &record(), ttl).await.unwrap();
            store.reserve_send(&key, &limits).await.unwrap();
        });
        futures_util::future::join_all(batch).await;
    }
    let after = used(server.info("memory").await);
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys, n, "one key per contact");
    let per_code = after.saturating_sub(before) / n;
    eprintln!(
        "{per_code} B of used_memory (less client buffers) per pending code with its send record"
    );
    assert!(per_code <= 300, "{per_code} B per pending code");
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
    let contact_key = format!("otp:{{{key}}}");
    let mut conn = raw_connection(&url).await;
    let exists: bool = conn.hexists(&contact_key, "rec").await.unwrap();
    let _: () = conn.del(&contact_key).await.unwrap();
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
    let exists: bool = conn.exists(format!("otp:{{{key}}}")).await.unwrap();
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

/// A Redis that may evict the store's keys (a `maxmemory` with an evicting
/// policy) is named in an error log, on the store's first connection and,
/// for a host's pool, on its first readiness check; a `noeviction` Redis
/// is not.
#[tokio::test]
async fn a_redis_that_may_evict_the_stores_keys_is_logged_as_an_error() {
    if binaries_available().is_none() {
        return;
    }
    let captured = common::logs::Captured::default();
    let _logs = tracing::subscriber::set_default(common::logs::subscriber(
        &captured,
        tracing::Level::DEBUG,
    ));
    let warning = "Set maxmemory-policy noeviction";

    // A store on `server` that has put one code (its first connection).
    let used_store = |server: &RedisServer| {
        let store = RedisStore::builder(server.url())
            .prefix(random_prefix())
            .build()
            .unwrap();
        async move {
            store
                .put_code(&random_key(), &record(), Duration::from_secs(60))
                .await
                .unwrap();
            store
        }
    };

    let safe = RedisServer::start_with_args(&["--maxmemory", "100mb"]).await;
    let store = used_store(&safe).await;
    store.ping().await.unwrap();
    assert!(!captured.text().contains(warning), "{}", captured.text());

    let evicting = RedisServer::start_with_args(&[
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "volatile-lru",
    ])
    .await;
    let store = used_store(&evicting).await;
    let logged = captured.text();
    assert_eq!(logged.matches(warning).count(), 1, "{logged}");
    assert!(
        logged.contains("ERROR") && logged.contains("policy=volatile-lru"),
        "{logged}"
    );
    // Once per store: more operations and checks log nothing more.
    store.ping().await.unwrap();
    store
        .put_code(&random_key(), &record(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(captured.text().matches(warning).count(), 1);

    // A host's pool: its first readiness check reads the policy.
    let pool = deadpool_redis::Config::from_url(evicting.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let hosted = RedisStore::from_pool(pool);
    hosted.ping().await.unwrap();
    hosted.ping().await.unwrap();
    assert_eq!(captured.text().matches(warning).count(), 2);
}
