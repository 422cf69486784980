//! `TwilioVerify` and `TwilioMessaging` against wiremock servers that check
//! the exact requests Twilio's APIs expect (path, Basic auth, form fields)
//! and answer with Twilio's bodies.
#![cfg(feature = "twilio")]

mod common;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::json;
use tower_otp::{
    Mobile,
    delivery::{ProviderCheck, SmsMessage, SmsSender, SmsVerifier, TwilioMessaging, TwilioVerify},
};
use wiremock::{
    Match, Mock, MockServer, Request, ResponseTemplate,
    matchers::{header, method, path},
};

const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "twilio-auth-token-do-not-print";
const SERVICE: &str = "VAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const FROM: &str = "+14155550100";

/// Matches a form body with exactly these fields (any order).
struct FormIs(Vec<(&'static str, String)>);

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let mut got: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let mut want: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        got.sort();
        want.sort();
        got == want
    }
}

fn form(fields: &[(&'static str, &str)]) -> FormIs {
    FormIs(fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

fn twilio_post(url_path: String) -> wiremock::MockBuilder {
    let basic = format!("Basic {}", STANDARD.encode(format!("{SID}:{TOKEN}")));
    Mock::given(method("POST"))
        .and(path(url_path))
        .and(header("authorization", basic.as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
}

fn verifications() -> wiremock::MockBuilder {
    twilio_post(format!("/v2/Services/{SERVICE}/Verifications"))
}

fn verification_check() -> wiremock::MockBuilder {
    twilio_post(format!("/v2/Services/{SERVICE}/VerificationCheck"))
}

fn messages() -> wiremock::MockBuilder {
    twilio_post(format!("/2010-04-01/Accounts/{SID}/Messages.json"))
}

/// A Twilio error body, as the REST API sends it.
fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn verification(status: &str) -> serde_json::Value {
    json!({
        "sid": "VEcccccccccccccccccccccccccccccccc",
        "service_sid": SERVICE,
        "account_sid": SID,
        "to": common::MOBILE,
        "channel": "sms",
        "status": status,
        "valid": status == "approved",
        "date_created": "2026-11-24T15:00:00Z",
        "date_updated": "2026-11-24T15:00:00Z",
    })
}

fn verify(server: &MockServer) -> TwilioVerify {
    TwilioVerify::new(SID, TOKEN, SERVICE)
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

fn messaging(server: &MockServer) -> TwilioMessaging {
    TwilioMessaging::new(SID, TOKEN, FROM)
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

fn mobile() -> Mobile {
    Mobile::parse(common::MOBILE, None).unwrap()
}

#[tokio::test]
async fn verify_start_and_check_send_the_exact_requests() {
    let server = MockServer::start().await;
    verifications()
        .and(form(&[("To", common::MOBILE), ("Channel", "sms")]))
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending")))
        .expect(1)
        .mount(&server)
        .await;
    verification_check()
        .and(form(&[("To", common::MOBILE), ("Code", "123456")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("approved")))
        .expect(1)
        .mount(&server)
        .await;
    verification_check()
        .and(form(&[("To", common::MOBILE), ("Code", "000000")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("pending")))
        .expect(1)
        .mount(&server)
        .await;
    let v = verify(&server);
    v.start(&mobile()).await.unwrap();
    assert_eq!(
        v.check(&mobile(), "123456").await.unwrap(),
        ProviderCheck::Approved
    );
    assert_eq!(
        v.check(&mobile(), "000000").await.unwrap(),
        ProviderCheck::Rejected
    );
}

#[tokio::test]
async fn verify_errors_are_read_as_twilio_means_them() {
    let server = MockServer::start().await;
    let v = verify(&server);

    let cases: Vec<(ResponseTemplate, ProviderCheck)> = vec![
        (
            twilio_error(
                404,
                20404,
                "The requested resource /Services/VA.../VerificationCheck was not found",
            ),
            ProviderCheck::Expired,
        ),
        (
            twilio_error(429, 60202, "Max check attempts reached"),
            ProviderCheck::TooManyAttempts,
        ),
        (
            ResponseTemplate::new(200).set_body_json(verification("max_attempts_reached")),
            ProviderCheck::TooManyAttempts,
        ),
        (
            ResponseTemplate::new(200).set_body_json(verification("expired")),
            ProviderCheck::Expired,
        ),
    ];
    for (answer, expected) in cases {
        server.reset().await;
        verification_check()
            .respond_with(answer)
            .mount(&server)
            .await;
        assert_eq!(v.check(&mobile(), "123456").await.unwrap(), expected);
    }
    // Twilio's own rate limit (429 with 20429, or with no code) says
    // nothing about this code's attempts: a failure, not `TooManyAttempts`
    // (which destroys the user's code).
    for (answer, transient) in [
        (twilio_error(429, 20429, "Too Many Requests"), true),
        (ResponseTemplate::new(429), true),
        // A 404 without Twilio's 20404 (a proxy, a wrong base URL) is not
        // "expired" either.
        (
            ResponseTemplate::new(404).set_body_string("Not Found"),
            false,
        ),
    ] {
        server.reset().await;
        verification_check()
            .respond_with(answer)
            .mount(&server)
            .await;
        let err = v.check(&mobile(), "123456").await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err}");
    }

    server.reset().await;
    verifications()
        .respond_with(twilio_error(
            400,
            21211,
            "Invalid parameter `To`: +14155550123",
        ))
        .mount(&server)
        .await;
    let err = v.start(&mobile()).await.unwrap_err();
    assert!(err.is_invalid_recipient(), "{err}");
    assert!(
        !err.to_string().contains("4155550123"),
        "the number is masked in the log: {err}"
    );

    for (answer, transient) in [
        (twilio_error(500, 20500, "Internal Server Error"), true),
        (twilio_error(503, 20503, "Service Unavailable"), true),
        (twilio_error(429, 20429, "Too Many Requests"), true),
        (twilio_error(401, 20003, "Authenticate"), false),
        (twilio_error(400, 60200, "Invalid parameter"), false),
        (
            ResponseTemplate::new(201).set_delay(Duration::from_secs(3)),
            true,
        ),
    ] {
        server.reset().await;
        verifications().respond_with(answer).mount(&server).await;
        let err = v.start(&mobile()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err}");
        assert!(!err.is_invalid_recipient());
    }
}

#[tokio::test]
async fn messaging_sends_the_exact_request() {
    let server = MockServer::start().await;
    messages()
        .and(form(&[
            ("To", common::MOBILE),
            ("From", FROM),
            ("Body", "Hello & bye"),
        ]))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SMdddddddddddddddddddddddddddddddd",
            "account_sid": SID,
            "to": common::MOBILE,
            "from": FROM,
            "body": "Hello & bye",
            "status": "queued",
            "num_segments": "1",
            "error_code": null,
            "error_message": null,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let message = SmsMessage::new(common::MOBILE, "Hello & bye");
    messaging(&server).send_sms(&message).await.unwrap();

    server.reset().await;
    messages()
        .and(form(&[
            ("To", common::MOBILE),
            ("MessagingServiceSid", "MGeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
            ("Body", "Hello & bye"),
        ]))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "accepted"})))
        .expect(1)
        .mount(&server)
        .await;
    TwilioMessaging::with_messaging_service(SID, TOKEN, "MGeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")
        .base_url(server.uri())
        .send_sms(&message)
        .await
        .unwrap();
}

#[tokio::test]
async fn messaging_errors_are_classified() {
    let server = MockServer::start().await;
    let message = SmsMessage::new(common::MOBILE, "x");
    for (answer, transient, invalid) in [
        (
            twilio_error(
                400,
                21211,
                "The 'To' number +14155550123 is not a valid phone number.",
            ),
            false,
            true,
        ),
        (
            twilio_error(400, 21614, "'To' number is not a valid mobile number"),
            false,
            true,
        ),
        (
            twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
            false,
            false,
        ),
        (
            twilio_error(500, 20500, "Internal Server Error"),
            true,
            false,
        ),
        (twilio_error(429, 20429, "Too Many Requests"), true, false),
        (
            ResponseTemplate::new(201).set_delay(Duration::from_secs(3)),
            true,
            false,
        ),
    ] {
        server.reset().await;
        messages().respond_with(answer).mount(&server).await;
        let err = messaging(&server).send_sms(&message).await.unwrap_err();
        assert_eq!(
            (err.is_transient(), err.is_invalid_recipient()),
            (transient, invalid),
            "{err}"
        );
    }
}

// ---- through the layer -------------------------------------------------

#[tokio::test]
async fn verify_mode_end_to_end_and_twilio_answers_become_contract_errors() {
    let server = MockServer::start().await;
    verifications()
        .and(form(&[("To", common::MOBILE), ("Channel", "sms")]))
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending")))
        .mount(&server)
        .await;
    verification_check()
        .and(form(&[("To", common::MOBILE), ("Code", "111111")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("pending")))
        .mount(&server)
        .await;
    verification_check()
        .and(form(&[("To", common::MOBILE), ("Code", "222222")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("approved")))
        .mount(&server)
        .await;
    let otp = common::builder()
        .sms_verifier(verify(&server))
        .build()
        .unwrap();

    let (status, body) =
        common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": "111111"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), &body["code"], &body["attempts_left"]),
        (400, &json!("otp_invalid"), &json!(4)),
        "{body}"
    );
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": "222222"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["mobile"], common::MOBILE);
}

#[tokio::test]
async fn verify_mode_404_is_otp_expired_60202_is_attempts_exceeded_and_20429_keeps_the_code() {
    let server = MockServer::start().await;
    verifications()
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending")))
        .mount(&server)
        .await;
    verification_check()
        .respond_with(twilio_error(
            404,
            20404,
            "The requested resource was not found",
        ))
        .mount(&server)
        .await;
    let otp = common::builder()
        .sms_verifier(verify(&server))
        .resend_cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let (status, _) =
        common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(status, 200);
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": "123456"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("otp_expired")),
        "{body}"
    );

    // Twilio's own rate limit is not this code's attempts: the code stays,
    // and the next check, approved, succeeds.
    let (status, body) =
        resend_and_check(&server, &otp, twilio_error(429, 20429, "Too Many Requests")).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    server.reset().await;
    verification_check()
        .respond_with(ResponseTemplate::new(200).set_body_json(verification("approved")))
        .mount(&server)
        .await;
    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": "123456"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = resend_and_check(
        &server,
        &otp,
        twilio_error(429, 60202, "Max check attempts reached"),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (429, Some("attempts_exceeded")),
        "{body}"
    );
}

/// After the cooldown, a new send (Twilio answers "pending") and a verify
/// that Twilio's check answers with `check`: the verify's answer.
async fn resend_and_check(
    server: &MockServer,
    otp: &tower_otp::Otp,
    check: ResponseTemplate,
) -> (http::StatusCode, serde_json::Value) {
    server.reset().await;
    verifications()
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending")))
        .mount(server)
        .await;
    verification_check().respond_with(check).mount(server).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the cooldown
    let (status, body) =
        common::post(otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(status, 200, "{body}");
    common::post(
        otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": "123456"}),
    )
    .await
}

#[tokio::test]
async fn twilio_21211_is_invalid_mobile_in_both_modes() {
    let server = MockServer::start().await;
    let invalid = twilio_error(
        400,
        21211,
        "The 'To' number +14155550123 is not a valid phone number.",
    );
    verifications()
        .respond_with(invalid.clone())
        .expect(1)
        .mount(&server)
        .await;
    messages()
        .respond_with(invalid)
        .expect(1)
        .mount(&server)
        .await;

    for otp in [
        common::builder()
            .sms_verifier(verify(&server))
            .build()
            .unwrap(),
        common::builder()
            .sms_sender(messaging(&server))
            .build()
            .unwrap(),
    ] {
        let (status, body) =
            common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some("invalid_mobile")),
            "{body}"
        );
        assert!(
            !body["message"].as_str().unwrap().contains("21211"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn messaging_mode_sends_our_code_with_the_webotp_line() {
    let server = MockServer::start().await;
    messages()
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .expect(1)
        .mount(&server)
        .await;
    let otp = common::builder()
        .sms_sender(messaging(&server))
        .webotp_host("shop.example")
        .build()
        .unwrap();
    let (status, body) =
        common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(status, 200, "{body}");

    let request = server.received_requests().await.unwrap().remove(0);
    let fields: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
    assert_eq!(fields["To"], common::MOBILE);
    assert_eq!(fields["From"], FROM);
    let code = common::code_in(&fields["Body"]).expect("a code in the SMS");
    assert!(
        fields["Body"].ends_with(&format!("@shop.example #{code}")),
        "{}",
        fields["Body"]
    );

    let (status, body) = common::post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn messaging_503_is_tried_three_times_then_502_and_retry_is_not_rate_limited() {
    // A 503 proves Twilio did not take the message (a 500 does not: that is
    // sent once, tests/delivery_retry.rs).
    let server = MockServer::start().await;
    messages()
        .respond_with(twilio_error(503, 20503, "Service Unavailable"))
        .mount(&server)
        .await;
    let otp = common::builder()
        .sms_sender(messaging(&server))
        .build()
        .unwrap();
    let (status, body) =
        common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    server.reset().await;
    messages()
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .expect(1)
        .mount(&server)
        .await;
    let (status, body) =
        common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_the_form_goes_nowhere_else() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 307, 308] {
        server.reset().await;
        messages()
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/steal", elsewhere.uri())),
            )
            .mount(&server)
            .await;
        let message = SmsMessage::new(common::MOBILE, "Your code is 123456");
        let err = messaging(&server).send_sms(&message).await.unwrap_err();
        assert!(!err.is_transient(), "{status}: {err}");
    }
    // `expect(0)` on `elsewhere`, checked as it drops: nothing followed.
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}
