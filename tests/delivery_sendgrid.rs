//! `SendGridSender` against a wiremock server that checks the exact request
//! SendGrid's v3 Mail Send API expects and answers as SendGrid does.
#![cfg(feature = "sendgrid")]

mod common;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tower_otp::delivery::{Attachment, EmailMessage, EmailSender, SendGridSender};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

const KEY: &str = "SG.test-key-do-not-print";

fn sender(server: &MockServer) -> SendGridSender {
    SendGridSender::new(KEY, "Shop <no-reply@shop.example>")
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

/// The mock for the one SendGrid endpoint, checking method, path and auth.
fn mail_send() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
}

/// SendGrid's answer to a malformed request (HTTP 400).
fn sendgrid_400() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "errors": [{
            "message": "The from email does not contain a valid address.",
            "field": "from.email",
            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.from"
        }]
    }))
}

fn message() -> EmailMessage {
    EmailMessage::new(
        "ada@example.com",
        "Your invoice",
        "<p>Total: 42</p>",
        "Total: 42",
    )
    .with_cc("Boss <boss@example.com>")
    .with_bcc("audit@example.com")
    .with_attachment(Attachment::new(
        "invoice.pdf",
        "application/pdf",
        b"%PDF-1.4 fake".to_vec(),
    ))
}

#[tokio::test]
async fn sends_the_exact_request_sendgrid_expects() {
    let server = MockServer::start().await;
    let expected = json!({
        "personalizations": [{
            "to": [{"email": "ada@example.com"}],
            "cc": [{"email": "boss@example.com", "name": "Boss"}],
            "bcc": [{"email": "audit@example.com"}],
        }],
        "from": {"email": "no-reply@shop.example", "name": "Shop"},
        "subject": "Your invoice",
        "content": [
            {"type": "text/plain", "value": "Total: 42"},
            {"type": "text/html", "value": "<p>Total: 42</p>"},
        ],
        "attachments": [{
            "content": STANDARD.encode(b"%PDF-1.4 fake"),
            "filename": "invoice.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
        }],
    });
    mail_send()
        .and(body_json(&expected))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    sender(&server).send_email(&message()).await.unwrap();
}

#[tokio::test]
async fn empty_cc_bcc_and_attachments_are_left_out_and_a_message_from_wins() {
    let server = MockServer::start().await;
    mail_send()
        .and(body_json(json!({
            "personalizations": [{"to": [{"email": "ada@example.com"}]}],
            "from": {"email": "other@shop.example"},
            "subject": "Hi",
            "content": [
                {"type": "text/plain", "value": "t"},
                {"type": "text/html", "value": "<p>h</p>"},
            ],
        })))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let message =
        EmailMessage::new("ada@example.com", "Hi", "<p>h</p>", "t").with_from("other@shop.example");
    sender(&server).send_email(&message).await.unwrap();
}

#[tokio::test]
async fn a_4xx_is_permanent_and_5xx_429_timeouts_and_refused_connections_are_transient() {
    let server = MockServer::start().await;
    mail_send()
        .respond_with(sendgrid_400())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let err = sender(&server).send_email(&message()).await.unwrap_err();
    assert!(!err.is_transient() && !err.is_invalid_recipient(), "{err}");
    assert!(
        err.to_string().contains("400"),
        "the log keeps the status: {err}"
    );

    for (status, body) in [
        (
            500,
            json!({"errors": [{"message": "Internal server error", "field": null, "help": null}]}),
        ),
        (503, json!({"errors": []})),
        (
            429,
            json!({"errors": [{"field": null, "message": "too many requests"}]}),
        ),
    ] {
        server.reset().await;
        mail_send()
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let err = sender(&server).send_email(&message()).await.unwrap_err();
        assert!(err.is_transient(), "{status}: {err}");
    }

    server.reset().await;
    mail_send()
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let err = sender(&server).send_email(&message()).await.unwrap_err();
    assert!(err.is_transient(), "timeout: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 500 ms timeout applied"
    );

    // Nothing listens on a port we just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = SendGridSender::new(KEY, "a@b.co")
        .base_url(format!("http://127.0.0.1:{port}"))
        .send_email(&message())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "refused: {err}");
}

