//! The hashing pool against the backend it runs, measured so that machine
//! drift cancels out (performance issue 21.2: one caller through the pool
//! ≥ 0.97× the backend called directly, two concurrent callers ≥ 1.8× one).
//!
//! Each round runs three short blocks at the default parameters: `BLOCK`
//! hashes with the backend called directly on this thread
//! (`backend::Direct`, memory reused), `BLOCK` through the pool (2 workers,
//! default priority, as `benches/hashing.rs` builds it) awaited one after
//! another, and `2 × BLOCK` through the pool from two concurrent callers.
//! `benches/hashing.rs` measures these one after the other over ~20 s each,
//! and the machine's drift between them (10–25 %) decides its ratios. Here the
//! blocks are interleaved, under a second a round, in an order rotated every
//! round (ABC, BCA, CAB), so drift and order effects hit all three alike.
//!
//! Every round gives one ÷ direct and two ÷ one (throughputs); the summary
//! prints their median, min and max over the rounds and the ratio of the
//! summed throughputs (all hashes ÷ all time, per configuration). A block
//! lasts 50–150 ms, so one round's ratios are noisy: compare the median and
//! the summed ratio with the bar. Where
//! `/proc/self/task/*/schedstat` is readable (Linux), each block also gets
//! the process's CPU time and run-queue wait (time runnable but not running)
//! per hash, and the busiest hashing worker's share of the workers' CPU time
//! (1.0 for one caller if one worker takes every hash, as the pool's idle
//! stack intends; 0.5 if they take turns).
//!
//! `ROUNDS` (default 30) and `BLOCK` (default 6) set the size; one more round
//! first warms up and is not counted. `EXTRA=1` adds three configurations
//! to the rotation: a second pool whose workers run at
//! `HashThreadPriority::Normal` (one caller, `n-one`, and two, `n-two`), and
//! the backend called directly on two threads at once (`d-two`: what two
//! concurrent hashes get from the machine with no pool at all).
//!
//! ```text
//! cargo bench --bench pool_ratio                                              # rustcrypto-argon2
//! cargo bench --no-default-features --features simd-argon2 --bench pool_ratio # argon2-rust
//! EXTRA=1 cargo bench --bench pool_ratio
//! ```
#![allow(clippy::print_stdout)] // a bench reports on stdout

use std::{
    collections::BTreeMap,
    env, fs,
    hint::black_box,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use tokio::runtime::Runtime;
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool, HashThreadPriority, backend},
};

const SECRET: &str = "benchmark secret, 32 bytes long!";
const CODE: &str = "123456";
const SALT: [u8; 16] = [7; 16];

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Direct,
    /// The backend on this thread and on a second one at once.
    DirectTwo,
    /// One caller through `pools[i]`.
    One(usize),
    /// Two concurrent callers through `pools[i]`.
    Two(usize),
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::DirectTwo => "d-two",
            Self::One(0) => "one",
            Self::Two(0) => "two",
            Self::One(_) => "n-one",
            Self::Two(_) => "n-two",
        }
    }
}

/// What one block or several cost, in seconds: wall time, the process's CPU
/// time and run-queue wait, the hashing workers' CPU time and the busiest
/// worker's.
#[derive(Clone, Copy, Default)]
struct Cost {
    hashes: usize,
    wall: f64,
    cpu: f64,
    wait: f64,
    workers: f64,
    busiest: f64,
}

impl Cost {
    fn per_second(&self) -> f64 {
        self.hashes as f64 / self.wall
    }

    /// `seconds` per hash, in milliseconds.
    fn per_hash(&self, seconds: f64) -> f64 {
        seconds * 1e3 / self.hashes as f64
    }

    fn add(&mut self, other: Cost) {
        self.hashes += other.hashes;
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.wait += other.wait;
        self.workers += other.workers;
        self.busiest += other.busiest;
    }
}

/// A thread's CPU time and run-queue wait so far (ns), from the `schedstat`
/// file in `dir`; zeros where it cannot be read.
fn schedstat(dir: &Path) -> [u64; 2] {
    let mut stat = [0; 2];
    let text = fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
    for (value, field) in stat.iter_mut().zip(text.split_whitespace()) {
        *value = field.parse().unwrap_or(0);
    }
    stat
}

