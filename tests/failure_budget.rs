//! The failure budget across codes (issue 13, items 6 and 13): per contact,
//! consecutive wrong codes are counted across codes; after
//! `OTP_FAILURE_BUDGET` (25) of them with no success between, verifies for
//! that contact are 429 `rate_limited` with `Retry-After` (30 s at first),
//! even with the right code, and spend no attempt. Only a wrong code against
//! a live code counts; a success resets the count; it holds across
//! instances sharing a Redis; test contacts count like anyone's.

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    app::{Answer, TestApp, wrong_code},
    builder_with,
};
use tower_otp::{
    Contact, Email, OtpBuilder,
    delivery::MemoryOutbox,
    store::{MemoryStore, OtpStore},
    test_mode::TestContacts,
};

/// Logs of this binary (a global subscriber, installed once).
fn logs() -> &'static common::logs::Captured {
    common::logs::global(tracing::Level::TRACE)
}

/// Sends as often as the test likes: no cooldown, a large quota, no
/// per-IP limits (in-process requests all share the "unknown" client).
fn unlimited(builder: OtpBuilder) -> OtpBuilder {
    builder
        .resend_cooldown(Duration::ZERO)
        .send_quota(1000, Duration::from_secs(600))
        .ip_limits(0, 0)
}

/// `n` wrong codes for `email`, on as many codes as that takes (5 attempts
/// each), sent and verified on `apps` in turn. Every answer must be
/// `otp_invalid` or, on a code's 5th attempt, `attempts_exceeded`.
async fn wrong_codes(apps: &[&TestApp], email: &str, n: usize) {
    let mut left = 0;
    let mut code = String::new();
    for i in 0..n {
        let app = apps[i % apps.len()];
        if left == 0 {
            app.send_email(email).await.assert_success();
            code = app.code_for(email);
            left = 5;
        }
        let answer = app.verify_email(email, &wrong_code(&code)).await;
        left -= 1;
        if left == 0 {
            answer.assert_error(429, "attempts_exceeded");
        } else {
            answer.assert_error(400, "otp_invalid");
            assert_eq!(answer.body["attempts_left"], left, "failure {}", i + 1);
        }
    }
}

/// A fresh code for `email`, sent on `app`.
async fn fresh_code(app: &TestApp, email: &str) -> String {
    app.send_email(email).await.assert_success();
    app.code_for(email)
}

#[track_caller]
fn assert_locked(answer: &Answer) {
    answer.assert_error(429, "rate_limited");
    let header: u64 = answer.header("retry-after").parse().expect("Retry-After");
    assert!((30..=31).contains(&header), "Retry-After {header}");
    assert_eq!(answer.body["retry_after"], header);
}

fn key_of(app: &TestApp, email: &str) -> tower_otp::store::StoreKey {
    app.otp
        .store_key(&Contact::Email(Email::parse(email).unwrap()))
}

#[tokio::test]
async fn twenty_five_wrong_codes_across_codes_lock_the_contact_even_for_the_right_code() {
    let logs = logs();
    let store = Arc::new(MemoryStore::new());
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        unlimited(builder_with(&outbox)).shared_store(store.clone() as Arc<dyn OtpStore>),
        outbox,
    );
    let email = "locked.person@example.com";

    // Verifies with no live code are `otp_expired` and count nothing.
    for _ in 0..30 {
        app.verify_email(email, "123456")
            .await
            .assert_error(400, "otp_expired");
    }
    // 25 wrong codes over 5 codes: every one answers as usual, the 25th
    // (a code's 5th attempt) included.
    wrong_codes(&[&app], email, 25).await;
    assert_eq!(store.failures(&key_of(&app, email)), 25);

    // Locked: even the right code of a fresh code is refused, and it costs
    // no attempt.
    let code = fresh_code(&app, email).await;
    for _ in 0..3 {
        assert_locked(&app.verify_email(email, &code).await);
        assert_locked(&app.verify_email(email, &wrong_code(&code)).await);
    }
    assert_eq!(store.attempts_used(&key_of(&app, email)), Some(0));
    assert_eq!(
        store.failures(&key_of(&app, email)),
        25,
        "refusals count nothing"
    );

    // Another contact is not affected.
    let other = "someone.else@example.com";
    let other_code = fresh_code(&app, other).await;
    app.verify_email(other, &other_code).await.assert_success();

    // The operator's unlock: the same code now works, with all its attempts.
    store.reset_failures(&key_of(&app, email)).await.unwrap();
    app.verify_email(email, &code).await.assert_success();

    // The lock was logged, with the contact masked.
    let text = logs.text();
    assert!(text.contains("failure budget used up"), "{text}");
    assert!(text.contains("l***@example.com"), "{text}");
    assert!(!text.contains(email), "unmasked contact in the logs");
    assert!(!text.contains(&code), "a code in the logs");
}

