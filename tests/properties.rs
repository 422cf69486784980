//! Property tests (proptest) through the public API:
//!
//! - `Email` / `Mobile` normalization never panics and is idempotent;
//! - the client-IP walk behind trusted proxies charges the right-most
//!   untrusted hop, never one to its left (observed through the per-IP send
//!   limit);
//! - grants round-trip, and a grant with any byte changed is refused.
//!
//! Case counts are small so that the file runs in seconds.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_otp::{
    ClientAddr, Email, Mobile, Otp, Region, TrustedProxies, delivery::MemoryOutbox,
    hash::HashParams, verify_parts,
};

// ---------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------

/// Strings that look like addresses often enough to reach the accepting
/// paths, with the characters that must be refused mixed in.
fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[A-Za-z0-9.+_'-]{0,12}@[A-Za-z0-9.-]{0,12}\\.[A-Za-z]{0,4}[ \r\n]{0,2}",
        "[A-Za-z0-9]{1,8}@[A-Za-z0-9]{1,8}\\.(COM|io|Org|xn--p1ai|c0)",
        "[\\x00-\\x7f]{0,40}",
    ]
}

/// Strings that look like phone numbers often enough to reach the
/// accepting paths.
fn mobile_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\+?[0-9 ().-]{0,20}",
        "\\+(1|44|49|91|33|55)[ -]?[0-9]{6,12}",
        "0?[6-9][0-9]{9}",
    ]
}

fn region() -> impl Strategy<Value = Option<Region>> {
    prop_oneof![
        Just(None),
        Just(Some(Region::IN)),
        Just(Some(Region::US)),
        Just(Some(Region::GB)),
        Just(Some(Region::DE)),
        Just(Some(Region::BR)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn email_normalization_is_idempotent_and_never_panics(input in email_like()) {
        if let Ok(email) = Email::parse(&input) {
            let again = Email::parse(email.as_str()).expect("a normalized address parses");
            prop_assert_eq!(&again, &email);
            prop_assert_eq!(input.parse::<Email>().unwrap(), email.clone());
            // serde goes through the same normalization.
            let json = serde_json::to_string(&email).unwrap();
            prop_assert_eq!(serde_json::from_str::<Email>(&json).unwrap(), email);
        } else {
            prop_assert!(input.parse::<Email>().is_err());
        }
    }
}

proptest! {
    // phonenumber's parser is slow in debug builds: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mobile_normalization_is_idempotent_and_never_panics(
        input in mobile_like(),
        region in region(),
    ) {
        if let Ok(mobile) = Mobile::parse(&input, region) {
            prop_assert!(mobile.as_str().starts_with('+'));
            // E.164 reads back the same, with or without a default region.
            let again = Mobile::parse(mobile.as_str(), None).expect("E.164 parses");
            prop_assert_eq!(&again, &mobile);
            prop_assert_eq!(Mobile::parse(mobile.as_str(), region).unwrap(), mobile.clone());
            let json = serde_json::to_string(&mobile).unwrap();
            prop_assert_eq!(serde_json::from_str::<Mobile>(&json).unwrap(), mobile);
        }
    }
}

// ---------------------------------------------------------------------------
// The layer, around a service that answers 200 with the proven email when the
// request carries a valid grant and 401 otherwise.
// ---------------------------------------------------------------------------

const SECRET: &str = "property tests secret, 32 bytes!";

async fn app(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, _) = request.into_parts();
    Ok(match verify_parts(&parts) {
        Ok(contact) => {
            let email = contact
                .email()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default();
            Response::new(Full::new(Bytes::from(email)))
        }
        Err(rejection) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = rejection.status();
            response
        }
    })
}

fn otp(ip_send_per_minute: u32, outbox: &MemoryOutbox) -> Otp {
    Otp::builder()
        .secret(SECRET)
        .hash_params(HashParams::insecure_fast())
        .hash_pool_size(1, 16)
        .email_sender(outbox.clone())
        .ip_limits(ip_send_per_minute, 0)
        .trusted_proxies(TrustedProxies::parse("10.0.0.0/8").unwrap())
        .resend_cooldown(Duration::from_secs(1))
        .build()
        .expect("config")
}

fn post(
    path: &str,
    peer: IpAddr,
    forwarded: Option<&str>,
    body: serde_json::Value,
) -> Request<Full<Bytes>> {
    let mut request = Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(SocketAddr::new(peer, 40_000)));
    if let Some(chain) = forwarded {
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(chain).unwrap());
    }
    request
}

