//! Redis Cluster failover under traffic (issues 18.1 and 21.6), and the
//! replica acknowledgement (`WAIT`) that makes attempt counts and single-use
//! deletes survive one.
//!
//! The failover test starts 3 masters with one replica each (node timeout
//! 1.5 s), runs send/verify traffic from 8 clients through the real layer,
//! kills one master (SIGKILL) and keeps the traffic going until its replica
//! is promoted and serves again. What a user or attacker can observe:
//! every answer is a contract answer (never a 500, never later than the
//! store timeout plus a margin), no code succeeds twice, no code gets more
//! checks than its attempts, requests for contacts on the healthy masters
//! keep being served at normal latency, and the app recovers by itself.
//! It prints the figures BENCHMARKS.md quotes (`--nocapture`).
#![cfg(feature = "redis")]

mod common;
#[path = "common/slow_proxy.rs"]
mod slow_proxy;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Body;
use common::{
    app::{Answer, TestApp, wrong_code},
    builder_with,
    redis_server::{RedisCluster, RedisServer, binaries_available, owns_slot, random_prefix},
};
use http::{Request, header};
use serde_json::json;
use tower_otp::{ClientAddr, Contact, Email, delivery::MemoryOutbox, store::RedisStore};

/// The store's timeout: one request's store calls together.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Scheduling slack on top of it.
const MARGIN: Duration = Duration::from_secs(1);
const MAX_ATTEMPTS: u32 = 3;
const CLIENTS: usize = 8;

/// Redis Cluster's key slot (CRC16/XMODEM of the hash tag, mod 16384).
fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key
        .find('{')
        .and_then(|open| {
            let close = key[open + 1..].find('}')? + open + 1;
            (close > open + 1).then(|| &bytes[open + 1..close])
        })
        .unwrap_or(bytes);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Send,
    Wrong,
    Right,
    Again,
}

/// One answer as a client saw it.
#[derive(Debug, Clone)]
struct Seen {
    op: Op,
    /// When the request started, from the test's start.
    at: Duration,
    took: Duration,
    status: u16,
    code: String,
    /// The contact's keys live on the master that is killed.
    on_victim: bool,
}

impl Seen {
    fn done(&self) -> Duration {
        self.at + self.took
    }

    fn unavailable(&self) -> bool {
        self.status == 503
    }
}

/// What one issued code went through.
#[derive(Debug, Default)]
struct CodeLog {
    successes: u32,
    /// Wrong codes the server checked (`otp_invalid`, `attempts_exceeded`).
    checked_wrong: u32,
    /// The last check said `attempts_exceeded`.
    exhausted: bool,
    /// The right code succeeded after `attempts_exceeded` was seen.
    success_after_exhausted: bool,
}

struct Traffic {
    app: TestApp,
    store: RedisStore,
    start: Instant,
    victim_slots: String,
    seen: Mutex<Vec<Seen>>,
    codes: Mutex<HashMap<String, CodeLog>>,
    stop: AtomicBool,
}

impl Traffic {
    async fn call(&self, ip: SocketAddr, op: Op, on_victim: bool, body: serde_json::Value) -> Seen {
        let path = if op == Op::Send {
            "/send-otp/"
        } else {
            "/verify-otp/"
        };
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        request.extensions_mut().insert(ClientAddr(ip));
        let at = self.start.elapsed();
        let began = Instant::now();
        let answer: Answer = tokio::time::timeout(STORE_TIMEOUT * 10, self.app.request(request))
            .await
            .unwrap_or_else(|_| panic!("{op:?} hung for {:?}", STORE_TIMEOUT * 10));
        let seen = Seen {
            op,
            at,
            took: began.elapsed(),
            status: answer.status.as_u16(),
            code: answer.code().to_owned(),
            on_victim,
        };
        // Every answer is a contract answer.
        match (seen.status, seen.code.as_str()) {
            (200, _) => answer.assert_success(),
            (503, code) => assert_eq!(code, "store_unavailable", "{}", answer.body),
            (429, "rate_limited" | "attempts_exceeded") | (400, "otp_invalid" | "otp_expired") => {}
            _ => panic!(
                "{op:?}: not a contract answer: {} {}",
                seen.status, answer.body
            ),
        }
        if seen.status != 200 {
            assert!(answer.body.get("token").is_none(), "{}", answer.body);
        }
        self.seen.lock().unwrap().push(seen.clone());
        seen
    }