#[tokio::test]
async fn a_success_before_the_budget_resets_it() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(unlimited(builder_with(&outbox)), outbox);
    let email = "forgetful@example.com";

    // 24 wrong codes, then the right one: the count starts again...
    wrong_codes(&[&app], email, 24).await;
    let code = fresh_code(&app, email).await;
    app.verify_email(email, &code).await.assert_success();
    // ...so 24 more are still answered as usual, and a success works...
    wrong_codes(&[&app], email, 24).await;
    let code = fresh_code(&app, email).await;
    app.verify_email(email, &code).await.assert_success();
    // ...while 25 in a row lock.
    wrong_codes(&[&app], email, 25).await;
    let code = fresh_code(&app, email).await;
    assert_locked(&app.verify_email(email, &code).await);
}

#[tokio::test]
async fn the_budget_is_configurable_and_can_be_turned_off() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(unlimited(builder_with(&outbox)).failure_budget(3), outbox);
    let email = "three@example.com";
    wrong_codes(&[&app], email, 3).await;
    let code = fresh_code(&app, email).await;
    assert_locked(&app.verify_email(email, &code).await);

    let outbox = MemoryOutbox::new();
    let off = TestApp::with(unlimited(builder_with(&outbox)).failure_budget(0), outbox);
    wrong_codes(&[&off], email, 30).await;
    let code = fresh_code(&off, email).await;
    off.verify_email(email, &code).await.assert_success();
}

