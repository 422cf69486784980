//! WhatsApp as a channel for mobile codes: `"channel"` on `send-mobile-otp`,
//! Twilio Messaging (`To=whatsapp:…`, `From=whatsapp:…`, `Body` or
//! `ContentSid`) and Twilio Verify (`Channel=whatsapp`) against wiremock
//! servers that check the exact requests, `invalid_channel`, and the
//! optional fallback to SMS. Through real HTTP.
#![cfg(feature = "twilio")]

mod common;

use std::{collections::HashMap, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tower_otp::{
    OtpBuilder,
    delivery::{MemoryOutbox, MobileChannel, OutboxMessage, TwilioMessaging, TwilioVerify},
};
use wiremock::{
    Match, Mock, MockServer, Request, ResponseTemplate,
    matchers::{header, method, path},
};

const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "twilio-auth-token-do-not-print";
const SERVICE: &str = "VAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const FROM: &str = "+14155550100";
const WHATSAPP_FROM: &str = "+14155550199";
const CONTENT_SID: &str = "HXdddddddddddddddddddddddddddddddd";

fn whatsapp_to() -> String {
    format!("whatsapp:{}", common::MOBILE)
}

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

/// Matches a form body whose field `name` is `value` (other fields free).
struct FieldIs(&'static str, String);

impl Match for FieldIs {
    fn matches(&self, request: &Request) -> bool {
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .any(|(k, v)| k == self.0 && v == self.1)
    }
}

fn twilio_post(url_path: String) -> wiremock::MockBuilder {
    let basic = format!("Basic {}", STANDARD.encode(format!("{SID}:{TOKEN}")));
    Mock::given(method("POST"))
        .and(path(url_path))
        .and(header("authorization", basic.as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
}

fn messages() -> wiremock::MockBuilder {
    twilio_post(format!("/2010-04-01/Accounts/{SID}/Messages.json"))
}

fn verifications() -> wiremock::MockBuilder {
    twilio_post(format!("/v2/Services/{SERVICE}/Verifications"))
}

fn verification_check() -> wiremock::MockBuilder {
    twilio_post(format!("/v2/Services/{SERVICE}/VerificationCheck"))
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"status": "queued"}))
}

fn verification(status: &str, channel: &str) -> Value {
    json!({
        "sid": "VEcccccccccccccccccccccccccccccccc",
        "service_sid": SERVICE,
        "to": common::MOBILE,
        "channel": channel,
        "status": status,
    })
}

/// A Twilio error body, as the REST API sends it.
fn twilio_error(status: u16, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": format!("Twilio could not send to {}", common::MOBILE),
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn messaging(server: &MockServer) -> TwilioMessaging {
    TwilioMessaging::new(SID, TOKEN, FROM)
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

fn verify(server: &MockServer) -> TwilioVerify {
    TwilioVerify::new(SID, TOKEN, SERVICE)
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
}

/// The form fields of every request the mock received, in order.
async fn forms(server: &MockServer) -> Vec<HashMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

async fn send(base: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = common::app::post_http(base, "/send-mobile-otp/", body, &[]).await;
    (status.as_u16(), body)
}

async fn verify_code(base: &str, code: &str) -> (u16, Value) {
    let (status, _, body) = common::app::post_http(
        base,
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": code}),
        &[],
    )
    .await;
    (status.as_u16(), body)
}

async fn serve(builder: OtpBuilder) -> String {
    common::app::serve(builder).await
}

// ---- Twilio Messaging --------------------------------------------------

#[tokio::test]
async fn messaging_sends_whatsapp_as_twilio_expects_and_the_code_proves_the_number() {
    let server = MockServer::start().await;
    messages()
        .and(FieldIs("To", whatsapp_to()))
        .and(FieldIs("From", format!("whatsapp:{WHATSAPP_FROM}")))
        .respond_with(queued())
        .expect(1)
        .mount(&server)
        .await;
    let base = serve(
        common::builder()
            .sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))
            .webotp_host("shop.example"),
    )
    .await;

    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"], "whatsapp", "{body}");

    let fields = forms(&server).await.remove(0);
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Body", "From", "To"]);
    let text = &fields["Body"];
    let code = common::code_in(text).expect("a code in the WhatsApp text");
    // The WebOTP line is for SMS only.
    assert!(!text.contains("@shop.example"), "{text}");
    assert!(!text.contains('#'), "{text}");

    let (status, body) = verify_code(&base, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["mobile"], common::MOBILE, "{body}");
}

#[tokio::test]
async fn messaging_with_a_content_sid_sends_the_template_with_the_code_as_variable() {
    let server = MockServer::start().await;
    messages()
        .and(FieldIs("ContentSid", CONTENT_SID.to_owned()))
        .respond_with(queued())
        .expect(1)
        .mount(&server)
        .await;
    let base = serve(
        common::builder().sms_sender(
            messaging(&server)
                .whatsapp_from(format!("whatsapp:{WHATSAPP_FROM}"))
                .whatsapp_content_sid(CONTENT_SID),
        ),
    )
    .await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["channel"]),
        (200, &json!("whatsapp")),
        "{body}"
    );

    let fields = forms(&server).await.remove(0);
    let variables: Value = serde_json::from_str(&fields["ContentVariables"]).unwrap();
    let code = variables["1"].as_str().expect("the code as variable 1");
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ContentSid", "ContentVariables", "From", "To"]);
    assert!(
        FormIs(vec![
            ("To", whatsapp_to()),
            ("From", format!("whatsapp:{WHATSAPP_FROM}")),
            ("ContentSid", CONTENT_SID.to_owned()),
            ("ContentVariables", json!({"1": code}).to_string()),
        ])
        .matches(&server.received_requests().await.unwrap()[0]),
        "{fields:?}"
    );

    let (status, body) = verify_code(&base, code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["mobile"], common::MOBILE, "{body}");
}