async fn call<S, B>(service: &mut S, request: Request<Full<Bytes>>) -> (StatusCode, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Distinct addresses per request, so that per-contact limits never interfere.
fn fresh_email() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("p{}@example.com", N.fetch_add(1, Ordering::Relaxed))
}

fn untrusted() -> impl Strategy<Value = Ipv4Addr> {
    // 11.0.0.0 .. 223.255.255.255: never inside the trusted 10.0.0.0/8.
    (11u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
}

fn trusted() -> impl Strategy<Value = Ipv4Addr> {
    (any::<u8>(), any::<u8>(), 1u8..=254).prop_map(|(b, c, d)| Ipv4Addr::new(10, b, c, d))
}

fn any_hop() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![untrusted(), trusted()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Chain `left…, client, proxies…` arriving from a trusted peer: the one
    /// send allowed per IP is charged to `client`, and to no other address
    /// of the chain (in particular none to its left, which the client wrote).
    #[test]
    fn the_client_ip_is_the_right_most_untrusted_hop(
        left in proptest::collection::vec(any_hop(), 0..4),
        client in untrusted(),
        proxies in proptest::collection::vec(trusted(), 0..3),
        peer in trusted(),
    ) {
        runtime().block_on(async {
            let outbox = MemoryOutbox::new();
            let otp = otp(1, &outbox);
            let mut service = ServiceBuilder::new().layer(otp.layer()).service_fn(app);
            let chain: Vec<String> = left
                .iter()
                .chain(std::iter::once(&client))
                .chain(&proxies)
                .map(Ipv4Addr::to_string)
                .collect();
            let send = |peer: IpAddr, chain: Option<&str>| {
                post("/send-otp/", peer, chain, serde_json::json!({ "email": fresh_email() }))
            };
            let (status, _) = call(&mut service, send(peer.into(), Some(&chain.join(", ")))).await;
            prop_assert_eq!(status, StatusCode::OK);
            // The client's own budget is spent...
            let (status, _) = call(&mut service, send(client.into(), None)).await;
            prop_assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            // ...and nobody else's: not the hops the client wrote to its
            // left, not the proxies, not the peer.
            for other in left.iter().chain(&proxies).chain(std::iter::once(&peer)) {
                if *other != client {
                    let (status, _) = call(&mut service, send((*other).into(), None)).await;
                    prop_assert_eq!(status, StatusCode::OK, "{} was charged", other);
                }
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A verify gives a token that proves the address; the same token with
    /// any one byte changed proves nothing.
    #[test]
    fn grants_round_trip_and_any_changed_byte_is_refused(
        local in "[a-z0-9]{1,12}",
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..12),
    ) {
        runtime().block_on(async {
            let outbox = MemoryOutbox::new();
            let otp = otp(0, &outbox);
            let mut service = ServiceBuilder::new().layer(otp.layer()).service_fn(app);
            let peer: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
            let address = format!("{local}.{}", fresh_email());
            let (status, _) = call(
                &mut service,
                post("/send-otp/", peer, None, serde_json::json!({ "email": address })),
            )
            .await;
            prop_assert_eq!(status, StatusCode::OK);
            let code = outbox.last_code_for(&address).expect("a code was sent");
            let (status, body) = call(
                &mut service,
                post("/verify-otp/", peer, None, serde_json::json!({ "email": address, "otp": code })),
            )
            .await;
            prop_assert_eq!(status, StatusCode::OK);
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let token = answer["token"].as_str().expect("a token").to_owned();

            let check = |token: &[u8]| -> Option<Request<Full<Bytes>>> {
                let value = HeaderValue::from_bytes(token).ok()?;
                let mut request = Request::get("/check").body(Full::new(Bytes::new())).unwrap();
                request.extensions_mut().insert(ClientAddr(SocketAddr::new(peer, 40_000)));
                request.headers_mut().insert("x-verification-token", value);
                Some(request)
            };
            let (status, body) = call(&mut service, check(token.as_bytes()).unwrap()).await;
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(&body[..], address.as_bytes());

            for (index, mask) in flips {
                let mut tampered = token.clone().into_bytes();
                let at = index.index(tampered.len());
                tampered[at] ^= mask;
                // A byte a header cannot carry never reaches the service.
                let Some(request) = check(&tampered) else { continue };
                let (status, _) = call(&mut service, request).await;
                prop_assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "byte {} xor {:#04x} was accepted",
                    at,
                    mask
                );
            }
            Ok(())
        })?;
    }
}
