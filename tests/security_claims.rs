//! The README's security claims that had no test, each observed as a user
//! or an attacker would: over HTTP, through the real layer.

mod common;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::body::Body;
use common::{
    MOBILE, SECRET,
    app::{TestApp, post_http, serve},
    builder_with,
};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tower_otp::{
    ClientAddr, Otp, OtpBuilder, OtpConfig,
    delivery::{DeliveryError, EmailMessage, EmailSender, MemoryOutbox},
    hash::HashParams,
    policy::{PolicyDecision, from_fn},
};

// --- SMS pumping: number types -------------------------------------------

#[tokio::test]
async fn premium_rate_shared_cost_and_fixed_line_numbers_are_refused() {
    let app = TestApp::new();
    // UK numbers of each type (libphonenumber's examples).
    for (kind, number) in [
        ("premium rate", "+449012345678"),
        ("shared cost", "+448431234567"),
        ("fixed line", "+441212345678"),
    ] {
        let answer = app.send_mobile(number).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{kind}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_mobile", "{kind}: {}", answer.body);
    }
    assert!(app.outbox.messages().is_empty(), "nothing was sent");
    // A UK mobile is fine: the refusal is the number type, not the country.
    app.send_mobile("+447400123456").await.assert_success();
}

// --- Brute force: the default per-IP verify limit ------------------------

#[tokio::test]
async fn the_default_per_ip_verify_limit_of_30_a_minute_is_reached() {
    // Default limits (no `.ip_limits`), a real socket so the IP is known.
    let base = serve(builder_with(&MemoryOutbox::new())).await;
    for i in 0..30 {
        // A different contact each time: only the IP budget is shared.
        let body = json!({"email": format!("v{i}@b.co"), "otp": "123456"});
        let (status, _, body) = post_http(&base, "/verify-otp/", body, &[]).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some("otp_expired")),
            "{i}: {body}"
        );
    }
    let body = json!({"email": "v30@b.co", "otp": "123456"});
    let (status, headers, body) = post_http(&base, "/verify-otp/", body, &[]).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
}

// --- CPU exhaustion: limits before hashing -------------------------------

#[tokio::test]
async fn a_send_in_its_cooldown_gets_429_even_when_the_hashing_pool_is_full() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(builder_with(&outbox).hash_pool_size(1, 0), outbox);
    app.send_email("a@b.co").await.assert_success();
    // Hold the pool's only place, as a flood of hashes would.
    let permit = app.otp.hash_pool().reserve().unwrap();
    // The cooldown is checked first: no hashing was needed to refuse it.
    let answer = app.send_email("a@b.co").await;
    answer.assert_error(429, "rate_limited");
    drop(permit);
}

// --- Enumeration-safe mode ------------------------------------------------

/// A sender that delivers into `outbox` only once the test opens the gate.
#[derive(Debug, Clone)]
struct Gated {
    outbox: MemoryOutbox,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl EmailSender for Gated {
    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let _open = self.gate.acquire().await.expect("gate");
        self.outbox.send_email(message).await
    }
}

#[tokio::test]
async fn enumeration_safe_mode_delivers_after_the_answer_with_equal_headers() {
    let outbox = MemoryOutbox::new();
    let gate = Arc::new(Semaphore::new(0));
    let app = TestApp::with(
        builder_with(&outbox)
            .ip_limits(0, 0) // per-IP budgets would differ between the two requests
            .email_sender(Gated {
                outbox: outbox.clone(),
                gate: gate.clone(),
            })
            .enumeration_safe()
            .contact_policy(from_fn(|contact| async move {
                if contact.as_str() == "taken@b.co" {
                    PolicyDecision::reject(StatusCode::CONFLICT, "already registered")
                } else {
                    PolicyDecision::Allow
                }
            })),
        outbox.clone(),
    );
    // The accepted contact's answer comes while its delivery is still held:
    // a slow provider cannot tell accepted from refused by timing.
    let accepted = tokio::time::timeout(Duration::from_secs(5), app.send_email("free@b.co"))
        .await
        .expect("the answer waited for the delivery");
    accepted.assert_success();
    assert!(outbox.messages().is_empty(), "delivered before the answer");
    let refused = app.send_email("taken@b.co").await;
    assert_eq!(refused.status, accepted.status);
    assert_eq!(refused.body, accepted.body);
    assert_eq!(refused.headers, accepted.headers, "headers differ");

    gate.add_permits(10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while outbox.last_code_for("free@b.co").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        outbox.last_to("taken@b.co").is_none(),
        "nothing to the refused contact"
    );
}