#[tokio::test]
async fn every_mobile_send_names_its_channel_and_sms_is_the_default() {
    let server = MockServer::start().await;
    messages()
        .and(FieldIs("To", common::MOBILE.to_owned()))
        .and(FieldIs("From", FROM.to_owned()))
        .respond_with(queued())
        .expect(3)
        .mount(&server)
        .await;
    let base = serve(
        common::builder()
            .sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))
            .resend_cooldown(Duration::ZERO),
    )
    .await;
    for body in [
        json!({"mobile": common::MOBILE}),
        json!({"mobile": common::MOBILE, "channel": null}),
        json!({"mobile": common::MOBILE, "channel": "sms"}),
    ] {
        let (status, answer) = send(&base, body.clone()).await;
        assert_eq!(
            (status, &answer["channel"]),
            (200, &json!("sms")),
            "{body} {answer}"
        );
    }
}

#[tokio::test]
async fn unknown_malformed_or_unconfigured_channels_are_invalid_channel_and_send_nothing() {
    let server = MockServer::start().await;
    messages()
        .respond_with(queued())
        .expect(0)
        .mount(&server)
        .await;
    // Messaging without a WhatsApp sender: WhatsApp is not configured.
    let base = serve(common::builder().sms_sender(messaging(&server))).await;
    for channel in [
        json!("whatsapp"),
        json!("fax"),
        json!("WhatsApp"),
        json!(""),
        json!(42),
        json!(true),
        json!(["sms"]),
        json!({"name": "sms"}),
    ] {
        let (status, body) =
            send(&base, json!({"mobile": common::MOBILE, "channel": channel})).await;
        assert_eq!(
            (status, &body["code"], &body["field"]),
            (400, &json!("invalid_channel"), &json!("channel")),
            "{channel}: {body}"
        );
    }
    // The email route ignores the field, as any unknown one.
    let (status, _, body) = common::app::post_http(
        &base,
        "/send-otp/",
        json!({"email": "ada@example.com", "channel": "fax"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("channel").is_none(), "{body}");
}

#[tokio::test]
async fn invalid_channel_as_problem_details_names_the_field() {
    let base = serve(common::builder()).await;
    let (status, headers, body) = common::app::post_http(
        &base,
        "/send-mobile-otp/",
        json!({"mobile": common::MOBILE, "channel": "fax"}),
        &[("accept", "application/problem+json")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "invalid_channel");
    assert_eq!(body["field"], "channel");
    assert_eq!(body["type"], "urn:tower-otp:error:invalid_channel");
}

#[tokio::test]
async fn with_the_fallback_a_permanent_whatsapp_failure_is_sent_once_by_sms() {
    let server = MockServer::start().await;
    // 63003: the number is not a WhatsApp user.
    messages()
        .and(FieldIs("To", whatsapp_to()))
        .respond_with(twilio_error(400, 63003))
        .expect(1)
        .mount(&server)
        .await;
    messages()
        .and(FieldIs("To", common::MOBILE.to_owned()))
        .and(FieldIs("From", FROM.to_owned()))
        .respond_with(queued())
        .expect(1)
        .mount(&server)
        .await;
    let base = serve(
        common::builder()
            .sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))
            .webotp_host("shop.example")
            .whatsapp_fallback_sms(true),
    )
    .await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!((status, &body["channel"]), (200, &json!("sms")), "{body}");

    let sms = forms(&server).await.remove(1);
    let mut keys: Vec<&str> = sms.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Body", "From", "To"]);
    let code = common::code_in(&sms["Body"]).expect("a code in the SMS");
    // The SMS that replaces it is a full SMS, WebOTP line included.
    assert!(
        sms["Body"].ends_with(&format!("@shop.example #{code}")),
        "{sms:?}"
    );
    let (status, body) = verify_code(&base, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["mobile"], common::MOBILE, "{body}");
}

#[tokio::test]
async fn a_user_who_opted_out_of_whatsapp_is_not_sent_the_code_by_sms_instead() {
    let server = MockServer::start().await;
    // 21610: the recipient unsubscribed from this sender.
    messages()
        .and(FieldIs("To", whatsapp_to()))
        .respond_with(twilio_error(400, 21610))
        .expect(1)
        .mount(&server)
        .await;
    messages()
        .and(FieldIs("To", common::MOBILE.to_owned()))
        .respond_with(queued())
        .expect(0)
        .mount(&server)
        .await;
    let base = serve(
        common::builder()
            .sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))
            .whatsapp_fallback_sms(true),
    )
    .await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (502, &json!("delivery_failed")),
        "{body}"
    );
    assert_eq!(forms(&server).await.len(), 1, "no SMS after an opt-out");
}

