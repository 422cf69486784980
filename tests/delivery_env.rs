//! Delivery wiring from environment variables (`OtpBuilder::from_env_with`,
//! never the process environment), and secrets kept out of `Debug`.

mod common;

use tower_otp::{ConfigError, OtpBuilder};

const SECRET: &str = "env tests secret, at least 16 bytes";

fn from(vars: &[(&str, &str)]) -> Result<OtpBuilder, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("OTP_SECRET".to_owned(), SECRET.to_owned())])
        .collect();
    OtpBuilder::from_env_with(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

/// The variable a `Missing` / `Invalid` error names.
fn named(error: ConfigError) -> &'static str {
    match error {
        ConfigError::Missing { name, .. } | ConfigError::Invalid { name, .. } => name,
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn no_delivery_settings_means_console_senders() {
    let debug = format!("{:?}", from(&[]).unwrap().build().unwrap());
    assert!(debug.contains("ConsoleSender"), "{debug}");
    let debug = format!(
        "{:?}",
        from(&[("EMAIL_SERVER", "console"), ("SMS_SERVER", "CONSOLE")]).unwrap()
    );
    assert!(
        !debug.contains("Smtp") && !debug.contains("Twilio"),
        "{debug}"
    );
}

#[test]
fn unknown_servers_are_named() {
    assert_eq!(
        named(from(&[("EMAIL_SERVER", "POSTMARK")]).unwrap_err()),
        "EMAIL_SERVER"
    );
    assert_eq!(
        named(from(&[("SMS_SERVER", "NEXMO")]).unwrap_err()),
        "SMS_SERVER"
    );
}

#[cfg(feature = "smtp")]
mod smtp {
    use super::*;

    const SMTP: &[(&str, &str)] = &[
        ("EMAIL_SERVER", "SMTP"),
        ("EMAIL_HOST", "smtp.example.com"),
        ("EMAIL_HOST_USER", "mailer"),
        ("EMAIL_HOST_PASSWORD", "smtp-password-do-not-print"),
        ("DEFAULT_FROM_EMAIL", "Shop <no-reply@shop.example>"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<_> = SMTP
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        vars.extend(extra.iter().filter(|(_, v)| !v.is_empty()).copied());
        vars
    }

    #[test]
    fn smtp_modes_follow_port_and_use_tls() {
        for (extra, security, port) in [
            (vec![], "StartTls", "587"),
            (vec![("EMAIL_PORT", "2587")], "StartTls", "2587"),
            (vec![("EMAIL_PORT", "465")], "ImplicitTls", "465"),
            (vec![("EMAIL_USE_TLS", "false")], "Plain", "25"),
            (
                vec![("EMAIL_USE_TLS", "False"), ("EMAIL_PORT", "1025")],
                "Plain",
                "1025",
            ),
        ] {
            let debug = format!("{:?}", from(&with(&extra)).unwrap());
            assert!(debug.contains("SmtpSender"), "{debug}");
            assert!(
                debug.contains(&format!("security: {security}")),
                "{extra:?}: {debug}"
            );
            assert!(
                debug.contains(&format!("port: {port}")),
                "{extra:?}: {debug}"
            );
            assert!(debug.contains("no-reply@shop.example"), "{debug}");
            assert!(
                !debug.contains("smtp-password-do-not-print"),
                "password printed: {debug}"
            );
        }
    }

    /// Everything logged while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn plain_smtp_warns_at_start_up_unless_the_host_is_loopback() {
        let remote = logged(|| {
            let _otp = from(&with(&[("EMAIL_USE_TLS", "false")]))
                .unwrap()
                .build()
                .unwrap();
        });
        assert!(
            remote.contains("WARN") && remote.contains("without TLS"),
            "{remote}"
        );
        assert!(!remote.contains("smtp-password-do-not-print"), "{remote}");
        for host in ["localhost", "127.0.0.1", "::1"] {
            let local = logged(|| {
                let _otp = from(&with(&[("EMAIL_USE_TLS", "false"), ("EMAIL_HOST", host)]))
                    .unwrap()
                    .build()
                    .unwrap();
            });
            assert!(!local.contains("without TLS"), "{host}: {local}");
        }
        let tls = logged(|| {
            let _otp = from(SMTP).unwrap().build().unwrap();
        });
        assert!(!tls.contains("without TLS"), "{tls}");
    }

    #[test]
    fn smtp_missing_settings_are_named() {
        assert_eq!(
            named(from(&with(&[("EMAIL_HOST", "")])).unwrap_err()),
            "EMAIL_HOST"
        );
        assert_eq!(
            named(from(&with(&[("EMAIL_HOST_PASSWORD", "")])).unwrap_err()),
            "EMAIL_HOST_PASSWORD"
        );
        assert_eq!(
            named(from(&with(&[("EMAIL_PORT", "smtp")])).unwrap_err()),
            "EMAIL_PORT"
        );
        assert_eq!(
            named(from(&with(&[("EMAIL_USE_TLS", "maybe")])).unwrap_err()),
            "EMAIL_USE_TLS"
        );
        assert_eq!(
            named(from(&with(&[("DEFAULT_FROM_EMAIL", "not an address")])).unwrap_err()),
            "DEFAULT_FROM_EMAIL"
        );
        // No login at all is fine.
        let _no_login = from(&with(&[
            ("EMAIL_HOST_USER", ""),
            ("EMAIL_HOST_PASSWORD", ""),
        ]))
        .unwrap();
    }
}

#[cfg(feature = "sendgrid")]
mod sendgrid {
    use super::*;
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path},
    };

    #[test]
    fn sendgrid_missing_settings_are_named() {
        assert_eq!(
            named(
                from(&[
                    ("EMAIL_SERVER", "SENDGRID"),
                    ("DEFAULT_FROM_EMAIL", "a@b.co")
                ])
                .unwrap_err()
            ),
            "SENDGRID_API_KEY"
        );
        assert_eq!(
            named(from(&[("EMAIL_SERVER", "SENDGRID"), ("SENDGRID_API_KEY", "SG.x")]).unwrap_err()),
            "DEFAULT_FROM_EMAIL"
        );
    }

    #[tokio::test]
    async fn sendgrid_from_env_sends_to_the_configured_base_url_with_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(header("authorization", "Bearer SG.env-key-do-not-print"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;
        let uri = server.uri();
        let builder = from(&[
            ("EMAIL_SERVER", "SENDGRID"),
            ("SENDGRID_API_KEY", "SG.env-key-do-not-print"),
            ("SENDGRID_BASE_URL", uri.as_str()),
            ("DEFAULT_FROM_EMAIL", "no-reply@shop.example"),
        ])
        .unwrap();
        assert!(!format!("{builder:?}").contains("env-key-do-not-print"));
        let otp = builder
            .hash_params(tower_otp::hash::HashParams::insecure_fast())
            .build()
            .unwrap();
        let (status, body) =
            common::post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
        assert_eq!(status, 200, "{body}");
        let sent: serde_json::Value =
            serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
        assert_eq!(sent["from"]["email"], "no-reply@shop.example");
    }
}

#[cfg(feature = "twilio")]
mod twilio {
    use super::*;
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path},
    };

    const VERIFY: &[(&str, &str)] = &[
        ("SMS_SERVER", "TWILIO_VERIFY"),
        ("TWILIO_ACCOUNT_SID", "ACxxxx"),
        ("TWILIO_AUTH_TOKEN", "twilio-token-do-not-print"),
        ("TWILIO_VERIFY_SERVICE_SID", "VAxxxx"),
    ];

    fn without(
        vars: &[(&'static str, &'static str)],
        name: &str,
    ) -> Vec<(&'static str, &'static str)> {
        vars.iter().filter(|(k, _)| *k != name).copied().collect()
    }

    #[test]
    fn twilio_missing_settings_are_named() {
        for name in [
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_VERIFY_SERVICE_SID",
        ] {
            assert_eq!(named(from(&without(VERIFY, name)).unwrap_err()), name);
        }
        let messaging = [
            ("SMS_SERVER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "ACxxxx"),
            ("TWILIO_AUTH_TOKEN", "t"),
        ];
        assert_eq!(named(from(&messaging).unwrap_err()), "TWILIO_FROM_NUMBER");
        let debug = format!("{:?}", from(VERIFY).unwrap());
        assert!(debug.contains("TwilioVerify"), "{debug}");
        assert!(!debug.contains("twilio-token-do-not-print"), "{debug}");
    }

    #[tokio::test]
    async fn twilio_from_env_uses_the_configured_base_urls() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/Services/VAxxxx/Verifications"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "pending"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/2010-04-01/Accounts/ACxxxx/Messages.json"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "queued"})))
            .expect(1)
            .mount(&server)
            .await;
        let uri = server.uri();
        let mut verify = VERIFY.to_vec();
        verify.push(("TWILIO_VERIFY_BASE_URL", uri.as_str()));
        let messaging = [
            ("SMS_SERVER", "TWILIO"),
            ("TWILIO_ACCOUNT_SID", "ACxxxx"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("TWILIO_FROM_NUMBER", "+14155550100"),
            ("TWILIO_API_BASE_URL", uri.as_str()),
        ];
        for vars in [verify, messaging.to_vec()] {
            let otp = from(&vars)
                .unwrap()
                .hash_params(tower_otp::hash::HashParams::insecure_fast())
                .build()
                .unwrap();
            let (status, body) =
                common::post(&otp, "/send-mobile-otp/", json!({"mobile": common::MOBILE})).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

#[cfg(not(feature = "sendgrid"))]
#[test]
fn sendgrid_without_its_feature_names_the_feature() {
    let err = from(&[("EMAIL_SERVER", "SENDGRID")]).unwrap_err();
    assert!(err.to_string().contains("`sendgrid` feature"), "{err}");
}

#[cfg(not(feature = "twilio"))]
#[test]
fn twilio_without_its_feature_names_the_feature() {
    let err = from(&[("SMS_SERVER", "TWILIO_VERIFY")]).unwrap_err();
    assert!(err.to_string().contains("`twilio` feature"), "{err}");
}

#[cfg(not(feature = "smtp"))]
#[test]
fn smtp_without_its_feature_names_the_feature() {
    let err = from(&[("EMAIL_SERVER", "SMTP")]).unwrap_err();
    assert!(err.to_string().contains("`smtp` feature"), "{err}");
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_without_its_feature_names_the_feature() {
    let err = from(&[("REDIS_OTP_URL", "redis://127.0.0.1:6379")]).unwrap_err();
    assert_eq!(named(err), "REDIS_OTP_URL");
    let err = from(&[("REDIS_OTP_URL", "redis://127.0.0.1:6379")]).unwrap_err();
    assert!(err.to_string().contains("`redis` feature"), "{err}");
}
