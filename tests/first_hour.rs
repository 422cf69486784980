//! Small things a new user trips over: a landline is told it cannot
//! receive SMS, an empty hashing pool is refused at start-up.

mod app;

use app::TestApp;
use tower_otp::{ConfigError, delivery::MemoryOutbox};

#[tokio::test]
async fn a_landline_is_told_it_cannot_receive_text_messages() {
    let app = TestApp::new();
    // A London landline: a valid number, but no SMS.
    let answer = app.send_mobile("+442079460958").await;
    answer.assert_error(400, "invalid_mobile");
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("cannot receive text messages"),
        "{message}"
    );
    // A number that is no number at all keeps the general message.
    let answer = app.send_mobile("+4420").await;
    answer.assert_error(400, "invalid_mobile");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("valid mobile number")
    );
    assert!(app.outbox.messages().is_empty());
}

#[test]
fn an_empty_hashing_pool_is_refused() {
    for (workers, queue) in [(0, 0), (0, 4), (2, 0)] {
        let err = app::builder(&MemoryOutbox::new())
            .hash_pool_size(workers, queue)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: "hash_pool_size",
                    ..
                }
            ),
            "{workers}/{queue}: {err}"
        );
    }
    assert!(
        app::builder(&MemoryOutbox::new())
            .hash_pool_size(1, 1)
            .build()
            .is_ok()
    );
}
