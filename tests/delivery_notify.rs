//! `Notifier`: templated and raw emails (to, cc, bcc, attachments) and SMS,
//! through the senders the `Otp` handle was built with.

mod common;

use serde_json::json;
use tower_otp::{
    Mobile, NotifyError,
    delivery::{EmailMessage, MemoryOutbox, OutboxMessage},
};

fn emails(outbox: &MemoryOutbox) -> Vec<EmailMessage> {
    outbox
        .messages()
        .into_iter()
        .filter_map(|m| match m {
            OutboxMessage::Email(e) => Some(e),
            OutboxMessage::Sms(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn a_templated_email_carries_recipients_attachments_and_the_context() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder()
        .app_name("Shop")
        .email_sender(outbox.clone())
        .build()
        .unwrap();
    otp.notifier()
        .email("reset")
        .context(json!({"name": "<Ada>", "reset_url": "https://shop.example/r?a=1&b=2", "ttl_minutes": 15}))
        .to("ada@example.com")
        .cc("boss@example.com")
        .bcc("audit@example.com")
        .from("security@shop.example")
        .attach("notice.txt", "text/plain", b"hello".to_vec())
        .send()
        .await
        .unwrap();

    let sent = emails(&outbox);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.from.as_deref(), Some("security@shop.example"));
    assert_eq!(
        (m.to.as_slice(), m.cc.as_slice(), m.bcc.as_slice()),
        (
            &["ada@example.com".to_owned()][..],
            &["boss@example.com".to_owned()][..],
            &["audit@example.com".to_owned()][..],
        )
    );
    assert_eq!(m.subject, "Reset your Shop password");
    assert!(
        m.html.contains("Hi &lt;Ada&gt;"),
        "escaped in HTML: {}",
        m.html
    );
    // minijinja escapes `/` too (`&#x2f;`); browsers read both forms alike.
    assert!(
        m.html.contains("r?a=1&amp;b=2") && !m.html.contains("a=1&b=2"),
        "{}",
        m.html
    );
    assert!(m.text.contains("Hi <Ada>") && m.text.contains("https://shop.example/r?a=1&b=2"));
    assert!(m.text.contains("15 minutes"));
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].filename, "notice.txt");
    assert_eq!(m.attachments[0].content_type, "text/plain");
    assert_eq!(&m.attachments[0].data[..], b"hello");
}

#[tokio::test]
async fn the_caller_may_override_app_name_and_raw_emails_get_a_text_part() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder()
        .app_name("Shop")
        .email_sender(outbox.clone())
        .build()
        .unwrap();
    let notifier = otp.notifier();
    notifier
        .email("default")
        .context(json!({"app_name": "Other", "message": "Line one"}))
        .to("ada@example.com")
        .send()
        .await
        .unwrap();
    notifier
        .raw_email("Shipped", "<p>Order <b>#42</b> &amp; more</p>")
        .to("ada@example.com")
        .send()
        .await
        .unwrap();
    notifier
        .raw_email("Own text", "<p>html</p>")
        .text("my own text")
        .bcc("only-bcc@example.com")
        .send()
        .await
        .unwrap();

    let sent = emails(&outbox);
    assert_eq!(sent[0].subject, "A message from Other");
    assert_eq!(sent[1].subject, "Shipped");
    assert_eq!(sent[1].html, "<p>Order <b>#42</b> &amp; more</p>");
    assert_eq!(sent[1].text, "Order #42 & more");
    assert_eq!(sent[2].text, "my own text");
    assert_eq!(sent[2].bcc, ["only-bcc@example.com"]);
}

#[tokio::test]
async fn errors_are_reported_and_nothing_is_sent() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder()
        .email_sender(outbox.clone())
        .build()
        .unwrap();
    let notifier = otp.notifier();
    let err = notifier.email("welcome").send().await.unwrap_err();
    assert!(matches!(err, NotifyError::NoRecipient), "{err}");
    let err = notifier
        .email("no-such-template")
        .to("a@b.co")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Template(_)), "{err}");
    assert!(outbox.messages().is_empty());

    let failing = MemoryOutbox::failing();
    let otp = common::builder().email_sender(failing).build().unwrap();
    let err = otp
        .notifier()
        .email("welcome")
        .to("a@b.co")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Delivery(_)), "{err}");
}

#[tokio::test]
async fn sms_goes_through_the_sms_sender() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder()
        .sms_sender(outbox.clone())
        .build()
        .unwrap();
    let mobile = Mobile::parse(common::MOBILE, None).unwrap();
    otp.notifier()
        .sms(&mobile, "Your order shipped")
        .await
        .unwrap();
    match &outbox.messages()[..] {
        [OutboxMessage::Sms(sms)] => {
            assert_eq!(sms.to, common::MOBILE);
            assert_eq!(sms.body, "Your order shipped");
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "twilio")]
#[tokio::test]
async fn sms_through_a_verifier_only_provider_is_refused() {
    let otp = common::builder()
        .sms_verifier(
            tower_otp::delivery::TwilioVerify::new("AC1", "t", "VA1")
                .base_url("http://127.0.0.1:9"),
        )
        .build()
        .unwrap();
    let mobile = Mobile::parse(common::MOBILE, None).unwrap();
    let err = otp.notifier().sms(&mobile, "hi").await.unwrap_err();
    assert!(matches!(err, NotifyError::SmsUnsupported), "{err}");
}

#[test]
fn render_email_previews_without_sending() {
    let outbox = MemoryOutbox::new();
    let otp = common::builder()
        .app_name("Shop")
        .email_sender(outbox.clone())
        .build()
        .unwrap();
    let preview = otp
        .notifier()
        .render_email(
            "document",
            json!({"document_name": "Invoice 7", "name": "Ada"}),
        )
        .unwrap();
    assert_eq!(preview.subject, "Invoice 7 from Shop");
    assert!(preview.text.contains("Hi Ada") && preview.text.contains("Invoice 7 attached"));
    assert!(outbox.messages().is_empty());
}
