//! Email sign-in links and "this wasn't me" cancel links, as a user, a mail
//! scanner and an attacker see them: the email, the confirm pages, the
//! redirect and grant, the refusals, the store's contents and the logs.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::body::Body;
use common::app::{Answer, TestApp, secs};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower_otp::{
    Contact, Email, OtpBuilder,
    delivery::MemoryOutbox,
    events::{Event, EventKind},
    link::EmailLinks,
};

const BASE: &str = "https://app.example.com";

fn links() -> EmailLinks {
    EmailLinks::new(BASE).redirect("/welcome")
}

fn app_with(configure: impl FnOnce(OtpBuilder) -> OtpBuilder) -> TestApp {
    let outbox = MemoryOutbox::new();
    TestApp::with(configure(common::builder_with(&outbox)), outbox)
}

fn app() -> TestApp {
    app_with(|b| b.email_links(links()))
}

/// The email's sign-in and cancel URLs (from its text part), as paths
/// with their query.
fn urls_for(app: &TestApp, email: &str) -> (String, String) {
    let message = app.outbox.last_to(email).expect("an email was sent");
    let text = message.text();
    let find = |marker: &str| {
        let start = text
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in {text}"));
        let url: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        url.strip_prefix(BASE).unwrap().to_owned()
    };
    (
        find(&format!("{BASE}/otp/link/?t=")),
        find(&format!("{BASE}/otp/cancel/?t=")),
    )
}

fn token_of(path: &str) -> &str {
    path.split_once("?t=").unwrap().1
}

fn text(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.raw).into_owned()
}

