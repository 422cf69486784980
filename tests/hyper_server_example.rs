//! `examples/hyper_server.rs` (plain hyper, no axum) run as a user runs it,
//! over real HTTP: it inserts each connection's peer address
//! (`ClientAddr`), so its clients get their own per-IP budget. Without it,
//! every request would share the one "unknown" budget of 16× the quota
//! (issue 13, item 4), and this test would see no 429 at the third send.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The example's binary, which `cargo test` builds beside the tests
/// (`target/<profile>/examples/`). `cargo test --test hyper_server_example`
/// alone does not rebuild it: run `cargo build --example hyper_server`
/// first after changing the example.
fn example_binary() -> PathBuf {
    let mut path = std::env::current_exe().expect("the test binary's path");
    path.pop(); // the test binary
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join("hyper_server")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(port: u16) -> Server {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds the examples",
        binary.display()
    );
    let child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("OTP_IP_SEND_PER_MINUTE", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start examples/hyper_server");
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hyper_server did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test]
async fn the_hyper_example_gives_each_client_its_own_per_ip_budget() {
    let port = free_port();
    let _server = start(port).await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for i in 0..3 {
        let response = client
            .post(format!("http://127.0.0.1:{port}/send-otp/"))
            .json(&json!({ "email": format!("user{i}@example.com") }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        answers.push((status, body));
    }
    assert_eq!(answers[0].0, 200, "{:?}", answers[0].1);
    assert_eq!(answers[1].0, 200, "{:?}", answers[1].1);
    assert_eq!(
        (answers[2].0, answers[2].1["code"].as_str()),
        (429, Some("rate_limited")),
        "the third send from one address is over its budget of 2: {:?}",
        answers[2].1
    );
}
