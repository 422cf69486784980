//! Log discipline over the HTTP providers (reqwest, hyper-util, and rustls
//! where TLS is used): under a global capturing subscriber at TRACE, with
//! the `log` records of dependencies bridged in, a SendGrid send, a Twilio
//! Messaging send and a Twilio Verify start and check (against wiremock
//! servers) leave no trace of the code, the API key or auth token (nor their
//! `Authorization` header values) or the unmasked address or number.
#![cfg(all(feature = "sendgrid", feature = "twilio"))]

mod common;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::json;
use tower_otp::delivery::{SendGridSender, TwilioMessaging, TwilioVerify};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

const KEY: &str = "SG.sendgrid-key-never-logged";
const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "twilio-token-never-logged";
const SERVICE: &str = "VAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const RECIPIENT: &str = "hidden.recipient@example.com";

fn logs() -> &'static common::logs::Captured {
    common::logs::global_with_log_records(tracing::Level::TRACE)
}

/// Fails if any of `secrets` (with the credentials, always) is in the logs.
fn assert_none_logged(secrets: &[&str]) {
    let logs = logs().text();
    let basic = STANDARD.encode(format!("{SID}:{TOKEN}"));
    for secret in secrets.iter().copied().chain([KEY, TOKEN, basic.as_str()]) {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}

/// The capture sees `log` records too, from any thread: without that the
/// check of dependencies' logs could pass by seeing nothing.
#[test]
fn log_records_of_dependencies_reach_the_capture() {
    common::logs::assert_log_records_are_captured(logs());
}

#[tokio::test]
async fn a_sendgrid_send_logs_no_code_key_or_address() {
    let logs = logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let sender = SendGridSender::new(KEY, "Shop <no-reply@shop.example>")
        .base_url(server.uri())
        .timeout(Duration::from_secs(5));
    let otp = common::builder().email_sender(sender).build().unwrap();
    let (status, body) = common::post(&otp, "/send-otp/", json!({ "email": RECIPIENT })).await;
    assert_eq!(status, 200, "{body}");
    let request = server.received_requests().await.unwrap().remove(0);
    let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let code = common::code_in(sent["content"][0]["value"].as_str().unwrap()).unwrap();
    let (status, body) = common::post(
        &otp,
        "/verify-otp/",
        json!({ "email": RECIPIENT, "otp": code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let text = logs.text();
    assert!(
        text.contains("h***@example.com"),
        "the send was logged:\n{text}"
    );
    assert!(
        text.contains("reqwest::connect"),
        "reqwest's `log` records reach the capture:\n{text}"
    );
    assert_none_logged(&[&code, RECIPIENT, "hidden.recipient"]);
}

#[tokio::test]
async fn a_twilio_messaging_send_logs_no_code_token_or_number() {
    let logs = logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .expect(1)
        .mount(&server)
        .await;
    let sender = TwilioMessaging::new(SID, TOKEN, "+14155550100")
        .base_url(server.uri())
        .timeout(Duration::from_secs(5));
    let otp = common::builder().sms_sender(sender).build().unwrap();
    let (status, body) = common::post(
        &otp,
        "/send-mobile-otp/",
        json!({ "mobile": common::MOBILE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let request = server.received_requests().await.unwrap().remove(0);
    let fields: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
    let code = common::code_in(&fields["Body"]).unwrap();
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({ "mobile": common::MOBILE, "otp": code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let text = logs.text();
    assert!(
        text.contains("+1******0123"),
        "the send was logged:\n{text}"
    );
    assert_none_logged(&[&code, "4155550123"]);
}

#[tokio::test]
async fn a_twilio_verify_start_and_check_log_no_code_token_or_number() {
    // Twilio makes this code; the user's entry goes to Twilio in a form field.
    const CODE: &str = "864213";
    let logs = logs();
    let server = MockServer::start().await;
    let verification = |status: &str| {
        json!({
            "sid": "VEcccccccccccccccccccccccccccccccc",
            "service_sid": SERVICE,
            "account_sid": SID,
            "to": common::MOBILE,
            "channel": "sms",
            "status": status,
            "valid": status == "approved",
        })
    };
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{SERVICE}/Verifications")))
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{SERVICE}/VerificationCheck")))
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("approved")))
        .expect(1)
        .mount(&server)
        .await;
    let verifier = TwilioVerify::new(SID, TOKEN, SERVICE)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5));
    let otp = common::builder().sms_verifier(verifier).build().unwrap();
    let (status, body) = common::post(
        &otp,
        "/send-mobile-otp/",
        json!({ "mobile": common::MOBILE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({ "mobile": common::MOBILE, "otp": CODE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let request = server.received_requests().await.unwrap().remove(1);
    assert!(String::from_utf8_lossy(&request.body).contains(CODE));

    let text = logs.text();
    assert!(
        text.contains("+1******0123"),
        "the send was logged:\n{text}"
    );
    assert_none_logged(&[CODE, "4155550123"]);
}
