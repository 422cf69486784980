//! # soak: mixed traffic for a long time against a running quickstart
//!
//! Not part of the test run: start it by hand (BENCHMARKS.md, "Soak run").
//! Start the quickstart in release mode with Redis, the per-IP limits off
//! (all traffic comes from one address), no cooldown or quota in the way,
//! and test contacts whose fixed code the soak knows:
//!
//! ```text
//! cargo build --release --example quickstart
//! REDIS_OTP_URL=redis://127.0.0.1:6379 OTP_IP_SEND_PER_MINUTE=0 \
//!   OTP_IP_VERIFY_PER_MINUTE=0 OTP_RESEND_SECONDS=0 OTP_SEND_QUOTA=1000000 \
//!   OTP_TEST_MODE=enabled OTP_TEST_CODE=424242 \
//!   OTP_TEST_CONTACTS="$(cargo run -q --example soak -- --contacts)" \
//!   RUST_LOG=warn target/release/examples/quickstart > /dev/null &
//! SOAK_PID=$! SOAK_SECONDS=600 cargo run --example soak
//! ```
//!
//! Environment (or `soak <url> <pid>`): `SOAK_URL` (default
//! `http://127.0.0.1:3000`), `SOAK_PID` (the server's process id: resident
//! memory, open descriptors and threads are read from `/proc/<pid>`; without
//! it only latencies are sampled), `SOAK_SECONDS` (default 600),
//! `SOAK_WARMUP_SECONDS` (default 60), `SOAK_SAMPLE_SECONDS` (default 5),
//! `SOAK_CONCURRENCY` (default 8 workers), `SOAK_TEST_CODE` (default
//! `424242`, must equal the server's `OTP_TEST_CODE`), `SOAK_SEED` (the
//! traffic mix; default 1), `SOAK_RSS_GROWTH_PERCENT` (default 10),
//! `SOAK_FD_GROWTH` (default 16).
//!
//! Each worker owns one test email and one test number (`soak-<n>@example.com`,
//! `+1415555<nnnn>`; `soak --contacts` prints the list for
//! `OTP_TEST_CONTACTS`) and loops over a seeded mix: passthrough `GET /`,
//! `GET /ready`, sends to fresh addresses (a real Argon2 hash each), a wrong
//! code for a fresh address (hashed, 400 `otp_invalid`), the full flow for
//! its test contacts (send, a wrong code, the right code, the mobile with the
//! email's grant, `POST /register` with the merged grant), and bad input
//! (malformed JSON, wrong Content-Type, wrong method, oversize body, invalid
//! address, forged grant). Every answer must be the one the contract gives;
//! anything else is counted as unexpected.
//!
//! Exit status 1 when an unexpected answer appeared, or when after warm-up
//! the memory or the descriptors keep growing: the smallest value of the
//! last third of the samples above the largest of the first third by more
//! than the allowed margin.
#![allow(clippy::print_stdout)] // a command-line tool

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The test email of worker `n`.
fn test_email(n: usize) -> String {
    format!("soak-{n}@example.com")
}

/// The test number of worker `n` (a US fictional-range number).
fn test_mobile(n: usize) -> String {
    format!("+1415555{:04}", 100 + n)
}

