//! The quickstart's registration page (`examples/assets/register.html`),
//! proven in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini), against a real axum server on 127.0.0.1 with
//! the `tower-otp` layer and a `MemoryOutbox` that stands in for the user's
//! inbox and phone.
//!
//! The test types an email address, sends, reads the code from the outbox,
//! types a wrong code (the page shows the attempts left), asks again within
//! the cooldown (the page shows the countdown), types the right code and
//! verifies; then the same for the mobile number, by WhatsApp; then registers and checks
//! the success message and the server's JSON on the page. A screenshot of the
//! final page is saved as `target/browser-artifacts/register-success.png`
//! (`failure.png` there when a step fails), and one of the email section's
//! error and countdown state as `email-wrong-code.png`.
//!
//! Needs `chromedriver` and `chromium` (Debian: `chromium-driver`,
//! `chromium`; `.ci/browser-deps` installs them). Without them the test
//! prints a visible `SKIPPED` line (tests/common/skip.rs), and under CI
//! (`CI=true` or `1`) fails.

#![cfg(unix)]

mod common;

use std::{
    net::SocketAddr,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
};

use axum::{
    Json, Router,
    response::Html,
    routing::{get, post},
};
use fantoccini::{Client, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tower_otp::{
    Otp, VerifiedEmail, VerifiedMobile,
    delivery::{MemoryOutbox, MobileChannel, OutboxMessage},
    hash::HashParams,
};

const PAGE: &str = include_str!("../examples/assets/register.html");
const EMAIL: &str = "ada@example.com";
const MOBILE: &str = "+14155550123";

use common::browser::{Driver, TestResult, chromium_binary, on_path, open_browser, poll};

// ---------------------------------------------------------------------------
// The host app, built the way the quickstart builds it.

async fn start_server() -> TestResult<(SocketAddr, MemoryOutbox)> {
    let outbox = MemoryOutbox::new();
    let otp = Otp::builder()
        .secret("browser test secret, thirty-two+ bytes")
        .hash_params(HashParams::insecure_fast())
        .email_sender(outbox.clone())
        .sms_sender(outbox.clone())
        .insecure_cookie()
        .build()?;
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/register",
            post(
                |VerifiedEmail(email, _): VerifiedEmail,
                 VerifiedMobile(mobile, _): VerifiedMobile| async move {
                    Json(json!({
                        "status": "success",
                        "email": email.as_str(),
                        "mobile": mobile.as_str(),
                    }))
                },
            ),
        )
        .layer(otp.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("test server failed");
    });
    Ok((addr, outbox))
}

// ---------------------------------------------------------------------------
// Bounded polling and reading the page.

/// What a person sees of one element.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    text: String,
    disabled: bool,
    visible: bool,
}

async fn see(c: &Client, id: &str) -> TestResult<Seen> {
    let v = c
        .execute(
            r#"const e = document.getElementById(arguments[0]);
               if (!e) return null;
               const style = getComputedStyle(e);
               return { state: e.dataset.state || "", text: e.textContent.trim(),
                        disabled: !!e.disabled,
                        visible: !e.hidden && style.display !== "none" && style.visibility !== "hidden" };"#,
            vec![json!(id)],
        )
        .await?;
    if v.is_null() {
        return Err(format!("no element #{id} in the page").into());
    }
    Ok(Seen {
        state: v["state"].as_str().unwrap_or_default().to_owned(),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
        disabled: v["disabled"].as_bool().unwrap_or_default(),
        visible: v["visible"].as_bool().unwrap_or_default(),
    })
}

/// Waits until `#id` satisfies `ok`, and returns what it showed then.
async fn wait_until(
    c: &Client,
    id: &str,
    what: &str,
    ok: impl Fn(&Seen) -> bool,
) -> TestResult<Seen> {
    let last = std::cell::RefCell::new(None);
    let found = poll(&format!("#{id}: {what}"), || {
        let c = c.clone();
        let id = id.to_owned();
        let (last, ok) = (&last, &ok);
        async move {
            let seen = see(&c, &id).await?;
            let done = ok(&seen).then(|| seen.clone());
            *last.borrow_mut() = Some(seen);
            Ok(done)
        }
    })
    .await;
    found.map_err(|err| format!("{err}; it last showed {:?}", last.borrow()).into())
}

