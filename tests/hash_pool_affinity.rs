//! One caller's hashes all go to one worker, whose Argon2 memory is warm,
//! even while another process keeps a core busy and the scheduler preempts
//! the (nice 19) worker right after it answers.
//!
//! A binary of its own, with one test: the threads measured are exactly the
//! ones the pool started (the process's threads before and after it is
//! built), and no other test's hashing shares the machine.
#![cfg(target_os = "linux")]

#[path = "common/threads.rs"]
mod threads;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use threads::threads;
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool},
};

/// Nanoseconds thread `tid` has spent on a CPU (`schedstat`'s first field).
fn cpu_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .expect("schedstat")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_keeps_one_worker_while_another_thread_takes_a_core() {
    let params = HashParams {
        m_cost: 4096,
        t_cost: 1,
        p_cost: 1,
    };
    let before = threads();
    let pool = HashPool::new(
        params,
        Secret::new("a secret of 32 bytes, for tests!"),
        &[],
        2,
        8,
    )
    .expect("pool");
    let salt = [3; 16];
    pool.hash("123456", &salt).await.expect("hash"); // both workers started
    let workers: Vec<u32> = threads().difference(&before).copied().collect();
    assert_eq!(workers.len(), 2, "the pool starts two threads");

    // A normal-priority thread that never sleeps: the nice 19 workers are
    // preempted whenever it wants their core.
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        })
    };
    let start: Vec<u64> = workers.iter().map(|&tid| cpu_ns(tid)).collect();
    for _ in 0..60 {
        pool.hash("123456", &salt).await.expect("hash");
    }
    let spent: Vec<u64> = workers
        .iter()
        .zip(&start)
        .map(|(&tid, &start)| cpu_ns(tid) - start)
        .collect();
    stop.store(true, Ordering::Relaxed);
    spinner.join().expect("spinner");

    let total: u64 = spent.iter().sum();
    let busiest = *spent.iter().max().expect("two workers");
    // Taking turns gives each about half.
    assert!(
        busiest as f64 >= 0.9 * total as f64,
        "one worker should do (nearly) every hash; CPU per worker: {spent:?} ns"
    );
}
