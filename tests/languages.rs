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

/// What each language's code messages must say: the expiry with the
/// minutes as a word of their own (`13` is in no code, URL or name of the
/// context) and the "never share it" line, in the email (HTML and text)
/// and in the SMS.
struct Expected {
    lang: &'static str,
    email_expiry: &'static str,
    email_never_share: &'static str,
    sms_expiry: &'static str,
    sms_never_share: &'static str,
}

const EXPECTED: &[Expected] = &[
    Expected {
        lang: "en",
        email_expiry: "expires in 13 minutes",
        email_never_share: "Never share it with anyone",
        sms_expiry: "expires in 13 min.",
        sms_never_share: "Never share it.",
    },
    Expected {
        lang: "hi",
        email_expiry: "13 मिनट में समाप्त",
        email_never_share: "किसी के साथ साझा न करें",
        sms_expiry: "13 मिनट तक मान्य",
        sms_never_share: "किसी को न दें",
    },
    Expected {
        lang: "es",
        email_expiry: "Caduca en 13 minutos",
        email_never_share: "No lo compartas con nadie",
        sms_expiry: "Caduca en 13 min.",
        sms_never_share: "No la compartas con nadie",
    },
    Expected {
        lang: "fr",
        email_expiry: "expire dans 13 minutes",
        email_never_share: "Ne le communiquez à personne",
        sms_expiry: "expire dans 13 min.",
        sms_never_share: "Ne le communiquez à personne",
    },
    Expected {
        lang: "de",
        email_expiry: "13 Minuten lang gültig",
        email_never_share: "Geben Sie ihn niemals weiter",
        sms_expiry: "Gültig für 13 Min.",
        sms_never_share: "Geben Sie ihn niemals weiter",
    },
    Expected {
        lang: "pt",
        email_expiry: "expira em 13 minutos",
        email_never_share: "Não o compartilhe com ninguém",
        sms_expiry: "Expira em 13 min.",
        sms_never_share: "Nao compartilhe com ninguem",
    },
];

#[test]
fn every_builtin_template_renders_in_every_language() {
    let templates = Templates::builtin();
    let evil = "<script>x</script>";
    let context = json!({
        "code": "482916", "app_name": evil, "ttl_minutes": 13, "name": evil,
        "action_url": "https://shop.example/a?b=1&c=2", "reset_url": "https://shop.example/r?t=1&u=2",
        "document_name": evil, "message": evil, "subject": "S", "heading": "H", "action_label": "Go",
    });
    assert_eq!(
        EXPECTED.iter().map(|e| e.lang).collect::<Vec<_>>(),
        BUILTIN_LANGUAGES,
        "one row per built-in language"
    );
    let english = templates.render_email("otp", &context).unwrap();
    for expected in EXPECTED {
        let lang = expected.lang;
        let prefs = Languages::from_tag(lang);
        for name in ["otp", "welcome", "reset", "document", "default"] {
            let email = templates.render_email_in(name, &prefs, &context).unwrap();
            assert_eq!(email.language, lang, "{lang}/{name}");
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
        for (part, text) in [("html", &otp.html), ("text", &otp.text)] {
            assert!(text.contains("482916"), "{lang} {part}: the code");
            assert!(
                text.contains(expected.email_expiry),
                "{lang} {part}: the expiry {:?}: {text}",
                expected.email_expiry
            );
            assert!(
                text.contains(expected.email_never_share),
                "{lang} {part}: never share it {:?}: {text}",
                expected.email_never_share
            );
        }
        let reset = templates
            .render_email_in("reset", &prefs, &context)
            .unwrap();
        assert!(
            reset.text.contains("https://shop.example/r?t=1&u=2"),
            "{lang}"
        );
        let sms = templates.render_sms_in("otp", &prefs, &context).unwrap();
        // The code is in the first sentence, where a notification preview
        // shows it.
        let first_sentence = sms.split(['.', '।']).next().unwrap();
        assert!(
            first_sentence.contains("482916"),
            "{lang}: the code comes first: {sms}"
        );
        assert!(
            sms.contains(expected.sms_expiry),
            "{lang}: the expiry {:?}: {sms}",
            expected.sms_expiry
        );
        assert!(
            sms.contains(expected.sms_never_share),
            "{lang}: never share it {:?}: {sms}",
            expected.sms_never_share
        );
        if lang != "en" {
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
    assert!(
        sms.body.starts_with(&format!("tower-otp कोड: {code}।")),
        "{}",
        sms.body
    );
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

/// What the start-up check of the SMS templates logs when `builder` builds.
fn start_up_logs(builder: tower_otp::OtpBuilder) -> String {
    let captured = common::logs::Captured::default();
    let subscriber = common::logs::subscriber(&captured, tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, || {
        builder.build().unwrap();
    });
    captured.text()
}

/// With an Android app hash and the app name `tower-otp`, every built-in
/// SMS language fits SMS Retriever's 140 bytes (so one segment) with the
/// longest code and expiry a host is likely to set: the start-up check
/// warns about none of them, and none needs the built-in exception.
#[test]
fn every_builtin_sms_language_fits_140_bytes_with_an_app_hash() {
    let languages = Templates::builtin().sms_languages("otp");
    for lang in BUILTIN_LANGUAGES {
        assert!(languages.iter().any(|l| l == lang), "{lang} is checked");
    }
    for (code_length, minutes) in [(6, 5), (8, 5), (8, 15)] {
        let logs = start_up_logs(
            common::builder()
                .app_name("tower-otp")
                .code_length(code_length)
                .code_ttl(std::time::Duration::from_secs(minutes * 60))
                .android_app_hash("FA+9qCX9VSu"),
        );
        assert!(
            !logs.contains("SMS template"),
            "{code_length} digits, {minutes} min: {logs}"
        );
    }
}

/// The start-up size check: a host SMS template over 140 bytes with an app
/// hash stops start-up; a built-in translation that does not fit (Hindi,
/// in UCS-2, with a 20-character app name) only warns; over one segment
/// warns.
#[test]
fn sms_templates_are_size_checked_at_start_up() {
    let logs = start_up_logs(
        common::builder()
            .app_name("Acme Payments Online")
            .android_app_hash("FA+9qCX9VSu"),
    );
    assert!(
        logs.contains("the hi SMS template") && logs.contains("Android will not read hi codes"),
        "{logs}"
    );
    for lang in ["en", "es", "fr", "de", "pt"] {
        assert!(
            !logs.contains(&format!("the {lang} SMS template")),
            "{lang}: {logs}"
        );
    }

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