/// A small seeded generator (xorshift64*), so a run's mix reproduces.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a worker records: latencies per operation, counts per answer.
#[derive(Default)]
struct Stats {
    /// Latencies since the last sample (all operations), in microseconds.
    interval: Vec<u64>,
    /// Latencies of the whole run per operation, in microseconds.
    by_op: BTreeMap<&'static str, Vec<u64>>,
    /// Requests per (operation, status).
    counts: BTreeMap<(&'static str, u16), u64>,
    /// The first unexpected answers (operation, status, body).
    unexpected: Vec<String>,
}

struct Shared {
    stats: Mutex<Stats>,
    unexpected: AtomicU64,
    stop: AtomicBool,
}

struct Worker {
    client: reqwest::Client,
    base: String,
    code: String,
    shared: Arc<Shared>,
    n: usize,
    rng: Rng,
    fresh: u64,
}

/// One request: method, path, content type, body, headers.
struct Req {
    method: reqwest::Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    token: Option<String>,
}

impl Req {
    fn post(path: &'static str, body: Value) -> Self {
        Self {
            method: reqwest::Method::POST,
            path,
            content_type: Some("application/json"),
            body: body.to_string().into_bytes(),
            token: None,
        }
    }
    fn get(path: &'static str) -> Self {
        Self {
            method: reqwest::Method::GET,
            path,
            content_type: None,
            body: Vec::new(),
            token: None,
        }
    }
}

impl Worker {
    /// Sends `req` and checks the status (and the JSON `code` when given);
    /// returns the JSON body.
    async fn call(&mut self, op: &'static str, req: Req, status: u16, code: Option<&str>) -> Value {
        let mut builder = self
            .client
            .request(req.method, format!("{}{}", self.base, req.path))
            .body(req.body);
        if let Some(ct) = req.content_type {
            builder = builder.header("content-type", ct);
        }
        if let Some(token) = req.token {
            builder = builder.header("x-verification-token", token);
        }
        let start = Instant::now();
        let result = async {
            let response = builder.send().await?;
            let got = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((got, bytes))
        }
        .await;
        let micros = start.elapsed().as_micros() as u64;
        let (got, body) = match result {
            Ok((got, bytes)) => (got, serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
            Err(err) => (0, json!({ "transport_error": err.to_string() })),
        };
        let ok = got == status && code.is_none_or(|c| body["code"] == c);
        let mut stats = self.shared.stats.lock().unwrap();
        stats.interval.push(micros);
        stats.by_op.entry(op).or_default().push(micros);
        *stats.counts.entry((op, got)).or_default() += 1;
        if !ok {
            self.shared.unexpected.fetch_add(1, Ordering::Relaxed);
            if stats.unexpected.len() < 20 {
                stats.unexpected.push(format!(
                    "{op}: expected {status} {code:?}, got {got} {body}"
                ));
            }
        }
        body
    }

    fn fresh_email(&mut self) -> String {
        self.fresh += 1;
        format!(
            "soak-{}-{}-{:08x}@example.org",
            self.n,
            self.fresh,
            self.rng.next() as u32
        )
    }

    /// The full flow for this worker's test contacts.
    async fn flow(&mut self) {
        let email = test_email(self.n);
        let mobile = test_mobile(self.n);
        let code = self.code.clone();
        let wrong = if code.starts_with('1') {
            "2".repeat(code.len())
        } else {
            "1".repeat(code.len())
        };
        self.call(
            "send_test",
            Req::post("/send-otp/", json!({ "email": email })),
            200,
            None,
        )
        .await;
        self.call(
            "verify_wrong_test",
            Req::post("/verify-otp/", json!({ "email": email, "otp": wrong })),
            400,
            Some("otp_invalid"),
        )
        .await;
        let answer = self
            .call(
                "verify_right",
                Req::post("/verify-otp/", json!({ "email": email, "otp": code })),
                200,
                None,
            )
            .await;
        let token = answer["token"].as_str().unwrap_or_default().to_owned();
        self.call(
            "send_test",
            Req::post("/send-mobile-otp/", json!({ "mobile": mobile })),
            200,
            None,
        )
        .await;
        let mut verify = Req::post(
            "/verify-mobile-otp/",
            json!({ "mobile": mobile, "otp": code }),
        );
        verify.token = Some(token);
        let answer = self.call("verify_right", verify, 200, None).await;
        let mut register = Req::post("/register", json!({}));
        register.token = answer["token"].as_str().map(str::to_owned);
        self.call("register", register, 200, None).await;
    }

    /// One malformed request and the contract's answer to it.
    async fn bad_input(&mut self) {
        let (req, status, code) = match self.rng.below(7) {
            0 => {
                let mut r = Req::post("/send-otp/", json!({}));
                r.body = b"{\"email\": \"a@b.c\"".to_vec();
                (r, 400, "invalid_json")
            }
            1 => {
                let mut r = Req::post("/verify-otp/", json!({ "email": "a@b.c", "otp": "1" }));
                r.content_type = Some("text/plain");
                (r, 415, "unsupported_media_type")
            }
            2 => (Req::get("/send-otp/"), 405, "method_not_allowed"),
            3 => {
                let big = "x".repeat(8 * 1024);
                (
                    Req::post("/send-otp/", json!({ "email": big })),
                    413,
                    "payload_too_large",
                )
            }
            4 => (
                Req::post(
                    "/send-otp/",
                    json!({ "email": "not an address\r\nBcc: x@y.z" }),
                ),
                400,
                "invalid_email",
            ),
            5 => {
                let mut r = Req::post("/send-otp/", json!({}));
                r.body = vec![0xff, 0xfe, 0x00, b'{'];
                (r, 400, "invalid_json")
            }
            _ => {
                let mut r = Req::post("/register", json!({}));
                r.token = Some(format!("v2.{:016x}.forged", self.rng.next()));
                (r, 401, "verification_required")
            }
        };
        self.call("bad_input", req, status, Some(code)).await;
    }

    async fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.rng.below(100) {
                0..=29 => {
                    self.call("passthrough", Req::get("/"), 200, None).await;
                }
                30..=34 => {
                    self.call("ready", Req::get("/ready"), 200, None).await;
                }
                35..=49 => {
                    let email = self.fresh_email();
                    self.call(
                        "send_fresh",
                        Req::post("/send-otp/", json!({ "email": email })),
                        200,
                        None,
                    )
                    .await;
                }
                50..=59 => {
                    let email = self.fresh_email();
                    self.call(
                        "send_fresh",
                        Req::post("/send-otp/", json!({ "email": email })),
                        200,
                        None,
                    )
                    .await;
                    // Not the code: real codes go to the console. A code of
                    // the right shape that the server hashes and refuses.
                    self.call(
                        "verify_wrong_fresh",
                        Req::post("/verify-otp/", json!({ "email": email, "otp": "000000" })),
                        400,
                        Some("otp_invalid"),
                    )
                    .await;
                }
                60..=79 => self.flow().await,
                _ => self.bad_input().await,
            }
        }
    }
}

