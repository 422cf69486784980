//! `RedisStore` over TLS (`rediss://`, rustls): a private `redis-server`
//! started by the test with `--tls-port` (plain port off), its certificate
//! made at test time by a CA the test also makes. The store trusts that CA
//! through `tls_root_certificate`; without it the server is not trusted;
//! with `tls-auth-clients yes` the store needs its client certificate.
//!
//! Skips (or fails in CI) when `redis-server` is missing or was built
//! without TLS.
#![cfg(feature = "redis-tls")]

#[macro_use]
mod common;

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::redis_server::{binaries_available, random_prefix, unavailable};
use http::StatusCode;
use rand::RngExt;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tower_otp::store::{Attempt, OtpStore, RedisStore};
use tower_otp::test_util::{Harness, code_for, email, random_key, record, send, verify};

/// A test CA and what it signed, all PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "tower-otp test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();

    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "localhost",
    );
    let (client_cert, client_key) = leaf(
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        "tower-otp test client",
    );
    Pki {
        ca: ca_cert.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// A `redis-server` with only a TLS port. Killed (and its directory
/// removed) on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    /// Starts one; `None` (skip, or a panic in CI) when this `redis-server`
    /// cannot serve TLS.
    async fn start(pki: &Pki, auth_clients: &str) -> Option<Self> {
        binaries_available()?;
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "tower-otp-redis-tls-{:016x}",
                rand::rng().random::<u64>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            for (name, pem) in [
                ("ca.pem", &pki.ca),
                ("server.pem", &pki.server_cert),
                ("server.key", &pki.server_key),
            ] {
                std::fs::write(dir.join(name), pem).unwrap();
            }
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(&dir)
                .arg("--tls-cert-file")
                .arg(dir.join("server.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.pem"))
                .args(["--tls-auth-clients", auth_clients])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn redis-server");
            let mut server = Self { child, port, dir };
            match server.wait_ready(pki).await {
                Ok(()) => return Some(server),
                Err(e) if e.contains("exited") && !e.contains("Address already in use") => {
                    return unavailable(&format!("redis-server cannot serve TLS here: {e}"));
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a TLS redis-server: {last_error}");
    }

    /// Waits until a trusting client with the client certificate gets PONG.
    async fn wait_ready(&mut self, pki: &Pki) -> Result<(), String> {
        let store = RedisStore::builder(self.url())
            .tls_root_certificate(pki.ca.clone())
            .tls_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
            .timeout(Duration::from_millis(500))
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!("redis-server exited ({status}): {stderr}"));
            }
            if store.ping().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the TLS redis-server did not answer within 10 s".to_owned())
    }

    /// `rediss://127.0.0.1:<port>` (the certificate names 127.0.0.1).
    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_test_ca_stores_and_verifies_codes() {
    let pki = pki();
    let Some(server) = TlsRedis::start(&pki, "optional").await else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .tls_root_certificate(pki.ca.clone())
        .prefix(random_prefix())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    store.ping().await.unwrap();

    // The store's operations, directly.
    let (key, rec) = (random_key(), record());
    store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    match store.begin_attempt(&key, 5).await.unwrap() {
        Attempt::Granted {
            record,
            attempts_used,
        } => {
            assert_eq!(record, rec);
            assert_eq!(attempts_used, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(store.remove_code(&key, &rec.salt).await.unwrap());
    assert_eq!(store.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);

    // And the whole flow through the layer.
    let harness = Harness::new(store, ());
    let (otp, outbox) = harness.otp(|b| b);
    let user = email();
    let (status, _, body) = send(&otp, &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = verify(&otp, &user, &code_for(&outbox, &user)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_store_does_not_trust_is_503_not_a_fallback() {
    let pki = pki();
    let Some(server) = TlsRedis::start(&pki, "optional").await else {
        return;
    };
    // The system roots do not include the test CA.
    let untrusting = RedisStore::builder(server.url())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = untrusting.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // Another CA's certificate does not help either.
    let other = pki_other_ca();
    let wrong_ca = RedisStore::builder(server.url())
        .tls_root_certificate(other)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(wrong_ca.ping().await.unwrap_err().is_unavailable());

    // Plain text to the TLS port gets nowhere, within the timeout.
    let plain = RedisStore::builder(format!("redis://127.0.0.1:{}", server.port))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let start = Instant::now();
    assert!(plain.ping().await.unwrap_err().is_unavailable());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

fn pki_other_ca() -> String {
    pki().ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_authenticates_clients_needs_the_client_certificate() {
    let pki = pki();
    let Some(server) = TlsRedis::start(&pki, "yes").await else {
        return;
    };
    let without = RedisStore::builder(server.url())
        .tls_root_certificate(pki.ca.clone())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(without.ping().await.unwrap_err().is_unavailable());

    let with = RedisStore::builder(server.url())
        .tls_root_certificate(pki.ca.clone())
        .tls_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
        .prefix(random_prefix())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    with.ping().await.unwrap();
    let (key, rec) = (random_key(), record());
    with.put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(with.remove_code(&key, &rec.salt).await.unwrap());
}

#[test]
fn tls_settings_need_a_rediss_url() {
    let err = RedisStore::builder("redis://127.0.0.1:6379")
        .tls_root_certificate(pki().ca)
        .build()
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("redis"), "{err}");
    // The key never shows in Debug output.
    let pki = pki();
    let builder = RedisStore::builder("rediss://127.0.0.1:6379")
        .tls_client_certificate(pki.client_cert, pki.client_key.clone());
    let debug = format!("{builder:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}