/// Each thread's [`schedstat`] by thread id, and whether it is a hashing
/// worker; empty where `/proc/self/task` cannot be read.
fn threads() -> BTreeMap<String, (bool, [u64; 2])> {
    // The kernel adds a running thread's CPU time up at scheduler events:
    // make one for this thread, so that what it just ran is counted.
    thread::yield_now();
    let mut threads = BTreeMap::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let stat = schedstat(&task.path());
        let worker = fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|comm| comm.starts_with("tower-otp-hash"));
        threads.insert(
            task.file_name().to_string_lossy().into_owned(),
            (worker, stat),
        );
    }
    threads
}

struct Bench {
    runtime: Runtime,
    direct: backend::Direct,
    /// The second thread's, for `DirectTwo`.
    second: Option<backend::Direct>,
    pools: Vec<HashPool>,
    block: usize,
}

impl Bench {
    fn run(&mut self, config: Config) -> Cost {
        let block = self.block;
        let before = threads();
        let start = Instant::now();
        // What a thread that ends within the block used (it is gone after).
        let mut ended = [0; 2];
        let hashes = match config {
            Config::Direct => {
                direct(&mut self.direct, block);
                block
            }
            Config::DirectTwo => {
                let second = self.second.as_mut().expect("second hasher");
                ended = thread::scope(|scope| {
                    let other = scope.spawn(|| {
                        direct(second, block);
                        thread::yield_now(); // as in `threads`
                        schedstat(Path::new("/proc/thread-self"))
                    });
                    direct(&mut self.direct, block);
                    other.join().expect("second thread")
                });
                2 * block
            }
            Config::One(i) => {
                self.runtime.block_on(caller(&self.pools[i], block));
                block
            }
            Config::Two(i) => {
                let pool = &self.pools[i];
                self.runtime
                    .block_on(async { tokio::join!(caller(pool, block), caller(pool, block)) });
                2 * block
            }
        };
        let nanos = |n: u64| Duration::from_nanos(n).as_secs_f64();
        let mut cost = Cost {
            hashes,
            wall: start.elapsed().as_secs_f64(),
            cpu: nanos(ended[0]),
            wait: nanos(ended[1]),
            ..Cost::default()
        };
        for (tid, (worker, after)) in threads() {
            let before = before.get(&tid).map_or([0; 2], |&(_, stat)| stat);
            let seconds = |i: usize| nanos(after[i] - before[i]);
            cost.cpu += seconds(0);
            cost.wait += seconds(1);
            if worker {
                cost.workers += seconds(0);
                cost.busiest = cost.busiest.max(seconds(0));
            }
        }
        cost
    }
}

/// `n` hashes with `hasher` on this thread.
fn direct(hasher: &mut backend::Direct, n: usize) {
    for _ in 0..n {
        black_box(
            hasher
                .hash(SECRET.as_bytes(), CODE.as_bytes(), &SALT)
                .expect("hash"),
        );
    }
}

