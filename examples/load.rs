//! # load: send / verify throughput and passthrough latency over real HTTP
//!
//! Start the quickstart in release mode with the per-IP limits off (all
//! traffic comes from one address) and a long cooldown-free quota:
//!
//! ```text
//! OTP_IP_SEND_PER_MINUTE=0 OTP_IP_VERIFY_PER_MINUTE=0 OTP_RESEND_SECONDS=0 \
//!   RUST_LOG=warn cargo run --release --example quickstart > /dev/null &
//! cargo run --release --example load
//! ```
//!
//! With `RATE=<requests per second>` the tool instead offers a steady,
//! open-loop load for `DURATION` seconds (default 20) of `KIND=send` (each to
//! a fresh address) or `KIND=verify` (wrong codes, each hashed, against
//! `SENDS` addresses sent first, at least one per four verifies): requests start on schedule whatever the
//! server does, latency counts from the scheduled start (no coordinated
//! omission), and it prints the rate served, p50/p99 and every status seen
//! (503s with their `Retry-After`). The highest rate whose p99 stays under
//! 1 s is what the server holds (BENCHMARKS.md, "Load held").
//!
//! Environment: `TARGET` (default `http://127.0.0.1:3000`), `CONCURRENCY`
//! (default 8), `SENDS` (default 200), `POOL_HASHES` (default 1000), `ROUNDS` (default 5), `IDLE_SECONDS` (how long
//! the idle passthrough is probed, default 5).
//!
//! Phases:
//! 1. passthrough `GET /` alone, every 5 ms from a thread of its own: idle
//!    p50/p99;
//! 2. sends to distinct addresses: throughput and p50/p99 (one Argon2 hash each);
//! 3. `ROUNDS` rounds (default 5) of: a hashing pool like the server's, in
//!    this process with the server idle (one thread per CPU, default
//!    Argon2id, `CONCURRENCY` callers, `POOL_HASHES / ROUNDS` hashes), then a
//!    share of the verifies with wrong codes over HTTP (4 per address, each
//!    hashed) while a passthrough probe runs beside them. Printed: verify
//!    throughput and p50/p99, verify throughput as a share of the pool's
//!    (median of the rounds: alternating keeps the machine's drift out of
//!    the ratio; run the tool on the server's machine so both use the same
//!    cores), and the passthrough p50/p99 under the verify load.
//!
//! The codes go to the quickstart's console, so verifies use wrong codes:
//! each still costs the full check (limit, store, Argon2id), without the
//! grant signature (about a microsecond: BENCHMARKS.md, extractor figures).
#![allow(clippy::print_stdout)] // a command-line tool

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool},
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Runs `jobs` POSTs of (path, body) with `concurrency` workers; returns the
/// latencies and the wall time.
async fn run_posts(
    client: &reqwest::Client,
    base: &str,
    jobs: Vec<(&'static str, serde_json::Value, u16)>,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (jobs, client, base) = (jobs.clone(), client.clone(), base.to_owned());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some((path, body, expected)) = jobs.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                let response = client
                    .post(format!("{base}{path}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                assert_eq!(status, expected, "{path} answered {status}");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    (all, start.elapsed())
}

/// A `HashPool` like the server's: one thread per CPU, default parameters
/// and priority.
fn server_like_pool(queue: usize) -> Arc<HashPool> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(
        HashPool::new(
            HashParams::default(),
            Secret::new("load tool secret, 32 bytes long!"),
            &[],
            workers,
            queue,
        )
        .expect("pool"),
    )
}

/// Hashes per second of `pool` under `concurrency` callers doing `hashes`
/// verifications in all.
async fn pool_rate(pool: &Arc<HashPool>, hashes: usize, concurrency: usize) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, next) = (pool.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < hashes {
                    pool.verify("000000", &[7; 16], pool.current_secret_id(), &[0; 32])
                        .await
                        .expect("hash");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    hashes as f64 / start.elapsed().as_secs_f64()
}

/// CPU time this process has used so far (Linux; zero elsewhere).
fn own_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15, in clock ticks (100 per second).
    let ticks: u64 = [14, 15]
        .iter()
        .filter_map(|n| fields.get(n - 3)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The median of `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Probes `GET /` every 5 ms until `stop`, from a thread and runtime of its
/// own: the probe's latency must not include waiting behind the load
/// tool's own flood tasks.
fn spawn_probe(base: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    let url = format!("{base}/");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("probe runtime");
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let response = client.get(&url).send().await.expect("GET /");
                let _ = response.bytes().await;
                samples.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    })
}

/// The open-loop mode: `rate` requests per second for `seconds`.
async fn offered_load(client: &reqwest::Client, base: &str, rate: f64, seconds: u64, kind: &str) {
    let run = format!("{:x}", std::process::id());
    let total = (rate * seconds as f64).round() as usize;
    let addresses: Vec<String> = if kind == "verify" {
        // Enough addresses for four wrong codes each.
        let sends: usize = env_or("SENDS", 200).max(total.div_ceil(4));
        let addresses: Vec<String> = (0..sends)
            .map(|i| format!("held-{run}-{i}@example.com"))
            .collect();
        let jobs = addresses
            .iter()
            .map(|email| ("/send-otp/", json!({ "email": email }), 200))
            .collect();
        run_posts(client, base, jobs, 8).await;
        addresses
    } else {
        Vec::new()
    };
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let (path, body) = if kind == "verify" {
            // Four wrong codes per address at most (the attempts allowed).
            let email = &addresses[(i / 4) % addresses.len().max(1)];
            ("/verify-otp/", json!({ "email": email, "otp": "000000" }))
        } else {
            let email = format!("held-{run}-s{i}@example.com");
            ("/send-otp/", json!({ "email": email }))
        };
        let (client, url) = (client.clone(), format!("{base}{path}"));
        tasks.push(tokio::spawn(async move {
            let answer = client.post(url).json(&body).send().await;
            let (status, retry_after) = match answer {
                Ok(response) => {
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    (status, retry)
                }
                Err(_) => (0, None),
            };
            (status, retry_after, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut statuses: std::collections::BTreeMap<(u16, Option<String>), usize> =
        std::collections::BTreeMap::new();
    let mut served = 0usize;
    for task in tasks {
        let (status, retry_after, latency) = task.await.expect("request task");
        latencies.push(latency);
        if status == 200 || status == 400 {
            served += 1;
        }
        *statuses.entry((status, retry_after)).or_default() += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut latencies);
    println!(
        "offered {rate:.0}/s {kind} for {seconds} s: answered (200/400) {:.1}/s, \
         p50 {p50:.1} ms, p99 {p99:.1} ms, statuses {statuses:?}",
        served as f64 / wall
    );
}

#[tokio::main]
async fn main() {
    if let Some(rate) = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok())
    {
        let base: String = env_or("TARGET", "http://127.0.0.1:3000".to_owned());
        let kind: String = env_or("KIND", "send".to_owned());
        let seconds: u64 = env_or("DURATION", 20);
        offered_load(
            &reqwest::Client::new(),
            &base,
            rate.max(0.1),
            seconds,
            &kind,
        )
        .await;
        return;
    }
    let base: String = env_or("TARGET", "http://127.0.0.1:3000".to_owned());
    let concurrency: usize = env_or("CONCURRENCY", 8);
    let sends: usize = env_or("SENDS", 200);
    let client = reqwest::Client::new();
    let pool_hashes: usize = env_or("POOL_HASHES", 1000);
    let rounds: usize = env_or("ROUNDS", 5).max(1);
    // At least one hash per round: a ratio needs a pool figure.
    let pool_hashes = pool_hashes.max(rounds);
    let idle_seconds: u64 = env_or("IDLE_SECONDS", 5);
    let run = format!("{:x}", std::process::id());

    // The in-process pool, warmed up (its threads map their memory once).
    let pool = server_like_pool(concurrency);
    pool_rate(&pool, 2 * concurrency, concurrency).await;

    // 1. Passthrough alone.
    let stop = Arc::new(AtomicBool::new(false));
    let idle = spawn_probe(&base, stop.clone());
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut idle_samples = idle.join().expect("probe");
    let (idle_p50, idle_p99) = percentiles(&mut idle_samples);

    // 2. Sends.
    let emails: Vec<String> = (0..sends)
        .map(|i| format!("load{run}-{i}@example.com"))
        .collect();
    let jobs = emails
        .iter()
        .map(|e| ("/send-otp/", json!({ "email": e }), 200))
        .collect();
    let (mut send_lat, send_wall) = run_posts(&client, &base, jobs, concurrency).await;
    let (send_p50, send_p99) = percentiles(&mut send_lat);

    // 3. Rounds of: the in-process pool alone, then verifies over HTTP (4
    // wrong codes per address) with a passthrough probe beside them.
    let mut jobs: Vec<_> = emails
        .iter()
        .flat_map(|e| {
            (0..4).map(move |_| ("/verify-otp/", json!({ "email": e, "otp": "000000" }), 400))
        })
        .collect();
    let per_round = jobs.len().div_ceil(rounds);
    let (mut verify_lat, mut verify_wall, mut pool_time) = (Vec::new(), Duration::ZERO, 0.0);
    let (mut ratios, mut busy_samples, mut tool_cpu) = (Vec::new(), Vec::new(), Duration::ZERO);
    for _ in 0..rounds {
        let round_jobs: Vec<_> = jobs.drain(..per_round.min(jobs.len())).collect();
        let round_pool_rate = pool_rate(&pool, pool_hashes / rounds, concurrency).await;
        pool_time += (pool_hashes / rounds) as f64 / round_pool_rate;
        let stop = Arc::new(AtomicBool::new(false));
        let busy = spawn_probe(&base, stop.clone());
        let cpu_before = own_cpu_time();
        let (latencies, wall) = run_posts(&client, &base, round_jobs, concurrency).await;
        tool_cpu += own_cpu_time() - cpu_before;
        stop.store(true, Ordering::Relaxed);
        busy_samples.extend(busy.join().expect("probe"));
        ratios.push(latencies.len() as f64 / wall.as_secs_f64() / round_pool_rate);
        verify_lat.extend(latencies);
        verify_wall += wall;
    }
    let pool_rate = (pool_hashes / rounds * rounds) as f64 / pool_time;
    let (verify_p50, verify_p99) = percentiles(&mut verify_lat);
    let (busy_p50, busy_p99) = percentiles(&mut busy_samples);

    let verify_rate = verify_lat.len() as f64 / verify_wall.as_secs_f64();
    println!("target {base}, concurrency {concurrency}");
    println!(
        "pool:   {pool_rate:7.1} hashes/s in process ({} verifies in {rounds} rounds)",
        pool_hashes / rounds * rounds
    );
    println!(
        "send:   {:7.1} req/s  p50 {send_p50:6.1} ms  p99 {send_p99:6.1} ms  ({} requests)",
        send_lat.len() as f64 / send_wall.as_secs_f64(),
        send_lat.len()
    );
    println!(
        "verify: {verify_rate:7.1} req/s  p50 {verify_p50:6.1} ms  p99 {verify_p99:6.1} ms  ({} requests)",
        verify_lat.len(),
    );
    let round_ratios: Vec<String> = ratios.iter().map(|r| format!("{:.0}", r * 100.0)).collect();
    println!(
        "verify / pool: {:.0} % (median of the rounds: {} %); this tool used {:.0} % of one core during the verifies",
        100.0 * median(&mut ratios),
        round_ratios.join(", "),
        100.0 * tool_cpu.as_secs_f64() / verify_wall.as_secs_f64()
    );
    println!(
        "passthrough idle:         p50 {idle_p50:6.2} ms  p99 {idle_p99:6.2} ms  ({} requests)",
        idle_samples.len()
    );
    println!(
        "passthrough during verify: p50 {busy_p50:6.2} ms  p99 {busy_p99:6.2} ms  ({} requests, {:.1}x idle p99)",
        busy_samples.len(),
        busy_p99 / idle_p99.max(0.001)
    );
}