async fn received_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_code_sent_through_sendgrid_verifies() {
    let server = MockServer::start().await;
    mail_send()
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let otp = common::builder()
        .email_sender(sender(&server))
        .build()
        .unwrap();
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");

    let sent = received_bodies(&server).await.remove(0);
    assert_eq!(
        sent["personalizations"][0]["to"][0]["email"],
        "ada@example.com"
    );
    let text = sent["content"][0]["value"].as_str().unwrap();
    let html = sent["content"][1]["value"].as_str().unwrap();
    let code = common::code_in(text).expect("code in the text part");
    assert!(html.contains(&code), "code in the HTML part");

    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["email"], "ada@example.com");
}

/// A failing provider: 502 `delivery_failed` with a plain message, the
/// expected number of tries, no code left behind, and the cooldown released
/// so the user may retry at once.
async fn failed_send_releases_the_cooldown(failure: ResponseTemplate, expected_tries: usize) {
    let server = MockServer::start().await;
    mail_send().respond_with(failure).mount(&server).await;
    let otp = common::builder()
        .email_sender(sender(&server))
        .build()
        .unwrap();

    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "delivery_failed");
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.contains("SendGrid") && !message.contains("errors") && !message.contains("HTTP"),
        "no provider text for the client: {message}"
    );
    let tried = received_bodies(&server).await;
    assert_eq!(tried.len(), expected_tries);

    // The undelivered code was deleted: its value is refused as expired.
    let code = common::code_in(tried[0]["content"][0]["value"].as_str().unwrap()).unwrap();
    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("otp_expired")),
        "{body}"
    );

    // The provider is back: an immediate retry is not rate limited.
    server.reset().await;
    mail_send()
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(
        status, 200,
        "retry at once must not be rate limited: {body}"
    );
}

#[tokio::test]
async fn a_5xx_is_tried_three_times_then_502_and_the_user_may_retry_at_once() {
    failed_send_releases_the_cooldown(
        ResponseTemplate::new(503)
            .set_body_json(json!({"errors": [{"message": "Service Unavailable"}]})),
        3,
    )
    .await;
}

#[tokio::test]
async fn a_400_is_tried_once_then_502_and_the_user_may_retry_at_once() {
    failed_send_releases_the_cooldown(sendgrid_400(), 1).await;
}

/// Collects everything logged while it is the default subscriber.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn provider_error_text_goes_to_the_log_masked_and_never_to_the_client() {
    let server = MockServer::start().await;
    mail_send()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errors": [{"message": "The from address does not match a verified Sender Identity (asked for ada@example.com)", "field": "from.email"}]
        })))
        .mount(&server)
        .await;
    let otp = common::builder()
        .email_sender(sender(&server))
        .build()
        .unwrap();
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let (status, body) = {
        let _guard = tracing::subscriber::set_default(subscriber);
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await
    };
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains("Sender Identity"), "{body}");

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("SendGrid answered HTTP 400"), "{logged}");
    assert!(logged.contains("from.email"), "{logged}");
    assert!(
        !logged.contains("ada@example.com"),
        "contact unmasked in the log: {logged}"
    );
    let sent = received_bodies(&server).await;
    let code = common::code_in(sent[0]["content"][0]["value"].as_str().unwrap()).unwrap();
    assert!(!logged.contains(&code), "the code was logged: {logged}");
}

#[tokio::test]
async fn a_recipient_sendgrid_refuses_is_invalid_email_not_a_5xx() {
    let server = MockServer::start().await;
    mail_send()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errors": [{
                "message": "Does not contain a valid address.",
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"
            }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let otp = common::builder()
        .email_sender(sender(&server))
        .build()
        .unwrap();
    let (status, body) =
        common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_email")),
        "{body}"
    );
}
