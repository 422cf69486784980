//! # hyper_server: tower-otp without axum's Router
//!
//! ```text
//! cargo run --example hyper_server
//! ```
//!
//! A plain `tower::service_fn` served by hyper, wrapped in the `OtpLayer`.
//! The OTP routes are served by the layer; `POST /whoami` is gated with the
//! framework-free [`tower_otp::verify_parts`]; everything else answers
//! "hello". Listens on 127.0.0.1:3001 (`PORT` overrides).
//!
//! Without axum's `ConnectInfo`, the host tells the layer who the client is:
//! each connection's requests carry the peer address as a
//! [`tower_otp::ClientAddr`] extension, so the per-IP limits count each
//! client on its own (without it, every request would share one "unknown"
//! budget, and an error says so once).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::ServiceBuilder;
use tower_otp::{ClientAddr, OtpBuilder, verify_parts};

async fn app(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, _body) = request.into_parts();
    if parts.uri.path() != "/whoami" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))));
    }
    Ok(match verify_parts(&parts) {
        Ok(contact) => {
            let email = contact.email().map(|e| e.as_str().to_owned());
            let mobile = contact.mobile().map(|m| m.as_str().to_owned());
            let body = serde_json::json!({ "email": email, "mobile": mobile }).to_string();
            Response::new(Full::new(Bytes::from(body)))
        }
        // The rejection renders the contract's JSON error.
        Err(rejection) => tower_otp::ApiError::from(rejection).to_response(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let otp = OtpBuilder::from_env()?.random_secret().build()?;
    let otp_layer = otp.layer();

    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("hyper_server listening on http://127.0.0.1:{port}");
    loop {
        let (stream, peer) = listener.accept().await?;
        // Every request of this connection carries its peer address.
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request
            })
            .layer(otp_layer.clone())
            .service_fn(app);
        let service = TowerToHyperService::new(service);
        tokio::spawn(async move {
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "connection error");
            }
        });
    }
}