// --- Token tampering: a foreign grant under Option -----------------------

#[tokio::test]
async fn a_foreign_grant_is_none_under_option_and_401_when_required() {
    let app = TestApp::new();
    let outbox = MemoryOutbox::new();
    let foreign = TestApp::with(
        Otp::builder()
            .secret("another app's secret, 32 bytes ok")
            .hash_params(HashParams::insecure_fast())
            .email_sender(outbox.clone()),
        outbox,
    );
    let token = foreign.prove_email("a@b.co").await;
    // Valid where it was made...
    assert_eq!(
        &foreign.get_with_token("/maybe", &token).await.raw[..],
        b"a@b.co"
    );
    // ...and nobody here.
    let answer = app.get_with_token("/maybe", &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.raw[..], b"anonymous");
    app.get_with_token("/email-only", &token)
        .await
        .assert_error(401, "verification_required");
}

// --- Per-IP limiter: memory cap and recovery -----------------------------

/// A verify from `ip` (in process, with the address a host would insert).
async fn verify_from(app: &TestApp, ip: &str, n: usize) -> (StatusCode, Value) {
    let mut request = Request::post("/verify-otp/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"email": format!("cap{n}@b.co"), "otp": "123456"}).to_string(),
        ))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(format!("{ip}:4000").parse().unwrap()));
    let answer = app.request(request).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn the_limiter_table_is_capped_and_recovers_when_budgets_refill() {
    let mut config = OtpConfig::default();
    config.max_tracked_ips = 3;
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        Otp::builder()
            .config(config)
            .secret(SECRET)
            .hash_params(HashParams::insecure_fast())
            .email_sender(outbox.clone())
            // One verify a second refills: budgets are full again in 2 s.
            .ip_limits(60, 60),
        outbox,
    );
    for (n, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .into_iter()
        .enumerate()
    {
        let (status, body) = verify_from(&app, ip, n).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ip}: {body}");
    }
    // The table is full: new addresses share one overflow budget (60 a
    // minute here); once it is spent, new addresses are refused (fail
    // closed) while tracked ones keep their own budgets.
    for n in 0..60 {
        let (status, body) = verify_from(&app, &format!("198.51.100.{}", n + 1), 10 + n).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n}: {body}");
    }
    let (status, body) = verify_from(&app, "192.0.2.4", 3).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
    let (status, body) = verify_from(&app, "192.0.2.1", 4).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Once the tracked budgets are full again, they are swept and the new
    // address gets a place of its own: more requests than the overflow
    // budget has refilled in the meantime.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    for n in 0..5 {
        let (status, body) = verify_from(&app, "192.0.2.4", 80 + n).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "the table never recovered ({n}): {body}"
        );
    }
}

// --- Environment wiring, observed over HTTP -------------------------------

fn from_env(vars: &[(&str, &str)], outbox: &MemoryOutbox) -> OtpBuilder {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("OTP_SECRET".to_owned(), SECRET.to_owned())])
        .collect();
    OtpBuilder::from_env_with(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
        .hash_params(HashParams::insecure_fast())
        .email_sender(outbox.clone())
        .sms_sender(outbox.clone())
}