    /// One client: a fresh contact per round; two rounds in three verify
    /// (a wrong code, the right one, the right one again), the third
    /// guesses wrong codes past the attempts and then tries the right one.
    async fn client(self: Arc<Self>, index: usize) {
        let ip = SocketAddr::from(([10, 0, 0, u8::try_from(index + 1).unwrap()], 40000));
        let mut round = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            let email = common::redis_server::random_email();
            let contact = Contact::Email(Email::parse(&email).unwrap());
            let code_key = self.store.code_key(&self.app.otp.store_key(&contact));
            let on_victim = self.on_victim(&code_key);
            let sent = self
                .call(ip, Op::Send, on_victim, json!({ "email": email }))
                .await;
            if sent.status != 200 {
                continue;
            }
            let code = self.app.code_for(&email);
            let wrong = wrong_code(&code);
            let guesses = if round.is_multiple_of(3) {
                MAX_ATTEMPTS + 1
            } else {
                1
            };
            let verify = |otp: &str| json!({ "email": email, "otp": otp });
            for _ in 0..guesses {
                let seen = self.call(ip, Op::Wrong, on_victim, verify(&wrong)).await;
                assert_ne!(seen.status, 200, "a wrong code was accepted");
                let mut codes = self.codes.lock().unwrap();
                let log = codes.entry(code_key.clone()).or_default();
                if matches!(seen.code.as_str(), "otp_invalid" | "attempts_exceeded") {
                    log.checked_wrong += 1;
                }
                log.exhausted |= seen.code == "attempts_exceeded";
            }
            for op in [Op::Right, Op::Again] {
                let seen = self.call(ip, op, on_victim, verify(&code)).await;
                let mut codes = self.codes.lock().unwrap();
                let log = codes.entry(code_key.clone()).or_default();
                if seen.status == 200 {
                    log.successes += 1;
                    log.success_after_exhausted |= log.exhausted;
                }
            }
        }
    }

    fn on_victim(&self, key: &str) -> bool {
        owns_slot(&self.victim_slots, key_slot(key))
    }
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let index = ((values.len() - 1) as f64 * p).round() as usize;
    values[index]
}

