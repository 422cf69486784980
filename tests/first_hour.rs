//! Small things a new user trips over: a landline is told it cannot
//! receive SMS, an empty hashing pool is refused at start-up.

mod common;

use common::app;

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
    for (workers, queue) in [(0, 0), (0, 4)] {
        let err = common::builder_with(&MemoryOutbox::new())
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
    // No waiting place is valid: a busy pool answers `overloaded` at once.
    assert!(
        common::builder_with(&MemoryOutbox::new())
            .hash_pool_size(1, 0)
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn the_host_can_clear_the_grant_cookie() {
    let app = TestApp::new();
    let value = app.otp.clear_grant_cookie();
    let value = value.to_str().unwrap();
    assert!(value.starts_with("__Host-otp_verification=;"), "{value}");
    for attribute in ["Max-Age=0", "Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(value.contains(attribute), "{value}");
    }
    let outbox = MemoryOutbox::new();
    let insecure = common::builder_with(&outbox)
        .insecure_cookie()
        .build()
        .unwrap();
    assert!(
        !insecure
            .clear_grant_cookie()
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

/// A body trickled byte by byte never completes within the deadline: 408
/// `request_timeout`, answered while the client is still sending.
#[tokio::test]
async fn a_trickled_body_gets_408_within_the_deadline() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let base =
        app::serve(common::builder_with(&MemoryOutbox::new()).body_timeout(Duration::from_secs(1)))
            .await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /send-otp/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 200\r\n\r\n{\"email\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        // One byte every 100 ms: the body would take 20 s.
        for _ in 0..200 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("request_timeout") {
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
            .await
            .expect("an answer before the body is complete")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    trickle.abort();
}

/// In Secure mode (the default) the grant cookie is `__Host-otp_verification`
/// and only that name is read: a bare `otp_verification` cookie, which a
/// sibling subdomain could plant, proves nothing.
#[tokio::test]
async fn in_secure_mode_only_the_host_prefixed_cookie_is_read() {
    let app = TestApp::new();
    let token = app.prove_email("ada@example.com").await;
    let with_cookie = |cookie: String| {
        http::Request::get("/email-only")
            .header("cookie", cookie)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let answer = app
        .request(with_cookie(format!("__Host-otp_verification={token}")))
        .await;
    assert_eq!(answer.status, 200);
    let answer = app
        .request(with_cookie(format!("otp_verification={token}")))
        .await;
    answer.assert_error(401, "verification_required");

    // With the cookie not Secure (plain HTTP in development), the bare name.
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(common::builder_with(&outbox).insecure_cookie(), outbox);
    let token = app.prove_email("ada@example.com").await;
    let answer = app
        .request(with_cookie(format!("otp_verification={token}")))
        .await;
    assert_eq!(answer.status, 200);
}