/// `n` hashes through `pool`, each awaited before the next.
async fn caller(pool: &HashPool, n: usize) {
    for _ in 0..n {
        black_box(pool.hash(CODE, &SALT).await.expect("hash"));
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let len = sorted.len();
    (sorted[(len - 1) / 2] + sorted[len / 2]) / 2.0
}

fn main() {
    let rounds = env_usize("ROUNDS", 30).max(1);
    let block = env_usize("BLOCK", 6).max(1);
    let extra = env::var("EXTRA").is_ok_and(|v| v == "1");
    let params = HashParams::default();
    let pool = |priority| {
        HashPool::new_with_priority(params, Secret::new(SECRET), &[], 2, 64, priority)
            .expect("pool")
    };
    let mut bench = Bench {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime"),
        direct: backend::Direct::new(params).expect("backend"),
        second: None,
        // `HashPool::new`'s priority, as benches/hashing.rs runs it.
        pools: vec![pool(HashThreadPriority::default())],
        block,
    };
    let mut configs = vec![Config::Direct, Config::One(0), Config::Two(0)];
    // (label, numerator, denominator, bar)
    let mut ratios = vec![
        ("one/direct", Config::One(0), Config::Direct, Some(0.97)),
        ("two/one", Config::Two(0), Config::One(0), Some(1.8)),
    ];
    if extra {
        bench.pools.push(pool(HashThreadPriority::Normal));
        bench.second = Some(backend::Direct::new(params).expect("backend"));
        configs.extend([Config::One(1), Config::Two(1), Config::DirectTwo]);
        ratios.extend([
            ("n-one/direct", Config::One(1), Config::Direct, Some(0.97)),
            ("n-two/n-one", Config::Two(1), Config::One(1), Some(1.8)),
            ("n-one/one", Config::One(1), Config::One(0), None),
            ("d-two/direct", Config::DirectTwo, Config::Direct, None),
        ]);
    }
    // The same work everywhere: the pool's hash is the backend's.
    let reference = bench
        .direct
        .hash(SECRET.as_bytes(), CODE.as_bytes(), &SALT)
        .expect("hash");
    for pool in &bench.pools {
        let hash = bench
            .runtime
            .block_on(pool.hash(CODE, &SALT))
            .expect("hash");
        assert_eq!(*hash, reference, "pool and backend disagree");
    }

    let (m, t, p) = (params.m_cost, params.t_cost, params.p_cost);
    println!(
        "backend {}, m={m},t={t},p={p}, pool of 2 workers, {rounds} rounds of {block}-hash blocks",
        backend::NAME
    );
    for &config in &configs {
        bench.run(config); // warm-up
    }

    let n = configs.len();
    let index = |config: Config| configs.iter().position(|&c| c == config).expect("config");
    let mut totals = vec![Cost::default(); n];
    let mut per_round = vec![Vec::with_capacity(rounds); ratios.len()];
    let mut header = String::from("round order ");
    for config in &configs {
        header += &format!(" {:>7}", format!("{}/s", config.label()));
    }
    for (label, ..) in &ratios {
        header += &format!(" {label:>12}");
    }
    header += " |";
    for config in &configs {
        header += &format!(" {:>16}", config.label());
    }
    println!(
        "per block: hashes/s, ratios | ms/hash of CPU / run-queue wait (one caller: , busiest worker's share)"
    );
    println!("{header}");
    for round in 0..rounds {
        let mut costs = vec![Cost::default(); n];
        let mut order = String::new();
        for k in 0..n {
            let i = (round + k) % n;
            costs[i] = bench.run(configs[i]);
            order.push(char::from(b'A' + i as u8));
        }
        let mut line = format!("{:>5} {order:<6}", round + 1);
        for (cost, total) in costs.iter().zip(&mut totals) {
            total.add(*cost);
            line += &format!(" {:>7.2}", cost.per_second());
        }
        for ((_, num, den, _), values) in ratios.iter().zip(&mut per_round) {
            let ratio = costs[index(*num)].per_second() / costs[index(*den)].per_second();
            values.push(ratio);
            line += &format!(" {ratio:>12.3}");
        }
        line += " |";
        for (config, cost) in configs.iter().zip(&costs) {
            let (cpu, wait) = (cost.per_hash(cost.cpu), cost.per_hash(cost.wait));
            let mut cell = format!("{cpu:.1}/{wait:.2}");
            if matches!(config, Config::One(_)) {
                cell += &format!(", {:.2}", cost.busiest / cost.workers);
            }
            line += &format!(" {cell:>16}");
        }
        println!("{line}");
    }

    println!("\nratio           median    min    max  summed  rounds below bar");
    for ((label, num, den, bar), values) in ratios.iter().zip(&per_round) {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let summed = totals[index(*num)].per_second() / totals[index(*den)].per_second();
        let below = bar.map_or(String::from("-"), |bar| {
            let count = values.iter().filter(|&&r| r < bar).count();
            format!("{count}/{} < {bar}", values.len())
        });
        println!(
            "{label:<14} {:>7.3} {min:>6.3} {max:>6.3} {summed:>7.3}  {below}",
            median(values)
        );
    }
    println!(
        "\nconfig  hashes  hashes/s (summed)  ms/hash: cpu (workers')  run-queue wait  busiest worker's share"
    );
    for (config, total) in configs.iter().zip(&totals) {
        let (workers, share) = match config {
            Config::One(_) | Config::Two(_) => (
                format!("({:.2})", total.per_hash(total.workers)),
                format!("{:.2}", total.busiest / total.workers),
            ),
            _ => (String::new(), String::from("-")),
        };
        println!(
            "{:<7} {:>6} {:>18.2} {:>13.2} {workers:>9} {:>15.2} {share:>23}",
            config.label(),
            total.hashes,
            total.per_second(),
            total.per_hash(total.cpu),
            total.per_hash(total.wait),
        );
    }
}
