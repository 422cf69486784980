//! Languages (DESIGN.md "Languages"): built-in templates in six languages,
//! chosen by the `"locale"` field or `Accept-Language` through a fallback
//! chain, `Content-Language` and `<html lang>` on every code email, host
//! folders adding languages, and the `Notifier` in a language.

mod common;

use common::{MOBILE, app::TestApp, smtp_server};
use serde_json::json;
use tower_otp::{
    Languages,
    delivery::{MemoryOutbox, OutboxMessage},
    template::{BUILTIN_LANGUAGES, Templates},
};

fn email_to(app: &TestApp, to: &str) -> tower_otp::delivery::EmailMessage {
    match app.outbox.last_to(to).expect("an email was sent") {
        OutboxMessage::Email(email) => email,
        OutboxMessage::Sms(_) => panic!("an SMS"),
    }
}

#[test]
fn every_builtin_template_renders_in_every_language() {
    let templates = Templates::builtin();
    let evil = "<script>x</script>";
    let context = json!({
        "code": "482916", "app_name": evil, "ttl_minutes": 7, "name": evil,
        "action_url": "https://shop.example/a?b=1&c=2", "reset_url": "https://shop.example/r?t=1&u=2",
        "document_name": evil, "message": evil, "subject": "S", "heading": "H", "action_label": "Go",
    });
    let english = templates.render_email("otp", &context).unwrap();
    for lang in BUILTIN_LANGUAGES {
        let prefs = Languages::from_tag(lang);
        for name in ["otp", "welcome", "reset", "document", "default"] {
            let email = templates.render_email_in(name, &prefs, &context).unwrap();
            assert_eq!(&email.language, lang, "{lang}/{name}");
            assert!(
                email.html.contains(&format!("<html lang=\"{lang}\">")),
                "{lang}/{name}"
            );
            assert!(!email.html.contains(evil), "{lang}/{name}: not escaped");
            assert!(email.html.contains("&lt;script&gt;"), "{lang}/{name}");
            assert!(!email.subject.is_empty() && !email.subject.contains('\n'));
            assert!(!email.text.is_empty());
        }
        let otp = templates.render_email_in("otp", &prefs, &context).unwrap();
        for part in [&otp.html, &otp.text] {
            assert!(part.contains("482916"), "{lang}: the code");
            assert!(part.contains('7'), "{lang}: the expiry");
        }
        let reset = templates
            .render_email_in("reset", &prefs, &context)
            .unwrap();
        assert!(
            reset.text.contains("https://shop.example/r?t=1&u=2"),
            "{lang}"
        );
        let sms = templates.render_sms_in("otp", &prefs, &context).unwrap();
        assert!(
            sms.starts_with("482916"),
            "{lang}: the code comes first: {sms}"
        );
        assert!(sms.contains('7'), "{lang}: the expiry: {sms}");
        if *lang != "en" {
            assert_ne!(otp.subject, english.subject, "{lang} is translated");
            assert_ne!(otp.text, english.text, "{lang} is translated");
        }
    }
}

#[tokio::test]
async fn the_locale_field_then_accept_language_choose_the_language() {
    let app = TestApp::new();
    type Case<'a> = (
        &'a str,
        serde_json::Value,
        &'a [(&'a str, &'a str)],
        &'a str,
    );
    let cases: [Case; 6] = [
        (
            "a@x.io",
            json!({"email": "a@x.io", "locale": "fr"}),
            &[],
            "fr",
        ),
        (
            "b@x.io",
            json!({"email": "b@x.io"}),
            &[("accept-language", "de-CH, de;q=0.9, en;q=0.5")],
            "de",
        ),
        (
            "c@x.io",
            json!({"email": "c@x.io", "locale": "pt-BR"}),
            &[],
            "pt",
        ),
        // An unknown or malformed locale is ignored: Accept-Language decides.
        (
            "d@x.io",
            json!({"email": "d@x.io", "locale": "xx"}),
            &[("accept-language", "es")],
            "es",
        ),
        (
            "e@x.io",
            json!({"email": "e@x.io", "locale": 42}),
            &[("accept-language", "hi-IN")],
            "hi",
        ),
        ("f@x.io", json!({"email": "f@x.io"}), &[], "en"),
    ];
    for (to, body, headers, lang) in cases {
        app.post_with("/send-otp/", body, headers)
            .await
            .assert_success();
        let email = email_to(&app, to);
        assert_eq!(email.content_language.as_deref(), Some(lang), "{to}");
        assert!(email.html.contains(&format!("lang=\"{lang}\"")), "{to}");
        // The code in the message verifies.
        let code = app.code_for(to);
        app.verify_email(to, &code).await.assert_success();
    }
}

#[tokio::test]
async fn sms_codes_follow_the_language_and_keep_the_webotp_line_last() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).webotp_host("app.example.com"),
        outbox,
    );
    app.post(
        "/send-mobile-otp/",
        json!({"mobile": MOBILE, "locale": "hi"}),
    )
    .await
    .assert_success();
    let Some(OutboxMessage::Sms(sms)) = app.outbox.last_to(MOBILE) else {
        panic!("no SMS")
    };
    let code = app.code_for(MOBILE);
    let english = Templates::builtin()
        .render_sms(
            "otp",
            json!({"code": code, "app_name": "tower-otp", "ttl_minutes": 5}),
        )
        .unwrap();
    assert!(!sms.body.starts_with(&english), "{}", sms.body);
    assert!(sms.body.starts_with(&code));
    assert_eq!(
        sms.body.lines().last().unwrap(),
        format!("@app.example.com #{code}")
    );
}

