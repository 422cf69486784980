//! The email sign-in and cancel links in a real browser: headless Chromium
//! over WebDriver against a real axum server on 127.0.0.1 with links on and
//! a `MemoryOutbox` as the inbox.
//!
//! The sign-in link is first followed like a mail scanner does (two plain
//! HTTP GETs, no cookies), then opened in Chromium: the confirm page loads
//! nothing from outside and runs no script; its button signs in, the
//! browser lands on the redirect with the grant cookie, which a
//! `VerifiedEmail` handler accepts. The used link then shows the "cannot be
//! used" page. The "this wasn't me" link, clicked through its page, cancels
//! the code and the next send is refused. Screenshots go to
//! `target/browser-artifacts/link-*.png`.
//!
//! Needs `chromedriver` and `chromium` (`.ci/browser-deps`); skipped
//! visibly without them (a failure under CI).

#![cfg(unix)]

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use axum::{Router, routing::get};
use common::browser::{Driver, TestResult, chromium_binary, on_path, open_browser, poll};
use fantoccini::{Client, Locator};
use futures_util::FutureExt;
use serde_json::json;
use tower_otp::{Otp, VerifiedEmail, delivery::MemoryOutbox, hash::HashParams, link::EmailLinks};

const EMAIL: &str = "ada@example.com";
const OTHER: &str = "grace@example.com";

async fn start_server() -> TestResult<(String, MemoryOutbox)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let outbox = MemoryOutbox::new();
    let otp = Otp::builder()
        .secret(common::SECRET)
        .hash_params(HashParams::insecure_fast())
        .email_sender(outbox.clone())
        .insecure_cookie()
        .email_links(EmailLinks::new(&base).redirect("/welcome"))
        .build()?;
    let app = Router::new()
        .route(
            "/welcome",
            get(|VerifiedEmail(email, _): VerifiedEmail| async move {
                format!("welcome {}", email.as_str())
            }),
        )
        .layer(otp.layer());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("test server failed");
    });
    Ok((base, outbox))
}

/// The URL in the newest email to `to` that starts with `prefix`.
fn url_in_email(outbox: &MemoryOutbox, to: &str, prefix: &str) -> TestResult<String> {
    let message = outbox.last_to(to).ok_or("no email")?;
    let text = message.text();
    let start = text.find(prefix).ok_or("no link in the email")?;
    Ok(text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect())
}

async fn send(base: &str, email: &str) -> TestResult<reqwest::StatusCode> {
    Ok(reqwest::Client::new()
        .post(format!("{base}/send-otp/"))
        .json(&json!({ "email": email }))
        .send()
        .await?
        .status())
}

/// The page's text; empty while a navigation has no document yet.
async fn body_text(c: &Client) -> TestResult<String> {
    let Ok(body) = c.find(Locator::Css("body")).await else {
        return Ok(String::new());
    };
    Ok(body.text().await.unwrap_or_default())
}

async fn wait_for_text(c: &Client, needle: &str) -> TestResult<String> {
    poll(needle, || async {
        let text = body_text(c).await?;
        Ok(text.contains(needle).then_some(text))
    })
    .await
}

async fn click_submit(c: &Client) -> TestResult {
    c.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    Ok(())
}

/// Resources the page loaded besides itself, and whether it has scripts.
async fn outside_loads(c: &Client) -> TestResult<(u64, u64)> {
    let resources = c
        .execute(
            "return performance.getEntriesByType('resource').length",
            vec![],
        )
        .await?
        .as_u64()
        .unwrap_or(u64::MAX);
    let scripts = c
        .execute("return document.scripts.length", vec![])
        .await?
        .as_u64()
        .unwrap_or(u64::MAX);
    Ok((resources, scripts))
}

async fn run_flow(c: &Client, base: &str, outbox: &MemoryOutbox, artifacts: &Path) -> TestResult {
    assert_eq!(send(base, EMAIL).await?, reqwest::StatusCode::OK);
    let link = url_in_email(outbox, EMAIL, &format!("{base}/otp/link/?t="))?;

    // A mail scanner follows the link twice: a page, nothing spent.
    let scanner = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    for _ in 0..2 {
        let page = scanner.get(&link).send().await?;
        assert_eq!(page.status(), reqwest::StatusCode::OK);
        assert!(page.headers().get("set-cookie").is_none());
        assert!(page.text().await?.contains("<form method=\"post\""));
    }

    // The user opens it: the confirm page, self-contained, no script.
    c.goto(&link).await?;
    wait_for_text(c, "Sign in").await?;
    assert_eq!(outside_loads(c).await?, (0, 0));
    c.screenshot()
        .await
        .map(|png| std::fs::write(artifacts.join("link-confirm.png"), png))??;
    click_submit(c).await?;
    let landed = wait_for_text(c, "welcome").await?;
    assert_eq!(landed.trim(), format!("welcome {EMAIL}"));
    assert_eq!(c.current_url().await?.path(), "/welcome");
    let cookies = c.get_all_cookies().await?;
    assert!(
        cookies.iter().any(|k| k.name() == "otp_verification"),
        "{cookies:?}"
    );

    // The same link again: it was used.
    c.goto(&link).await?;
    click_submit(c).await?;
    wait_for_text(c, "can no longer be used").await?;

    // "This wasn't me" for another address: confirm, then sends are refused.
    assert_eq!(send(base, OTHER).await?, reqwest::StatusCode::OK);
    let cancel = url_in_email(outbox, OTHER, &format!("{base}/otp/cancel/?t="))?;
    c.goto(&cancel).await?;
    wait_for_text(c, "This wasn't me").await?;
    assert_eq!(outside_loads(c).await?, (0, 0));
    click_submit(c).await?;
    wait_for_text(c, "Code cancelled").await?;
    c.screenshot()
        .await
        .map(|png| std::fs::write(artifacts.join("link-cancelled.png"), png))??;
    assert_eq!(
        send(base, OTHER).await?,
        reqwest::StatusCode::TOO_MANY_REQUESTS
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_links_work_in_headless_chromium_after_a_scanner() {
    let (Some(chromedriver), Some(chromium)) = (on_path("chromedriver"), chromium_binary()) else {
        common::skip::skip::<()>("chromedriver and/or chromium not found (run .ci/browser-deps)");
        return;
    };
    let artifacts = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create the artifacts directory");
    let (base, outbox) = start_server().await.expect("start the test server");
    let driver = Driver::start(&chromedriver, &artifacts.join("chromedriver-link.log"))
        .await
        .expect("start chromedriver");
    let client = open_browser(&driver, &chromium)
        .await
        .expect("open a headless Chromium session");
    let outcome = std::panic::AssertUnwindSafe(tokio::time::timeout(
        Duration::from_secs(60),
        run_flow(&client, &base, &outbox, &artifacts),
    ))
    .catch_unwind()
    .await;
    if !matches!(outcome, Ok(Ok(Ok(()))))
        && let Ok(png) = client.screenshot().await
    {
        let _ = std::fs::write(artifacts.join("link-failure.png"), png);
    }
    let _ = client.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => panic!("browser link flow failed: {err}"),
        Ok(Err(_)) => panic!("browser link flow timed out"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
