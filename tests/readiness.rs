//! `Otp::readiness`: each configured dependency is checked, with a short
//! deadline, and the answer says which one failed.

mod common;

use std::time::{Duration, Instant};

use tower_otp::{
    Otp,
    delivery::{MemoryOutbox, SendGridSender, SmtpSender, TwilioMessaging, TwilioVerify},
    readiness::{Check, READINESS_DEADLINE},
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

fn base() -> tower_otp::OtpBuilder {
    common::builder_with(&MemoryOutbox::new())
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn memory_store_and_console_senders_are_ready() {
    let otp = Otp::builder().secret(common::SECRET).build().unwrap();
    let readiness = otp.readiness().await;
    assert!(readiness.is_ready(), "{readiness:?}");
    assert_eq!(readiness.failed().count(), 0);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_store_that_does_not_answer_is_named() {
    use tower_otp::store::RedisStore;
    let dead = RedisStore::builder(format!("redis://127.0.0.1:{}", closed_port()))
        .build()
        .unwrap();
    let otp = base().store(dead).build().unwrap();
    let started = Instant::now();
    let readiness = otp.readiness().await;
    assert!(started.elapsed() < READINESS_DEADLINE + Duration::from_secs(1));
    assert!(!readiness.is_ready());
    assert_eq!(readiness.failed().collect::<Vec<_>>(), vec!["store"]);
    assert!(matches!(readiness.store, Check::Failed(_)));

    if let Some(url) = common::redis_server::shared_redis().await {
        let live = RedisStore::builder(url)
            .prefix(common::redis_server::random_prefix())
            .build()
            .unwrap();
        let otp = base().store(live).build().unwrap();
        assert!(otp.readiness().await.is_ready());
    }
}

#[cfg(feature = "smtp")]
#[tokio::test]
async fn an_smtp_server_that_does_not_answer_is_named() {
    let sender = SmtpSender::unencrypted("127.0.0.1")
        .port(closed_port())
        .build()
        .unwrap();
    let otp = base().email_sender(sender).build().unwrap();
    let readiness = otp.readiness().await;
    assert_eq!(readiness.failed().collect::<Vec<_>>(), vec!["email"]);
}

#[cfg(feature = "sendgrid")]
#[tokio::test]
async fn sendgrid_is_checked_with_its_scopes_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(header("authorization", "Bearer SG.good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"scopes": []})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let sender =
        |key: &str| SendGridSender::new(key, "no-reply@shop.example").base_url(server.uri());
    let good = base().email_sender(sender("SG.good")).build().unwrap();
    assert!(good.readiness().await.is_ready());
    let bad = base().email_sender(sender("SG.revoked")).build().unwrap();
    assert_eq!(
        bad.readiness().await.failed().collect::<Vec<_>>(),
        vec!["email"]
    );
    // Nothing was sent by either check.
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.method.as_str() == "GET"),
        "{requests:?}"
    );
}

#[cfg(feature = "twilio")]
#[tokio::test]
async fn twilio_is_checked_with_its_account_or_verify_service() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2010-04-01/Accounts/AC123.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"sid": "AC123"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/Services/VA123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"sid": "VA123"})))
        .mount(&server)
        .await;
    let messaging = TwilioMessaging::new("AC123", "token", "+14155550100").base_url(server.uri());
    let otp = base().sms_sender(messaging).build().unwrap();
    assert!(otp.readiness().await.is_ready());

    let verify = TwilioVerify::new("AC123", "token", "VA123").base_url(server.uri());
    let otp = base().sms_verifier(verify).build().unwrap();
    assert!(otp.readiness().await.is_ready());

    let unknown = TwilioVerify::new("AC123", "token", "VA999").base_url(server.uri());
    let otp = base().sms_verifier(unknown).build().unwrap();
    assert_eq!(
        otp.readiness().await.failed().collect::<Vec<_>>(),
        vec!["sms"]
    );
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.method.as_str() == "GET"),
        "{requests:?}"
    );
}