#[tokio::test]
async fn the_sms_guard_comes_from_the_environment() {
    let outbox = MemoryOutbox::new();
    let app = TestApp::with(
        from_env(
            &[
                ("OTP_SMS_ALLOWED_COUNTRIES", "1,44"),
                ("OTP_SMS_DENIED_COUNTRIES", "44"),
                ("OTP_SMS_COUNTRY_BUDGET_PER_HOUR", "1"),
            ],
            &outbox,
        ),
        outbox.clone(),
    );
    app.send_mobile("+919812345678")
        .await
        .assert_error(403, "contact_rejected");
    app.send_mobile("+447400123456")
        .await
        .assert_error(403, "contact_rejected");
    app.send_mobile(MOBILE).await.assert_success();
    let answer = app.send_mobile("+14155550124").await;
    answer.assert_error(429, "rate_limited");
    assert!(
        answer.body["retry_after"].as_u64().unwrap() > 60,
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn ip_limits_trusted_proxies_and_the_forwarded_header_come_from_the_environment() {
    let send = |base: &str, n: usize, headers: &'static [(&'static str, &'static str)]| {
        let base = base.to_owned();
        async move {
            let body = json!({"email": format!("e{n}@b.co")});
            post_http(&base, "/send-otp/", body, headers)
                .await
                .0
                .as_u16()
        }
    };
    const XFF_A: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.1")];
    const XFF_B: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.2")];
    const FWD_A: &[(&str, &str)] = &[("forwarded", "for=203.0.113.1")];
    const FWD_B: &[(&str, &str)] = &[("forwarded", "for=203.0.113.2")];

    // OTP_IP_SEND_PER_MINUTE=1, no trusted proxy: the header is ignored,
    // the connection's address has one send.
    let outbox = MemoryOutbox::new();
    let base = serve(from_env(&[("OTP_IP_SEND_PER_MINUTE", "1")], &outbox)).await;
    assert_eq!(send(&base, 0, XFF_A).await, 200);
    assert_eq!(
        send(&base, 1, XFF_B).await,
        429,
        "an untrusted forwarded header counted"
    );

    // Trusting the loopback proxy: each forwarded client has its own send.
    let base = serve(from_env(
        &[
            ("OTP_IP_SEND_PER_MINUTE", "1"),
            ("OTP_TRUSTED_PROXIES", "127.0.0.1/32, ::1/128"),
        ],
        &outbox,
    ))
    .await;
    assert_eq!(send(&base, 2, XFF_A).await, 200);
    assert_eq!(send(&base, 3, XFF_A).await, 429);
    assert_eq!(send(&base, 4, XFF_B).await, 200);
    // `Forwarded` is not the header this proxy writes: ignored, so this is
    // the proxy's own first send, not client B's second.
    assert_eq!(send(&base, 5, FWD_B).await, 200);

    // OTP_FORWARDED_HEADER=forwarded: now that one counts, and
    // X-Forwarded-For does not.
    let base = serve(from_env(
        &[
            ("OTP_IP_SEND_PER_MINUTE", "1"),
            ("OTP_TRUSTED_PROXIES", "127.0.0.1/32, ::1/128"),
            ("OTP_FORWARDED_HEADER", "forwarded"),
        ],
        &outbox,
    ))
    .await;
    assert_eq!(send(&base, 6, FWD_A).await, 200);
    assert_eq!(send(&base, 7, FWD_B).await, 200);
    assert_eq!(send(&base, 8, FWD_A).await, 429);
    assert_eq!(
        send(&base, 9, XFF_B).await,
        200,
        "first send of the proxy's own address"
    );
    assert_eq!(
        send(&base, 10, XFF_A).await,
        429,
        "X-Forwarded-For was read"
    );

    // OTP_IP_VERIFY_PER_MINUTE=2: the third verify from one address is refused.
    let base = serve(from_env(&[("OTP_IP_VERIFY_PER_MINUTE", "2")], &outbox)).await;
    for n in 0..2 {
        let body = json!({"email": format!("w{n}@b.co"), "otp": "123456"});
        assert_eq!(post_http(&base, "/verify-otp/", body, &[]).await.0, 400);
    }
    let body = json!({"email": "w2@b.co", "otp": "123456"});
    assert_eq!(post_http(&base, "/verify-otp/", body, &[]).await.0, 429);
}

#[tokio::test]
async fn the_cookie_flag_comes_from_the_environment() {
    for (vars, name, secure) in [
        // Secure (the default): the `__Host-` name; plain HTTP: the bare one.
        (&[][..], "__Host-otp_verification", true),
        (
            &[("OTP_COOKIE_SECURE", "false")][..],
            "otp_verification",
            false,
        ),
    ] {
        let outbox = MemoryOutbox::new();
        let app = TestApp::with(from_env(vars, &outbox), outbox.clone());
        app.send_email("c@b.co").await.assert_success();
        let answer = app.verify_email("c@b.co", &app.code_for("c@b.co")).await;
        answer.assert_success();
        let cookie = answer.header("set-cookie");
        assert!(
            cookie.starts_with(&format!("{name}=")),
            "{vars:?}: {cookie}"
        );
        let has_secure = cookie
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure"));
        assert_eq!(has_secure, secure, "{vars:?}: {cookie}");
    }
}
