//! Single-use grants: the first request an extractor accepts spends the
//! grant (every extractor of that request accepts it); a replay is 401, on
//! every instance sharing the store.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::app::TestApp;
use http::Request;
use serde_json::json;
use tower_otp::{OtpBuilder, delivery::MemoryOutbox, store::OtpStore};

fn single_use(store: Option<Arc<dyn OtpStore>>, outbox: &MemoryOutbox) -> TestApp {
    let mut builder = common::builder_with(outbox).single_use_grants();
    if let Some(store) = store {
        builder = builder.shared_store(store);
    }
    TestApp::with(builder, outbox.clone())
}

/// Proves both channels and returns the grant.
async fn both(app: &TestApp) -> String {
    let email = app.prove_email("ada@example.com").await;
    app.send_mobile(common::MOBILE).await.assert_success();
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({"mobile": common::MOBILE, "otp": app.code_for(common::MOBILE)}),
            &[("x-verification-token", &email)],
        )
        .await;
    answer.assert_success();
    answer.token()
}

fn register(token: &str) -> Request<Body> {
    Request::post("/register")
        .header("x-verification-token", token)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap()
}

#[tokio::test]
async fn a_grant_is_accepted_once_then_refused() {
    let outbox = MemoryOutbox::new();
    let app = single_use(None, &outbox);
    let token = both(&app).await;
    // Two extractors (email and mobile) in one handler: one request, one spend.
    let first = app.request(register(&token)).await;
    first.assert_success();
    let replay = app.request(register(&token)).await;
    replay.assert_error(401, "verification_required");
    // Under `Option`, a spent grant is no grant.
    let maybe = app.get_with_token("/maybe", &token).await;
    assert_eq!(maybe.raw, "anonymous");
}

#[tokio::test]
async fn a_spent_grant_is_not_revived_by_verifying_another_channel() {
    let outbox = MemoryOutbox::new();
    let app = single_use(None, &outbox);
    let email = app.prove_email("ada@example.com").await;
    assert_eq!(app.get_with_token("/email-only", &email).await.status, 200);
    // Holding the spent email grant while verifying a mobile: the new grant
    // proves the mobile only.
    app.send_mobile(common::MOBILE).await.assert_success();
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({"mobile": common::MOBILE, "otp": app.code_for(common::MOBILE)}),
            &[("x-verification-token", &email)],
        )
        .await;
    answer.assert_success();
    assert_eq!(answer.body["verified"], json!({"mobile": common::MOBILE}));
    app.get_with_token("/email-only", &answer.token())
        .await
        .assert_error(401, "verification_required");
}

#[tokio::test]
async fn an_extractor_that_refuses_the_grant_does_not_spend_it() {
    let outbox = MemoryOutbox::new();
    let app = single_use(None, &outbox);
    let email_only = app.prove_email("ada@example.com").await;
    // The mobile extractor refuses an email-only grant: nothing is spent.
    app.get_with_token("/mobile-only", &email_only)
        .await
        .assert_error(401, "verification_required");
    assert_eq!(
        app.get_with_token("/email-only", &email_only).await.status,
        200
    );
    assert_eq!(
        app.get_with_token("/email-only", &email_only).await.status,
        401
    );
}

#[tokio::test]
async fn without_the_mode_a_grant_lasts_its_lifetime() {
    let app = TestApp::new();
    let token = app.prove_email("ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(app.get_with_token("/email-only", &token).await.status, 200);
    }
}

#[tokio::test]
async fn the_mode_comes_from_the_environment() {
    let builder = OtpBuilder::from_env_with(|k| match k {
        "OTP_SECRET" => Some(common::SECRET.into()),
        "OTP_SINGLE_USE_GRANTS" => Some("true".into()),
        _ => None,
    })
    .unwrap();
    assert!(builder.build().unwrap().config().single_use_grants);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_grant_spent_on_one_instance_is_refused_on_another() {
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
    let (a, b) = (
        single_use(Some(Arc::clone(&store)), &outbox),
        single_use(Some(store), &outbox),
    );
    let token = a.prove_email("ada@example.com").await;
    assert_eq!(b.get_with_token("/email-only", &token).await.status, 200);
    a.get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
}

#[test]
fn verify_parts_refuses_to_skip_the_spend() {
    // The plain function cannot record a spend: with single-use grants it
    // answers 500 and points at `verify_parts_once`.
    let outbox = MemoryOutbox::new();
    let app = single_use(None, &outbox);
    let token = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(app.prove_email("ada@example.com"));
    let service = tower::ServiceBuilder::new()
        .layer(app.otp.layer())
        .service_fn(|request: Request<Body>| async move {
            let (mut parts, _) = request.into_parts();
            let plain = tower_otp::verify_parts(&parts)
                .map(|_| ())
                .map_err(|r| r.status());
            let once = tower_otp::verify_parts_once(&mut parts)
                .await
                .map(|_| ())
                .map_err(|r| r.status());
            let again = tower_otp::verify_parts_once(&mut parts)
                .await
                .map(|_| ())
                .map_err(|r| r.status());
            Ok::<_, std::convert::Infallible>(http::Response::new(format!(
                "{plain:?} {once:?} {again:?}"
            )))
        });
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let response = service
                .oneshot(
                    Request::get("/x")
                        .header("x-verification-token", &token)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        });
    // Plain: 500; once: accepted; again within the same request: accepted.
    assert_eq!(answer, "Err(500) Ok(()) Ok(())");
}

/// A wrong code while holding a single-use grant does not spend it: the
/// right code next still carries what it proves.
#[tokio::test]
async fn a_typo_does_not_burn_the_held_grant() {
    let outbox = MemoryOutbox::new();
    let app = single_use(None, &outbox);
    let email = app.prove_email("ada@example.com").await;
    app.send_mobile(common::MOBILE).await.assert_success();
    let code = app.code_for(common::MOBILE);
    app.post_with(
        "/verify-mobile-otp/",
        json!({"mobile": common::MOBILE, "otp": common::app::wrong_code(&code)}),
        &[("x-verification-token", &email)],
    )
    .await
    .assert_error(400, "otp_invalid");
    let answer = app
        .post_with(
            "/verify-mobile-otp/",
            json!({"mobile": common::MOBILE, "otp": code}),
            &[("x-verification-token", &email)],
        )
        .await;
    answer.assert_success();
    assert_eq!(answer.body["verified"]["email"], "ada@example.com");
    assert_eq!(answer.body["verified"]["mobile"], common::MOBILE);
}
