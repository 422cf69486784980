//! An app that uses the extractors but never mounted `OtpLayer` gets 500
//! `internal` (the hint goes to the log), even for requests without a grant.
//! In a binary of its own: no layer may exist in this process.

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_otp::{VerifiedContact, VerifiedEmail};

#[tokio::test]
async fn extractors_without_any_layer_answer_internal() {
    let router: Router = Router::new()
        .route("/any", get(|_: VerifiedContact| async { "unreachable" }))
        .route("/email", get(|_: VerifiedEmail| async { "unreachable" }))
        .route(
            "/maybe",
            get(|_: Option<VerifiedContact>| async { "unreachable" }),
        );
    for path in ["/any", "/email", "/maybe"] {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "internal");
        assert!(
            !body.to_string().contains("OtpLayer"),
            "the hint stays in the log"
        );
    }
}
