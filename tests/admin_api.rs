//! The operator's API (issue 17, item 2): `Otp::admin()` shows what is
//! pending for a contact (purposes, seconds and attempts left, sends in the
//! window, cooldown, failure budget; never a code, hash or salt), cancels
//! pending codes and unlocks a contact, on the memory store and on Redis
//! shared by two instances.

mod common;

use std::{sync::Arc, time::Duration};

use common::{app::wrong_code, builder_with};
use serde_json::{Value, json};
use tower_otp::{
    Otp, OtpBuilder,
    admin::AdminError,
    delivery::MemoryOutbox,
    store::{MemoryStore, OtpStore},
};

/// An `Otp` on `store` delivering into `outbox`, quota 2 per 10 minutes,
/// failure budget 3.
fn otp_on(store: Arc<dyn OtpStore>, outbox: &MemoryOutbox) -> Otp {
    configure(builder_with(outbox).shared_store(store))
}

fn configure(builder: OtpBuilder) -> Otp {
    builder
        .send_quota(2, Duration::from_secs(600))
        .failure_budget(3)
        .build()
        .expect("otp")
}

async fn send(otp: &Otp, email: &str, purpose: &str) -> (u16, Value) {
    let (status, body) = common::post(
        otp,
        "/send-otp/",
        json!({ "email": email, "purpose": purpose }),
    )
    .await;
    (status.as_u16(), body)
}

async fn verify(otp: &Otp, email: &str, code: &str, purpose: &str) -> (u16, Value) {
    let (status, body) = common::post(
        otp,
        "/verify-otp/",
        json!({ "email": email, "otp": code, "purpose": purpose }),
    )
    .await;
    (status.as_u16(), body)
}

fn code(outbox: &MemoryOutbox, email: &str) -> String {
    outbox.last_code_for(email).expect("a code was sent")
}

/// Pending on `b` shows what was sent through `a`; the report carries no
/// code and nothing but the documented fields.
async fn pending_shows_purposes_attempts_and_sends(a: &Otp, b: &Otp, outbox: &MemoryOutbox) {
    let email = format!("ada{:x}@example.com", rand_u64());
    assert_eq!(send(a, &email, "verify").await.0, 200);
    let verify_code = code(outbox, &email);
    assert_eq!(
        verify(a, &email, &wrong_code(&verify_code), "verify")
            .await
            .0,
        400
    );
    // The canonical mailbox: a tagged, upper-cased form is the same contact.
    let tagged = email.replacen('@', "+admin@", 1).to_uppercase();
    let admin = b.admin();
    let contact = admin.parse_contact(&tagged).unwrap();
    let report = admin.pending(&contact).await.unwrap();
    assert_eq!(report.codes.len(), 1, "{report:?}");
    assert_eq!(report.codes[0].purpose, "verify");
    assert_eq!(report.codes[0].attempts_left, 4);
    assert!(
        (299..=300).contains(&report.codes[0].expires_in),
        "{report:?}"
    );
    assert_eq!((report.sends_in_window, report.send_quota), (1, 2));
    assert!((29..=30).contains(&report.cooldown_left), "{report:?}");
    assert!((599..=600).contains(&report.window_left), "{report:?}");
    assert_eq!((report.failures, report.locked_for), (1, 0));

    // A second purpose, after the cooldown is lifted.
    admin.unlock(&contact).await.unwrap();
    assert_eq!(send(a, &email, "login").await.0, 200);
    let login_code = code(outbox, &email);
    let report = admin.pending(&contact).await.unwrap();
    let purposes: Vec<_> = report.codes.iter().map(|c| c.purpose.as_str()).collect();
    assert_eq!(purposes, ["verify", "login"], "{report:?}");
    assert_eq!(report.codes[1].attempts_left, 5);
    assert_eq!(report.sends_in_window, 1, "unlock restarted the quota");

    let json = serde_json::to_value(&report).unwrap();
    let text = json.to_string();
    for secret in [&verify_code, &login_code] {
        assert!(!text.contains(secret.as_str()), "a code leaked: {text}");
    }
    assert!(!text.contains(&email[..6]), "unmasked contact: {text}");
    let mut fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "channel",
            "codes",
            "contact",
            "cooldown_left",
            "failures",
            "locked_for",
            "send_quota",
            "sends_in_window",
            "window_left"
        ]
    );
    let mut code_fields: Vec<_> = json["codes"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    code_fields.sort();
    assert_eq!(code_fields, ["attempts_left", "expires_in", "purpose"]);
}

