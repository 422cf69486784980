//! Variants of one inbox (`Ada@`, `ada@`, `ada+1@`, Gmail's dots) are one
//! identity for cooldown, quota and the pending code (DESIGN.md "Contact
//! identity for limits"): an attacker cannot multiply the per-contact budget
//! by spelling an address differently. Mail still goes to the address as
//! typed, and the grant proves the address as typed in the verify.

mod common;

use common::app::TestApp;
use serde_json::json;
use tower_otp::{Email, delivery::MemoryOutbox};

#[tokio::test]
async fn spelling_variants_share_one_cooldown() {
    let app = TestApp::new();
    app.send_email("Ada@example.io").await.assert_success();
    for variant in ["ada@example.io", "ada+1@example.io", "ADA+promo@Example.IO"] {
        let answer = app.send_email(variant).await;
        answer.assert_error(429, "rate_limited");
        assert!(
            answer.body["retry_after"].as_u64().unwrap() > 0,
            "{variant}"
        );
    }
    // One message went out, to the address as typed.
    let messages = app.outbox.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].is_to("Ada@example.io"));
}

#[tokio::test]
async fn gmail_dots_and_googlemail_are_one_inbox() {
    let app = TestApp::new();
    app.send_email("a.d.a@gmail.com").await.assert_success();
    app.send_email("ada@googlemail.com")
        .await
        .assert_error(429, "rate_limited");
    app.send_email("A.DA+x@gmail.com")
        .await
        .assert_error(429, "rate_limited");
    // Elsewhere dots are part of the mailbox.
    app.send_email("a.d.a@example.io").await.assert_success();
    app.send_email("ada@example.io").await.assert_success();
}

#[tokio::test]
async fn a_code_sent_to_one_variant_verifies_with_another() {
    let app = TestApp::new();
    app.send_email("Ada+news@example.io").await.assert_success();
    let code = app.code_for("Ada+news@example.io");
    let answer = app.verify_email("ada@example.io", &code).await;
    answer.assert_success();
    // The grant proves the address as typed in the verify request.
    assert_eq!(answer.body["verified"]["email"], json!("ada@example.io"));
    // One pending code: it is spent for every variant.
    app.verify_email("Ada+news@example.io", &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test]
async fn the_quota_counts_every_variant() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .resend_cooldown(std::time::Duration::ZERO)
            .send_quota(2, std::time::Duration::from_secs(600)),
        outbox,
    );
    app.send_email("bob@example.io").await.assert_success();
    app.send_email("bob+a@example.io").await.assert_success();
    app.send_email("BOB+b@example.io")
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(app.outbox.messages().len(), 2);
}

#[test]
fn canonical_is_public_and_keeps_the_typed_address() {
    let email = Email::parse("Ada.L+x@GoogleMail.com").unwrap();
    assert_eq!(email.canonical(), "adal@gmail.com");
    assert_eq!(email.as_str(), "Ada.L+x@googlemail.com");
    // A local part that is only a tag stays whole.
    assert_eq!(
        Email::parse("+x@example.io").unwrap().canonical(),
        "+x@example.io"
    );
}
