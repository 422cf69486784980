//! The process's threads, from `/proc/self/task` (Linux), for tests that
//! check the threads a pool started.
#![allow(unreachable_pub)] // included by `#[path]` into each test crate

use std::collections::BTreeSet;

/// The process's thread ids.
pub fn threads() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}
