//! Log discipline over a real SMTP send with a login: under a capturing
//! subscriber at TRACE (every target, lettre's included, and the `log`
//! records of dependencies such as rustls bridged in), a code sent by
//! STARTTLS with AUTH to the aiosmtpd server leaves no trace in any event
//! of the code, the SMTP password, the base64 AUTH strings or the unmasked
//! address. (lettre built with its `tracing` feature logs every SMTP line
//! at DEBUG: this test fails then.)
#![cfg(feature = "smtp")]

mod common;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::smtp_server::{Mode, SmtpServer};
use serde_json::json;
use tower_otp::delivery::SmtpSender;

const USER: &str = "mailer-login";
const PASSWORD: &str = "smtp-Pa55word-never-logged";
const RECIPIENT: &str = "hidden.recipient@example.com";

/// The capture below sees `log` records too, from any thread: without that
/// the check of dependencies' logs could pass by seeing nothing.
#[test]
fn log_records_of_dependencies_reach_the_capture() {
    let captured = common::logs::global_with_log_records(tracing::Level::TRACE);
    common::logs::assert_log_records_are_captured(captured);
}

#[tokio::test]
async fn an_smtp_send_with_login_logs_no_code_password_auth_string_or_address() {
    // Global, in a binary of its own (every callsite, every thread), with
    // the `log` records of dependencies bridged in at TRACE.
    let captured = common::logs::global_with_log_records(tracing::Level::TRACE);

    let Some(server) = SmtpServer::start(Mode::StartTls, &["--user", USER, "--password", PASSWORD])
    else {
        return;
    };
    let sender = server.trusting(SmtpSender::starttls("127.0.0.1").credentials(USER, PASSWORD));
    let otp = common::builder().email_sender(sender).build().unwrap();
    let (status, body) = common::post(&otp, "/send-otp/", json!({ "email": RECIPIENT })).await;
    assert_eq!(status, 200, "{body}");

    // The code as it arrived in the mailbox.
    let (raw, envelope) = server.message(1);
    assert_eq!(envelope["rcpt_tos"], json!([RECIPIENT]));
    let raw = String::from_utf8_lossy(&raw);
    let code = raw
        .lines()
        .find_map(|line| line.strip_prefix("Your Shop verification code is: "))
        .or_else(|| raw.lines().find_map(|l| l.split("code is: ").nth(1)))
        .map(|c| {
            c.trim()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|c| c.len() == 6)
        .unwrap_or_else(|| panic!("no code in the message:\n{raw}"));

    let logs = captured.text();
    assert!(
        logs.contains("h***@example.com"),
        "the send was logged (masked):\n{logs}"
    );
    assert!(
        logs.contains("rustls::"),
        "rustls's `log` records (the STARTTLS handshake) reach the capture:\n{logs}"
    );
    // Those records hold hex dumps (randoms, session ids, the certificate)
    // where any six digits may turn up by chance: the code counts outside
    // them; inside, a leak of it would be hex-encoded, and that is checked.
    assert!(
        !in_logs_outside_hex_dumps(&logs, &code),
        "the code {code:?} leaked into the logs:\n{logs}"
    );
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let plain = STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let login_user = STANDARD.encode(USER);
    let login_password = STANDARD.encode(PASSWORD);
    for secret in [
        PASSWORD,
        plain.as_str(),
        login_user.as_str(),
        login_password.as_str(),
        &hex(&code),
        &hex(PASSWORD),
        RECIPIENT,
        "hidden.recipient",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}

/// Whether `needle` is in `logs` other than inside a run of 32 or more hex
/// digits (a dump of random bytes, which may hold any six digits by chance).
fn in_logs_outside_hex_dumps(logs: &str, needle: &str) -> bool {
    let bytes = logs.as_bytes();
    logs.match_indices(needle).any(|(at, _)| {
        let before = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let after = bytes[at + needle.len()..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        before + needle.len() + after < 32
    })
}
