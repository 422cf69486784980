//! Security hardening: attempts under concurrency answer as the contract
//! says, and enumeration-safe mode is refused where it cannot hide timing.

mod common;

use common::app;

use std::sync::Arc;

use app::TestApp;
use tower_otp::{
    ConfigError, OtpStore,
    delivery::{MemoryOutbox, TwilioVerify},
};

/// Sends a code to a fresh address and fires `n` verifies at once, all with
/// `guess(code)`; returns the status/code pairs.
async fn parallel_verifies(
    app: Arc<TestApp>,
    n: usize,
    guess: fn(&str) -> String,
) -> Vec<(u16, String)> {
    let email = common::redis_server::random_email();
    app.send_email(&email).await.assert_success();
    let code = app.code_for(&email);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let app = Arc::clone(&app);
            let (email, candidate) = (email.clone(), guess(&code));
            tokio::spawn(async move {
                let answer = app.verify_email(&email, &candidate).await;
                (answer.status.as_u16(), answer.code().to_owned())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn count(answers: &[(u16, String)], code: &str) -> usize {
    answers.iter().filter(|(_, c)| c == code).count()
}

async fn only_the_last_attempt_answers_attempts_exceeded(app: Arc<TestApp>) {
    let answers = parallel_verifies(Arc::clone(&app), 50, app::wrong_code).await;
    // 5 attempts: 4 wrong answers, the one that took the last attempt is
    // `attempts_exceeded`, every other request found no live code.
    assert_eq!(count(&answers, "otp_invalid"), 4, "{answers:?}");
    assert_eq!(count(&answers, "attempts_exceeded"), 1, "{answers:?}");
    assert_eq!(count(&answers, "otp_expired"), 45, "{answers:?}");

    let answers = parallel_verifies(app, 50, |code| code.to_owned()).await;
    // A correct code succeeds once; the others find it used, never "too
    // many attempts".
    assert_eq!(count(&answers, ""), 1, "{answers:?}");
    assert_eq!(count(&answers, "attempts_exceeded"), 0, "{answers:?}");
    assert_eq!(count(&answers, "otp_expired"), 49, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_on_the_memory_store() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(common::builder_with(&outbox).ip_limits(0, 0), outbox);
    only_the_last_attempt_answers_attempts_exceeded(Arc::new(app)).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_on_redis() {
    use common::redis_server::{random_prefix, shared_redis};
    use tower_otp::store::RedisStore;
    let Some(url) = shared_redis().await else {
        return;
    };
    let store: Arc<dyn OtpStore> = Arc::new(
        RedisStore::builder(url)
            .prefix(random_prefix())
            .build()
            .unwrap(),
    );
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        common::builder_with(&outbox)
            .ip_limits(0, 0)
            .shared_store(store),
        outbox,
    );
    only_the_last_attempt_answers_attempts_exceeded(Arc::new(app)).await;
}

#[test]
fn enumeration_safe_mode_is_refused_with_a_provider_that_checks_codes() {
    let err = common::builder_with(&MemoryOutbox::new())
        .enumeration_safe()
        .sms_verifier(TwilioVerify::new("AC1", "token", "VA1"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                name: "enumeration_safe",
                ..
            }
        ),
        "{err}"
    );
    // With our own SMS codes it stays available.
    assert!(
        common::builder_with(&MemoryOutbox::new())
            .enumeration_safe()
            .build()
            .is_ok()
    );
}
