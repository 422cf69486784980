//! `SmtpSender` against a real SMTP server process (Python's aiosmtpd, run
//! by `tests/support/smtp_server.py`) that saves what it receives as .eml
//! files; the tests read the mailbox and check what arrived.
//!
//! Needs `python3` with `aiosmtpd` (`pip install -r tests/support/requirements.txt`).
//! Without it each test prints a visible `SKIPPED` line (tests/common/skip.rs),
//! and under CI (`CI=true` or `1`) fails.
#![cfg(feature = "smtp")]

mod common;

use common::smtp_server::{Mode, SmtpServer};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::json;
use tower_otp::delivery::{EmailMessage, EmailSender, SmtpSender};

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
    let otp = common::builder()
        .app_name("Shop")
        .email_sender(sender)
        .build()
        .unwrap();

    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
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
    let code = common::code_in(&mail.plain[0]).expect("the code in the text part");
    assert!(mail.html[0].contains(&code), "the code in the HTML part");
    assert!(mail.html[0].contains("<!DOCTYPE html>"));

    let (status, body) = common::post(
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
    let otp = common::builder()
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
    let message = EmailMessage::new(
        "ada@example.com",
        "Plain",
        "<p>Hello 123456</p>",
        "Hello 123456",
    );
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
    let message = EmailMessage::new("ada@example.com", "x", "x", "x");
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
    let mut bad = message.clone();
    bad.to = vec!["not an address".into()];
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
    let otp = common::builder().email_sender(sender).build().unwrap();
    for _ in 0..2 {
        let (status, body) =
            common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
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
    let message = EmailMessage::new("ada@example.com", "x", "", "");
    let err = sender.send_email(&message).await.unwrap_err();
    let logged = err.to_string();
    assert!(logged.contains(&reply[..3]), "{logged}");
    assert!(!logged.contains("ada@example.com"), "{logged}");
    // So does everything a host could print of the error: its `Debug`
    // and each cause of its chain (lettre keeps the reply as a source).
    let debug = format!("{err:?}");
    assert!(debug.contains(&reply[..3]), "{debug}");
    assert!(!debug.contains("ada@example.com"), "{debug}");
    let mut chain = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&err);
    while let Some(error) = cause {
        chain.push(error.to_string());
        cause = error.source();
    }
    assert!(chain.len() >= 2, "{chain:?}");
    assert!(chain.iter().any(|text| text.contains("***")), "{chain:?}");
    assert!(
        chain.iter().all(|text| !text.contains("ada@example.com")),
        "{chain:?}"
    );
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_is_not() {
    refused("451 4.3.0 <ada@example.com> try again later", 3).await;
    refused("554 5.7.1 <ada@example.com> message rejected", 1).await;
}

/// An `Otp` configured only from these environment variables (plus a
/// secret and fast hashing).
fn from_env(vars: &[(&str, String)]) -> tower_otp::Otp {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .chain([("OTP_SECRET".to_owned(), common::SECRET.to_owned())])
        .collect();
    tower_otp::OtpBuilder::from_env_with(move |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
    .hash_params(tower_otp::hash::HashParams::insecure_fast())
    .build()
    .unwrap()
}

#[tokio::test]
async fn email_use_tls_from_the_environment_decides_plain_or_starttls_on_the_wire() {
    let Some(server) = SmtpServer::start(Mode::Plain, &[]) else {
        return;
    };
    let base = [
        ("EMAIL_SERVER", "SMTP".to_owned()),
        ("EMAIL_HOST", "127.0.0.1".to_owned()),
        ("EMAIL_PORT", server.port.to_string()),
    ];

    // EMAIL_USE_TLS=false: plain SMTP to this port; the code arrives.
    let mut plain = base.to_vec();
    plain.push(("EMAIL_USE_TLS", "false".to_owned()));
    let otp = from_env(&plain);
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    let (raw, _) = server.message(1);
    let mail = read(&raw);
    let code = common::code_in(&mail.plain[0]).expect("the code");
    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Without EMAIL_USE_TLS (STARTTLS by default) the same server, which
    // offers no STARTTLS, gets nothing: the code is never sent in the clear.
    let otp = from_env(&base);
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "bob@example.com"})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    assert_eq!(server.received(), 1, "nothing more reached the server");
}
