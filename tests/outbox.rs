//! `MemoryOutbox` as a host's test double: it finds the code that was
//! issued whatever the app name or template hold, looks recipients up the
//! way the crate normalizes contacts, and fails on request so that every
//! delivery path answers through the layer as the contract says.

mod common;

use common::{MOBILE, builder_with, post};
use serde_json::json;
use tower_otp::delivery::{MemoryOutbox, memory::Failure};

#[tokio::test]
async fn the_code_found_is_the_issued_one_even_when_the_app_name_has_digits() {
    let outbox = MemoryOutbox::new();
    let otp = builder_with(&outbox).app_name("Shop 2024").build().unwrap();

    let (status, body) = post(&otp, "/send-otp/", json!({"email": "ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    let code = outbox.last_code_for("ada@example.com").expect("a code");
    assert_ne!(code, "2024", "the app name is not the code");
    let (status, body) = post(
        &otp,
        "/verify-otp/",
        json!({"email": "ada@example.com", "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "the code found is the one issued: {body}");

    let (status, body) = post(&otp, "/send-mobile-otp/", json!({"mobile": MOBILE})).await;
    assert_eq!(status, 200, "{body}");
    let code = outbox.last_code_for(MOBILE).expect("a code");
    assert_ne!(code, "2024", "the app name is not the code");
    let (status, body) = post(
        &otp,
        "/verify-mobile-otp/",
        json!({"mobile": MOBILE, "otp": code}),
    )
    .await;
    assert_eq!(status, 200, "the code found is the one issued: {body}");
}

#[tokio::test]
async fn recipients_are_looked_up_as_the_crate_normalizes_them() {
    let outbox = MemoryOutbox::new();
    let otp = builder_with(&outbox).build().unwrap();
    let (status, body) = post(&otp, "/send-otp/", json!({"email": "Ada@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    let code = outbox.last_code_for("Ada@example.com").expect("as sent");
    for spelling in [
        "Ada@Example.COM",
        "  Ada@EXAMPLE.com ",
        "Ada <Ada@example.COM>",
    ] {
        assert_eq!(
            outbox.last_code_for(spelling).as_deref(),
            Some(code.as_str()),
            "{spelling}"
        );
    }
    // The local part is the mailbox's own: not folded.
    assert_eq!(outbox.last_code_for("ADA@example.com"), None);

    let (status, body) = post(&otp, "/send-mobile-otp/", json!({"mobile": MOBILE})).await;
    assert_eq!(status, 200, "{body}");
    let code = outbox.last_code_for(MOBILE).expect("as sent");
    for spelling in ["+1 415 555 0123", "+1 (415) 555-0123", " +14155550123"] {
        assert_eq!(
            outbox.last_code_for(spelling).as_deref(),
            Some(code.as_str()),
            "{spelling}"
        );
    }
}

#[tokio::test]
async fn failures_on_request_take_every_delivery_path_through_the_layer() {
    let outbox = MemoryOutbox::new();
    // Three tries, 10 ms apart (common::builder).
    let otp = builder_with(&outbox)
        .resend_cooldown(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let send = |email: &'static str| {
        let otp = otp.clone();
        async move { post(&otp, "/send-otp/", json!({ "email": email })).await }
    };

    // One transient failure: the retry delivers.
    outbox.fail_next(Failure::Transient);
    let (status, body) = send("a@example.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(outbox.attempts(), 2);
    assert!(outbox.last_code_for("a@example.com").is_some());

    // Transient on every try: 502 after the three tries, nothing captured.
    outbox.fail_always(Failure::Transient);
    let (status, body) = send("b@example.com").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    assert_eq!(outbox.attempts(), 5);
    assert!(outbox.last_to("b@example.com").is_none());

    // Permanent: 502 at once, no retry.
    outbox.fail_always(Failure::Permanent);
    let (status, body) = send("c@example.com").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (502, Some("delivery_failed")),
        "{body}"
    );
    assert_eq!(outbox.attempts(), 6);

    // The provider refuses the recipient: the contact's own error.
    outbox.fail_always(Failure::InvalidRecipient);
    let (status, body) = send("d@example.com").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_email")),
        "{body}"
    );
    let (status, body) = post(&otp, "/send-mobile-otp/", json!({"mobile": MOBILE})).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_mobile")),
        "{body}"
    );

    // Back to normal.
    outbox.succeed();
    let (status, body) = send("e@example.com").await;
    assert_eq!(status, 200, "{body}");
    assert!(outbox.last_code_for("e@example.com").is_some());
}