/// Cancel on `b` makes the right code `otp_expired` on `a`: one purpose,
/// then all.
async fn cancel_expires_the_code(a: &Otp, b: &Otp, outbox: &MemoryOutbox) {
    let email = format!("bob{:x}@example.com", rand_u64());
    let admin = b.admin();
    let contact = admin.parse_contact(&email).unwrap();
    assert_eq!(send(a, &email, "login").await.0, 200);
    let login = code(outbox, &email);
    admin.unlock(&contact).await.unwrap();
    assert_eq!(send(a, &email, "reset").await.0, 200);
    let reset = code(outbox, &email);
    admin.unlock(&contact).await.unwrap();
    assert_eq!(send(a, &email, "verify").await.0, 200);
    let plain = code(outbox, &email);

    assert!(matches!(
        admin.cancel(&contact, Some("no_such_purpose")).await,
        Err(AdminError::UnknownPurpose)
    ));
    assert_eq!(admin.cancel(&contact, Some("login")).await.unwrap(), 1);
    let (status, body) = verify(a, &email, &login, "login").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("otp_expired")));
    assert_eq!(admin.pending(&contact).await.unwrap().codes.len(), 2);

    assert_eq!(admin.cancel(&contact, None).await.unwrap(), 2);
    let (status, body) = verify(a, &email, &reset, "reset").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("otp_expired")));
    let (status, body) = verify(a, &email, &plain, "verify").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("otp_expired")));
    assert!(admin.pending(&contact).await.unwrap().codes.is_empty());
}

/// A contact locked by its failure budget, in its cooldown and out of
/// quota on `a`: unlock on `b` lets it verify and send again on `a`.
async fn unlock_lifts_lock_cooldown_and_quota(a: &Otp, b: &Otp, outbox: &MemoryOutbox) {
    let email = format!("eve{:x}@example.com", rand_u64());
    let admin = b.admin();
    let contact = admin.parse_contact(&email).unwrap();
    assert_eq!(send(a, &email, "verify").await.0, 200);
    let right = code(outbox, &email);
    for _ in 0..3 {
        verify(a, &email, &wrong_code(&right), "verify").await;
    }
    let (status, body) = verify(a, &email, &right, "verify").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    let (status, _) = send(a, &email, "verify").await;
    assert_eq!(status, 429, "cooldown");
    let report = admin.pending(&contact).await.unwrap();
    assert_eq!(report.failures, 3);
    assert!(report.locked_for >= 29, "{report:?}");

    admin.unlock(&contact).await.unwrap();
    let report = admin.pending(&contact).await.unwrap();
    assert_eq!(
        (
            report.failures,
            report.locked_for,
            report.cooldown_left,
            report.sends_in_window
        ),
        (0, 0, 0, 0)
    );
    let (status, body) = verify(a, &email, &right, "verify").await;
    assert_eq!(status, 200, "{body}");

    // Quota 2: two sends, then refused; unlock starts the quota again.
    for _ in 0..2 {
        assert_eq!(send(a, &email, "verify").await.0, 200);
        admin.unlock(&contact).await.unwrap();
    }
    assert_eq!(send(a, &email, "verify").await.0, 200);
    let (status, body) = send(a, &email, "verify").await;
    assert_eq!(status, 429, "{body}");
    admin.unlock(&contact).await.unwrap();
    let (status, body) = send(a, &email, "verify").await;
    assert_eq!(status, 200, "{body}");
}

/// Logs of this binary (a global subscriber, installed once).
fn logs() -> &'static common::logs::Captured {
    common::logs::global(tracing::Level::TRACE)
}

