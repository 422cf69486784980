//! A real SMTP server for tests: Python's aiosmtpd, run by
//! `tests/support/smtp_server.py` (plain, STARTTLS or implicit TLS, optional
//! AUTH), saving what it receives as .eml files in a scratch folder.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
#[cfg(feature = "smtp")]
use tower_otp::delivery::SmtpSender;

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
pub const FROM: &str = "Shop <no-reply@shop.example>";

/// Whether the SMTP server can run here; `false` means skipped (see
/// [`super::skip`]: a failure under CI).
pub fn smtp_server_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        super::skip::skip::<()>(
            "python3 with aiosmtpd is not available (pip install -r tests/support/requirements.txt)",
        );
    }
    ok
}

/// A unique scratch folder.
pub fn scratch(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tower-otp-smtp-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost`, made now: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

pub enum Mode {
    Plain,
    StartTls,
    Implicit,
}

pub struct SmtpServer {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub cert_pem: String,
}

impl SmtpServer {
    /// Starts the server; `None` (test skipped) when it cannot run here.
    pub fn start(mode: Mode, extra: &[&str]) -> Option<Self> {
        if !smtp_server_available() {
            return None;
        }
        let dir = scratch("server");
        let maildir = dir.join("mail");
        std::fs::create_dir_all(&maildir).unwrap();
        let (cert_pem, key_pem) = self_signed();
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), key_pem).unwrap();
        let mode = match mode {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Implicit => "implicit",
        };
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .arg("--maildir")
            .arg(&maildir)
            .args(["--mode", mode, "--cert"])
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The server's own log (handshakes we refuse on purpose, …).
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("the SMTP server did not start: {line:?}\n{log}")
            });
        Some(Self {
            child,
            port,
            dir,
            cert_pem,
        })
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.join("mail")
    }

    /// A STARTTLS/TLS sender builder that trusts this server's certificate.
    #[cfg(feature = "smtp")]
    pub fn trusting(&self, builder: tower_otp::delivery::SmtpSenderBuilder) -> SmtpSender {
        builder
            .port(self.port)
            .tls_server_name("localhost")
            .add_root_certificate_pem(self.cert_pem.clone())
            .from(FROM)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    /// Waits for message number `n` (1-based): its raw bytes and envelope.
    pub fn message(&self, n: usize) -> (Vec<u8>, Value) {
        let eml = self.maildir().join(format!("{n}.eml"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !eml.exists() {
            assert!(Instant::now() < deadline, "message {n} never arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        let envelope = std::fs::read(self.maildir().join(format!("{n}.json"))).unwrap();
        (
            std::fs::read(eml).unwrap(),
            serde_json::from_slice(&envelope).unwrap(),
        )
    }

    pub fn received(&self) -> usize {
        count_files(&self.maildir(), "eml")
    }

    /// DATA commands refused (with `--reply`).
    pub fn refused_attempts(&self) -> usize {
        std::fs::read_to_string(self.maildir().join("attempts.txt"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
        })
        .count()
}
