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
//! Environment: `TARGET` (default `http://127.0.0.1:3000`), `CONCURRENCY`
//! (default 8), `SENDS` (default 200).
//!
//! Phases:
//! 1. passthrough `GET /` alone: idle p50/p99;
//! 2. sends to distinct addresses: throughput and p50/p99 (one Argon2 hash each);
//! 3. verifies with wrong codes (4 per address, each hashed), while a
//!    passthrough probe runs beside them: verify throughput and p50/p99,
//!    and the passthrough p50/p99 under that load.
//!
//! The codes go to the quickstart's console, so verifies use wrong codes:
//! each still costs the full check (limit, store, Argon2id), without the
//! grant signature (~2 µs).
#![allow(clippy::print_stdout)] // a command-line tool

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

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

async fn probe(client: &reqwest::Client, base: &str, stop: &AtomicBool) -> Vec<Duration> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let response = client.get(format!("{base}/")).send().await.expect("GET /");
        let _ = response.bytes().await;
        samples.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples
}

#[tokio::main]
async fn main() {
    let base: String = env_or("TARGET", "http://127.0.0.1:3000".to_owned());
    let concurrency: usize = env_or("CONCURRENCY", 8);
    let sends: usize = env_or("SENDS", 200);
    let client = reqwest::Client::new();
    let run = format!("{:x}", std::process::id());

    // 1. Passthrough alone.
    let stop = AtomicBool::new(false);
    let idle = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (mut idle_samples, ()) = tokio::join!(probe(&client, &base, &stop), idle);
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

    // 3. Verifies (4 wrong codes per address) with a passthrough probe beside.
    let jobs = emails
        .iter()
        .flat_map(|e| {
            (0..4).map(move |_| ("/verify-otp/", json!({ "email": e, "otp": "000000" }), 400))
        })
        .collect();
    let stop = AtomicBool::new(false);
    let flood = async {
        let result = run_posts(&client, &base, jobs, concurrency).await;
        stop.store(true, Ordering::Relaxed);
        result
    };
    let (mut busy_samples, (mut verify_lat, verify_wall)) =
        tokio::join!(probe(&client, &base, &stop), flood);
    let (verify_p50, verify_p99) = percentiles(&mut verify_lat);
    let (busy_p50, busy_p99) = percentiles(&mut busy_samples);

    println!("target {base}, concurrency {concurrency}");
    println!(
        "send:   {:7.1} req/s  p50 {send_p50:6.1} ms  p99 {send_p99:6.1} ms  ({} requests)",
        send_lat.len() as f64 / send_wall.as_secs_f64(),
        send_lat.len()
    );
    println!(
        "verify: {:7.1} req/s  p50 {verify_p50:6.1} ms  p99 {verify_p99:6.1} ms  ({} requests)",
        verify_lat.len() as f64 / verify_wall.as_secs_f64(),
        verify_lat.len()
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