#[tokio::test]
async fn without_the_fallback_a_permanent_whatsapp_failure_is_502_and_the_user_may_retry() {
    let server = MockServer::start().await;
    // 63016: outside the 24-hour window, a template is required.
    messages()
        .and(FieldIs("To", whatsapp_to()))
        .respond_with(twilio_error(400, 63016))
        .expect(1)
        .mount(&server)
        .await;
    messages()
        .and(FieldIs("To", common::MOBILE.to_owned()))
        .respond_with(queued())
        .expect(1)
        .mount(&server)
        .await;
    let base =
        serve(common::builder().sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))).await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (502, &json!("delivery_failed")),
        "{body}"
    );
    // Nothing was delivered: the cooldown is released, SMS works at once.
    let (status, body) = send(&base, json!({"mobile": common::MOBILE, "channel": "sms"})).await;
    assert_eq!((status, &body["channel"]), (200, &json!("sms")), "{body}");
}

#[tokio::test]
async fn no_fallback_after_a_failure_that_may_have_been_sent_or_an_invalid_number() {
    for (status, code, answer) in [
        // A 500 proves nothing: the WhatsApp message may be on its way.
        (500, 20500, (502, "delivery_failed")),
        // The number itself is invalid: SMS would be refused too.
        (400, 21211, (400, "invalid_mobile")),
    ] {
        let server = MockServer::start().await;
        messages()
            .and(FieldIs("To", whatsapp_to()))
            .respond_with(twilio_error(status, code))
            .expect(1)
            .mount(&server)
            .await;
        messages()
            .and(FieldIs("To", common::MOBILE.to_owned()))
            .respond_with(queued())
            .expect(0)
            .mount(&server)
            .await;
        let base = serve(
            common::builder()
                .sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))
                .whatsapp_fallback_sms(true),
        )
        .await;
        let (got, body) = send(
            &base,
            json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
        )
        .await;
        assert_eq!(
            (got, body["code"].as_str().unwrap()),
            answer,
            "{code}: {body}"
        );
        server.verify().await;
    }
}

