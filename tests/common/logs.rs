//! Capturing what a `tracing` subscriber prints, for the log tests.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

/// A writer that keeps everything the log subscriber prints; clones share
/// one buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything printed so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plain-text subscriber (no colours, no time) writing into `captured`
/// at `level` and above, for `tracing::subscriber::with_default`.
pub fn subscriber(
    captured: &Captured,
    level: tracing::Level,
) -> impl tracing::Subscriber + Send + Sync {
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish()
}

/// This binary's logs at `level` and above, from a global subscriber
/// installed by the first call (every callsite, every thread).
pub fn global(level: tracing::Level) -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        tracing::subscriber::set_global_default(subscriber(&captured, level)).unwrap();
        captured
    })
}

/// [`global`] with the `log` facade bridged into the same capture, at every
/// level: the records of the dependencies that log through `log` rather than
/// `tracing` (reqwest, rustls, redis, ...) land there as events, from every
/// thread, as in a host whose `tracing_subscriber::fmt().init()` installs
/// `tracing_log::LogTracer`. One `log` logger per process: a test binary
/// calls this, or sets no `log` logger at all.
pub fn global_with_log_records(level: tracing::Level) -> &'static Captured {
    static BRIDGE: std::sync::Once = std::sync::Once::new();
    let captured = global(level);
    BRIDGE.call_once(|| {
        tracing_log::LogTracer::init().expect("no other `log` logger in this test binary");
        tracing_log::log::set_max_level(tracing_log::log::LevelFilter::Trace);
    });
    captured
}

/// Checks that `log` records reach `captured` ([`global_with_log_records`]):
/// a TRACE record with a marker from the calling thread, from a thread of
/// its own and from a Tokio worker thread must each be in it, or a log test
/// could pass while seeing no dependency's record at all. Not from inside a
/// Tokio runtime (it runs one).
pub fn assert_log_records_are_captured(captured: &Captured) {
    use rand::RngExt;
    let marker = format!("log-bridge-marker-{:016x}", rand::rng().random::<u64>());
    tracing_log::log::trace!(target: "some_dependency", "{marker} calling thread");
    let own = marker.clone();
    std::thread::spawn(move || {
        tracing_log::log::trace!(target: "some_dependency", "{own} own thread");
    })
    .join()
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let worker = marker.clone();
    runtime
        .block_on(runtime.spawn(async move {
            tracing_log::log::trace!(target: "some_dependency", "{worker} tokio worker");
        }))
        .unwrap();
    let logs = captured.text();
    for place in ["calling thread", "own thread", "tokio worker"] {
        let line = format!("TRACE some_dependency: {marker} {place}");
        assert!(logs.contains(&line), "no {line:?} in the capture:\n{logs}");
    }
}
