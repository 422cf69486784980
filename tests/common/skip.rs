//! The one rule for tests that need a service (Redis, `redis-server`, the
//! Python SMTP server, Chromium): when the service is missing,
//!
//! - under CI (`CI` is `true` or `1`, any case) the test fails;
//! - otherwise the test returns early and prints one line,
//!   `SKIPPED <test>: <reason>`, straight to the terminal's stderr (past
//!   libtest's output capture, which would hide it for a passing test), and
//!   appends the same line to `target/tmp/test-skips.txt`. When the test
//!   binary exits, after libtest's `test result:` line, it prints how many
//!   of its tests were skipped, so a plain `cargo test` shows the count.

use std::{
    io::Write,
    path::PathBuf,
    sync::{
        Once,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Whether this is a CI run: `CI` is `true` or `1`. Missing services are
/// then failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// The file every skip is appended to (`.ci/run` counts its lines):
/// `target/tmp/test-skips.txt`, or `TOWER_OTP_TEST_SKIPS` when set (the
/// skip rule's own test uses that).
pub fn skips_file() -> PathBuf {
    std::env::var_os("TOWER_OTP_TEST_SKIPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-skips.txt"))
}

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static AT_EXIT: Once = Once::new();

/// The running test's name (libtest names the test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// Writes `line` to the process's stderr file, not through `eprintln!`
/// (which libtest captures and discards for a passing test).
fn to_terminal(line: &str) {
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open("/dev/stderr")
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if written.is_err() {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Fails under CI; otherwise reports the running test as skipped (see the
/// module docs). Returns `None` so a service lookup can end with it.
#[track_caller]
pub fn skip<T>(reason: &str) -> Option<T> {
    let test = test_name();
    if in_ci() {
        panic!("{test}: {reason} (CI is set: a missing service is a failure, not a skip)");
    }
    let line = format!("SKIPPED {test}: {reason} (CI=true makes this a failure)\n");
    to_terminal(&line);
    let file = skips_file();
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
    {
        let _ = f.write_all(line.as_bytes());
    }
    SKIPPED.fetch_add(1, Ordering::SeqCst);
    AT_EXIT.call_once(register_summary);
    None
}

/// How many tests of this binary skipped so far.
pub fn skipped() -> usize {
    SKIPPED.load(Ordering::SeqCst)
}

extern "C" fn summary() {
    let n = SKIPPED.load(Ordering::SeqCst);
    if n > 0 {
        to_terminal(&format!(
            "SKIPPED {n} test(s) of this binary (counted as passed above): a service is missing; \
             every skip is listed in {}\n",
            skips_file().display()
        ));
    }
}

/// Prints the count once the binary exits: after libtest's own summary.
#[allow(unsafe_code)] // `atexit` is the only hook that runs after libtest's summary.
fn register_summary() {
    // SAFETY: `summary` is a plain `extern "C" fn()` that only reads an
    // atomic and writes to stderr; registering it has no other effect.
    unsafe {
        libc::atexit(summary);
    }
}