/// The longest time, within `[from, to]`, in which none of `seen` got an
/// answer.
fn longest_silence(seen: &[&Seen], from: Duration, to: Duration) -> Duration {
    let mut done: Vec<Duration> = seen
        .iter()
        .map(|s| s.done())
        .filter(|d| *d >= from && *d <= to)
        .collect();
    done.sort();
    let mut last = from;
    let mut longest = Duration::ZERO;
    for d in done.into_iter().chain([to]) {
        longest = longest.max(d.saturating_sub(last));
        last = d;
    }
    longest
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_master_under_traffic_stalls_only_its_keys_and_recovers() {
    if binaries_available().is_none() {
        return;
    }
    let full_coverage = std::env::var("FAILOVER_FULL_COVERAGE").is_ok_and(|v| v == "yes");
    let mut cluster = RedisCluster::start_with_replicas(full_coverage).await;
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3, "{masters:?}");
    let (victim, victim_slots) = masters[0].clone();
    let replica = cluster
        .replica_of(victim)
        .await
        .expect("the victim has a replica");
    for key in ["foo", "otp:{ab12}", "{user1000}.following"] {
        assert_eq!(key_slot(key), cluster.key_slot(key).await, "{key}");
    }

    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix(random_prefix())
        .timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let outbox = MemoryOutbox::new();
    let builder = builder_with(&outbox)
        .store(store.clone())
        .shared_limits(Arc::new(store.clone()))
        .ip_limits(100_000, 100_000)
        .max_attempts(MAX_ATTEMPTS)
        .hash_pool_size(2, 512);
    let traffic = Arc::new(Traffic {
        app: TestApp::with(builder, outbox),
        store,
        start: Instant::now(),
        victim_slots,
        seen: Mutex::new(Vec::new()),
        codes: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(Arc::clone(&traffic).client(i)))
        .collect();

    // Steady traffic, then the crash.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = traffic.start.elapsed();
    cluster.kill_node(victim);
    let victim_slot = {
        let line = &traffic.victim_slots;
        let first = line.split_whitespace().nth(8).unwrap();
        first.split('-').next().unwrap().parse::<u16>().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let promoted_at = loop {
        if cluster.master_of_slot(victim_slot).await == Some(replica) {
            break traffic.start.elapsed();
        }
        assert!(Instant::now() < deadline, "the replica was never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Recovery: a contact on the failed-over slots is served end to end.
    let recovered_at =
        loop {
            let served =
                traffic.seen.lock().unwrap().iter().any(|s| {
                    s.on_victim && s.op == Op::Right && s.status == 200 && s.at > promoted_at
                });
            if served {
                break traffic.start.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "no contact on the failed-over slots was served after the promotion"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client panicked");
    }
    let end = traffic.start.elapsed();

    let seen = traffic.seen.lock().unwrap().clone();
    let before: Vec<&Seen> = seen.iter().filter(|s| s.done() < killed_at).collect();
    let window = |s: &&Seen| s.done() >= killed_at && s.at <= promoted_at;
    let during: Vec<&Seen> = seen.iter().filter(window).collect();
    let healthy_during: Vec<&Seen> = during.iter().copied().filter(|s| !s.on_victim).collect();
    let after: Vec<&Seen> = seen.iter().filter(|s| s.at > recovered_at).collect();
    let unavailable: Vec<&Seen> = seen.iter().filter(|s| s.unavailable()).collect();
    let slowest = seen.iter().map(|s| s.took).max().unwrap_or_default();
    let healthy_ok = healthy_during.iter().filter(|s| !s.unavailable()).count();
    let everyone: Vec<&Seen> = seen.iter().collect();
    let healthy: Vec<&Seen> = seen.iter().filter(|s| !s.on_victim).collect();
    let first_503 = unavailable.iter().map(|s| s.done()).min();
    let last_503 = unavailable.iter().map(|s| s.done()).max();

    eprintln!("FAILOVER: {} answers over {} ms", seen.len(), ms(end));
    eprintln!(
        "FAILOVER: kill at {} ms, replica promoted {} ms after, a failed-over contact served again {} ms after",
        ms(killed_at),
        ms(promoted_at - killed_at),
        ms(recovered_at - killed_at)
    );
    eprintln!(
        "FAILOVER: before the kill: {} answers, p50 {} ms, p99 {} ms, slowest {} ms",
        before.len(),
        ms(percentile(before.iter().map(|s| s.took).collect(), 0.5)),
        ms(percentile(before.iter().map(|s| s.took).collect(), 0.99)),
        ms(before.iter().map(|s| s.took).max().unwrap_or_default())
    );
    eprintln!(
        "FAILOVER: kill to promotion: {} answers on healthy masters ({} not 503), p50 {} ms, p99 {} ms, slowest {} ms",
        healthy_during.len(),
        healthy_ok,
        ms(percentile(
            healthy_during.iter().map(|s| s.took).collect(),
            0.5
        )),
        ms(percentile(
            healthy_during.iter().map(|s| s.took).collect(),
            0.99
        )),
        ms(healthy_during
            .iter()
            .map(|s| s.took)
            .max()
            .unwrap_or_default())
    );
    eprintln!(
        "FAILOVER: longest time without any answer after the kill: {} ms (healthy masters' contacts: {} ms)",
        ms(longest_silence(&everyone, killed_at, recovered_at)),
        ms(longest_silence(&healthy, killed_at, recovered_at))
    );
    eprintln!(
        "FAILOVER: 503 answers: {} (on the killed master's keys: {}), from {:?} ms to {:?} ms after the kill; slowest answer {} ms",
        unavailable.len(),
        unavailable.iter().filter(|s| s.on_victim).count(),
        first_503.map(|d| ms(d.saturating_sub(killed_at))),
        last_503.map(|d| ms(d.saturating_sub(killed_at))),
        ms(slowest)
    );

    // Never a hang past the store timeout.
    assert!(
        slowest <= STORE_TIMEOUT + MARGIN,
        "an answer took {slowest:?}"
    );
    // No code succeeded twice, none got more checks than its attempts.
    let codes = traffic.codes.lock().unwrap();
    assert!(
        codes.len() > 20,
        "too little traffic: {} codes",
        codes.len()
    );
    for (key, log) in codes.iter() {
        assert!(log.successes <= 1, "{key}: {log:?}");
        assert!(log.checked_wrong <= MAX_ATTEMPTS, "{key}: {log:?}");
        assert!(!log.success_after_exhausted, "{key}: {log:?}");
    }
    // Contacts on the healthy masters kept being served.
    assert!(!healthy_during.is_empty(), "no traffic during the failover");
    assert!(
        healthy_ok * 10 >= healthy_during.len() * 9,
        "{healthy_ok} of {} answers for healthy masters were not 503",
        healthy_during.len()
    );
    let silence = longest_silence(&healthy, killed_at, recovered_at);
    assert!(
        silence < Duration::from_millis(500),
        "no answer for contacts on healthy masters for {silence:?} after the kill"
    );
    let healthy_p99 = percentile(healthy_during.iter().map(|s| s.took).collect(), 0.99);
    assert!(
        healthy_p99 < Duration::from_millis(500),
        "healthy masters' p99 during the failover: {healthy_p99:?}"
    );
    // And, after the promotion, everyone without a restart.
    assert!(after.iter().any(|s| s.on_victim && s.status == 200));
    let after_unavailable = after.iter().filter(|s| s.unavailable()).count();
    assert_eq!(after_unavailable, 0, "503s after recovery");
}

/// An app on `store` with the tests' attempt limit, delivering to an outbox.
fn app_on(store: RedisStore) -> TestApp {
    let outbox = MemoryOutbox::new();
    TestApp::with(
        builder_with(&outbox)
            .store(store)
            .max_attempts(MAX_ATTEMPTS),
        outbox,
    )
}

/// A master with one replica (not a cluster), and a store that waits for
/// `replicas` acknowledgements.
async fn replicated(replicas: u32) -> Option<(RedisServer, RedisServer, TestApp)> {
    binaries_available()?;
    let master = RedisServer::start().await;
    let replica = RedisServer::start_replica_of(&master).await;
    let store = RedisStore::builder(master.url())
        .prefix(random_prefix())
        .timeout(STORE_TIMEOUT)
        .wait_for_replicas(replicas, Duration::from_millis(50))
        .build()
        .unwrap();
    let app = app_on(store);
    Some((master, replica, app))
}

/// The attempts used on `email`'s code, read on the master.
async fn attempts_used(master: &RedisServer, app: &TestApp, email: &str) -> Option<u32> {
    let contact = Contact::Email(Email::parse(email).unwrap());
    let key = app.otp.store_key(&contact);
    let mut conn = common::redis_server::raw_connection(&master.url()).await;
    // The contact's key (`<prefix>{<digest>}`), which holds the code's
    // fields `rec` and `att` next to the send record's.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{{{key}}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let contact_key = keys.first()?;
    let (rec, used): (Option<Vec<u8>>, Option<u32>) = redis::cmd("HMGET")
        .arg(contact_key)
        .arg("rec")
        .arg("att")
        .query_async(&mut conn)
        .await
        .unwrap();
    rec?;
    Some(used.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_a_replica_fails_closed_when_it_cannot_acknowledge() {
    let Some((master, replica, app)) = replicated(1).await else {
        return;
    };
    // A healthy replica acknowledges: normal answers.
    let (email, code) = one_wrong_guess(&master, &app).await;

    // The replica stops answering: even the right code is 503
    // `store_unavailable` and grants nothing; its attempt is counted (fail
    // closed) and the code is not consumed.
    replica.freeze();
    let started = Instant::now();
    let answer = app.verify_email(&email, &code).await;
    answer.assert_error(503, "store_unavailable");
    assert!(answer.body.get("token").is_none(), "{}", answer.body);
    assert!(started.elapsed() < STORE_TIMEOUT, "{:?}", started.elapsed());
    assert_eq!(attempts_used(&master, &app, &email).await, Some(2));
    replica.thaw();
    // Once the replica is back, the right code works (on its last
    // attempt), and only once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = app.verify_email(&email, &code).await;
        if answer.status != 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    answer.assert_success();
    app.verify_email(&email, &code)
        .await
        .assert_error(400, "otp_expired");
}

/// A new email code and one wrong guess at it, counted on the master:
/// (email, code).
async fn one_wrong_guess(master: &RedisServer, app: &TestApp) -> (String, String) {
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);
    app.verify_email(&email, &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    assert_eq!(attempts_used(master, app, &email).await, Some(1));
    (email, code)
}

/// `command`'s calls and failed calls on `server` (`INFO commandstats`).
async fn command_calls(server: &RedisServer, command: &str) -> (u64, u64) {
    let mut conn = common::redis_server::raw_connection(&server.url()).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |line: &str, name: &str| -> u64 {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split(',').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    stats
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        .map_or((0, 0), |l| (field(l, "calls"), field(l, "failed_calls")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_waiting_for_replicas_is_reloaded_after_a_script_flush() {
    let Some((master, _replica, app)) = replicated(1).await else {
        return;
    };
    let (email, code) = one_wrong_guess(&master, &app).await;

    // The master loses its scripts (a restart, a failover to a fresh
    // node): the attempt's `EVALSHA` + `WAIT` pipeline answers `NOSCRIPT`
    // for the script. The store loads it and sends both again, and the
    // attempt is counted once: the refused `EVALSHA` ran nothing.
    let mut conn = common::redis_server::raw_connection(&master.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, failed_before) = command_calls(&master, "evalsha").await;
    let (loads_before, _) = command_calls(&master, "script|load").await;
    app.verify_email(&email, &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    assert_eq!(attempts_used(&master, &app, &email).await, Some(2));
    let (_, failed_after) = command_calls(&master, "evalsha").await;
    let (loads_after, _) = command_calls(&master, "script|load").await;
    // The attempt's script, and the failure record's after the wrong
    // code: each refused once and loaded once.
    assert_eq!(failed_after - failed_before, 2, "NOSCRIPT answers");
    assert_eq!(loads_after - loads_before, 2, "scripts loaded");

    // The right code, on the last attempt, still works, once.
    app.verify_email(&email, &code).await.assert_success();
    app.verify_email(&email, &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_more_replicas_than_exist_never_grants_an_attempt() {
    let Some((master, _replica, app)) = replicated(2).await else {
        return;
    };
    let email = common::redis_server::random_email();
    // Sends do not wait (a lost code only means asking again).
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);
    for _ in 0..MAX_ATTEMPTS + 1 {
        let answer = app.verify_email(&email, &code).await;
        answer.assert_error(503, "store_unavailable");
        assert!(answer.body.get("token").is_none(), "{}", answer.body);
    }
    // Each attempt was counted on the master before the missing
    // acknowledgement refused it: fail closed, never a free guess.
    assert_eq!(
        attempts_used(&master, &app, &email).await,
        Some(MAX_ATTEMPTS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_replicas_never_holds_up_the_others() {
    if binaries_available().is_none() {
        return;
    }
    // A master with no replica: every acknowledged call waits the whole
    // 500 ms for a replica that never answers.
    let master = RedisServer::start().await;
    let store = RedisStore::builder(master.url())
        .prefix(random_prefix())
        .timeout(STORE_TIMEOUT)
        .pool_size(8)
        .wait_for_replicas(1, Duration::from_millis(500))
        .build()
        .unwrap();
    let app = app_on(store);
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);

    let wrong = wrong_code(&code);
    let waiting = async {
        let (a, b, c) = tokio::join!(
            app.verify_email(&email, &wrong),
            app.verify_email(&email, &wrong),
            app.verify_email(&email, &wrong),
        );
        [a, b, c]
    };
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let answer = app.send_email(&common::redis_server::random_email()).await;
        (answer, started.elapsed())
    };
    let (verifies, (send, took)) = tokio::join!(waiting, other);
    for answer in &verifies {
        answer.assert_error(503, "store_unavailable");
    }
    send.assert_success();
    // A send does not wait for replicas; on a connection of its own it does
    // not queue behind the verifies' WAITs either.
    assert!(
        took < Duration::from_millis(300),
        "a send behind three waiting verifies took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cancel_is_acknowledged_or_refused() {
    let Some((_master, _replica, app)) = replicated(2).await else {
        return;
    };
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    let contact = Contact::Email(Email::parse(&email).unwrap());
    // One replica of the two asked for: the delete cannot be acknowledged,
    // so the cancel is refused (the operator retries), never reported done.
    let cancelled = app.otp.admin().cancel(&contact, None).await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    let Some((_master, _replica, app)) = replicated(1).await else {
        return;
    };
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);
    assert_eq!(app.otp.admin().cancel(&contact, None).await.unwrap(), 1);
    app.verify_email(&email, &code)
        .await
        .assert_error(400, "otp_expired");
}

/// WAIT's cost, same run: attempts taken per second on a master with one
/// replica, without and with `wait_for_replicas(1, 50 ms)`, alternating, one
/// caller at a time and 16 in flight. Figures for BENCHMARKS.md:
/// `cargo test --release --all-features --test redis_failover -- --ignored --nocapture wait_cost`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn wait_cost() {
    use tower_otp::store::OtpStore;
    use tower_otp::test_util::{random_key, record};
    if binaries_available().is_none() {
        return;
    }
    let master = RedisServer::start().await;
    let _replica = RedisServer::start_replica_of(&master).await;
    let store = |replicas: u32| {
        Arc::new(
            RedisStore::builder(master.url())
                .prefix(random_prefix())
                .wait_for_replicas(replicas, Duration::from_millis(50))
                .build()
                .unwrap(),
        )
    };
    let (plain, acked) = (store(0), store(1));
    const OPS: usize = 4000;
    for round in 1..=3 {
        for (name, store) in [("no WAIT", &plain), ("WAIT 1", &acked)] {
            for in_flight in [1usize, 16] {
                let key = random_key();
                store
                    .put_code(&key, &record(), Duration::from_secs(600))
                    .await
                    .unwrap();
                let started = Instant::now();
                let tasks: Vec<_> = (0..in_flight)
                    .map(|_| {
                        let (store, key) = (Arc::clone(store), key.clone());
                        tokio::spawn(async move {
                            for _ in 0..OPS / in_flight {
                                store.begin_attempt(&key, u32::MAX).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let took = started.elapsed();
                eprintln!(
                    "WAIT COST round {round}: {name:8} {in_flight:2} in flight: {:6.0} attempts/s, {:5.0} us each",
                    OPS as f64 / took.as_secs_f64(),
                    took.as_secs_f64() * 1e6 / OPS as f64 * in_flight as f64
                );
            }
        }
    }
}

/// On a cluster, `WAIT` runs on the node that ran the script: with the
/// replica of one master frozen, verifies for contacts on that master are
/// refused, and those on the other masters are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_a_cluster_waits_on_the_node_that_ran_the_script() {
    if binaries_available().is_none() {
        return;
    }
    let cluster = RedisCluster::start_with_replicas(false).await;
    let masters = cluster.masters().await;
    let (frozen_master, frozen_slots) = masters[0].clone();
    let replica = cluster.replica_of(frozen_master).await.unwrap();
    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix(random_prefix())
        .timeout(STORE_TIMEOUT)
        .wait_for_replicas(1, Duration::from_millis(50))
        .build()
        .unwrap();
    let app = app_on(store.clone());
    // Contacts on the master whose replica freezes, and on the others.
    let (mut frozen, mut healthy) = (Vec::new(), Vec::new());
    while frozen.len() < 3 || healthy.len() < 3 {
        let email = common::redis_server::random_email();
        let contact = Contact::Email(Email::parse(&email).unwrap());
        let key = store.code_key(&app.otp.store_key(&contact));
        app.send_email(&email).await.assert_success();
        if owns_slot(&frozen_slots, key_slot(&key)) {
            frozen.push(email);
        } else {
            healthy.push(email);
        }
    }
    cluster.node(replica).freeze();
    for email in &frozen {
        let answer = app.verify_email(email, &app.code_for(email)).await;
        answer.assert_error(503, "store_unavailable");
        assert!(answer.body.get("token").is_none(), "{}", answer.body);
    }
    for email in &healthy {
        app.verify_email(email, &app.code_for(email))
            .await
            .assert_success();
    }
    cluster.node(replica).thaw();
}

/// `OTP_REDIS_WAIT_REPLICAS` and `OTP_REDIS_WAIT_MS` reach the store built
/// from `REDIS_OTP_URL`; values that do not parse stop start-up naming the
/// variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_settings_come_from_the_environment() {
    let Some((master, _replica, _)) = replicated(1).await else {
        return;
    };
    let from_env = |replicas: &str, wait_ms: &str| {
        let vars = [
            ("OTP_SECRET", tower_otp::test_util::random_secret()),
            ("REDIS_OTP_URL", master.url()),
            ("OTP_REDIS_WAIT_REPLICAS", replicas.to_owned()),
            ("OTP_REDIS_WAIT_MS", wait_ms.to_owned()),
        ];
        tower_otp::OtpBuilder::from_env_with(move |k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
    };
    for (replicas, wait_ms, named) in [
        ("two", "50", "OTP_REDIS_WAIT_REPLICAS"),
        ("1", "0", "OTP_REDIS_WAIT_MS"),
        ("1", "soon", "OTP_REDIS_WAIT_MS"),
    ] {
        let err = from_env(replicas, wait_ms).unwrap_err().to_string();
        assert!(err.contains(named), "{err}");
    }
    // Two replicas wanted, one running: the attempt is refused.
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        from_env("2", "20")
            .unwrap()
            .email_sender(outbox.clone())
            .hash_params(tower_otp::hash::HashParams::insecure_fast()),
        outbox,
    );
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    app.verify_email(&email, &app.code_for(&email))
        .await
        .assert_error(503, "store_unavailable");
    // One wanted: served.
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        from_env("1", "50")
            .unwrap()
            .email_sender(outbox.clone())
            .hash_params(tower_otp::hash::HashParams::insecure_fast()),
        outbox,
    );
    app.send_email(&email).await.assert_success();
    app.verify_email(&email, &app.code_for(&email))
        .await
        .assert_success();
}

/// One request's store calls share one store timeout (issue 21.6): behind a
/// proxy that holds each Redis answer back 400 ms, with a 1 s timeout, a
/// wrong code (two calls, 0.8 s) is answered, and a right one (three calls,
/// 1.2 s) is 503 `store_unavailable` at the timeout instead of a success
/// after 1.2 s. (Before the shared budget, each call had its own second.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_gets_one_store_timeout_for_all_its_calls() {
    let Some(url) = common::redis_server::shared_redis().await else {
        return;
    };
    let upstream = url.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = slow_proxy::SlowProxy::start(upstream).await;
    // Two calls of 500 ms fit the timeout with room for a loaded machine;
    // three do not.
    let timeout = Duration::from_millis(1500);
    let store = RedisStore::builder(proxy.redis_url())
        .prefix(random_prefix())
        .timeout(timeout)
        .pool_size(1)
        .build()
        .unwrap();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox)
            .store(store)
            .max_attempts(MAX_ATTEMPTS)
            .failure_budget(10),
        outbox,
    );
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);

    proxy.set_delay(Duration::from_millis(500));
    let started = Instant::now();
    app.verify_email(&email, &wrong_code(&code))
        .await
        .assert_error(400, "otp_invalid");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1000), "{took:?}");

    let started = Instant::now();
    let answer = app.verify_email(&email, &code).await;
    let took = started.elapsed();
    answer.assert_error(503, "store_unavailable");
    assert!(took < timeout + Duration::from_millis(300), "{took:?}");

    // Redis fast again. The third call (consuming the code) had reached
    // Redis when its answer came too late: the code is gone, and the 503
    // granted nothing (the safe side: the user asks for a new code).
    proxy.set_delay(Duration::ZERO);
    app.verify_email(&email, &code)
        .await
        .assert_error(400, "otp_expired");
}