#[test]
fn test_contacts_are_refused_with_the_failure_budget_off() {
    // Every send gives a test contact's fixed code fresh attempts (no
    // cooldown, no quota): without the budget nothing bounds the guesses.
    let reviewers = || {
        TestContacts::new("424242")
            .email("review@example.com")
            .unwrap()
    };
    let outbox = MemoryOutbox::new();
    let err = builder_with(&outbox)
        .dangerous_test_contacts(reviewers())
        .failure_budget(0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("failure_budget"), "{err}");
    builder_with(&outbox)
        .dangerous_test_contacts(reviewers())
        .failure_budget(1)
        .build()
        .unwrap();
    let vars = [
        ("OTP_SECRET", common::SECRET),
        ("OTP_TEST_MODE", "enabled"),
        ("OTP_TEST_CONTACTS", "review@example.com"),
        ("OTP_TEST_CODE", "424242"),
        ("OTP_FAILURE_BUDGET", "0"),
    ];
    let err = OtpBuilder::from_env_with(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .and_then(OtpBuilder::build)
    .unwrap_err()
    .to_string();
    assert!(err.contains("OTP_FAILURE_BUDGET"), "{err}");
}

#[tokio::test]
async fn test_contacts_wrong_guesses_count_like_anyones() {
    let outbox = MemoryOutbox::new();
    let reviewers = TestContacts::new("424242")
        .email("review@example.com")
        .unwrap();
    let app = TestApp::with(
        unlimited(builder_with(&outbox)).dangerous_test_contacts(reviewers),
        outbox.clone(),
    );
    let email = "review@example.com";
    app.send_email(email).await.assert_success();
    for left in (1..=4).rev() {
        let answer = app.verify_email(email, "111111").await;
        answer.assert_error(400, "otp_invalid");
        assert_eq!(answer.body["attempts_left"], left);
    }
    app.verify_email(email, "111111")
        .await
        .assert_error(429, "attempts_exceeded");
    // The fixed code is destroyed with its attempts, like any code...
    app.verify_email(email, "424242")
        .await
        .assert_error(400, "otp_expired");
    // ...until the next send.
    app.send_email(email).await.assert_success();
    app.verify_email(email, "424242").await.assert_success();

    // And 25 wrong guesses in a row lock the test contact too.
    for _ in 0..5 {
        app.send_email(email).await.assert_success();
        for _ in 0..5 {
            app.verify_email(email, "111111").await;
        }
    }
    app.send_email(email).await.assert_success();
    assert_locked(&app.verify_email(email, "424242").await);
    assert!(
        outbox.messages().is_empty(),
        "nothing is sent to test contacts"
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_budget_holds_across_instances() {
    let Some(store) = common::redis_server::shared_store(Duration::from_secs(5)).await else {
        return;
    };
    let store: Arc<dyn OtpStore> = Arc::new(store);
    let outbox = MemoryOutbox::new();
    let one = TestApp::with(
        unlimited(builder_with(&outbox)).shared_store(Arc::clone(&store)),
        outbox.clone(),
    );
    let two = TestApp::with(
        unlimited(builder_with(&outbox)).shared_store(Arc::clone(&store)),
        outbox,
    );
    let email = common::redis_server::random_email();

    // A success on one instance resets what both counted.
    wrong_codes(&[&one, &two], &email, 24).await;
    let code = fresh_code(&one, &email).await;
    two.verify_email(&email, &code).await.assert_success();

    // 25 wrong codes, alternating instances: both refuse, right code too.
    wrong_codes(&[&one, &two], &email, 25).await;
    let code = fresh_code(&two, &email).await;
    assert_locked(&one.verify_email(&email, &code).await);
    assert_locked(&two.verify_email(&email, &code).await);

    // Unlocked through the store, the code works on either instance.
    store.reset_failures(&key_of(&one, &email)).await.unwrap();
    one.verify_email(&email, &code).await.assert_success();
}

/// Parallel wrong guesses (several per code, on codes of several purposes)
/// that all pass the lock check together still get no more checks than the
/// budget: each is counted before its check, and those past the budget are
/// refused with 429 before any hash.
#[tokio::test]
async fn parallel_guesses_across_purposes_never_exceed_the_budget() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        builder_with(&outbox)
            .resend_cooldown(Duration::ZERO)
            .max_attempts(10)
            .failure_budget(3),
        outbox,
    );
    let email = "parallel@example.io";
    let mut codes = Vec::new();
    for purpose in ["verify", "login", "reset"] {
        app.post(
            "/send-otp/",
            serde_json::json!({"email": email, "purpose": purpose}),
        )
        .await
        .assert_success();
        codes.push((purpose, app.code_for(email)));
    }
    let guesses = codes.iter().flat_map(|(purpose, code)| {
        let app = app.clone();
        let wrong = wrong_code(code);
        (0..10).map(move |_| {
            let app = app.clone();
            let wrong = wrong.clone();
            async move {
                app.post(
                    "/verify-otp/",
                    serde_json::json!({"email": email, "otp": wrong, "purpose": purpose}),
                )
                .await
            }
        })
    });
    let answers: Vec<Answer> = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|a| a.status != 429).count();
    assert!(
        checked <= 3,
        "{checked} guesses were checked against a budget of 3"
    );
    assert!(
        answers
            .iter()
            .all(|a| [400, 429].contains(&a.status.as_u16()))
    );
}

#[tokio::test]
async fn spelling_variants_of_one_inbox_share_one_failure_budget() {
    let store = Arc::new(MemoryStore::new());
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        unlimited(builder_with(&outbox)).shared_store(store.clone() as Arc<dyn OtpStore>),
        outbox,
    );
    // 25 wrong codes spread over five spellings of one inbox: five each.
    for variant in [
        "Ada@example.io",
        "ada@example.io",
        "ada+1@example.io",
        "ADA+news@Example.IO",
        "ada+x@example.io",
    ] {
        wrong_codes(&[&app], variant, 5).await;
    }
    assert_eq!(store.failures(&key_of(&app, "ada@example.io")), 25);
    // Every spelling, and the right code, is now locked.
    let code = fresh_code(&app, "ada+fresh@example.io").await;
    for variant in ["ada@example.io", "Ada+other@example.io"] {
        assert_locked(&app.verify_email(variant, &code).await);
    }
}
