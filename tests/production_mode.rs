//! The production flag (DESIGN.md "Production mode"): start-up refuses
//! development senders on an enabled channel, an insecure cookie, weak or
//! documented secrets, weak hash parameters and test mode, naming the
//! setting and never printing the secret; channels can be turned off; and
//! without the flag a development sender logs a warning.

mod common;

use std::{collections::BTreeSet, path::Path};

use async_trait::async_trait;
use axum::{Router, body::Body};
use http::Request;
use tower::ServiceExt;
use tower_otp::{
    Channels, Otp, OtpBuilder, Secret, TestContacts,
    delivery::{DeliveryError, EmailMessage, EmailSender, MemoryOutbox, SmsMessage, SmsSender},
    hash::HashParams,
};

/// A random-looking secret no doc prints.
const STRONG: &str = "kq3Hc9v0ZpR2mX7bT1wL5nY8sD4fG6jA";

/// Stands in for a real provider (SMTP, SendGrid, Twilio): not for
/// development.
#[derive(Debug)]
struct Provider;

#[async_trait]
impl EmailSender for Provider {
    async fn send_email(&self, _: &EmailMessage) -> Result<(), DeliveryError> {
        Ok(())
    }
}

#[async_trait]
impl SmsSender for Provider {
    async fn send_sms(&self, _: &SmsMessage) -> Result<(), DeliveryError> {
        Ok(())
    }
}

fn safe() -> OtpBuilder {
    Otp::builder()
        .secret(STRONG)
        .hash_pool_size(1, 4)
        .email_sender(Provider)
        .sms_sender(Provider)
        .production()
}

fn refusal(builder: OtpBuilder) -> String {
    match builder.build() {
        Ok(_) => "accepted".to_owned(),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_safe_configuration_starts() {
    safe().build().unwrap();
}

#[test]
fn each_unsafe_setting_is_refused_by_name() {
    let cases: Vec<(&str, OtpBuilder)> = vec![
        (
            "email_sender",
            safe().email_sender(tower_otp::delivery::ConsoleSender::new()),
        ),
        ("sms_sender", safe().sms_sender(MemoryOutbox::new())),
        ("insecure_cookie", safe().insecure_cookie()),
        ("secret", safe().secret("only twenty bytes!!!")),
        ("secret", safe().old_secret("an old secret of 24 bytes")),
        (
            "hash_params",
            safe().hash_params(HashParams::insecure_fast()),
        ),
        (
            "production",
            safe().dangerous_test_contacts(TestContacts::new("424242").email("r@x.io").unwrap()),
        ),
    ];
    for (setting, builder) in cases {
        let message = refusal(builder);
        assert!(message.contains(setting), "{setting}: {message}");
    }
    // The default senders are the console: refused.
    let message = refusal(
        Otp::builder()
            .secret(STRONG)
            .hash_pool_size(1, 4)
            .production(),
    );
    assert!(message.contains("email_sender"), "{message}");
}

#[test]
fn a_random_secret_is_refused() {
    let builder = Otp::builder()
        .random_secret()
        .hash_pool_size(1, 4)
        .email_sender(Provider)
        .sms_sender(Provider)
        .production();
    assert!(refusal(builder).contains("secret"));
}

#[test]
fn a_channel_turned_off_is_not_checked() {
    safe()
        .sms_sender(tower_otp::delivery::ConsoleSender::new())
        .channels(Channels::EMAIL)
        .build()
        .unwrap();
    safe()
        .email_sender(MemoryOutbox::new())
        .channels(Channels::MOBILE)
        .build()
        .unwrap();
}

/// Every secret literal the repository's docs, examples, benches and shared
/// test helpers print (32 bytes or more, so it would pass the length check)
/// is refused in production, and the refusal does not print it.
#[test]
fn every_secret_printed_in_the_repository_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut secrets = BTreeSet::new();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for dir in ["docs", "src", "examples", "benches", "tests/common"] {
        collect(&root.join(dir), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for opener in ["secret(\"", "Secret::new(\"", "SECRET: &str = \""] {
            for (start, _) in text.match_indices(opener) {
                let rest = &text[start + opener.len()..];
                if let Some(end) = rest.find('"') {
                    let value = &rest[..end];
                    if value.len() >= 32 && !value.contains('\\') {
                        secrets.insert(value.to_owned());
                    }
                }
            }
        }
    }
    secrets.remove(STRONG);
    assert!(
        secrets.len() >= 3,
        "the scan found the example secrets: {secrets:?}"
    );
    for secret in &secrets {
        let message = refusal(safe().secret(Secret::new(secret.as_str())));
        assert!(message.contains("secret"), "{secret:?} accepted: {message}");
        assert!(
            !message.contains(secret.as_str()),
            "the refusal printed the secret"
        );
        // As an old secret too.
        assert!(refusal(safe().old_secret(secret.as_str())).contains("secret"));
    }
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "md") {
            files.push(path);
        }
    }
}