/// Waits for a status area to reach `state` with `needle` in its message.
async fn wait_status(c: &Client, id: &str, state: &str, needle: &str) -> TestResult<String> {
    let what = format!("data-state={state:?} and a message with {needle:?}");
    let seen = wait_until(c, id, &what, |s| {
        s.state == state && s.text.contains(needle)
    })
    .await?;
    Ok(seen.text)
}

async fn type_into(c: &Client, id: &str, text: &str) -> TestResult {
    let input = c.find(Locator::Id(id)).await?;
    input.clear().await?;
    input.send_keys(text).await?;
    Ok(())
}

async fn click(c: &Client, id: &str) -> TestResult {
    c.find(Locator::Id(id)).await?.click().await?;
    Ok(())
}

/// Starts recording the page's uncaught errors and unhandled rejections.
async fn watch_errors(c: &Client) -> TestResult {
    c.execute(
        r#"window.__pageErrors = [];
           window.addEventListener("error", (e) => window.__pageErrors.push(String(e.message)));
           window.addEventListener("unhandledrejection", (e) => window.__pageErrors.push(String(e.reason)));"#,
        vec![],
    )
    .await?;
    Ok(())
}

async fn assert_no_page_errors(c: &Client) -> TestResult {
    let errors = c
        .execute("return window.__pageErrors || null;", vec![])
        .await?;
    assert_eq!(errors, json!([]), "script errors in the page");
    Ok(())
}

fn code_for(outbox: &MemoryOutbox, recipient: &str) -> TestResult<String> {
    outbox
        .last_code_for(recipient)
        .ok_or_else(|| format!("no code was sent to {recipient}").into())
}

/// A code of the right shape that differs from `code` in every digit.
fn wrong_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

/// The number in "You can resend in N s", if the countdown shows one.
fn countdown_seconds(text: &str) -> Option<u64> {
    text.strip_prefix("You can resend in ")?
        .strip_suffix(" s")?
        .parse()
        .ok()
}

fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser-artifacts")
}

/// Grows the window so the screenshot holds the whole page.
async fn fit_window_to_page(c: &Client) -> TestResult {
    let sizes = c
        .execute(
            "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight];",
            vec![],
        )
        .await?;
    let number = |i: usize| sizes[i].as_u64().unwrap_or_default();
    let (page, inner, outer) = (number(0), number(1), number(2));
    if page > inner {
        let height = u32::try_from(page + outer.saturating_sub(inner) + 8)?;
        c.set_window_size(1000, height).await?;
    }
    Ok(())
}

