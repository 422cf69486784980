//! The hashing threads run at the configured OS priority: nice 19 by
//! default, the process's own on request.
//!
//! A binary of its own, with one test: the threads checked are exactly the
//! ones each pool started (the process's threads before and after it is
//! built), never another test's pool.
#![cfg(target_os = "linux")]

#[path = "common/threads.rs"]
mod threads;

use threads::threads;
use tower_otp::{
    Otp, Secret,
    hash::{HashParams, HashPool, HashThreadPriority},
};

const SECRET: &str = "benchmark secret, 32 bytes long!";

/// Field 19 (nice) of a `stat` line.
fn nice_in(stat: &str) -> i32 {
    // After the name, field 3 (state) comes first; nice is field 19.
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

/// (name, nice) of each thread in `tids`.
fn described(tids: impl IntoIterator<Item = u32>) -> Vec<(String, i32)> {
    tids.into_iter()
        .map(|tid| {
            let dir = format!("/proc/self/task/{tid}");
            let comm = std::fs::read_to_string(format!("{dir}/comm")).unwrap();
            let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap();
            (comm.trim().to_owned(), nice_in(&stat))
        })
        .collect()
}

/// The hashing threads started while `start` ran, with their nice values.
fn started_by<T>(start: impl FnOnce() -> T) -> (T, Vec<(String, i32)>) {
    let before = threads();
    let made = start();
    // The threads have set their priority by the time the pool is returned.
    let new: Vec<_> = described(threads().difference(&before).copied())
        .into_iter()
        .filter(|(name, _)| name.starts_with("tower-otp-hash"))
        .collect();
    (made, new)
}

#[tokio::test]
async fn each_pool_runs_its_own_threads_at_its_priority() {
    let process_nice = nice_in(&std::fs::read_to_string("/proc/self/stat").unwrap());
    assert_ne!(
        process_nice, 19,
        "the test needs a process not already at nice 19"
    );

    let (low, threads) = started_by(|| {
        Otp::builder()
            .secret(SECRET)
            .hash_params(HashParams::insecure_fast())
            .hash_pool_size(2, 4)
            .build()
            .unwrap()
    });
    assert_eq!(
        threads.len(),
        2,
        "the default pool's own threads: {threads:?}"
    );
    assert!(threads.iter().all(|(_, nice)| *nice == 19), "{threads:?}");

    let (normal, threads) = started_by(|| {
        HashPool::new_with_priority(
            HashParams::insecure_fast(),
            Secret::new(SECRET),
            &[],
            3,
            4,
            HashThreadPriority::Normal,
        )
        .unwrap()
    });
    assert_eq!(
        threads.len(),
        3,
        "the normal pool's own threads: {threads:?}"
    );
    assert!(
        threads.iter().all(|(_, nice)| *nice == process_nice),
        "process nice {process_nice}: {threads:?}"
    );

    // The pools still hash at either priority.
    low.hash_pool().hash("1", &[0; 16]).await.unwrap();
    normal.hash("2", &[0; 16]).await.unwrap();
}