/// Resident memory (KiB), open descriptors and threads of `pid`.
fn proc_sample(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:")?, fds, field("Threads:")?))
}

/// The `q` quantile of sorted `v`, in milliseconds.
fn quantile(v: &[u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

/// Whether `series` (after warm-up) keeps growing: the smallest value of the
/// last third exceeds the largest of the first third by more than `margin`.
fn keeps_growing(series: &[u64], margin: impl Fn(u64) -> u64) -> Option<(u64, u64)> {
    if series.len() < 6 {
        return None;
    }
    let third = series.len() / 3;
    let first_max = *series[..third].iter().max()?;
    let last_min = *series[series.len() - third..].iter().min()?;
    (last_min > first_max + margin(first_max)).then_some((first_max, last_min))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let concurrency: usize = env_or("SOAK_CONCURRENCY", 8);
    if args.first().map(String::as_str) == Some("--contacts") {
        let list: Vec<String> = (0..concurrency)
            .flat_map(|n| [test_email(n), test_mobile(n)])
            .collect();
        println!("{}", list.join(","));
        return;
    }
    let base = args
        .first()
        .cloned()
        .unwrap_or_else(|| env_or("SOAK_URL", "http://127.0.0.1:3000".to_owned()));
    let base = base.trim_end_matches('/').to_owned();
    let pid: Option<u32> = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .or_else(|| std::env::var("SOAK_PID").ok().and_then(|p| p.parse().ok()));
    let seconds: u64 = env_or("SOAK_SECONDS", 600);
    let warmup: u64 = env_or("SOAK_WARMUP_SECONDS", 60);
    let every: u64 = env_or("SOAK_SAMPLE_SECONDS", 5).max(1);
    let code: String = env_or("SOAK_TEST_CODE", "424242".to_owned());
    let seed: u64 = env_or("SOAK_SEED", 1);
    let rss_pct: u64 = env_or("SOAK_RSS_GROWTH_PERCENT", 10);
    let fd_growth: u64 = env_or("SOAK_FD_GROWTH", 16);

    println!(
        "soak: {base}, pid {pid:?}, {seconds} s (warm-up {warmup} s), {concurrency} workers, seed {seed}"
    );
    let shared = Arc::new(Shared {
        stats: Mutex::new(Stats::default()),
        unexpected: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let mut workers = Vec::new();
    for n in 0..concurrency {
        let worker = Worker {
            client: client.clone(),
            base: base.clone(),
            code: code.clone(),
            shared: shared.clone(),
            n,
            rng: Rng::new(seed.wrapping_add(n as u64 * 7919)),
            fresh: 0,
        };
        workers.push(tokio::spawn(worker.run()));
    }

    let start = Instant::now();
    let first = pid.and_then(proc_sample);
    let mut after_warmup: Vec<(u64, u64, u64)> = Vec::new();
    let mut last = None;
    println!("   t(s)  req/s   p50ms   p90ms   p99ms   maxms   rss_KiB  fds thr unexpected");
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let mut lat = std::mem::take(&mut shared.stats.lock().unwrap().interval);
        lat.sort_unstable();
        let sample = pid.and_then(proc_sample);
        let t = start.elapsed().as_secs();
        if t >= warmup
            && let Some(s) = sample
        {
            after_warmup.push(s);
        }
        if sample.is_some() {
            last = sample;
        }
        let (rss, fds, threads) = sample.unwrap_or_default();
        println!(
            "{t:7} {:6.0} {:7.1} {:7.1} {:7.1} {:7.1} {rss:9} {fds:4} {threads:3} {}",
            lat.len() as f64 / every as f64,
            quantile(&lat, 0.50),
            quantile(&lat, 0.90),
            quantile(&lat, 0.99),
            quantile(&lat, 1.0),
            shared.unexpected.load(Ordering::Relaxed),
        );
    }
    shared.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = start.elapsed().as_secs_f64();

    let stats = shared.stats.lock().unwrap();
    let total: u64 = stats.counts.values().sum();
    println!(
        "\n{total} requests in {elapsed:.0} s ({:.0}/s)",
        total as f64 / elapsed
    );
    println!("operation            count   p50ms   p90ms   p99ms   maxms");
    let mut all = Vec::new();
    for (op, lat) in &stats.by_op {
        let mut lat = lat.clone();
        lat.sort_unstable();
        println!(
            "{op:18} {:7} {:7.1} {:7.1} {:7.1} {:7.1}",
            lat.len(),
            quantile(&lat, 0.50),
            quantile(&lat, 0.90),
            quantile(&lat, 0.99),
            quantile(&lat, 1.0)
        );
        all.extend(lat);
    }
    all.sort_unstable();
    println!(
        "{:18} {:7} {:7.1} {:7.1} {:7.1} {:7.1}",
        "all",
        all.len(),
        quantile(&all, 0.50),
        quantile(&all, 0.90),
        quantile(&all, 0.99),
        quantile(&all, 1.0)
    );
    println!("answers (operation, status): {:?}", stats.counts);

    let mut failed = false;
    let unexpected = shared.unexpected.load(Ordering::Relaxed);
    if unexpected > 0 {
        failed = true;
        println!("FAIL: {unexpected} unexpected answers; the first:");
        for line in &stats.unexpected {
            println!("  {line}");
        }
    }
    if let (Some(first), Some(last)) = (first, last) {
        println!(
            "server at start: {} KiB resident, {} fds, {} threads; at end: {} KiB, {} fds, {} threads",
            first.0, first.1, first.2, last.0, last.1, last.2
        );
    }
    let rss: Vec<u64> = after_warmup.iter().map(|s| s.0).collect();
    let fds: Vec<u64> = after_warmup.iter().map(|s| s.1).collect();
    if let Some((a, b)) = keeps_growing(&rss, |v| v * rss_pct / 100) {
        failed = true;
        println!("FAIL: resident memory keeps growing after warm-up: {a} KiB -> {b} KiB");
    }
    if let Some((a, b)) = keeps_growing(&fds, |_| fd_growth) {
        failed = true;
        println!("FAIL: open descriptors keep growing after warm-up: {a} -> {b}");
    }
    if pid.is_some() && rss.len() < 6 {
        println!("note: fewer than 6 samples after warm-up; growth not judged");
    }
    if failed {
        std::process::exit(1);
    }
    println!("PASS");
}