#[tokio::test]
async fn cooldown_and_quota_are_shared_by_the_channels() {
    let server = MockServer::start().await;
    messages().respond_with(queued()).mount(&server).await;
    let base =
        serve(common::builder().sms_sender(messaging(&server).whatsapp_from(WHATSAPP_FROM))).await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&base, json!({"mobile": common::MOBILE, "channel": "sms"})).await;
    assert_eq!(
        (status, &body["code"]),
        (429, &json!("rate_limited")),
        "{body}"
    );
    assert_eq!(forms(&server).await.len(), 1);
}

// ---- Twilio Verify -----------------------------------------------------

#[tokio::test]
async fn verify_starts_whatsapp_with_channel_whatsapp_and_the_check_proves_the_number() {
    let server = MockServer::start().await;
    verifications()
        .and(form(&[("To", common::MOBILE), ("Channel", "whatsapp")]))
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending", "whatsapp")))
        .expect(1)
        .mount(&server)
        .await;
    verification_check()
        .and(form(&[("To", common::MOBILE), ("Code", "246810")]))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(verification("approved", "whatsapp")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let base = serve(common::builder().sms_verifier(verify(&server))).await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["channel"]),
        (200, &json!("whatsapp")),
        "{body}"
    );
    let (status, body) = verify_code(&base, "246810").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"]["mobile"], common::MOBILE, "{body}");
}

#[tokio::test]
async fn verify_falls_back_to_channel_sms_after_a_permanent_whatsapp_refusal() {
    // 68008: WhatsApp is not configured on the Verify Service; 60223: the
    // WhatsApp channel is disabled on it.
    for (code, fallback) in [(68008, true), (68008, false), (60223, true), (60223, false)] {
        let server = MockServer::start().await;
        verifications()
            .and(form(&[("To", common::MOBILE), ("Channel", "whatsapp")]))
            .respond_with(twilio_error(400, code))
            .expect(1)
            .mount(&server)
            .await;
        verifications()
            .and(form(&[("To", common::MOBILE), ("Channel", "sms")]))
            .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending", "sms")))
            .expect(u64::from(fallback))
            .mount(&server)
            .await;
        let base = serve(
            common::builder()
                .sms_verifier(verify(&server))
                .whatsapp_fallback_sms(fallback),
        )
        .await;
        let (status, body) = send(
            &base,
            json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
        )
        .await;
        if fallback {
            assert_eq!(
                (status, &body["channel"]),
                (200, &json!("sms")),
                "{code}: {body}"
            );
        } else {
            assert_eq!(
                (status, &body["code"]),
                (502, &json!("delivery_failed")),
                "{code}: {body}"
            );
        }
        server.verify().await;
    }
}

