//! `SmtpSender` against a real SMTP server process (Python's aiosmtpd, run
//! by `tests/support/smtp_server.py`) that saves what it receives as .eml
//! files; the tests read the mailbox and check what arrived.
//!
//! Needs `python3` with `aiosmtpd` (`pip install aiosmtpd`). Without it the
//! tests print why and pass, unless `CI=true`, where they fail.
#![cfg(feature = "smtp")]

mod support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};
use tower_otp::delivery::{EmailMessage, EmailSender, SmtpSender};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
const FROM: &str = "Shop <no-reply@shop.example>";

/// Whether the SMTP server can run here; `false` means skip (never under CI).
fn smtp_server_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let reason = "python3 with aiosmtpd is not available (pip install aiosmtpd)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; CI must provide it");
        }
        eprintln!("SKIPPED: {reason}");
    }
    ok
}

/// A unique scratch folder.
fn scratch(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tower-otp-smtp-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost`, made now: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

enum Mode {
    Plain,
    StartTls,
    Implicit,
}

struct SmtpServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    cert_pem: String,
}

impl SmtpServer {
    /// Starts the server; `None` (test skipped) when it cannot run here.
    fn start(mode: Mode, extra: &[&str]) -> Option<Self> {
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

    fn maildir(&self) -> PathBuf {
        self.dir.join("mail")
    }

    /// A STARTTLS/TLS sender builder that trusts this server's certificate.
    fn trusting(&self, builder: tower_otp::delivery::SmtpSenderBuilder) -> SmtpSender {
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
    fn message(&self, n: usize) -> (Vec<u8>, Value) {
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

    fn received(&self) -> usize {
        count_files(&self.maildir(), "eml")
    }

    /// DATA commands refused (with `--reply`).
    fn refused_attempts(&self) -> usize {
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

fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
        })
        .count()
}

/// What a test checks in a received message.
#[derive(Debug, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    cc: Vec<String>,
    has_bcc_header: bool,
    subject: String,
    root_type: String,
    alternative: bool,
    plain: Vec<String>,
    html: Vec<String>,
    attachments: Vec<(String, String, Vec<u8>)>,
}

fn read(raw: &[u8]) -> Received {
    let message = MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut received = Received {
        from: addresses(message.from()).join(","),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        has_bcc_header: message.header_raw("Bcc").is_some(),
        subject: message.subject().unwrap_or_default().to_owned(),
        ..Received::default()
    };
    if let Some(ct) = message.content_type() {
        received.root_type = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default());
    }
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let kind = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default());
        if let Some(name) = part.attachment_name() {
            received
                .attachments
                .push((name.to_owned(), kind, part.contents().to_vec()));
            continue;
        }
        match (&part.body, kind.as_str()) {
            (PartType::Multipart(_), "multipart/alternative") => received.alternative = true,
            (PartType::Text(text), "text/plain") => received.plain.push(text.to_string()),
            (PartType::Html(html), "text/html") => received.html.push(html.to_string()),
            _ => {}
        }
    }
    received
}

#[tokio::test]
async fn starttls_with_login_delivers_a_code_that_verifies() {
    let Some(server) = SmtpServer::start(
        Mode::StartTls,
        &["--user", "mailer", "--password", "smtp-secret"],
    ) else {
        return;
    };
    let sender =
        server.trusting(SmtpSender::starttls("127.0.0.1").credentials("mailer", "smtp-secret"));
    assert!(!format!("{sender:?}").contains("smtp-secret"));
    let otp = support::builder()
        .app_name("Shop")
        .email_sender(sender)
        .build()
        .unwrap();

    let (status, body) =
        support::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");

    let (raw, envelope) = server.message(1);
    assert_eq!(envelope["mail_from"], "no-reply@shop.example");
    assert_eq!(envelope["rcpt_tos"], json!(["ada@example.com"]));
    let mail = read(&raw);
    assert_eq!(mail.from, "no-reply@shop.example");
    assert_eq!(mail.to, ["ada@example.com"]);
    assert_eq!(mail.subject, "Your Shop verification code");
    assert_eq!(mail.root_type, "multipart/alternative");
    assert_eq!((mail.plain.len(), mail.html.len()), (1, 1), "{mail:?}");
    let code = support::code_in(&mail.plain[0]).expect("the code in the text part");
    assert!(mail.html[0].contains(&code), "the code in the HTML part");
    assert!(mail.html[0].contains("<!DOCTYPE html>"));

    let (status, body) = support::post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn implicit_tls_delivers_cc_bcc_and_attachments() {
    let Some(server) = SmtpServer::start(Mode::Implicit, &[]) else {
        return;
    };
    let otp = support::builder()
        .app_name("Shop")
        .email_sender(server.trusting(SmtpSender::implicit_tls("127.0.0.1")))
        .build()
        .unwrap();
    otp.notifier()
        .email("welcome")
        .context(json!({"name": "Ada"}))
        .to("ada@example.com")
        .cc("Boss <boss@example.com>")
        .bcc("audit@example.com")
        .attach("terms.pdf", "application/pdf", b"%PDF-1.4 terms".to_vec())
        .send()
        .await
        .unwrap();

    let (raw, envelope) = server.message(1);
    let mut rcpt: Vec<String> = serde_json::from_value(envelope["rcpt_tos"].clone()).unwrap();
    rcpt.sort();
    assert_eq!(
        rcpt,
        ["ada@example.com", "audit@example.com", "boss@example.com"]
    );
    let mail = read(&raw);
    assert_eq!(mail.to, ["ada@example.com"]);
    assert_eq!(mail.cc, ["boss@example.com"]);
    assert!(!mail.has_bcc_header, "Bcc must not be visible");
    assert_eq!(mail.subject, "Welcome to Shop");
    assert_eq!(mail.root_type, "multipart/mixed");
    assert!(mail.alternative, "{mail:?}");
    assert!(mail.plain[0].contains("Hi Ada") && mail.html[0].contains("Hi Ada"));
    assert_eq!(
        mail.attachments,
        [(
            "terms.pdf".to_owned(),
            "application/pdf".to_owned(),
            b"%PDF-1.4 terms".to_vec()
        )]
    );
}

#[tokio::test]
async fn plain_smtp_to_localhost_delivers() {
    let Some(server) = SmtpServer::start(Mode::Plain, &[]) else {
        return;
    };
    let sender = SmtpSender::unencrypted_localhost(server.port)
        .build()
        .unwrap();
    let message = EmailMessage {
        to: vec!["ada@example.com".into()],
        subject: "Plain".into(),
        html: "<p>Hello 123456</p>".into(),
        text: "Hello 123456".into(),
        ..EmailMessage::default()
    };
    sender.send_email(&message).await.unwrap();
    let mail = read(&server.message(1).0);
    assert_eq!(mail.from, "webmaster@localhost", "the default From");
    assert_eq!(mail.subject, "Plain");
    assert_eq!(mail.plain[0].trim(), "Hello 123456");
    assert_eq!(mail.html[0].trim(), "<p>Hello 123456</p>");
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_wrong_password_fails_permanently() {
    let Some(server) = SmtpServer::start(
        Mode::StartTls,
        &["--user", "mailer", "--password", "smtp-secret"],
    ) else {
        return;
    };
    let message = EmailMessage {
        to: vec!["ada@example.com".into()],
        subject: "x".into(),
        text: "x".into(),
        html: "x".into(),
        ..EmailMessage::default()
    };
    // The self-signed certificate is not trusted without the extra root.
    let untrusting = SmtpSender::starttls("127.0.0.1")
        .port(server.port)
        .tls_server_name("localhost")
        .credentials("mailer", "smtp-secret")
        .build()
        .unwrap();
    let err = untrusting.send_email(&message).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");

    let wrong = server.trusting(SmtpSender::starttls("127.0.0.1").credentials("mailer", "wrong"));
    let err = wrong.send_email(&message).await.unwrap_err();
    assert!(!err.is_transient(), "535 is permanent: {err}");
    assert_eq!(server.received(), 0);

    // An address lettre cannot parse is the recipient's fault.
    let bad = EmailMessage {
        to: vec!["not an address".into()],
        ..message
    };
    let sender =
        server.trusting(SmtpSender::starttls("127.0.0.1").credentials("mailer", "smtp-secret"));
    assert!(
        sender
            .send_email(&bad)
            .await
            .unwrap_err()
            .is_invalid_recipient()
    );
}

/// A refusing server: `reply` to every DATA. Through the layer: 502, the
/// expected number of tries, and an immediate retry is not rate limited.
async fn refused(reply: &str, expected_tries: usize) {
    let Some(server) = SmtpServer::start(Mode::Plain, &["--reply", reply]) else {
        return;
    };
    let sender = SmtpSender::unencrypted_localhost(server.port)
        .build()
        .unwrap();
    let otp = support::builder().email_sender(sender).build().unwrap();
    for _ in 0..2 {
        let (status, body) =
            support::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (502, Some("delivery_failed")),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().contains(reply));
    }
    assert_eq!(server.refused_attempts(), 2 * expected_tries);

    // The reply goes to the log, with the recipient it quotes masked.
    let sender = SmtpSender::unencrypted_localhost(server.port)
        .build()
        .unwrap();
    let message = EmailMessage {
        to: vec!["ada@example.com".into()],
        subject: "x".into(),
        ..EmailMessage::default()
    };
    let err = sender.send_email(&message).await.unwrap_err();
    let logged = err.to_string();
    assert!(logged.contains(&reply[..3]), "{logged}");
    assert!(!logged.contains("ada@example.com"), "{logged}");
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_is_not() {
    refused("451 4.3.0 <ada@example.com> try again later", 3).await;
    refused("554 5.7.1 <ada@example.com> message rejected", 1).await;
}