#[tokio::test]
async fn a_host_folder_adds_a_language() {
    let dir = smtp_server::scratch("lang-it");
    std::fs::create_dir_all(dir.join("it/email")).unwrap();
    std::fs::create_dir_all(dir.join("it/sms")).unwrap();
    std::fs::write(
        dir.join("it/email/otp.subject.txt"),
        "Il tuo codice {{ app_name }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("it/email/otp.html"),
        "{% extends \"email/base.html\" %}{% block content %}<p>Codice: {{ code }}</p>{% endblock %}",
    )
    .unwrap();
    std::fs::write(dir.join("it/sms/otp.txt"), "{{ code }} è il tuo codice.").unwrap();
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox).templates_dir(dir.clone()),
        outbox,
    );
    app.post_with(
        "/send-otp/",
        json!({"email": "it@x.io"}),
        &[("accept-language", "it-IT")],
    )
    .await
    .assert_success();
    let email = email_to(&app, "it@x.io");
    assert_eq!(email.subject, "Il tuo codice tower-otp");
    assert_eq!(email.content_language.as_deref(), Some("it"));
    assert!(email.html.contains("<html lang=\"it\">"));
    assert!(
        email.text.contains("Codice:"),
        "derived from the HTML: {}",
        email.text
    );
}

#[tokio::test]
async fn the_notifier_takes_a_language() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder_with(&outbox)
        .app_name("Shop")
        .build()
        .unwrap();
    otp.notifier()
        .email("welcome")
        .language("es")
        .to("ada@example.com")
        .send()
        .await
        .unwrap();
    otp.notifier()
        .email("welcome")
        .language(Languages::from_accept_language("xx, fr;q=0.8"))
        .to("bob@example.com")
        .send()
        .await
        .unwrap();
    let messages = outbox.messages();
    let langs: Vec<_> = messages
        .iter()
        .map(|m| match m {
            OutboxMessage::Email(e) => (e.content_language.clone(), e.subject.clone()),
            OutboxMessage::Sms(_) => unreachable!(),
        })
        .collect();
    assert_eq!(langs[0].0.as_deref(), Some("es"));
    assert_eq!(langs[1].0.as_deref(), Some("fr"));
    assert_ne!(langs[0].1, "Welcome to Shop");
    assert_ne!(langs[1].1, "Welcome to Shop");
}

/// `Content-Language` reaches a real SMTP server, English included.
#[cfg(feature = "smtp")]
#[tokio::test]
async fn content_language_is_a_header_of_every_code_email_over_smtp() {
    use smtp_server::{Mode, SmtpServer};
    let Some(server) = SmtpServer::start(Mode::Plain, &[]) else {
        return;
    };
    let sender = tower_otp::delivery::SmtpSender::unencrypted_localhost(server.port)
        .build()
        .unwrap();
    let otp = common::builder().email_sender(sender).build().unwrap();
    let (status, _) = common::post(
        &otp,
        "/send-otp/",
        json!({"email": "a@x.io", "locale": "de"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = common::post(&otp, "/send-otp/", json!({"email": "b@x.io"})).await;
    assert_eq!(status, 200);
    let first = String::from_utf8(server.message(1).0).unwrap();
    let second = String::from_utf8(server.message(2).0).unwrap();
    assert!(first.contains("Content-Language: de\r\n"), "{first}");
    assert!(second.contains("Content-Language: en\r\n"), "{second}");
}

/// The start-up size check: a host SMS template over 140 bytes with an app
/// hash stops start-up; built-in translations that cannot fit (Hindi and
/// Portuguese need UCS-2) only warn; over one segment warns.
#[test]
fn sms_templates_are_size_checked_at_start_up() {
    let captured = common::logs::Captured::default();
    let subscriber = common::logs::subscriber(&captured, tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, || {
        common::builder()
            .android_app_hash("FA+9qCX9VSu")
            .build()
            .unwrap();
    });
    let logs = captured.text();
    assert!(logs.contains("the hi SMS template"), "{logs}");
    assert!(!logs.contains("the en SMS template"), "{logs}");

    let dir = smtp_server::scratch("long-sms");
    std::fs::create_dir_all(dir.join("sms")).unwrap();
    std::fs::write(
        dir.join("sms/otp.txt"),
        format!("{{{{ code }}}} {}", "x".repeat(170)),
    )
    .unwrap();
    let err = common::builder()
        .templates_dir(dir.clone())
        .android_app_hash("FA+9qCX9VSu")
        .build()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("android_app_hash") && err.contains("en"),
        "{err}"
    );
    // Without the hash, two segments only warn.
    common::builder().templates_dir(dir).build().unwrap();
    assert!(
        common::builder()
            .android_app_hash("too-short")
            .build()
            .is_err(),
        "the hash is validated"
    );
}