async fn get(app: &TestApp, method: &str, path: &str) -> Answer {
    app.request(
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// The confirm page's form post, as a browser sends it.
async fn post_form(app: &TestApp, path: &str, token: &str, cookie: Option<&str>) -> Answer {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.request(request.body(Body::from(format!("t={token}"))).unwrap())
        .await
}

async fn post_json(app: &TestApp, path: &str, token: &str) -> Answer {
    app.post_with(
        path,
        json!({ "t": token }),
        &[("accept", "application/json")],
    )
    .await
}

/// The `name=value` of a Set-Cookie header.
fn cookie_pair(answer: &Answer) -> String {
    answer
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[track_caller]
fn assert_page(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", text(answer));
    assert!(answer.header("content-type").starts_with("text/html"));
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.header("referrer-policy"), "no-referrer");
    assert!(
        answer
            .header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(text(answer).contains(says), "{}", text(answer));
}

#[tokio::test]
async fn a_scanner_following_the_link_spends_nothing_and_the_code_still_works() {
    let app = app();
    let email = "scanned@example.com";
    app.send_email(email).await.assert_success();
    let (link, cancel) = urls_for(&app, email);
    // A scanner follows every link, twice, with GET and HEAD.
    for path in [&link, &link, &cancel, &cancel] {
        let page = get(&app, "GET", path).await;
        assert_page(&page, 200, "<form method=\"post\"");
        // The form posts the token to the page's own path, without the
        // query string: `./`, relative to the page.
        assert!(text(&page).contains("action=\"./\""), "{}", text(&page));
        assert!(text(&page).contains(token_of(path)));
        assert!(!text(&page).contains("<script") && !text(&page).contains("src="));
        let head = get(&app, "HEAD", path).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.raw.is_empty());
    }
    // Nothing was spent or cancelled: the code verifies.
    app.verify_email(email, &app.code_for(email))
        .await
        .assert_success();
}

#[tokio::test]
async fn the_confirm_button_signs_in_once_and_spends_the_code() {
    let app = app();
    let email = "Ada@Example.com";
    app.send_email(email).await.assert_success();
    let code = app.code_for(email);
    let (link, _) = urls_for(&app, email);
    let answer = post_form(&app, "/otp/link/", token_of(&link), None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", text(&answer));
    assert_eq!(answer.header("location"), "/welcome");
    let cookie = answer.header("set-cookie");
    assert!(cookie.starts_with("__Host-otp_verification="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
    // The grant proves the address as typed, for a `VerifiedEmail` handler.
    let me = app
        .request(
            Request::get("/email-only")
                .header(header::COOKIE, cookie_pair(&answer))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(text(&me), "Ada@example.com");
    // Used: the link answers the "cannot be used" page, and the code
    // (the other key to the same pending code) is spent too.
    let again = post_form(&app, "/otp/link/", token_of(&link), None).await;
    assert_page(&again, 400, "can no longer be used");
    assert!(again.header("set-cookie").is_empty());
    app.verify_email(email, &code)
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test]
async fn a_link_after_its_code_was_used_is_refused() {
    let app = app();
    let email = "code-first@example.com";
    app.send_email(email).await.assert_success();
    let (link, _) = urls_for(&app, email);
    app.verify_email(email, &app.code_for(email))
        .await
        .assert_success();
    post_json(&app, "/otp/link/", token_of(&link))
        .await
        .assert_error(400, "otp_expired");
}

#[tokio::test]
async fn a_resend_replaces_the_old_link() {
    let app = app_with(|b| b.email_links(links()).resend_cooldown(Duration::ZERO));
    let email = "twice@example.com";
    app.send_email(email).await.assert_success();
    let (old, _) = urls_for(&app, email);
    app.send_email(email).await.assert_success();
    let (new, _) = urls_for(&app, email);
    assert_ne!(old, new);
    post_json(&app, "/otp/link/", token_of(&old))
        .await
        .assert_error(400, "otp_expired");
    let answer = post_json(&app, "/otp/link/", token_of(&new)).await;
    answer.assert_success();
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let app = app_with(|b| b.email_links(links()).code_ttl(secs(1)));
    let email = "late@example.com";
    app.send_email(email).await.assert_success();
    let (link, _) = urls_for(&app, email);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let page = post_form(&app, "/otp/link/", token_of(&link), None).await;
    assert_page(&page, 400, "can no longer be used");
}

#[tokio::test]
async fn garbage_tokens_are_a_clear_400_never_a_5xx() {
    let app = app();
    let huge = "A".repeat(3000);
    let garbage = [
        "",
        "abc",
        "%00%ff",
        "!!!",
        "AQ",
        huge.as_str(),
        "t%3Dx",
        "A&t=B",
    ];
    for token in garbage {
        for path in ["/otp/link/", "/otp/cancel/"] {
            let page = get(&app, "GET", &format!("{path}?t={token}")).await;
            assert_page(&page, 400, "can no longer be used");
            let form = post_form(&app, path, token, None).await;
            assert_page(&form, 400, "can no longer be used");
            post_json(&app, path, token)
                .await
                .assert_error(400, "otp_expired");
        }
    }
    let accent = post_form(&app, "/otp/link/", "é", None).await;
    assert_page(&accent, 400, "can no longer be used");
    // No query at all, a body of another type, a method the route has not.
    assert_page(&get(&app, "GET", "/otp/link/").await, 400, "can no longer");
    let xml = app
        .post_raw("/otp/link/", Some("text/xml"), Body::from("<t/>"))
        .await;
    assert_eq!(xml.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let put = get(&app, "PUT", "/otp/link/").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.header("allow"), "GET, HEAD, POST");
}

#[tokio::test]
async fn the_per_ip_verify_limit_covers_the_link_routes() {
    let app = app_with(|b| b.email_links(links()).ip_limits(10, 1));
    let mut pages = 0;
    let refused = loop {
        let page = get(&app, "GET", "/otp/link/?t=abc").await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            break page;
        }
        pages += 1;
        assert!(pages < 100, "never limited");
    };
    // A browser gets a page, with Retry-After; a JSON client the error body.
    assert_page(&refused, 429, "Too many attempts");
    assert!(!refused.header("retry-after").is_empty());
    post_json(&app, "/otp/cancel/", "abc")
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn json_clients_get_a_verify_shaped_answer_with_the_purpose() {
    let app = app_with(|b| b.email_links(links()).purpose_name("login"));
    let email = "api@example.com";
    app.post("/send-otp/", json!({"email": email, "purpose": "login"}))
        .await
        .assert_success();
    let (link, _) = urls_for(&app, email);
    assert!(!link.is_empty());
    let answer = post_json(&app, "/otp/link/", token_of(&link)).await;
    answer.assert_success();
    assert_eq!(answer.body["purpose"], "login");
    assert_eq!(answer.body["verified"]["email"], email);
    assert!(!answer.token().is_empty());
    assert!(
        answer
            .header("set-cookie")
            .starts_with("__Host-otp_verification=")
    );
}

#[tokio::test]
async fn a_same_device_link_needs_the_browser_that_asked() {
    let app = app_with(|b| b.email_links(links().same_device(true)));
    let email = "device@example.com";
    let sent = app.send_email(email).await;
    sent.assert_success();
    let device = cookie_pair(&sent);
    assert!(device.starts_with("__Host-otp_device="), "{device}");
    assert!(sent.header("set-cookie").contains("HttpOnly"));
    let (link, _) = urls_for(&app, email);
    // Another browser (no cookie, or a forged one): told to type the code.
    let other = post_form(&app, "/otp/link/", token_of(&link), None).await;
    assert_page(&other, 403, "Type the code instead");
    let forged = post_form(
        &app,
        "/otp/link/",
        token_of(&link),
        Some("__Host-otp_device=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    post_json(&app, "/otp/link/", token_of(&link))
        .await
        .assert_error(403, "device_mismatch");
    // The browser that asked signs in.
    let same = post_form(&app, "/otp/link/", token_of(&link), Some(&device)).await;
    assert_eq!(same.status, StatusCode::SEE_OTHER, "{}", text(&same));
}

fn events_into(
    seen: &Arc<Mutex<Vec<Event>>>,
) -> impl Fn(Event) -> std::future::Ready<()> + Send + Sync + 'static {
    let seen = Arc::clone(seen);
    move |event| {
        seen.lock().unwrap().push(event);
        std::future::ready(())
    }
}

#[tokio::test]
async fn this_wasnt_me_destroys_the_code_and_blocks_sends_until_an_unlock() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = app_with(|b| {
        b.email_links(links().cancel_block(secs(1800)))
            .resend_cooldown(Duration::ZERO)
            .on_event(events_into(&seen))
    });
    let email = "victim@example.com";
    app.send_email(email).await.assert_success();
    let code = app.code_for(email);
    let (link, cancel) = urls_for(&app, email);
    let page = post_form(&app, "/otp/cancel/", token_of(&cancel), None).await;
    assert_page(&page, 200, "cancelled");
    assert!(text(&page).contains("30 minutes"));
    // The code and its sign-in link are gone.
    app.verify_email(email, &code)
        .await
        .assert_error(400, "otp_expired");
    post_json(&app, "/otp/link/", token_of(&link))
        .await
        .assert_error(400, "otp_expired");
    // The cancel link is single-use too.
    let again = post_form(&app, "/otp/cancel/", token_of(&cancel), None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    // New sends are refused for the block time.
    let refused = app.send_email(email).await;
    refused.assert_error(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").parse().unwrap();
    assert!((1790..=1800).contains(&retry), "{retry}");
    assert!(
        refused.body["retry_after"]
            .as_u64()
            .is_some_and(|r| r > 1700)
    );
    // The audit event.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancelled: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind() == EventKind::Cancelled)
        .map(|e| e.contact().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(cancelled, ["v***@example.com"]);
    // The operator's unlock lifts the block.
    let contact = Contact::Email(Email::parse(email).unwrap());
    app.otp.admin().unlock(&contact).await.unwrap();
    app.send_email(email).await.assert_success();
}

#[tokio::test]
async fn a_forged_token_counts_against_the_failure_budget() {
    let app = app_with(|b| b.email_links(links()).failure_budget(2));
    let email = "target@example.com";
    app.send_email(email).await.assert_success();
    let (link, _) = urls_for(&app, email);
    let real = token_of(&link).to_owned();
    // The same contact, another random part: well-formed, but not the link.
    let mut forged = real.clone().into_bytes();
    for byte in &mut forged[30..40] {
        *byte = if *byte == b'A' { b'B' } else { b'A' };
    }
    let forged = String::from_utf8(forged).unwrap();
    for _ in 0..2 {
        post_json(&app, "/otp/link/", &forged)
            .await
            .assert_error(400, "otp_expired");
    }
    // The budget is used up: even the real link is refused, before it is
    // spent.
    let locked = post_json(&app, "/otp/link/", &real).await;
    locked.assert_error(429, "rate_limited");
    let locked = post_form(&app, "/otp/link/", &real, None).await;
    assert_page(&locked, 429, "Too many attempts");
    assert!(!locked.header("retry-after").is_empty());
}

#[tokio::test]
async fn without_links_the_routes_pass_through_and_the_email_is_unchanged() {
    let plain = TestApp::new();
    let with = app();
    for app in [&plain, &with] {
        app.send_email("same@example.com").await.assert_success();
    }
    let before = plain.outbox.last_to("same@example.com").unwrap();
    assert!(!before.text().contains("http"), "{}", before.text());
    // The host's router answers: no OTP route there.
    assert_eq!(
        get(&plain, "GET", "/otp/link/?t=x").await.status,
        StatusCode::NOT_FOUND
    );
    // With links, the same email plus the two links.
    let after = with.outbox.last_to("same@example.com").unwrap();
    let code = with.code_for("same@example.com");
    let strip = |t: &str, code: &str| t.replace(code, "CODE");
    let plain_code = plain.code_for("same@example.com");
    assert!(
        strip(after.text(), &code).starts_with(
            strip(before.text(), &plain_code)
                .split("You received")
                .next()
                .unwrap()
                .trim_end()
        )
    );
    assert!(after.text().contains("this wasn't me"));
}

#[tokio::test]
async fn every_language_carries_both_links_in_both_parts() {
    let app = app_with(|b| b.email_links(links()).resend_cooldown(Duration::ZERO));
    for lang in ["en", "hi", "es", "fr", "de", "pt"] {
        let email = format!("{lang}@example.com");
        app.post("/send-otp/", json!({"email": email, "locale": lang}))
            .await
            .assert_success();
        let Some(tower_otp::delivery::OutboxMessage::Email(message)) = app.outbox.last_to(&email)
        else {
            panic!("no email");
        };
        assert_eq!(message.content_language.as_deref(), Some(lang));
        for part in [&message.text, &message.html.replace("&#x2f;", "/")] {
            assert!(
                part.contains(&format!("{BASE}/otp/link/?t=")),
                "{lang}: {part}"
            );
            assert!(
                part.contains(&format!("{BASE}/otp/cancel/?t=")),
                "{lang}: {part}"
            );
        }
        let (link, _) = urls_for(&app, &email);
        post_json(&app, "/otp/link/", token_of(&link))
            .await
            .assert_success();
    }
}

#[tokio::test]
async fn the_environment_configures_links_and_names_bad_values() {
    let env = |extra: &'static [(&'static str, &'static str)]| {
        OtpBuilder::from_env_with(move |k| {
            [("OTP_SECRET", common::SECRET), ("OTP_LINK_BASE_URL", BASE)]
                .iter()
                .chain(extra)
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let otp = env(&[
        ("OTP_LINK_REDIRECT", "/home"),
        ("OTP_LINK_SAME_DEVICE", "true"),
        ("OTP_CANCEL_BLOCK_SECONDS", "60"),
    ])
    .unwrap()
    .build()
    .unwrap();
    let links = otp.config().email_links.clone().unwrap();
    assert_eq!(links.redirect_to(), "/home");
    assert!(links.is_same_device());
    assert_eq!(links.cancel_block_for(), secs(60));
    for (var, value) in [
        ("OTP_LINK_REDIRECT", "https://evil.example/"),
        ("OTP_LINK_REDIRECT", "//evil.example"),
        ("OTP_LINK_SAME_DEVICE", "maybe"),
        ("OTP_CANCEL_BLOCK_SECONDS", "soon"),
        ("OTP_CANCEL_BLOCK_SECONDS", "0"),
    ] {
        let pair: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(var, value)].into_boxed_slice());
        let err = env(pair).unwrap_err().to_string();
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    let err = OtpBuilder::from_env_with(|k| {
        (k == "OTP_LINK_BASE_URL").then(|| "app.example.com".to_owned())
    })
    .unwrap_err();
    assert!(err.to_string().contains("OTP_LINK_BASE_URL"), "{err}");
}

/// The logs, at TRACE, carry neither the tokens nor the address.
#[tokio::test]
async fn logs_never_hold_a_token_or_the_address() {
    let logs = common::logs::global(tracing::Level::TRACE);
    let app = app_with(|b| b.email_links(links()).resend_cooldown(Duration::ZERO));
    let email = "secretive.person@example.com";
    app.send_email(email).await.assert_success();
    let (link, cancel) = urls_for(&app, email);
    get(&app, "GET", &link).await;
    post_form(&app, "/otp/link/", token_of(&link), None).await;
    post_form(&app, "/otp/link/", token_of(&link), None).await;
    app.send_email(email).await.assert_success();
    let (_, cancel2) = urls_for(&app, email);
    post_form(&app, "/otp/cancel/", token_of(&cancel), None).await;
    post_form(&app, "/otp/cancel/", token_of(&cancel2), None).await;
    let text = logs.text();
    assert!(text.contains("otp_request"), "the capture works: {text}");
    for secret in [
        token_of(&link),
        token_of(&cancel),
        token_of(&cancel2),
        "secretive.person",
    ] {
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}

/// On Redis: the flow works, and no key or value holds a token or the
/// address (the link record is digests and ciphertext).
#[cfg(feature = "redis")]
#[tokio::test]
async fn on_redis_the_store_holds_no_token_and_no_address() {
    use common::redis_server::{random_email, random_prefix, raw_connection, shared_redis};
    let Some(url) = shared_redis().await else {
        return;
    };
    let prefix = random_prefix();
    let store = tower_otp::store::RedisStore::builder(url.clone())
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let app = app_with(|b| b.email_links(links()).store(store));
    let email = random_email();
    app.send_email(&email).await.assert_success();
    let (link, cancel) = urls_for(&app, &email);
    let mut conn = raw_connection(&url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.ends_with(":link")), "{keys:?}");
    let local = email.split('@').next().unwrap();
    let tokens = [token_of(&link), token_of(&cancel)];
    for key in &keys {
        assert!(!key.contains(local) && tokens.iter().all(|t| !key.contains(t)));
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("{key}: {other}"),
        };
        for value in values {
            let lossy = String::from_utf8_lossy(&value).to_lowercase();
            assert!(
                !lossy.contains(local) && !lossy.contains("example.com"),
                "{key}"
            );
            for token in tokens {
                assert!(!lossy.contains(&token.to_lowercase()), "{key}");
                let raw = base64_decode(token);
                assert!(!value.windows(raw.len()).any(|w| w == raw), "{key}");
                // Nor the token's random part on its own.
                let random = &raw[18..34];
                assert!(!value.windows(16).any(|w| w == random), "{key}");
            }
        }
    }
    // The link works on Redis, and a cancel blocks there too.
    let answer = post_json(&app, "/otp/link/", token_of(&link)).await;
    answer.assert_success();
    assert_eq!(
        answer.body["verified"]["email"],
        Value::String(email.clone())
    );
    let other = random_email();
    app.send_email(&other).await.assert_success();
    let (_, cancel) = urls_for(&app, &other);
    assert_eq!(
        post_form(&app, "/otp/cancel/", token_of(&cancel), None)
            .await
            .status,
        StatusCode::OK
    );
    app.send_email(&other)
        .await
        .assert_error(429, "rate_limited");
    let contact = Contact::Email(Email::parse(&other).unwrap());
    app.otp.admin().unlock(&contact).await.unwrap();
    app.send_email(&other).await.assert_success();
}

#[cfg(feature = "redis")]
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// The whole path from outside, as the quickstart runs it: configured from
/// the environment only, a real SMTP server, real HTTP. The email's link,
/// followed like a scanner and then posted, signs the browser in.
#[cfg(feature = "smtp")]
#[tokio::test]
async fn from_the_environment_over_real_http_and_a_real_smtp_server() {
    use common::smtp_server::{Mode, SmtpServer};
    let Some(smtp) = SmtpServer::start(Mode::Plain, &[]) else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let port = smtp.port.to_string();
    let vars = [
        ("OTP_SECRET", common::SECRET.to_owned()),
        ("EMAIL_SERVER", "SMTP".to_owned()),
        ("EMAIL_HOST", "127.0.0.1".to_owned()),
        ("EMAIL_PORT", port),
        ("EMAIL_USE_TLS", "false".to_owned()),
        ("OTP_COOKIE_SECURE", "false".to_owned()),
        ("OTP_LINK_BASE_URL", base.clone()),
        ("OTP_LINK_REDIRECT", "/email-only".to_owned()),
    ];
    let otp =
        OtpBuilder::from_env_with(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap()
            .build()
            .unwrap();
    let app = common::app::host_routes().layer(otp.layer());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let sent = client
        .post(format!("{base}/send-otp/"))
        .json(&json!({"email": "Real@Example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let (raw, _) = tokio::task::spawn_blocking(move || {
        let message = smtp.message(1);
        drop(smtp);
        message
    })
    .await
    .unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = message.body_text(0).unwrap().into_owned();
    let start = text
        .find(&format!("{base}/otp/link/?t="))
        .expect("the link");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let scanner = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(scanner.get(&link).send().await.unwrap().status(), 200);
    }
    let signed_in = client
        .post(format!("{base}/otp/link/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("t={}", token_of(&link)))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.url().path(), "/email-only");
    assert_eq!(signed_in.status(), 200);
    assert_eq!(signed_in.text().await.unwrap(), "Real@example.com");
}

/// The confirm page's form post sent from a page of another site (login
/// CSRF: an attacker's page auto-submitting the attacker's own link).
async fn post_form_from(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::post("/otp/link/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html,*/*;q=0.8");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.request(request.body(Body::from(format!("t={token}"))).unwrap())
        .await
}

#[tokio::test]
async fn a_link_posted_from_another_site_is_refused_and_spends_nothing() {
    let app = app();
    let email = "csrf@example.com";
    app.send_email(email).await.assert_success();
    let (link, _) = urls_for(&app, email);
    let token = token_of(&link).to_owned();
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
    ] {
        let refused = post_form_from(&app, &token, headers).await;
        assert_page(&refused, 403, "another site");
        assert!(refused.header("set-cookie").is_empty(), "{headers:?}");
    }
    let json = app
        .post_with(
            "/otp/link/",
            json!({ "t": token }),
            &[
                ("accept", "application/json"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    json.assert_error(403, "cross_site");
    // Nothing was spent: the button on the link's own page still works.
    let signed_in = post_form_from(
        &app,
        &token,
        &[("sec-fetch-site", "same-origin"), ("origin", BASE)],
    )
    .await;
    assert_eq!(signed_in.status.as_u16(), 303, "{}", text(&signed_in));
    assert!(!signed_in.header("set-cookie").is_empty());
}

#[tokio::test(start_paused = true)]
async fn links_with_no_record_behind_them_count_nowhere() {
    let app = app_with(|b| b.email_links(links()).failure_budget(2));
    let email = "victim@example.com";
    app.send_email(email).await.assert_success();
    let (link, _) = urls_for(&app, email);
    let used = token_of(&link).to_owned();
    post_json(&app, "/otp/link/", &used).await.assert_success();
    // Whoever holds the used link (a forwarded mail, a mailbox scanner's
    // log) posts it again and again: otp_expired each time, and the
    // victim's failure budget is not touched...
    for _ in 0..5 {
        post_json(&app, "/otp/link/", &used)
            .await
            .assert_error(400, "otp_expired");
    }
    // ... so the victim's next code still verifies (a counted budget of 2
    // would answer 429 here).
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    app.send_email(email).await.assert_success();
    let code = app.code_for(email);
    app.verify_email(email, &code).await.assert_success();
}
