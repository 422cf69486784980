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
