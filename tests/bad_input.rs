//! Bad input at volume, over real HTTP: a seeded, generated corpus of
//! malformed requests (bodies, headers, cookies and grant tokens, methods,
//! encodings, framing, huge and trickled bodies) written byte for byte on
//! raw TCP connections to the app served on 127.0.0.1, while good requests
//! (a passthrough page and a valid send) keep going beside them.
//!
//! Every answer must be a contract answer: never a 5xx, never a dropped
//! connection where an answer is owed (a panic in a handler drops it), 4xx
//! errors as JSON with a `code`. Malformed HTTP framing (an unparsable
//! Content-Length, huge headers, broken chunks) is answered by hyper before
//! the layer sees a request: a 4xx or a closed connection, never a 5xx. The
//! good requests must all succeed with normal latency, and the server must
//! still answer at the end.
//!
//! `BAD_INPUT_SEED` (default 18) and `BAD_INPUT_COUNT` (default 5000) change
//! the corpus; a failure prints the item's name and seed so it reproduces.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::app::serve;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower_otp::{delivery::MemoryOutbox, link::EmailLinks};

const OTP_PATHS: [&str; 4] = [
    "/send-otp/",
    "/verify-otp/",
    "/send-mobile-otp/",
    "/verify-mobile-otp/",
];
const BODY_LIMIT: usize = 4096;
const BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// What a corpus item may be answered with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A contract error: 4xx, JSON, `"status":"error"` and a `code`.
    Error,
    /// This status and code exactly.
    Exactly(u16, &'static str),
    /// A contract error or a success (the request may be valid after all:
    /// duplicate keys, an ignored Content-Encoding, a chunked body).
    ErrorOrSuccess,
    /// HTTP framing hyper refuses: a 4xx with any body, or the connection
    /// closed without an answer. Never a 5xx.
    Framing,
    /// A body far above the limit: 413 `payload_too_large`, or no answer
    /// when the server closed while the client was still writing (the
    /// client's socket then discards the answer).
    TooLarge,
    /// 405 `method_not_allowed` without a body (HEAD).
    HeadNotAllowed,
    /// 200 with this exact text body (a passthrough route).
    Text(&'static str),
    /// An email link's page: HTML, 200 (a confirm page) or 4xx.
    Page,
}

struct Item {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
    /// Write the body one byte at a time, this far apart.
    trickle: Option<Duration>,
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn pick_bytes<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn email(&mut self) -> String {
        format!("u{:010x}@example.com", self.next() >> 24)
    }
}

/// A request head and body with `Connection: close` and a correct
/// Content-Length unless `headers` says otherwise.
fn request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    let explicit_length = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !explicit_length && (!body.is_empty() || method == "POST") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn json_post(path: &str, body: &[u8]) -> Vec<u8> {
    request("POST", path, &[("Content-Type", b"application/json")], body)
}

/// A grant token with one character changed, cut short or extended.
fn tamper(rng: &mut Rng, token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match rng.below(4) {
        0 => {
            let i = rng.below(chars.len());
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        }
        1 => chars.truncate(rng.below(chars.len())),
        2 => chars.extend("AAAA".chars()),
        _ => {
            let i = rng.below(chars.len());
            chars.insert(i, '.');
        }
    }
    chars.into_iter().collect()
}

/// Malformed email link requests (GET and POST of both link paths): forged,
/// tampered, oversize and wrong-typed tokens. `link` is a real sign-in
/// token (tampered copies must fail).
fn link_corpus(seed: u64, count: usize, link: &str) -> Vec<Item> {
    let mut rng = Rng::new(seed ^ 0x1111);
    let mut items = Vec::with_capacity(count);
    for n in 0..count {
        let path = *rng.pick(&["/otp/link/", "/otp/cancel/"]);
        let token = match rng.below(5) {
            0 => tamper(&mut rng, link),
            1 => "A".repeat(1 + rng.below(8000)),
            2 => {
                let n = rng.below(120);
                rng.bytes(n)
                    .iter()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            }
            3 => String::new(),
            _ => format!("{link}&t=x&{}", "t=".repeat(rng.below(50))),
        };
        let (name, bytes, expect) = match rng.below(4) {
            0 => (
                "link GET",
                request("GET", &format!("{path}?t={token}"), &[], b""),
                Expect::Page,
            ),
            1 => (
                "link HEAD",
                request("HEAD", &format!("{path}?t={token}"), &[], b""),
                Expect::Page,
            ),
            2 => (
                "link form POST",
                request(
                    "POST",
                    path,
                    &[
                        ("Content-Type", b"application/x-www-form-urlencoded"),
                        ("Accept", b"application/json"),
                    ],
                    format!("t={token}").as_bytes(),
                ),
                Expect::Error,
            ),
            _ => {
                let value = match rng.below(3) {
                    0 => json!(token),
                    1 => json!([token]),
                    _ => json!({ "t": 42 }),
                };
                let body = json!({ "t": value }).to_string();
                (
                    "link JSON POST",
                    request(
                        "POST",
                        path,
                        &[
                            ("Content-Type", b"application/json"),
                            ("Accept", b"application/json"),
                        ],
                        body.as_bytes(),
                    ),
                    Expect::Error,
                )
            }
        };
        items.push(Item {
            name: format!("#L{n} {name} ({path}, seed {seed})"),
            bytes,
            expect,
            trickle: None,
        });
    }
    items
}

/// The seeded corpus. `token` is a real grant (tampered copies must fail).
fn corpus(seed: u64, count: usize, token: &str) -> Vec<Item> {
    let mut rng = Rng::new(seed);
    let valid = br#"{"email":"user@example.com","mobile":"+14155550123","otp":"123456"}"#;
    let fields = ["email", "mobile", "otp", "locale", "purpose", "channel"];
    let wrong_values = [
        "[]",
        "{}",
        "true",
        "false",
        "42",
        "-1",
        "1.5",
        "null",
        "\"\"",
        "[\"a@b.c\"]",
        "{\"email\":\"a@b.c\"}",
        "1e400",
        "-1e-400",
        "123456789012345678901234567890",
    ];
    let mut items = Vec::with_capacity(count);
    for n in 0..count {
        let path = *rng.pick(&OTP_PATHS);
        let kind = rng.below(24);
        let (name, bytes, expect, trickle) = match kind {
            // Truncated JSON.
            0 => {
                let cut = 1 + rng.below(valid.len() - 1);
                (
                    "truncated json",
                    json_post(path, &valid[..cut]),
                    Expect::Error,
                    None,
                )
            }
            // Random bytes.
            1 => {
                let len = 1 + rng.below(300);
                let mut body = rng.bytes(len);
                body[0] = b'{';
                ("random bytes", json_post(path, &body), Expect::Error, None)
            }
            // Deep nesting, inside and above the size limit.
            2 => {
                let depth = 50 + rng.below(6000);
                let (open, close) = if rng.below(2) == 0 {
                    ("[", "]")
                } else {
                    ("{\"email\":", "}")
                };
                let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                (
                    "deep nesting",
                    json_post(path, body.as_bytes()),
                    Expect::Error,
                    None,
                )
            }
            // Huge numbers and wrong types in every field.
            3 | 4 => {
                let field = *rng.pick(&fields[..3]);
                let value = *rng.pick(&wrong_values);
                let body = format!("{{\"{field}\":{value},\"otp\":\"123456\"}}");
                let body = if field == "otp" {
                    format!("{{\"email\":\"{}\",\"otp\":{value}}}", rng.email())
                } else {
                    body
                };
                // `"otp": ...` with a valid email on a send path is a valid send
                // (unknown/odd extra fields are ignored there).
                let expect = if field == "otp" && path.starts_with("/send") {
                    Expect::ErrorOrSuccess
                } else {
                    Expect::Error
                };
                ("wrong type", json_post(path, body.as_bytes()), expect, None)
            }
            // NUL bytes: escaped, raw inside a string, raw outside.
            5 => {
                let body: &[u8] = rng.pick_bytes(&[
                    &br#"{"email":"us\u0000er@example.com","mobile":"+1415\u00005550123","otp":"12\u00003456"}"#[..],
                    &b"{\"email\":\"us\0er@example.com\",\"otp\":\"123456\"}"[..],
                    &b"\0{\"email\":\"user@example.com\"}"[..],
                    &b"{\"email\":\"user@example.com\"}\0"[..],
                ]);
                ("nul bytes", json_post(path, body), Expect::Error, None)
            }
            // Invalid UTF-8 and lone surrogates.
            6 => {
                let body: &[u8] = rng.pick_bytes(&[
                    &b"{\"email\":\"a\xff\xfe@example.com\",\"otp\":\"123456\"}"[..],
                    &b"{\"email\":\"\xc0\xafuser@example.com\"}"[..],
                    &b"{\"mobile\":\"+1415\xed\xa0\x80555\"}"[..],
                    &br#"{"email":"\ud800@example.com","mobile":"\udfff","otp":"\ud83d"}"#[..],
                    &b"\xef\xbb\xbf{\"email\":\"user@example.com\"}"[..],
                ]);
                ("invalid utf-8", json_post(path, body), Expect::Error, None)
            }
            // Duplicate keys (a valid request is possible).
            7 => {
                let body = format!(
                    "{{\"email\":\"{}\",\"email\":\"{}\",\"mobile\":\"+14155550123\",\"mobile\":\"+1\",\"otp\":\"1\",\"otp\":\"123456\"}}",
                    rng.email(),
                    rng.email()
                );
                (
                    "duplicate keys",
                    json_post(path, body.as_bytes()),
                    Expect::ErrorOrSuccess,
                    None,
                )
            }
            // Huge strings: below and above the body limit.
            8 => {
                let len = 200 + rng.below(3 * BODY_LIMIT);
                let field = *rng.pick(&fields);
                let body = format!("{{\"{field}\":\"{}@example.com\"}}", "a".repeat(len));
                (
                    "huge string",
                    json_post(path, body.as_bytes()),
                    Expect::Error,
                    None,
                )
            }
            // Wrong or missing Content-Type.
            9 => {
                let ct: &[u8] = rng.pick_bytes(&[
                    &b"text/plain"[..],
                    b"application/xml",
                    b"application/x-www-form-urlencoded",
                    b"multipart/form-data; boundary=x",
                    b"application/jsonx",
                    b"json",
                    b"",
                    b";;;",
                    b"application/",
                ]);
                let body = format!("{{\"email\":\"{}\"}}", rng.email());
                let headers: &[(&str, &[u8])] = &[("Content-Type", ct)];
                let bytes = request("POST", path, headers, body.as_bytes());
                (
                    "wrong content-type",
                    bytes,
                    Expect::Exactly(415, "unsupported_media_type"),
                    None,
                )
            }
            10 => {
                let body = format!("{{\"email\":\"{}\"}}", rng.email());
                let bytes = request("POST", path, &[], body.as_bytes());
                (
                    "missing content-type",
                    bytes,
                    Expect::Exactly(415, "unsupported_media_type"),
                    None,
                )
            }
            // Absurd or contradictory Content-Length (framing).
            11 => {
                let cl: &[u8] = rng.pick_bytes(&[
                    &b"99999999999999999999999999"[..],
                    b"-5",
                    b"0x10",
                    b"1, 2",
                    b"",
                ]);
                let headers: &[(&str, &[u8])] = &[
                    ("Content-Type", b"application/json"),
                    ("Content-Length", cl),
                ];
                let bytes = request("POST", path, headers, b"{\"email\":\"a@example.com\"}");
                ("absurd content-length", bytes, Expect::Framing, None)
            }
            // A declared length above the limit, or shorter than the body.
            12 => {
                let (cl, expect): (&[u8], Expect) = if rng.below(2) == 0 {
                    (b"100000000", Expect::Exactly(413, "payload_too_large"))
                } else {
                    (b"5", Expect::Error)
                };
                let headers: &[(&str, &[u8])] = &[
                    ("Content-Type", b"application/json"),
                    ("Content-Length", cl),
                ];
                let bytes = request("POST", path, headers, b"{\"email\":\"a@example.com\"}");
                ("lying content-length", bytes, expect, None)
            }
            // Huge headers, many headers (hyper refuses: 431 or closed).
            13 => {
                let junk = vec![b'x'; 20_000 + rng.below(100_000)];
                let mut bytes = request(
                    "POST",
                    path,
                    &[("Content-Type", b"application/json"), ("X-Junk", &junk)],
                    b"{}",
                );
                if rng.below(2) == 0 {
                    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
                    bytes = format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{many}Content-Length: 2\r\n\r\n{{}}").into_bytes();
                }
                ("huge headers", bytes, Expect::Framing, None)
            }
            // Bad cookies and forged or tampered grants, on gated routes.
            14 | 15 => {
                let forged = match rng.below(6) {
                    0 => tamper(&mut rng, token),
                    1 => format!("v2.{}", hex(&rng.bytes(24))),
                    2 => "A".repeat(1 + rng.below(6000)),
                    3 => String::new(),
                    4 => format!("{token}{token}"),
                    _ => {
                        let n = 1 + rng.below(64);
                        hex(&rng.bytes(n))
                    }
                };
                let (route, expect) = *rng.pick(&[
                    ("/email-only", Expect::Exactly(401, "verification_required")),
                    (
                        "/mobile-only",
                        Expect::Exactly(401, "verification_required"),
                    ),
                    ("/any", Expect::Exactly(401, "verification_required")),
                    ("/maybe", Expect::Text("anonymous")),
                ]);
                let cookie = format!("otp_verification={forged}");
                let secure = format!(
                    "__Host-otp_verification={forged}; otp_verification=; otp_verification={}",
                    hex(&rng.bytes(8))
                );
                let headers: Vec<(&str, &[u8])> = match rng.below(3) {
                    0 => vec![("X-Verification-Token", forged.as_bytes())],
                    1 => vec![("Cookie", cookie.as_bytes())],
                    _ => vec![
                        ("Cookie", secure.as_bytes()),
                        ("X-Verification-Token", forged.as_bytes()),
                    ],
                };
                // An empty token header is still no grant.
                (
                    "forged grant",
                    request("GET", route, &headers, b""),
                    expect,
                    None,
                )
            }
            // Cookie bytes a header value may carry but no cookie parser likes.
            16 => {
                let mut cookie = b"otp_verification=".to_vec();
                cookie.extend((0..1 + rng.below(200)).map(|_| 0x21 + (rng.next() % 0x5e) as u8));
                cookie.extend_from_slice(b"; ;; =; \x80\xff=\t");
                let bytes = request("GET", "/email-only", &[("Cookie", &cookie)], b"");
                (
                    "garbage cookie",
                    bytes,
                    Expect::Exactly(401, "verification_required"),
                    None,
                )
            }
            // A grant on a verify: garbage must not break the verify.
            17 => {
                let forged = tamper(&mut rng, token);
                let body = format!("{{\"email\":\"{}\",\"otp\":\"123456\"}}", rng.email());
                let headers: &[(&str, &[u8])] = &[
                    ("Content-Type", b"application/json"),
                    ("X-Verification-Token", forged.as_bytes()),
                ];
                let bytes = request("POST", "/verify-otp/", headers, body.as_bytes());
                (
                    "verify with forged grant",
                    bytes,
                    Expect::Exactly(400, "otp_expired"),
                    None,
                )
            }
            // Wrong methods on OTP paths.
            18 => {
                let method = *rng.pick(&[
                    "GET", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO", "HEAD",
                ]);
                let body = if method == "GET" || method == "HEAD" {
                    &b""[..]
                } else {
                    &valid[..]
                };
                let bytes = request(method, path, &[("Content-Type", b"application/json")], body);
                let expect = if method == "HEAD" {
                    Expect::HeadNotAllowed
                } else {
                    Expect::Exactly(405, "method_not_allowed")
                };
                ("wrong method", bytes, expect, None)
            }
            // Content-Encoding lies (the layer reads the bytes as they are).
            19 => {
                let body = if rng.below(2) == 0 {
                    format!("{{\"email\":\"{}\"}}", rng.email()).into_bytes()
                } else {
                    let mut b = vec![0x1f, 0x8b, 0x08, 0x00];
                    b.extend(rng.bytes(40));
                    b
                };
                let enc: &[u8] = rng.pick_bytes(&[
                    &b"gzip"[..],
                    b"deflate",
                    b"br",
                    b"gzip, gzip",
                    b"identity",
                    b"x-\xff",
                ]);
                let headers: &[(&str, &[u8])] = &[
                    ("Content-Type", b"application/json"),
                    ("Content-Encoding", enc),
                ];
                (
                    "content-encoding",
                    request("POST", path, headers, &body),
                    Expect::ErrorOrSuccess,
                    None,
                )
            }
            // Chunked bodies: valid, broken, huge chunk sizes, with a Content-Length.
            20 => {
                let email = rng.email();
                let json = format!("{{\"email\":\"{email}\"}}");
                let (te, body, expect): (&[u8], String, Expect) = match rng.below(5) {
                    0 => (
                        b"chunked",
                        format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len()),
                        Expect::ErrorOrSuccess,
                    ),
                    1 => (
                        b"chunked",
                        format!("zz\r\n{json}\r\n0\r\n\r\n"),
                        Expect::Framing,
                    ),
                    2 => (
                        b"chunked",
                        "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n".to_owned(),
                        Expect::Framing,
                    ),
                    // hyper reads the chunks and leaves the coding to the app,
                    // which reads the bytes as they are.
                    3 => (
                        b"gzip, chunked",
                        format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len()),
                        Expect::ErrorOrSuccess,
                    ),
                    _ => (
                        b"chunked",
                        format!("{:x}\r\n{json}\r\n", json.len() + 7),
                        Expect::Framing,
                    ),
                };
                let mut headers: Vec<(&str, &[u8])> = vec![
                    ("Content-Type", b"application/json"),
                    ("Transfer-Encoding", te),
                ];
                // With a Content-Length too, hyper goes by Transfer-Encoding
                // (RFC 9112 section 6.3): the same answers.
                if rng.below(3) == 0 {
                    headers.push(("Content-Length", b"3"));
                }
                (
                    "chunked",
                    request("POST", path, &headers, body.as_bytes()),
                    expect,
                    None,
                )
            }
            // Huge bodies.
            21 if rng.below(8) == 0 => {
                let body = vec![b'['; 256 * 1024 + rng.below(4 * 1024 * 1024)];
                ("huge body", json_post(path, &body), Expect::TooLarge, None)
            }
            // Trickled bodies: too slow for the body deadline.
            22 if rng.below(10) == 0 => {
                let body = format!("{{\"email\":\"{}\"}}", rng.email());
                let bytes = json_post(path, body.as_bytes());
                (
                    "trickled body",
                    bytes,
                    Expect::Exactly(408, "request_timeout"),
                    Some(Duration::from_millis(150)),
                )
            }
            // Request-line garbage.
            23 => {
                let bytes = match rng.below(4) {
                    0 => {
                        let n = 1 + rng.below(200);
                        rng.bytes(n)
                    }
                    1 => format!("POST {path} HTTP/9.9\r\n\r\n").into_bytes(),
                    2 => b"POST /send-otp/\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                    _ => b"POST /send-otp/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
                };
                ("garbage request line", bytes, Expect::Framing, None)
            }
            // Everything else: a plain malformed body.
            _ => {
                let body = format!("{{\"email\": \"{}\", ", rng.email());
                (
                    "unterminated object",
                    json_post(path, body.as_bytes()),
                    Expect::Error,
                    None,
                )
            }
        };
        items.push(Item {
            name: format!("#{n} {name} ({path}, seed {seed})"),
            bytes,
            expect,
            trickle,
        });
    }
    items
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What came back on a raw connection.
#[derive(Debug)]
struct Raw {
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

/// Writes `item` on a fresh connection and reads until the server closes.
async fn replay(addr: SocketAddr, item: &Item) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let bytes = item.bytes.clone();
    let trickle = item.trickle;
    let writer = tokio::spawn(async move {
        match trickle {
            None => {
                let _ = write.write_all(&bytes).await;
            }
            Some(gap) => {
                let split = bytes
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(0, |p| p + 4);
                let _ = write.write_all(&bytes[..split]).await;
                for byte in &bytes[split..] {
                    tokio::time::sleep(gap).await;
                    if write.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Keep the write half open: closing it would end the body early.
        tokio::time::sleep(Duration::from_secs(15)).await;
        drop(write);
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 8192];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if complete(&answer) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read_all).await;
    writer.abort();
    parse(&answer)
}

/// Whether `raw` holds a whole response (head and Content-Length body).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => raw.len() >= end + 4 + n,
        None => false,
    }
}

fn parse(raw: &[u8]) -> Raw {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match end {
        Some(end) => (&raw[..end], raw[end + 4..].to_vec()),
        None => (raw, Vec::new()),
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Raw { status, head, body }
}

/// Checks `raw` against `item`'s expectation; a description of the
/// mismatch otherwise.
fn check(item: &Item, raw: &Raw) -> Result<(), String> {
    let json: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    let is_json = raw
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/json");
    let contract_error = |status: u16| {
        (400..500).contains(&status)
            && is_json
            && json["status"] == "error"
            && json["code"].as_str().is_some_and(|c| !c.is_empty())
    };
    let ok = match (item.expect, raw.status) {
        (_, Some(status)) if status >= 500 => false,
        (Expect::Error, Some(s)) => contract_error(s),
        (Expect::Exactly(want, code), Some(s)) => {
            s == want && contract_error(s) && json["code"] == code
        }
        (Expect::ErrorOrSuccess, Some(s)) => {
            contract_error(s) || (s == 200 && is_json && json["status"] == "success")
        }
        (Expect::Framing, None) | (Expect::TooLarge, None) => true,
        (Expect::Framing, Some(s)) => (400..500).contains(&s),
        (Expect::TooLarge, Some(s)) => s == 413 && contract_error(s),
        (Expect::HeadNotAllowed, Some(s)) => s == 405,
        (Expect::Text(text), Some(s)) => s == 200 && raw.body == text.as_bytes(),
        (Expect::Page, Some(s)) => {
            (s == 200 || (400..500).contains(&s))
                && raw
                    .head
                    .to_ascii_lowercase()
                    .contains("content-type: text/html")
        }
        (_, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: expected {:?}, got {:?}\n{}\n{}",
            item.name,
            item.expect,
            raw.status,
            raw.head,
            String::from_utf8_lossy(&raw.body[..raw.body.len().min(300)])
        ))
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One round of good traffic: the passthrough page and a valid send.
async fn good_round(
    client: &reqwest::Client,
    base: &str,
    rng: &mut Rng,
) -> Result<Duration, String> {
    let start = Instant::now();
    let page = client
        .get(format!("{base}/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = page.status();
    let text = page.text().await.map_err(|e| e.to_string())?;
    if status != 200 || text != "home page" {
        return Err(format!("passthrough: {status} {text}"));
    }
    let send = client
        .post(format!("{base}/send-otp/"))
        .json(&json!({"email": rng.email()}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = send.status();
    let body: Value = send.json().await.unwrap_or(Value::Null);
    if status != 200 || body["status"] != "success" {
        return Err(format!("send: {status} {body}"));
    }
    Ok(start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_corpus_of_malformed_requests_gets_only_contract_answers() {
    let seed: u64 = std::env::var("BAD_INPUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(18);
    let count: usize = std::env::var("BAD_INPUT_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);

    let outbox = MemoryOutbox::new();
    let base = serve(
        common::builder_with(&outbox)
            .ip_limits(0, 0)
            .resend_cooldown(Duration::ZERO)
            .send_quota(1_000_000, Duration::from_secs(600))
            .body_limit(BODY_LIMIT)
            .body_timeout(BODY_TIMEOUT)
            .email_links(EmailLinks::new("https://app.example.com")),
    )
    .await;
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    // A real grant, for tampered copies (and a control: it is accepted).
    let client = reqwest::Client::new();
    let email = "grant-holder@example.com";
    client
        .post(format!("{base}/send-otp/"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    let code = outbox.last_code_for(email).expect("a code was sent");
    let answer: Value = client
        .post(format!("{base}/verify-otp/"))
        .json(&json!({"email": email, "otp": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().expect("a grant").to_owned();
    // A real sign-in link token, for tampered copies.
    let mail = outbox.last_to(email).expect("the code email");
    let link_token: String = mail
        .text()
        .split("/otp/link/?t=")
        .nth(1)
        .expect("a sign-in link in the email")
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let control = client
        .get(format!("{base}/email-only"))
        .header("x-verification-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(control.status(), 200);

    // Good traffic alone: the baseline.
    let mut good_rng = Rng::new(seed ^ 0xdead_beef);
    let mut baseline = Vec::new();
    for _ in 0..20 {
        baseline.push(good_round(&client, &base, &mut good_rng).await.unwrap());
    }
    baseline.sort();

    let mut items = corpus(seed, count, &token);
    items.extend(link_corpus(seed, count / 10, &link_token));
    let items = Arc::new(items);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();

    // Good traffic beside the corpus, until it is done.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good = {
        let (base, done, client) = (base.clone(), done.clone(), client.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match good_round(&client, &base, &mut good_rng).await {
                    Ok(took) => latencies.push(took),
                    Err(e) => errors.push(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (latencies, errors)
        })
    };

    let workers: Vec<_> = (0..12)
        .map(|_| {
            let (items, next, failures) = (items.clone(), next.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let raw = replay(addr, item).await;
                    if let Err(e) = check(item, &raw) {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let corpus_time = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut latencies, good_errors) = good.await.unwrap();
    latencies.sort();

    // Still up, still right.
    good_round(&client, &base, &mut Rng::new(seed))
        .await
        .expect("the server still answers");

    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for item in items.iter() {
        let kind = item.name.split_once(' ').map_or("", |(_, rest)| rest);
        let kind = kind.split(" (").next().unwrap_or(kind);
        *by_kind.entry(kind).or_default() += 1;
    }
    eprintln!(
        "{} malformed requests (seed {seed}) in {corpus_time:?}: {by_kind:?}\n\
         good rounds alone: p50 {:?} p90 {:?} max {:?}; beside the corpus ({} rounds): p50 {:?} p90 {:?} max {:?}",
        items.len(),
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.9),
        percentile(&baseline, 1.0),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 1.0),
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} answers were not contract answers; the first:\n{}",
        failures.len(),
        items.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert!(
        good_errors.is_empty(),
        "good requests failed: {good_errors:?}"
    );
    assert!(
        latencies.len() >= 10,
        "too few good rounds: {}",
        latencies.len()
    );
    // Normal latency: the typical good round is not held up by the corpus
    // (generous bounds: a debug build on 2 shared cores).
    let p50 = percentile(&latencies, 0.5);
    assert!(
        p50 <= percentile(&baseline, 0.5) * 10 + Duration::from_millis(200),
        "good rounds slowed down: p50 {p50:?}"
    );
    assert!(
        percentile(&latencies, 1.0) < Duration::from_secs(3),
        "a good round took {:?}",
        percentile(&latencies, 1.0)
    );
}
