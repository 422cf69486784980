//! The SMS text settings from the environment: `OTP_WEBOTP_HOST`,
//! `OTP_WEBOTP_EMBEDDED_HOST` and `OTP_ANDROID_APP_HASH` shape the SMS that
//! reaches the provider, and bad combinations stop start-up naming the
//! variable.

mod common;

use std::collections::HashMap;

use serde_json::json;
use tower_otp::{
    OtpBuilder,
    delivery::{MemoryOutbox, OutboxMessage},
    hash::HashParams,
};

const HASH: &str = "FA+9qCX9VSu";

/// A builder from exactly these variables (and the test secret), as
/// `from_env` would make it from the process environment.
fn from_vars(vars: &[(&str, &str)]) -> Result<OtpBuilder, tower_otp::ConfigError> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert("OTP_SECRET".to_owned(), common::SECRET.to_owned());
    OtpBuilder::from_env_with(move |name| map.get(name).cloned())
}

#[tokio::test]
async fn the_environment_ends_each_sms_with_the_app_hash_then_the_webotp_line() {
    let outbox = MemoryOutbox::new();
    let builder = from_vars(&[
        ("OTP_WEBOTP_HOST", "shop.example"),
        ("OTP_WEBOTP_EMBEDDED_HOST", "pay.example"),
        ("OTP_ANDROID_APP_HASH", HASH),
    ])
    .unwrap()
    .hash_params(HashParams::insecure_fast())
    .email_sender(outbox.clone())
    .sms_sender(outbox.clone());
    let app = common::app::TestApp::with(builder, outbox);
    app.post("/send-mobile-otp/", json!({"mobile": common::MOBILE}))
        .await
        .assert_success();
    let Some(OutboxMessage::Sms(sms)) = app.outbox.last_to(common::MOBILE) else {
        panic!("no SMS")
    };
    let code = app.code_for(common::MOBILE);
    // The template's text, a blank line, the app hash, then the WebOTP
    // line with the embedded host as a second `@` field, last.
    let tail = format!("\n\n{HASH}\n@shop.example #{code} @pay.example");
    assert!(sms.body.ends_with(&tail), "{:?}", sms.body);
    let text = sms.body.strip_suffix(&tail).unwrap();
    assert!(text.starts_with(&code) && !text.contains('\n'), "{text:?}");
    // The code verifies.
    app.verify_mobile(common::MOBILE, &code)
        .await
        .assert_success();
}

#[test]
fn an_embedded_host_needs_a_webotp_host() {
    let err = from_vars(&[("OTP_WEBOTP_EMBEDDED_HOST", "pay.example")])
        .unwrap()
        .hash_params(HashParams::insecure_fast())
        .build()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTP_WEBOTP_EMBEDDED_HOST"), "{err}");
    assert!(err.contains("webotp_host"), "{err}");
}

#[test]
fn a_malformed_app_hash_is_refused_naming_the_variable() {
    for hash in ["short", "FA+9qCX9VS!", "FA+9qCX9VSuX"] {
        let err = from_vars(&[("OTP_ANDROID_APP_HASH", hash)])
            .unwrap()
            .hash_params(HashParams::insecure_fast())
            .build()
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("OTP_ANDROID_APP_HASH"), "{hash}: {err}");
    }
}