async fn save_screenshot(c: &Client, path: &Path) -> TestResult {
    let png = c.screenshot().await?;
    std::fs::write(path, png)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The flows.

/// The page's static promises: labelled inputs, one-time-code hints on the
/// code fields, nothing loaded from another origin, Register disabled.
async fn check_page_basics(c: &Client) -> TestResult {
    let report = c
        .execute(
            r#"const out = { unlabelled: [], codeFields: {}, foreign: [] };
               for (const input of document.querySelectorAll("input")) {
                 if (!input.labels || input.labels.length === 0) out.unlabelled.push(input.id);
               }
               for (const id of ["email-otp", "mobile-otp"]) {
                 const e = document.getElementById(id);
                 out.codeFields[id] = [e.getAttribute("autocomplete"), e.getAttribute("inputmode")];
               }
               for (const r of performance.getEntriesByType("resource")) {
                 if (new URL(r.name).origin !== location.origin) out.foreign.push(r.name);
               }
               for (const e of document.querySelectorAll("[src], link[href]")) {
                 const u = e.getAttribute("src") || e.getAttribute("href");
                 if (!u.startsWith("data:") && new URL(u, location.href).origin !== location.origin) out.foreign.push(u);
               }
               return out;"#,
            vec![],
        )
        .await?;
    assert_eq!(report["unlabelled"], json!([]), "inputs without a label");
    for id in ["email-otp", "mobile-otp"] {
        assert_eq!(
            report["codeFields"][id],
            json!(["one-time-code", "numeric"]),
            "#{id} needs autocomplete=one-time-code and inputmode=numeric"
        );
    }
    assert_eq!(report["foreign"], json!([]), "loads from another origin");
    assert!(
        see(c, "register").await?.disabled,
        "Register enabled before any verification"
    );
    assert!(!see(c, "email-verified").await?.visible);
    assert!(!see(c, "mobile-verified").await?.visible);
    Ok(())
}

async fn run_flow(c: &Client, base: &str, outbox: &MemoryOutbox, artifacts: &Path) -> TestResult {
    c.goto(base).await?;
    wait_until(c, "send-email", "the page to be ready", |s| !s.disabled).await?;
    check_page_basics(c).await?;
    watch_errors(c).await?;

    // Client-side validation: the page's own messages (the server's for
    // invalid_email / invalid_mobile read differently), nothing delivered.
    click(c, "send-email").await?;
    wait_status(c, "email-status", "error", "Enter your email address").await?;
    type_into(c, "email", "not-an-email").await?;
    click(c, "send-email").await?;
    wait_status(c, "email-status", "error", "valid email address").await?;
    type_into(c, "mobile", "call me").await?;
    click(c, "send-mobile").await?;
    wait_status(c, "mobile-status", "error", "valid mobile number").await?;
    assert!(
        outbox.messages().is_empty(),
        "a message was delivered for invalid input"
    );

    // Email: send; the countdown starts from the server's resend_in.
    type_into(c, "email", EMAIL).await?;
    click(c, "send-email").await?;
    wait_status(c, "email-status", "ok", "Code sent").await?;
    let countdown = wait_until(c, "email-countdown", "a resend countdown", |s| {
        countdown_seconds(&s.text).is_some()
    })
    .await?;
    let left = countdown_seconds(&countdown.text).unwrap_or_default();
    assert!(
        (25..=30).contains(&left),
        "countdown after a send: {countdown:?}"
    );
    wait_until(c, "email-countdown", "the countdown to tick down", |s| {
        countdown_seconds(&s.text).is_some_and(|n| n < left)
    })
    .await?;
    assert!(
        see(c, "send-email").await?.disabled,
        "Send enabled during the cooldown"
    );
    assert!(
        see(c, "resend-email").await?.disabled,
        "Resend enabled during the cooldown"
    );
    let code = code_for(outbox, EMAIL)?;

    // A second send within the cooldown, from a fresh page (so the page's own
    // timer cannot prevent it): the server's 429 and retry_after drive the
    // countdown.
    c.refresh().await?;
    wait_until(c, "send-email", "the reloaded page to be ready", |s| {
        !s.disabled
    })
    .await?;
    watch_errors(c).await?;
    type_into(c, "email", EMAIL).await?;
    click(c, "send-email").await?;
    let refused = wait_status(c, "email-status", "error", "Too many requests").await?;
    assert!(
        refused.contains("please wait"),
        "cooldown message: {refused:?}"
    );
    let countdown = wait_until(
        c,
        "email-countdown",
        "the countdown from retry_after",
        |s| countdown_seconds(&s.text).is_some(),
    )
    .await?;
    let left = countdown_seconds(&countdown.text).unwrap_or_default();
    assert!(
        (1..=30).contains(&left),
        "countdown after a refused send: {countdown:?}"
    );
    assert!(
        see(c, "send-email").await?.disabled,
        "Send enabled during the cooldown"
    );
    assert_eq!(
        outbox.messages().len(),
        1,
        "the refused send must not deliver a message"
    );

    // A wrong code shows the attempts left.
    type_into(c, "email-otp", &wrong_code(&code)).await?;
    click(c, "verify-email").await?;
    wait_status(c, "email-status", "error", "4 attempts left").await?;
    assert!(see(c, "register").await?.disabled);
    save_screenshot(c, &artifacts.join("email-wrong-code.png")).await?;

    // The right code verifies the email.
    type_into(c, "email-otp", &code).await?;
    click(c, "verify-email").await?;
    wait_status(c, "email-status", "ok", "Email verified").await?;
    wait_until(c, "email-verified", "the verified badge", |s| s.visible).await?;
    assert!(
        see(c, "email").await?.disabled,
        "a verified email stays editable"
    );
    assert_eq!(
        see(c, "email-countdown").await?.text,
        "",
        "countdown after verify"
    );
    assert!(
        see(c, "register").await?.disabled,
        "Register enabled with one channel"
    );

    // Mobile: a code typed before any was sent has no live code to match.
    type_into(c, "mobile", MOBILE).await?;
    type_into(c, "mobile-otp", "123456").await?;
    click(c, "verify-mobile").await?;
    wait_status(c, "mobile-status", "error", "expired or was already used").await?;
    let cleared = c
        .find(Locator::Id("mobile-otp"))
        .await?
        .prop("value")
        .await?;
    assert_eq!(
        cleared.as_deref(),
        Some(""),
        "a dead code stays in the field"
    );

    // Mobile: pick WhatsApp, send, read the message, verify.
    click(c, "channel-whatsapp").await?;
    click(c, "send-mobile").await?;
    wait_status(c, "mobile-status", "ok", "Code sent by WhatsApp").await?;
    wait_until(c, "mobile-countdown", "a resend countdown", |s| {
        countdown_seconds(&s.text).is_some()
    })
    .await?;
    wait_until(c, "mobile-otp-label", "the WhatsApp label", |s| {
        s.text.contains("WhatsApp")
    })
    .await?;
    let sent = outbox.messages();
    let Some(OutboxMessage::Sms(text)) = sent.last() else {
        return Err(format!("no text message was sent: {sent:?}").into());
    };
    assert_eq!(
        text.channel,
        MobileChannel::WhatsApp,
        "the page asked for WhatsApp"
    );
    let code = code_for(outbox, MOBILE)?;
    type_into(c, "mobile-otp", &code).await?;
    click(c, "verify-mobile").await?;
    wait_status(c, "mobile-status", "ok", "Mobile number verified").await?;
    wait_until(c, "mobile-verified", "the verified badge", |s| s.visible).await?;

    // Register: enabled now, and its answer is shown.
    wait_until(c, "register", "Register to be enabled", |s| !s.disabled).await?;
    click(c, "register").await?;
    let message = wait_status(c, "result", "ok", "Registered").await?;
    assert!(
        message.contains(EMAIL) && message.contains(MOBILE),
        "result message: {message:?}"
    );
    let shown = wait_until(c, "result-json", "the server's answer", |s| s.visible).await?;
    let answer: Value = serde_json::from_str(&shown.text)?;
    assert_eq!(
        answer,
        json!({"status": "success", "email": EMAIL, "mobile": MOBILE})
    );
    assert!(
        see(c, "register").await?.disabled,
        "Register stays enabled after success"
    );
    assert_no_page_errors(c).await?;
    fit_window_to_page(c).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_page_works_in_headless_chromium() {
    let chromedriver = on_path("chromedriver");
    let chromium = chromium_binary();
    let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) else {
        let reason = "chromedriver and/or chromium not found \
                      (Debian: apt-get install chromium chromium-driver, or run .ci/browser-deps)";
        common::skip::skip::<()>(reason);
        return;
    };

    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("create the artifacts directory");
    for stale in [
        "register-success.png",
        "email-wrong-code.png",
        "failure.png",
    ] {
        let _ = std::fs::remove_file(artifacts.join(stale));
    }
    let (addr, outbox) = start_server().await.expect("start the test server");
    let driver = Driver::start(&chromedriver, &artifacts.join("chromedriver.log"))
        .await
        .expect("start chromedriver");
    let client = open_browser(&driver, &chromium)
        .await
        .expect("open a headless Chromium session");

    // A failed assertion inside the flow must still leave a screenshot and
    // close the browser: catch the panic, clean up, then fail.
    let outcome = AssertUnwindSafe(run_flow(
        &client,
        &format!("http://{addr}/"),
        &outbox,
        &artifacts,
    ))
    .catch_unwind()
    .await;
    let shot = artifacts.join(if matches!(outcome, Ok(Ok(()))) {
        "register-success.png"
    } else {
        "failure.png"
    });
    let saved = save_screenshot(&client, &shot).await;
    let _ = client.close().await;
    drop(driver);

    let evidence = format!(
        "screenshot: {}, chromedriver log: {}",
        shot.display(),
        artifacts.join("chromedriver.log").display()
    );
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("browser flow failed: {err} ({evidence})"),
        Err(panic) => {
            eprintln!("browser flow failed ({evidence})");
            std::panic::resume_unwind(panic)
        }
    }
    saved.expect("save the final screenshot");
    eprintln!("screenshot of the final page: {}", shot.display());
}
