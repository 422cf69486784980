//! Headless Chromium over WebDriver for the browser tests: find the tools,
//! start chromedriver on a free port (killed with its browser on drop),
//! open a session, poll with a bound.

use std::{
    error::Error,
    future::Future,
    net::TcpListener as StdTcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub const POLL_EVERY: Duration = Duration::from_millis(50);
pub const POLL_FOR: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tools: find them, or explain why the test is skipped.

/// The first executable called `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

pub fn chromium_binary() -> Option<PathBuf> {
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian.to_path_buf());
    }
    on_path("chromium").or_else(|| on_path("chromium-browser"))
}

// ---------------------------------------------------------------------------
// chromedriver, started on a free port and killed on drop.

/// A running chromedriver and the browser profile directory; both are
/// cleaned up on drop, also when the test panics.
pub struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    pub async fn start(chromedriver: &Path, log: &Path) -> TestResult<Self> {
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let profile =
            std::env::temp_dir().join(format!("tower-otp-browser-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        // Its own process group: Chromium inherits it, so one signal to the
        // group on drop also ends a browser that a failed test left open.
        let child = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut driver = Driver {
            child,
            port,
            profile,
        };
        let status = format!("{}/status", driver.url());
        let http = reqwest::Client::new();
        let ready = poll("chromedriver to answer /status", || {
            let request = http.get(&status).timeout(Duration::from_secs(1)).send();
            async move { Ok(request.await.ok().filter(|r| r.status().is_success())) }
        })
        .await;
        if let Err(err) = ready {
            if let Ok(Some(exit)) = driver.child.try_wait() {
                return Err(format!("chromedriver exited at start ({exit})").into());
            }
            return Err(err);
        }
        Ok(driver)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub async fn open_browser(driver: &Driver, chromium: &Path) -> TestResult<Client> {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,1300",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--user-data-dir={}", driver.profile.display())])
    .collect::<Vec<_>>();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal")
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await?;
    Ok(client)
}

/// Calls `probe` every 50 ms until it gives `Some`, for at most 10 s.
pub async fn poll<T, F, Fut>(what: &str, mut probe: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    let deadline = Instant::now() + POLL_FOR;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {POLL_FOR:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