/// The operator's actions are logged with the masked contact only.
#[tokio::test]
async fn admin_actions_log_the_masked_contact_only() {
    let logs = logs();
    let (otp, outbox) = memory();
    let email = format!("zed{:x}@example.com", rand_u64());
    assert_eq!(send(&otp, &email, "verify").await.0, 200);
    let code = code(&outbox, &email);
    let admin = otp.admin();
    let contact = admin.parse_contact(&email).unwrap();
    admin.pending(&contact).await.unwrap();
    admin.cancel(&contact, None).await.unwrap();
    admin.unlock(&contact).await.unwrap();
    let text = logs.text();
    assert!(text.contains("admin: pending codes cancelled"), "{text}");
    assert!(text.contains("admin: contact unlocked"), "{text}");
    assert!(text.contains("z***@example.com"), "{text}");
    assert!(!text.contains(&email), "unmasked contact in the log");
    assert!(!text.contains(&code), "a code in the log");
}

fn rand_u64() -> u64 {
    use rand::RngExt;
    rand::rng().random::<u64>()
}

fn memory() -> (Otp, MemoryOutbox) {
    let outbox = MemoryOutbox::new();
    (otp_on(Arc::new(MemoryStore::new()), &outbox), outbox)
}

#[tokio::test]
async fn memory_pending_shows_purposes_attempts_and_sends() {
    let (otp, outbox) = memory();
    pending_shows_purposes_attempts_and_sends(&otp, &otp, &outbox).await;
}

#[tokio::test]
async fn memory_cancel_expires_the_code() {
    let (otp, outbox) = memory();
    cancel_expires_the_code(&otp, &otp, &outbox).await;
}

#[tokio::test]
async fn memory_unlock_lifts_lock_cooldown_and_quota() {
    let (otp, outbox) = memory();
    unlock_lifts_lock_cooldown_and_quota(&otp, &otp, &outbox).await;
}

#[tokio::test]
async fn mobile_numbers_are_read_like_the_routes() {
    let outbox = MemoryOutbox::new();
    let otp = configure(builder_with(&outbox).default_region(tower_otp::Region::US));
    let admin = otp.admin();
    let (status, _) =
        common::post(&otp, "/send-mobile-otp/", json!({ "mobile": "4155550123" })).await;
    assert_eq!(status, 200);
    let report = admin
        .pending(&admin.parse_contact(common::MOBILE).unwrap())
        .await
        .unwrap();
    assert_eq!((report.channel, report.codes.len()), ("mobile", 1));
    assert!(!report.contact.contains("5550123"), "{}", report.contact);
    assert!(matches!(
        admin.parse_contact("not a number"),
        Err(AdminError::InvalidContact(_))
    ));
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    /// Two instances (separate `Otp`s, stores and connection pools) on one
    /// Redis, with one prefix.
    async fn two_instances() -> Option<(Otp, Otp, MemoryOutbox)> {
        let url = common::redis_server::shared_redis().await?;
        let prefix = common::redis_server::random_prefix();
        let outbox = MemoryOutbox::new();
        let make = || {
            let store = tower_otp::store::RedisStore::builder(url.clone())
                .prefix(prefix.clone())
                .build()
                .expect("store");
            otp_on(Arc::new(store), &outbox)
        };
        Some((make(), make(), outbox))
    }

    #[tokio::test]
    async fn pending_on_another_instance() {
        let Some((a, b, outbox)) = two_instances().await else {
            return;
        };
        pending_shows_purposes_attempts_and_sends(&a, &b, &outbox).await;
    }

    #[tokio::test]
    async fn cancel_on_another_instance() {
        let Some((a, b, outbox)) = two_instances().await else {
            return;
        };
        cancel_expires_the_code(&a, &b, &outbox).await;
    }

    #[tokio::test]
    async fn unlock_on_another_instance() {
        let Some((a, b, outbox)) = two_instances().await else {
            return;
        };
        unlock_lifts_lock_cooldown_and_quota(&a, &b, &outbox).await;
    }
}