fn from_env(vars: &[(&str, &str)]) -> Result<Otp, tower_otp::error::ConfigError> {
    OtpBuilder::from_env_with(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })?
    .build()
}

#[test]
fn from_the_environment_the_refusal_names_the_variable() {
    let err = from_env(&[("OTP_PRODUCTION", "true"), ("OTP_SECRET", STRONG)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("EMAIL_SERVER"), "{err}");

    // A local relay and a local provider proxy are allowed.
    let real = [
        ("OTP_PRODUCTION", "true"),
        ("OTP_SECRET", STRONG),
        ("EMAIL_SERVER", "SMTP"),
        ("EMAIL_HOST", "127.0.0.1"),
        ("EMAIL_PORT", "2525"),
        ("EMAIL_USE_TLS", "false"),
        ("SMS_SERVER", "TWILIO"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_AUTH_TOKEN", "token"),
        ("TWILIO_FROM_NUMBER", "+14155550100"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:9"),
    ];
    from_env(&real).unwrap();

    let with = |extra: (&'static str, &'static str)| {
        let mut vars: Vec<(&str, &str)> = real
            .iter()
            .copied()
            .filter(|(n, _)| *n != extra.0)
            .collect();
        vars.push(extra);
        from_env(&vars).unwrap_err().to_string()
    };
    assert!(with(("OTP_COOKIE_SECURE", "false")).contains("OTP_COOKIE_SECURE"));
    let documented = "an example secret, use 32+ random bytes";
    let err = with(("OTP_SECRET", documented));
    assert!(
        err.contains("OTP_SECRET") && !err.contains(documented),
        "{err}"
    );
    assert!(with(("OTP_SECRET", "sixteen bytes!!!")).contains("OTP_SECRET"));
    assert!(with(("SMS_SERVER", "CONSOLE")).contains("SMS_SERVER"));
    // Codes (and credentials) without TLS to another machine (plain SMTP
    // to a remote host, a provider base URL or a webhook over http:// to
    // one) are the operator's call, as the contract allows: start-up warns,
    // with or without the production flag, and names the host.
    let warned = |vars: &[(&str, &str)]| {
        let captured = common::logs::Captured::default();
        let _logs = tracing::subscriber::set_default(common::logs::subscriber(
            &captured,
            tracing::Level::WARN,
        ));
        from_env(vars).unwrap();
        captured.text()
    };
    let with_vars = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<(&str, &str)> = real
            .iter()
            .copied()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
            .collect();
        vars.extend_from_slice(extra);
        vars
    };
    for (extra, host) in [
        (("EMAIL_HOST", "smtp.example.com"), "smtp.example.com"),
        (
            ("TWILIO_API_BASE_URL", "http://api.example.net"),
            "api.example.net",
        ),
        (("TWILIO_API_BASE_URL", "http://10.0.0.7:8080"), "10.0.0.7"),
    ] {
        let logged = warned(&with_vars(&[extra]));
        assert!(
            logged.contains("without TLS") && logged.contains(host),
            "{extra:?}: {logged}"
        );
    }
    // Loopback, or TLS: no warning.
    let quiet = warned(&real);
    assert!(!quiet.contains("without TLS"), "{quiet}");
    let quiet = warned(&with_vars(&[
        ("EMAIL_HOST", "smtp.example.com"),
        ("EMAIL_USE_TLS", "true"),
        ("TWILIO_API_BASE_URL", "https://api.example.net"),
    ]));
    assert!(!quiet.contains("without TLS"), "{quiet}");
    #[cfg(feature = "webhooks")]
    {
        let secret = (
            "OTP_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        let logged = warned(&with_vars(&[
            ("OTP_WEBHOOK_URL", "http://hooks.example.net/otp"),
            secret,
        ]));
        assert!(logged.contains("hooks.example.net"), "{logged}");
        let quiet = warned(&with_vars(&[
            ("OTP_WEBHOOK_URL", "http://127.0.0.1:9/otp"),
            secret,
        ]));
        assert!(!quiet.contains("without TLS"), "{quiet}");
    }
    let sendgrid = [
        ("OTP_PRODUCTION", "true"),
        ("OTP_SECRET", STRONG),
        ("OTP_CHANNELS", "email"),
        ("EMAIL_SERVER", "SENDGRID"),
        ("SENDGRID_API_KEY", "SG.key"),
        ("DEFAULT_FROM_EMAIL", "no-reply@shop.example"),
        ("SENDGRID_BASE_URL", "http://sg.example.net"),
    ];
    assert!(warned(&sendgrid).contains("sg.example.net"));
    let verify = [
        ("OTP_PRODUCTION", "true"),
        ("OTP_SECRET", STRONG),
        ("OTP_CHANNELS", "mobile"),
        ("SMS_SERVER", "TWILIO_VERIFY"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_AUTH_TOKEN", "token"),
        (
            "TWILIO_VERIFY_SERVICE_SID",
            "VA00000000000000000000000000000000",
        ),
        ("TWILIO_VERIFY_BASE_URL", "http://verify.example.net"),
    ];
    assert!(warned(&verify).contains("verify.example.net"));
    // Mobile turned off: its sender is not looked at.
    let mut email_only_remote: Vec<(&str, &str)> = real[..6].to_vec();
    email_only_remote.push(("OTP_CHANNELS", "email"));
    email_only_remote.push(("TWILIO_API_BASE_URL", "http://api.example.net"));
    let quiet = warned(&email_only_remote);
    assert!(!quiet.contains("without TLS"), "{quiet}");
    // Mobile turned off: its console sender is not checked.
    let mut email_only: Vec<(&str, &str)> = real[..6].to_vec();
    email_only.push(("OTP_CHANNELS", "email"));
    from_env(&email_only).unwrap();
    assert!(
        from_env(&[("OTP_CHANNELS", "fax")])
            .unwrap_err()
            .to_string()
            .contains("OTP_CHANNELS")
    );
}

#[tokio::test]
async fn a_channel_turned_off_passes_its_paths_through() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox)
        .channels(Channels::EMAIL)
        .build()
        .unwrap();
    let app = Router::new()
        .fallback(|| async { "the host app" })
        .layer(otp.layer());
    let post = |path: &'static str, body: &'static str| {
        app.clone().oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
    };
    let mobile = post("/send-mobile-otp/", r#"{"mobile":"+14155550123"}"#)
        .await
        .unwrap();
    assert_eq!(mobile.status(), 200);
    let body = axum::body::to_bytes(mobile.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"the host app");
    assert!(outbox.messages().is_empty());

    let email = post("/send-otp/", r#"{"email":"ada@example.io"}"#)
        .await
        .unwrap();
    assert_eq!(email.status(), 200);
    let body = axum::body::to_bytes(email.into_body(), 1024).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("\"status\":\"success\""));
    assert_eq!(outbox.messages().len(), 1);
}

#[test]
fn without_the_flag_a_development_sender_logs_a_warning() {
    let captured = common::logs::Captured::default();
    let subscriber = common::logs::subscriber(&captured, tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, || {
        Otp::builder()
            .secret(STRONG)
            .hash_pool_size(1, 4)
            .build()
            .unwrap();
    });
    let logs = captured.text();
    assert!(
        logs.contains("WARN") && logs.contains("development sender"),
        "{logs}"
    );

    let quiet = common::logs::Captured::default();
    let subscriber = common::logs::subscriber(&quiet, tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, || safe().build().unwrap());
    assert!(
        !quiet.text().contains("development sender"),
        "{}",
        quiet.text()
    );
}