#[tokio::test]
async fn verify_answers_a_landline_as_invalid_mobile_without_the_sms_fallback() {
    let server = MockServer::start().await;
    // 60205: SMS is not supported by landline phone number.
    verifications()
        .and(form(&[("To", common::MOBILE), ("Channel", "whatsapp")]))
        .respond_with(twilio_error(400, 60205))
        .expect(1)
        .mount(&server)
        .await;
    verifications()
        .and(form(&[("To", common::MOBILE), ("Channel", "sms")]))
        .respond_with(ResponseTemplate::new(201).set_body_json(verification("pending", "sms")))
        .expect(0)
        .mount(&server)
        .await;
    let base = serve(
        common::builder()
            .sms_verifier(verify(&server))
            .whatsapp_fallback_sms(true),
    )
    .await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("invalid_mobile")),
        "{body}"
    );
    server.verify().await;
}

// ---- environment and outbox --------------------------------------------

#[tokio::test]
async fn the_environment_configures_whatsapp_and_the_fallback() {
    let server = MockServer::start().await;
    messages()
        .and(FieldIs("To", whatsapp_to()))
        .and(FieldIs("From", format!("whatsapp:{WHATSAPP_FROM}")))
        .and(FieldIs("ContentSid", CONTENT_SID.to_owned()))
        .respond_with(twilio_error(400, 63024))
        .expect(1)
        .mount(&server)
        .await;
    messages()
        .and(FieldIs("To", common::MOBILE.to_owned()))
        .respond_with(queued())
        .expect(1)
        .mount(&server)
        .await;
    let uri = server.uri();
    let env = move |name: &str| -> Option<String> {
        Some(match name {
            "OTP_SECRET" => common::SECRET.to_owned(),
            "SMS_SERVER" => "TWILIO".to_owned(),
            "TWILIO_ACCOUNT_SID" => SID.to_owned(),
            "TWILIO_AUTH_TOKEN" => TOKEN.to_owned(),
            "TWILIO_FROM_NUMBER" => FROM.to_owned(),
            "TWILIO_API_BASE_URL" => uri.clone(),
            "TWILIO_WHATSAPP_FROM" => WHATSAPP_FROM.to_owned(),
            "TWILIO_WHATSAPP_CONTENT_SID" => CONTENT_SID.to_owned(),
            "OTP_WHATSAPP_FALLBACK_SMS" => "true".to_owned(),
            _ => return None,
        })
    };
    let builder = OtpBuilder::from_env_with(env)
        .unwrap()
        .hash_params(tower_otp::HashParams::insecure_fast());
    let base = serve(builder).await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!((status, &body["channel"]), (200, &json!("sms")), "{body}");

    let err = OtpBuilder::from_env_with(|name| {
        (name == "OTP_WHATSAPP_FALLBACK_SMS").then(|| "maybe".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("OTP_WHATSAPP_FALLBACK_SMS"),
        "{err}"
    );
}

#[tokio::test]
async fn the_outbox_records_the_channel_and_whatsapp_text_has_no_webotp_line() {
    let outbox = MemoryOutbox::new();
    let base = serve(
        common::builder_with(&outbox)
            .webotp_host("shop.example")
            .resend_cooldown(Duration::ZERO),
    )
    .await;
    let (status, body) = send(
        &base,
        json!({"mobile": common::MOBILE, "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(
        (status, &body["channel"]),
        (200, &json!("whatsapp")),
        "{body}"
    );
    let (status, body) = send(&base, json!({"mobile": common::MOBILE})).await;
    assert_eq!((status, &body["channel"]), (200, &json!("sms")), "{body}");

    let messages = outbox.messages();
    let [OutboxMessage::Sms(whatsapp), OutboxMessage::Sms(sms)] = &messages[..] else {
        panic!("two texts: {messages:?}");
    };
    assert_eq!(whatsapp.channel, MobileChannel::WhatsApp);
    assert!(
        !whatsapp.body.contains("@shop.example"),
        "{}",
        whatsapp.body
    );
    assert_eq!(sms.channel, MobileChannel::Sms);
    assert!(sms.body.contains("@shop.example"), "{}", sms.body);
}
