//! An SMTP send cut short (its timeout, the delivery deadline, or its future
//! dropped) while the server still owes the reply to the end of DATA must
//! not leave that connection in the pool: the next message would read the
//! late replies as its own. Against a real SMTP server (aiosmtpd) that
//! answers one recipient's messages late.
#![cfg(feature = "smtp")]

mod common;

use std::time::{Duration, Instant};

use common::smtp_server::{FROM, Mode, SmtpServer};
use serde_json::json;
use tower_otp::delivery::{EmailMessage, EmailSender, RetryPolicy, SmtpSender};

const SLOW: &str = "slow@example.com";
/// How late the server answers (and saves) a message for [`SLOW`].
const SLOW_SECONDS: u64 = 4;

fn slow_server() -> Option<SmtpServer> {
    SmtpServer::start(
        Mode::Plain,
        &[
            "--slow-rcpt",
            SLOW,
            "--slow-seconds",
            &SLOW_SECONDS.to_string(),
        ],
    )
}

/// One pooled connection, so reuse is certain when it is allowed.
fn sender(server: &SmtpServer, timeout: Duration) -> SmtpSender {
    SmtpSender::unencrypted_localhost(server.port)
        .from(FROM)
        .timeout(timeout)
        .max_connections(1)
        .build()
        .unwrap()
}

fn message(to: &str, subject: &str) -> EmailMessage {
    EmailMessage::new(
        to,
        subject,
        format!("<p>{subject} body</p>"),
        format!("{subject} body"),
    )
}

/// Waits until the slow message would have been saved had its connection
/// stayed open, then checks the mailbox holds exactly `expected` (recipient,
/// subject), in order, each message whole.
fn assert_mailbox(server: &SmtpServer, started: Instant, expected: &[(&str, &str)]) {
    let settle = Duration::from_secs(SLOW_SECONDS) + Duration::from_millis(700);
    if let Some(rest) = settle.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    assert_eq!(
        server.received(),
        expected.len(),
        "the mailbox holds exactly what was sent"
    );
    for (n, (to, subject)) in expected.iter().enumerate() {
        let (raw, envelope) = server.message(n + 1);
        assert_eq!(envelope["rcpt_tos"], json!([to]), "message {}", n + 1);
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("a parsable message");
        assert_eq!(parsed.subject(), Some(*subject), "message {}", n + 1);
        assert_eq!(
            parsed.body_text(0).as_deref().map(str::trim),
            Some(format!("{subject} body").as_str()),
            "message {} is whole and its own",
            n + 1
        );
        let raw = String::from_utf8_lossy(&raw);
        assert_eq!(raw.matches("Subject:").count(), 1, "one message: {raw}");
    }
}

#[tokio::test]
async fn a_send_that_times_out_does_not_leave_its_connection_to_the_next_message() {
    let Some(server) = slow_server() else {
        return;
    };
    let sender = sender(&server, Duration::from_secs(1));
    let started = Instant::now();
    let err = sender.send_email(&message(SLOW, "slow")).await.unwrap_err();
    assert!(
        err.is_transient() && err.may_have_been_sent(),
        "a timeout while the server owes its reply: {err}"
    );
    // The server is still busy with the first message on that connection.
    sender
        .send_email(&message("one@example.com", "one"))
        .await
        .expect("the next send is not confused by the late reply");
    sender
        .send_email(&message("two@example.com", "two"))
        .await
        .expect("and neither is the one after");
    // The first connection was closed mid-message: the server dropped it.
    assert_mailbox(
        &server,
        started,
        &[("one@example.com", "one"), ("two@example.com", "two")],
    );
}

#[tokio::test]
async fn a_send_whose_future_is_dropped_does_not_leave_its_connection_to_the_next_message() {
    let Some(server) = slow_server() else {
        return;
    };
    // The sender's own timeout is long: the caller gives up first (as when a
    // request is cancelled).
    let sender = sender(&server, Duration::from_secs(10));
    let started = Instant::now();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(500),
        sender.send_email(&message(SLOW, "slow")),
    )
    .await;
    assert!(cancelled.is_err(), "the caller gave up");
    let next = tokio::time::timeout(
        Duration::from_secs(3),
        sender.send_email(&message("one@example.com", "one")),
    )
    .await
    .expect("the next send does not wait for the previous message's reply");
    next.unwrap();
    sender
        .send_email(&message("two@example.com", "two"))
        .await
        .unwrap();
    assert_mailbox(
        &server,
        started,
        &[("one@example.com", "one"), ("two@example.com", "two")],
    );
}

#[tokio::test]
async fn a_code_cut_off_by_the_delivery_deadline_leaves_the_next_code_intact() {
    let Some(server) = slow_server() else {
        return;
    };
    let otp = common::builder()
        .email_sender(sender(&server, Duration::from_secs(10)))
        .retry_policy(
            RetryPolicy::new(3, Duration::from_millis(10)).with_deadline(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let started = Instant::now();
    let (status, body) = common::post(&otp, "/send-otp/", json!({"email": SLOW})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered by the deadline: {:?}",
        started.elapsed()
    );

    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(SLOW_SECONDS),
        "the second code did not wait for the first one's reply: {:?}",
        started.elapsed()
    );
    let (raw, envelope) = server.message(1);
    assert_eq!(envelope["rcpt_tos"], json!(["ada@example.com"]));
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a parsable message");
    let text = parsed.body_text(0).expect("a plain-text part");
    let code = common::code_in(&text).expect("a code in the email");
    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(SLOW_SECONDS));
    assert_eq!(server.received(), 1, "only Ada's code was delivered");
}
