//! One behaviour suite for every [`OtpStore`]: the same properties, checked
//! directly on the store and through the real layer (HTTP requests through
//! `otp.layer()`, codes read from a `MemoryOutbox`).
//!
//! [`store_conformance!`](crate::store_conformance) expands to a module with
//! one `#[test]` per property (each on a 4-thread tokio runtime); its
//! factory is a closure returning a future of `Option<Harness>`. `None`
//! means "skip": the factory reports why (and decides whether a missing
//! service is a failure).

use std::{
    any::Any,
    collections::BTreeSet,
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    Otp, OtpBuilder,
    delivery::MemoryOutbox,
    hash::HashParams,
    store::{
        Attempt, CodeRecord, FailureBudget, OtpStore, RangeLimits, RangeVerdict, SendLimits,
        SendReservation, StoreKey,
    },
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rand::{TryRng, rngs::SysRng};
use serde_json::{Value, json};
use tower_layer::Layer;
use tower_service::Service;

/// A store under test, and whatever must stay alive with it (a cluster).
pub struct Harness {
    /// The store.
    pub store: Arc<dyn OtpStore>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness for `store`, keeping `guard` alive as long as it.
    pub fn new(store: impl OtpStore, guard: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            _guard: Box::new(guard),
        }
    }

    /// An `Otp` on this store (random secret, fast hashing, a large hashing
    /// queue so that 100 parallel verifies are not shed), with `configure`
    /// applied, and the outbox it delivers to.
    pub fn otp(&self, configure: impl FnOnce(OtpBuilder) -> OtpBuilder) -> (Otp, MemoryOutbox) {
        let outbox = MemoryOutbox::new();
        let otp = configure(
            Otp::builder()
                .secret(random_secret())
                .shared_store(Arc::clone(&self.store))
                .email_sender(outbox.clone())
                .sms_sender(outbox.clone())
                .hash_params(HashParams::insecure_fast())
                .hash_pool_size(2, 512),
        )
        .build()
        .expect("otp");
        (otp, outbox)
    }
}

/// A random 32-character secret.
pub fn random_secret() -> String {
    format!("{:032x}", random_u128())
}

/// A random store key (hex, like the engine's digests).
pub fn random_key() -> StoreKey {
    StoreKey::new(format!("{:032x}", random_u128()))
}

/// A record with a random salt.
pub fn record() -> CodeRecord {
    CodeRecord {
        salt: random_u128().to_le_bytes(),
        hash: vec![7; 32],
        secret_id: 42,
    }
}

/// A random email address.
pub fn email() -> String {
    format!("user{:012x}@Example.COM", (random_u128() as u64) >> 16)
}

/// Sends one JSON POST through `otp`'s layer (in front of an inner service
/// that answers 200 "inner") and returns the status, the `Retry-After`
/// header and the JSON body.
pub async fn post(otp: &Otp, path: &str, body: Value) -> (StatusCode, Option<String>, Value) {
    let mut app = otp.layer().layer(Inner);
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    std::future::poll_fn(|cx| app.poll_ready(cx))
        .await
        .expect("the layer is ready");
    let response = app.call(request).await.expect("the layer answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, retry_after, body)
}

/// The host app behind the layer in [`post`]: answers 200 "inner".
#[derive(Debug, Clone, Copy)]
struct Inner;

impl Service<Request<Full<Bytes>>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"inner")))))
    }
}

/// POST /send-otp/ for `email`.
pub async fn send(otp: &Otp, email: &str) -> (StatusCode, Option<String>, Value) {
    post(otp, "/send-otp/", json!({ "email": email })).await
}

/// POST /verify-otp/ for `email` with `code`.
pub async fn verify(otp: &Otp, email: &str, code: &str) -> (StatusCode, Option<String>, Value) {
    post(otp, "/verify-otp/", json!({ "email": email, "otp": code })).await
}

/// The last code delivered to `email` (the domain lower-cased, as the
/// engine normalizes it).
pub fn code_for(outbox: &MemoryOutbox, email: &str) -> String {
    let normalized = normalize(email);
    outbox
        .last_code_for(&normalized)
        .unwrap_or_else(|| panic!("no code delivered to {normalized}"))
}

fn normalize(email: &str) -> String {
    let (local, domain) = email.rsplit_once('@').unwrap();
    format!("{local}@{}", domain.to_ascii_lowercase())
}

/// A code of the same length that is not `code`.
pub fn wrong(code: &str) -> String {
    let mut digits: Vec<u8> = code.bytes().collect();
    let last = digits.last_mut().unwrap();
    *last = b'0' + (*last - b'0' + 1) % 10;
    String::from_utf8(digits).unwrap()
}

// ---------------------------------------------------------------------------
// Properties, directly on the store.

/// The operator's reads: a live code's time and attempts (per purpose), the
/// send record and the failure record; `None` where there is nothing, and
/// nothing changes by reading.
pub async fn inspect_without_secrets(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let login = key.with_purpose("login");
    assert_eq!(s.inspect_code(&key).await.unwrap(), None);
    assert_eq!(s.inspect_sends(&key).await.unwrap(), None);
    assert_eq!(s.inspect_failures(&key).await.unwrap(), None);

    s.put_code(&login, &record(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.inspect_code(&key).await.unwrap(), None, "purposes apart");
    let status = s.inspect_code(&login).await.unwrap().expect("a live code");
    assert_eq!(status.attempts_used, 0);
    assert!(
        status.expires_in > Duration::from_secs(58) && status.expires_in <= Duration::from_secs(60),
        "{status:?}"
    );
    s.begin_attempt(&login, 5).await.unwrap();
    s.begin_attempt(&login, 5).await.unwrap();
    assert_eq!(
        s.inspect_code(&login).await.unwrap().unwrap().attempts_used,
        2
    );
    assert_eq!(
        s.inspect_code(&login).await.unwrap().unwrap().attempts_used,
        2,
        "reading takes no attempt"
    );

    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    for _ in 0..2 {
        s.reserve_send(&key, &limits).await.unwrap();
        s.release_cooldown(&key).await.unwrap();
    }
    s.reserve_send(&key, &limits).await.unwrap();
    let sends = s.inspect_sends(&key).await.unwrap().expect("a send record");
    assert_eq!(sends.sends, 3);
    assert!(
        sends.cooldown_left > Duration::from_secs(28)
            && sends.cooldown_left <= Duration::from_secs(30),
        "{sends:?}"
    );
    assert!(
        sends.window_left > Duration::from_secs(598)
            && sends.window_left <= Duration::from_secs(600),
        "{sends:?}"
    );

    let budget = FailureBudget::new(2).locks(Duration::from_secs(30), Duration::from_secs(60));
    s.record_failure(&key, &budget).await.unwrap();
    let failures = s.inspect_failures(&key).await.unwrap().expect("a record");
    assert_eq!((failures.failures, failures.locked_for), (1, None));
    s.record_failure(&key, &budget).await.unwrap();
    let failures = s.inspect_failures(&key).await.unwrap().unwrap();
    assert_eq!(failures.failures, 2);
    let lock = failures.locked_for.expect("locked");
    assert!(
        lock > Duration::from_secs(28) && lock <= Duration::from_secs(30),
        "{lock:?}"
    );

    // An expired code is not reported.
    let short = random_key();
    s.put_code(&short, &record(), Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.inspect_code(&short).await.unwrap(), None);
}

/// Cancel deletes one purpose's code whatever its salt; clearing the send
/// record ends the cooldown and restarts the quota.
pub async fn delete_code_and_clear_sends(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let reset = key.with_purpose("reset");
    s.put_code(&key, &record(), Duration::from_secs(60))
        .await
        .unwrap();
    s.put_code(&reset, &record(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s.delete_code(&reset).await.unwrap());
    assert!(!s.delete_code(&reset).await.unwrap(), "nothing left");
    assert_eq!(s.begin_attempt(&reset, 5).await.unwrap(), Attempt::NoCode);
    assert!(
        matches!(
            s.begin_attempt(&key, 5).await.unwrap(),
            Attempt::Granted { .. }
        ),
        "the other purpose's code stays"
    );

    let limits = SendLimits::new(Duration::from_secs(30), 1, Duration::from_secs(600));
    assert!(!s.clear_sends(&key).await.unwrap());
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted
    );
    assert!(matches!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Cooldown { .. }
    ));
    assert!(s.clear_sends(&key).await.unwrap());
    assert_eq!(s.inspect_sends(&key).await.unwrap(), None);
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted,
        "cooldown over and quota restarted"
    );
}

/// A send block ("this wasn't me") holds when a send that was in flight as
/// it began fails and releases its cooldown; the operator's unlock lifts
/// it; once a block has ended, a later send's release works as before.
/// Skipped for a store without `block_sends`.
pub async fn block_survives_a_released_send(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted,
        "the send in flight"
    );
    match s.block_sends(&key, Duration::from_secs(3600)).await {
        Err(e) if e.is_unsupported() => return,
        other => other.unwrap(),
    }
    // The send in flight fails: its cooldown is released, not the block.
    s.release_cooldown(&key).await.unwrap();
    match s.reserve_send(&key, &limits).await.unwrap() {
        SendReservation::Cooldown { retry_after } => {
            assert!(retry_after > Duration::from_secs(3590), "{retry_after:?}")
        }
        other => panic!("the block was lifted: {other:?}"),
    }
    let sends = s.inspect_sends(&key).await.unwrap().expect("a send record");
    assert!(sends.cooldown_left > Duration::from_secs(3590), "{sends:?}");
    assert!(s.clear_sends(&key).await.unwrap());
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted,
        "the operator's unlock lifts it"
    );

    // A block that ends: the next send's cooldown is its own again.
    let other = random_key();
    let brief = SendLimits::new(Duration::from_millis(100), 5, Duration::from_secs(600));
    s.block_sends(&other, Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.reserve_send(&other, &limits).await.unwrap(),
        SendReservation::Granted,
        "the block is over"
    );
    s.release_cooldown(&other).await.unwrap();
    assert_eq!(
        s.reserve_send(&other, &brief).await.unwrap(),
        SendReservation::Granted,
        "a failed delivery after the block releases its cooldown"
    );
}

/// Whether `range` is among the blocks `s` lists.
async fn is_blocked(s: &Arc<dyn OtpStore>, range: &str) -> bool {
    s.blocked_ranges()
        .await
        .unwrap()
        .iter()
        .any(|b| b.range == range)
}

/// A random number range (`+999…`, a calling code no country has), so
/// that tests sharing a store never see each other's ranges.
fn random_range() -> String {
    format!("+999{:08}", random_u128() % 100_000_000)
}

/// The SMS fraud breaker: a range with volume and no verifies trips (the
/// send that finds it so is refused), stays blocked, is listed with its
/// figures; a range that converts is never blocked; a lift ends the block
/// and forgets the figures.
pub async fn range_breaker_trips_and_lifts(h: Harness) {
    let s = &h.store;
    let limits = RangeLimits::new(Duration::from_secs(3600), 3, 500, Duration::from_secs(30));
    let (pumped, good) = (random_range(), random_range());
    for _ in 0..3 {
        assert_eq!(
            s.record_range_send(&pumped, &limits).await.unwrap(),
            RangeVerdict::Allowed
        );
        assert_eq!(
            s.record_range_send(&good, &limits).await.unwrap(),
            RangeVerdict::Allowed
        );
        s.record_range_verify(&good, &limits).await.unwrap();
    }
    let RangeVerdict::Blocked {
        retry_after,
        tripped: true,
    } = s.record_range_send(&pumped, &limits).await.unwrap()
    else {
        panic!("3 sends, none verified: the 4th trips the breaker");
    };
    assert!(
        retry_after > Duration::from_secs(29) && retry_after <= Duration::from_secs(30),
        "{retry_after:?}"
    );
    assert!(matches!(
        s.record_range_send(&pumped, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: false, .. }
    ));
    for _ in 0..5 {
        assert_eq!(
            s.record_range_send(&good, &limits).await.unwrap(),
            RangeVerdict::Allowed,
            "a converting range is not blocked"
        );
        s.record_range_verify(&good, &limits).await.unwrap();
    }
    let blocks = s.blocked_ranges().await.unwrap();
    let block = blocks
        .iter()
        .find(|b| b.range == pumped)
        .expect("the pumped range is listed");
    assert_eq!((block.sent, block.verified), (3, 0));
    assert!(block.blocked_for > Duration::from_secs(28));
    assert!(!blocks.iter().any(|b| b.range == good));

    assert!(s.lift_range_block(&pumped).await.unwrap());
    assert!(
        !s.lift_range_block(&pumped).await.unwrap(),
        "lifted already"
    );
    assert!(!is_blocked(s, &pumped).await);
    assert_eq!(
        s.record_range_send(&pumped, &limits).await.unwrap(),
        RangeVerdict::Allowed,
        "figures forgotten: judged afresh"
    );
}

/// Below the minimum volume a range is never blocked, however few of its
/// codes are verified; a released send (failed delivery) does not count.
pub async fn range_breaker_needs_volume(h: Harness) {
    let s = &h.store;
    let limits = RangeLimits::new(Duration::from_secs(3600), 10, 1000, Duration::from_secs(30));
    let range = random_range();
    for _ in 0..10 {
        assert_eq!(
            s.record_range_send(&range, &limits).await.unwrap(),
            RangeVerdict::Allowed
        );
    }
    assert!(!is_blocked(s, &range).await);
    // A send whose delivery failed is taken back: 9 counted, one more goes.
    s.release_range_send(&range, &limits).await.unwrap();
    assert_eq!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Allowed
    );
    assert!(matches!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: true, .. }
    ));
    // Taking back a send of a range never seen changes nothing.
    s.release_range_send(&random_range(), &limits)
        .await
        .unwrap();
}

/// A decoy's send (enumeration-safe mode) meets the breaker like a real
/// one but is never counted: any number of decoys, even at once, trip
/// nothing; in a blocked range, or one whose figures trip, a decoy is
/// refused like a real send.
pub async fn range_breaker_ignores_decoys(h: Harness) {
    let s = &h.store;
    let limits = RangeLimits::new(Duration::from_secs(3600), 3, 500, Duration::from_secs(30));
    let range = random_range();
    let mut decoys = Vec::new();
    for _ in 0..20 {
        let (store, range) = (Arc::clone(&h.store), range.clone());
        decoys.push(tokio::spawn(async move {
            store.check_range_send(&range, &limits).await.unwrap()
        }));
    }
    for decoy in decoys {
        assert_eq!(decoy.await.unwrap(), RangeVerdict::Allowed);
    }
    assert!(!is_blocked(s, &range).await);
    // Three real sends, unverified: the figures now trip, and whichever
    // send comes next, real or decoy, trips the range.
    for sent in 1..=3 {
        assert_eq!(
            s.record_range_send(&range, &limits).await.unwrap(),
            RangeVerdict::Allowed
        );
        if sent < 3 {
            assert_eq!(
                s.check_range_send(&range, &limits).await.unwrap(),
                RangeVerdict::Allowed,
                "decoys between real sends count for nothing"
            );
        }
    }
    assert!(matches!(
        s.check_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: true, .. }
    ));
    assert!(matches!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: false, .. }
    ));
    assert!(matches!(
        s.check_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: false, .. }
    ));
    let blocks = s.blocked_ranges().await.unwrap();
    let block = blocks.iter().find(|b| b.range == range).expect("listed");
    assert_eq!((block.sent, block.verified), (3, 0), "decoys not counted");
}

/// A block ends by itself; once the window has passed too, the range's old
/// figures no longer count.
pub async fn range_block_ends(h: Harness) {
    let s = &h.store;
    let limits = RangeLimits::new(Duration::from_secs(1), 1, 500, Duration::from_secs(1));
    let range = random_range();
    assert_eq!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Allowed
    );
    assert!(matches!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Blocked { tripped: true, .. }
    ));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(!is_blocked(s, &range).await);
    assert_eq!(
        s.record_range_send(&range, &limits).await.unwrap(),
        RangeVerdict::Allowed
    );
}

/// A code and a send record disappear after their TTLs.
pub async fn expiry(h: Harness) {
    let s = &h.store;
    let key = random_key();
    s.put_code(&key, &record(), Duration::from_millis(800))
        .await
        .unwrap();
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);
    assert!(!s.remove_code(&key, &record().salt).await.unwrap());

    // A send record: cooldown 500 ms, quota 1 per 1.5 s.
    let limits = SendLimits {
        cooldown: Duration::from_millis(500),
        quota: 1,
        window: Duration::from_millis(1500),
    };
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted
    );
    assert!(matches!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Cooldown { retry_after } if retry_after <= Duration::from_millis(500)
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(matches!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::QuotaExceeded { retry_after } if retry_after <= Duration::from_millis(800)
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted,
        "a new window starts after the old one expires"
    );
}

/// Codes live per (purpose, contact): a code for one purpose is not found
/// under another, and sending for one purpose does not replace another's;
/// the failure budget stays the contact's.
pub async fn purposes_keep_codes_apart(h: Harness) {
    let s = &h.store;
    let contact = random_key();
    let (login, reset) = (contact.with_purpose("login"), contact.with_purpose("reset"));
    let (a, b) = (record(), record());
    let ttl = Duration::from_secs(60);
    s.put_code(&login, &a, ttl).await.unwrap();
    assert_eq!(s.begin_attempt(&reset, 5).await.unwrap(), Attempt::NoCode);
    assert_eq!(s.begin_attempt(&contact, 5).await.unwrap(), Attempt::NoCode);
    s.put_code(&reset, &b, ttl).await.unwrap();
    assert!(matches!(
        s.begin_attempt(&login, 5).await.unwrap(),
        Attempt::Granted { record, attempts_used: 1 } if record == a
    ));
    assert!(!s.remove_code(&reset, &a.salt).await.unwrap());
    assert!(s.remove_code(&login, &a.salt).await.unwrap());
    assert!(matches!(
        s.begin_attempt(&reset, 5).await.unwrap(),
        Attempt::Granted { record, .. } if record == b
    ));
    // A lock earned under one purpose holds for every purpose.
    let budget = crate::store::FailureBudget::new(1);
    s.record_failure(&login, &budget).await.unwrap();
    assert!(matches!(
        s.begin_attempt(&reset, 5).await.unwrap(),
        Attempt::Locked { .. }
    ));
    s.reset_failures(&contact).await.unwrap();
}

/// A new code replaces the old one with a fresh attempt count; the old
/// salt no longer removes anything.
pub async fn replace_on_resend(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let (first, second) = (record(), record());
    let ttl = Duration::from_secs(60);
    s.put_code(&key, &first, ttl).await.unwrap();
    for _ in 0..2 {
        s.begin_attempt(&key, 5).await.unwrap();
    }
    s.put_code(&key, &second, ttl).await.unwrap();
    assert_eq!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            record: second.clone(),
            attempts_used: 1
        }
    );
    assert!(!s.remove_code(&key, &first.salt).await.unwrap());
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            attempts_used: 2,
            ..
        }
    ));
    assert!(s.remove_code(&key, &second.salt).await.unwrap());
}

/// Attempts count up to the maximum, then every call is `Exhausted`
/// (without counting further), and the record comes back intact.
pub async fn attempts(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let rec = record();
    s.put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    for used in 1..=3 {
        assert_eq!(
            s.begin_attempt(&key, 3).await.unwrap(),
            Attempt::Granted {
                record: rec.clone(),
                attempts_used: used
            }
        );
    }
    for _ in 0..3 {
        assert_eq!(s.begin_attempt(&key, 3).await.unwrap(), Attempt::Exhausted);
    }
    // A larger limit (e.g. after a config change) sees the true count: 3.
    assert!(matches!(
        s.begin_attempt(&key, 10).await.unwrap(),
        Attempt::Granted {
            attempts_used: 4,
            ..
        }
    ));
    // Another contact is untouched.
    assert_eq!(
        s.begin_attempt(&random_key(), 3).await.unwrap(),
        Attempt::NoCode
    );
}

/// After the last attempt, removing the code (what the engine does on the
/// last wrong guess) leaves no code at all.
pub async fn attempts_exceeded_destroys_code(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let rec = record();
    s.put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    for _ in 0..2 {
        s.begin_attempt(&key, 2).await.unwrap();
    }
    assert_eq!(s.begin_attempt(&key, 2).await.unwrap(), Attempt::Exhausted);
    assert!(s.remove_code(&key, &rec.salt).await.unwrap());
    assert_eq!(s.begin_attempt(&key, 2).await.unwrap(), Attempt::NoCode);
    assert_eq!(s.begin_attempt(&key, 99).await.unwrap(), Attempt::NoCode);
}

/// A code is removed once; the second removal and later attempts find
/// nothing.
pub async fn single_use(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let rec = record();
    s.put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted { .. }
    ));
    assert!(s.remove_code(&key, &rec.salt).await.unwrap());
    assert!(!s.remove_code(&key, &rec.salt).await.unwrap());
    assert_eq!(s.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);
}

/// A grant is spent once: the first `spend_grant` answers `true`, every
/// later one (and every concurrent one) `false`; another grant is separate.
pub async fn grant_spent_once(h: Harness) {
    let key = random_key();
    let ttl = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, key) = (Arc::clone(&h.store), key.clone());
        tasks.push(tokio::spawn(async move {
            store.spend_grant(&key, ttl).await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1);
    assert!(!h.store.spend_grant(&key, ttl).await.unwrap());
    assert!(h.store.spend_grant(&random_key(), ttl).await.unwrap());
}

/// The cooldown refuses a second send with the time left; releasing it
/// allows an immediate resend, and the released send still counts.
pub async fn cooldown(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let limits = SendLimits {
        cooldown: Duration::from_secs(30),
        quota: 2,
        window: Duration::from_secs(600),
    };
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted
    );
    match s.reserve_send(&key, &limits).await.unwrap() {
        SendReservation::Cooldown { retry_after } => assert!(
            retry_after > Duration::from_secs(28) && retry_after <= Duration::from_secs(30),
            "{retry_after:?}"
        ),
        other => panic!("expected a cooldown, got {other:?}"),
    }
    s.release_cooldown(&key).await.unwrap();
    assert_eq!(
        s.reserve_send(&key, &limits).await.unwrap(),
        SendReservation::Granted
    );
    s.release_cooldown(&key).await.unwrap();
    assert!(
        matches!(
            s.reserve_send(&key, &limits).await.unwrap(),
            SendReservation::QuotaExceeded { .. }
        ),
        "released sends still count toward the quota"
    );

    // Releasing an unknown contact changes nothing and creates nothing.
    let other = random_key();
    s.release_cooldown(&other).await.unwrap();
    assert_eq!(
        s.reserve_send(&other, &limits).await.unwrap(),
        SendReservation::Granted
    );
}

/// With no cooldown, sends to one contact at once are all granted (up to
/// the quota): none finds another's zero-length cooldown still running.
pub async fn zero_cooldown_grants_concurrent_sends(h: Harness) {
    let key = random_key();
    let limits = SendLimits::new(Duration::ZERO, 10_000, Duration::from_secs(600));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, key) = (Arc::clone(&h.store), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            for _ in 0..200 {
                let answer = store.reserve_send(&key, &limits).await.unwrap();
                if answer != SendReservation::Granted {
                    refused.push(answer);
                }
            }
            refused
        }));
    }
    for t in tasks {
        let refused = t.await.unwrap();
        assert!(
            refused.is_empty(),
            "{} refused: {:?}",
            refused.len(),
            refused.first()
        );
    }
}

/// The quota allows `quota` sends per window, then refuses with the time
/// left in the window.
pub async fn quota(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let limits = SendLimits {
        cooldown: Duration::ZERO,
        quota: 3,
        window: Duration::from_secs(60),
    };
    for _ in 0..3 {
        assert_eq!(
            s.reserve_send(&key, &limits).await.unwrap(),
            SendReservation::Granted
        );
    }
    for _ in 0..2 {
        match s.reserve_send(&key, &limits).await.unwrap() {
            SendReservation::QuotaExceeded { retry_after } => assert!(
                retry_after > Duration::from_secs(55) && retry_after <= Duration::from_secs(60),
                "{retry_after:?}"
            ),
            other => panic!("expected quota exceeded, got {other:?}"),
        }
    }
    let zero = SendLimits { quota: 0, ..limits };
    assert!(matches!(
        s.reserve_send(&random_key(), &zero).await.unwrap(),
        SendReservation::QuotaExceeded { .. }
    ));
}

/// 100 parallel callers with the right code: all may take an attempt (the
/// limit is high), exactly one removes the code.
pub async fn concurrent_correct_verifies_succeed_once(h: Harness) {
    let key = random_key();
    let rec = record();
    h.store
        .put_code(&key, &rec, Duration::from_secs(60))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (store, key, salt) = (Arc::clone(&h.store), key.clone(), rec.salt);
        tasks.push(tokio::spawn(async move {
            match store.begin_attempt(&key, 1000).await.unwrap() {
                Attempt::Granted { record, .. } => {
                    assert_eq!(record.salt, salt);
                    store.remove_code(&key, &record.salt).await.unwrap()
                }
                _ => false,
            }
        }));
    }
    let mut successes = 0;
    for t in tasks {
        successes += usize::from(t.await.unwrap());
    }
    assert_eq!(successes, 1);
    assert_eq!(
        h.store.begin_attempt(&key, 1000).await.unwrap(),
        Attempt::NoCode
    );
}

/// 100 parallel guesses on a code allowing 5: exactly 5 attempts are
/// granted (numbered 1 to 5), every other caller is refused.
pub async fn concurrent_wrong_guesses_bounded(h: Harness) {
    let key = random_key();
    h.store
        .put_code(&key, &record(), Duration::from_secs(60))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (store, key) = (Arc::clone(&h.store), key.clone());
        tasks.push(tokio::spawn(async move {
            store.begin_attempt(&key, 5).await.unwrap()
        }));
    }
    let mut granted = BTreeSet::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Attempt::Granted { attempts_used, .. } => assert!(granted.insert(attempts_used)),
            Attempt::Exhausted => exhausted += 1,
            Attempt::NoCode => panic!("the code vanished"),
            Attempt::Locked { .. } => panic!("no failure was recorded, nothing may lock"),
        }
    }
    assert_eq!(granted, (1..=5).collect());
    assert_eq!(exhausted, 95);
}

/// The failure budget: failures count across codes; the one that reaches
/// the budget locks the contact (no attempt is taken while locked, whatever
/// the code); the lock doubles per further failure up to the longest; it
/// ends on its own, and an unlock (`reset_failures`) or a success
/// (`consume_code`) resets the count. Other contacts are untouched.
pub async fn failure_budget(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let budget = FailureBudget::new(3).locks(Duration::from_millis(600), Duration::from_secs(2));
    let ttl = Duration::from_secs(60);
    let first = record();
    s.put_code(&key, &first, ttl).await.unwrap();
    for n in 1..=2 {
        let outcome = s.record_failure(&key, &budget).await.unwrap();
        assert_eq!((outcome.failures, outcome.locked_for), (n, None));
    }
    // A new code does not reset the count.
    let second = record();
    s.put_code(&key, &second, ttl).await.unwrap();
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            attempts_used: 1,
            ..
        }
    ));
    let outcome = s.record_failure(&key, &budget).await.unwrap();
    assert_eq!(outcome.failures, 3);
    assert_eq!(outcome.locked_for, Some(Duration::from_millis(600)));
    assert!(!outcome.was_locked, "the failure that reaches the budget");
    for _ in 0..3 {
        match s.begin_attempt(&key, 5).await.unwrap() {
            Attempt::Locked { retry_after } => assert!(
                retry_after > Duration::ZERO && retry_after <= Duration::from_millis(600),
                "{retry_after:?}"
            ),
            other => panic!("expected a lock, got {other:?}"),
        }
    }
    assert_eq!(
        s.begin_attempt(&random_key(), 5).await.unwrap(),
        Attempt::NoCode,
        "another contact is not locked"
    );
    // The lock ends on its own; no attempt was taken while it held.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            attempts_used: 2,
            ..
        }
    ));
    // Each further failure doubles the lock, up to the longest; the first
    // after a lock ended found none in force, the next ones did.
    let (locks, in_force): (Vec<_>, Vec<_>) = {
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            let outcome = s.record_failure(&key, &budget).await.unwrap();
            outcomes.push((outcome.locked_for, outcome.was_locked));
        }
        outcomes.into_iter().unzip()
    };
    assert_eq!(in_force, [false, true, true]);
    assert_eq!(
        locks,
        [1200, 2000, 2000].map(|ms| Some(Duration::from_millis(ms)))
    );
    // The operator's unlock.
    s.reset_failures(&key).await.unwrap();
    assert!(matches!(
        s.begin_attempt(&key, 5).await.unwrap(),
        Attempt::Granted {
            attempts_used: 3,
            ..
        }
    ));
    assert_eq!(s.record_failure(&key, &budget).await.unwrap().failures, 1);
    // A wrong salt consumes nothing and keeps the count; the live code's
    // salt consumes it and resets the count.
    assert!(!s.consume_code(&key, &first.salt).await.unwrap());
    assert_eq!(s.record_failure(&key, &budget).await.unwrap().failures, 2);
    assert!(s.consume_code(&key, &second.salt).await.unwrap());
    assert_eq!(s.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);
    assert_eq!(s.record_failure(&key, &budget).await.unwrap().failures, 1);
}

/// A failure record expires `keep` after the last failure (a lock keeps it
/// at least until the lock ends).
pub async fn failure_record_expires(h: Harness) {
    let s = &h.store;
    let key = random_key();
    let mut budget =
        FailureBudget::new(2).locks(Duration::from_millis(1500), Duration::from_secs(2));
    budget.keep = Duration::from_millis(500);
    s.record_failure(&key, &budget).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.record_failure(&key, &budget).await.unwrap().failures, 1);
    let locked = s.record_failure(&key, &budget).await.unwrap();
    assert_eq!(locked.failures, 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        matches!(
            s.begin_attempt(&key, 5).await.unwrap(),
            Attempt::Locked { .. }
        ),
        "the record outlives `keep` while it holds a lock"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.begin_attempt(&key, 5).await.unwrap(), Attempt::NoCode);
    assert_eq!(s.record_failure(&key, &budget).await.unwrap().failures, 1);
}

// ---------------------------------------------------------------------------
// The same properties through the real layer.

/// A code expires: after the TTL the right code gets `otp_expired`.
pub async fn layer_expiry(h: Harness) {
    let (otp, outbox) = h.otp(|b| b.code_ttl(Duration::from_secs(1)));
    let email = email();
    let (status, _, body) = send(&otp, &email).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 1);
    let code = code_for(&outbox, &email);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired");
}

/// A resend replaces the code: the old one is wrong (and costs an attempt
/// on the new one), the new one works.
pub async fn layer_replace_on_resend(h: Harness) {
    let (otp, outbox) = h.otp(|b| b.resend_cooldown(Duration::ZERO));
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let old = code_for(&outbox, &email);
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let new = code_for(&outbox, &email);
    if old != new {
        let (status, _, body) = verify(&otp, &email, &old).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "otp_invalid");
        assert_eq!(body["attempts_left"], 4);
    }
    let (status, _, body) = verify(&otp, &email, &new).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
}

/// Wrong codes count down `attempts_left`; the last one answers 429
/// `attempts_exceeded` and destroys the code, so the right code then gets
/// `otp_expired`.
pub async fn layer_attempts_exceeded_destroys_code(h: Harness) {
    let (otp, outbox) = h.otp(|b| b);
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    for left in (1..=4).rev() {
        let (status, _, body) = verify(&otp, &email, &wrong(&code)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "otp_invalid");
        assert_eq!(body["attempts_left"], left);
    }
    let (status, _, body) = verify(&otp, &email, &wrong(&code)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "attempts_exceeded");
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired");
    let key = otp.store_key(&crate::Contact::Email(crate::Email::parse(&email).unwrap()));
    assert_eq!(
        h.store.begin_attempt(&key, 5).await.unwrap(),
        Attempt::NoCode
    );
}

/// Through the layer, on two instances sharing the store: wrong codes count
/// across codes and instances; once the budget is used up, every verify
/// (the right code included) is 429 `rate_limited` with `Retry-After` of
/// at least 30 s, and spends no attempt; a success before the budget is
/// reached resets it.
pub async fn layer_failure_budget(h: Harness) {
    let secret = random_secret();
    let configure = |b: OtpBuilder| {
        b.secret(secret.clone())
            .failure_budget(4)
            .max_attempts(3)
            .resend_cooldown(Duration::ZERO)
            .send_quota(100, Duration::from_secs(600))
    };
    let (a, outbox_a) = h.otp(configure);
    let (b, outbox_b) = h.otp(configure);
    let email = email();

    // 3 failures (one code used up), then a success: the count starts again.
    assert_eq!(send(&a, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox_a, &email);
    assert_eq!(
        verify(&a, &email, &wrong(&code)).await.2["code"],
        "otp_invalid"
    );
    assert_eq!(
        verify(&b, &email, &wrong(&code)).await.2["code"],
        "otp_invalid"
    );
    assert_eq!(
        verify(&a, &email, &wrong(&code)).await.2["code"],
        "attempts_exceeded"
    );
    assert_eq!(send(&b, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox_b, &email);
    let (status, _, body) = verify(&a, &email, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 4 failures in a row, across two codes and both instances; the 4th
    // itself answers `otp_invalid`.
    assert_eq!(send(&a, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox_a, &email);
    assert_eq!(
        verify(&a, &email, &wrong(&code)).await.2["code"],
        "otp_invalid"
    );
    assert_eq!(
        verify(&b, &email, &wrong(&code)).await.2["code"],
        "otp_invalid"
    );
    assert_eq!(send(&b, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox_b, &email);
    assert_eq!(
        verify(&b, &email, &wrong(&code)).await.2["code"],
        "otp_invalid"
    );
    let (status, _, body) = verify(&a, &email, &wrong(&code)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_invalid");
    assert_eq!(body["attempts_left"], 1);
    for otp in [&a, &b, &a] {
        let (status, retry_after, body) = verify(otp, &email, &code).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["code"], "rate_limited");
        let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!((30..=31).contains(&retry_after), "{retry_after}");
        assert_eq!(body["retry_after"], retry_after);
    }
    // No attempt was spent while locked: after an unlock, the code still
    // has its last attempt.
    let key = a.store_key(&crate::Contact::Email(crate::Email::parse(&email).unwrap()));
    h.store.reset_failures(&key).await.unwrap();
    let (status, _, body) = verify(&b, &email, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The right code works once.
pub async fn layer_single_use(h: Harness) {
    let (otp, outbox) = h.otp(|b| b);
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired");
}

/// A second send inside the cooldown is 429 `rate_limited` with
/// `Retry-After`, and no second message is delivered.
pub async fn layer_cooldown(h: Harness) {
    let (otp, outbox) = h.otp(|b| b.resend_cooldown(Duration::from_secs(30)));
    let email = email();
    let (status, _, body) = send(&otp, &email).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["resend_in"], 30);
    let (status, retry_after, body) = send(&otp, &email).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((29..=30).contains(&secs), "{secs}");
    assert_eq!(body["retry_after"], secs);
    assert_eq!(outbox.messages().len(), 1);
}

/// The send quota holds: with no cooldown and a quota of 2, the third send
/// is refused.
pub async fn layer_quota(h: Harness) {
    let (otp, outbox) = h.otp(|b| {
        b.resend_cooldown(Duration::ZERO)
            .send_quota(2, Duration::from_secs(600))
    });
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let (status, retry_after, body) = send(&otp, &email).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((590..=600).contains(&secs), "{secs}");
    assert_eq!(outbox.messages().len(), 2);
}

/// 100 parallel verifies with the right code: exactly one 200.
pub async fn layer_concurrent_correct_verifies_succeed_once(h: Harness) {
    let (otp, outbox) = h.otp(|b| b);
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (otp, email, code) = (otp.clone(), email.clone(), code.clone());
        tasks.push(tokio::spawn(
            async move { verify(&otp, &email, &code).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => assert_eq!(body["code"], "otp_expired", "{body}"),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "attempts_exceeded", "{body}")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 1);
}

/// 100 parallel wrong guesses: exactly `max_attempts` are evaluated (4
/// `otp_invalid` with distinct `attempts_left`, the 5th destroys the code),
/// the rest are refused; then the right code is dead.
pub async fn layer_concurrent_wrong_guesses_bounded(h: Harness) {
    let (otp, outbox) = h.otp(|b| b);
    let email = email();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    let bad = wrong(&code);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (otp, email, bad) = (otp.clone(), email.clone(), bad.clone());
        tasks.push(tokio::spawn(
            async move { verify(&otp, &email, &bad).await },
        ));
    }
    let mut left = BTreeSet::new();
    let mut refused = 0;
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        match (status, body["code"].as_str()) {
            (StatusCode::BAD_REQUEST, Some("otp_invalid")) => {
                assert!(left.insert(body["attempts_left"].as_u64().unwrap()))
            }
            (StatusCode::TOO_MANY_REQUESTS, Some("attempts_exceeded"))
            | (StatusCode::BAD_REQUEST, Some("otp_expired")) => refused += 1,
            _ => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!(left, (1..=4).collect(), "exactly 4 wrong codes were judged");
    assert_eq!(refused, 96);
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired");
}

/// Through the layer and `Otp::admin`: pending shows the code's purpose and
/// attempts, cancel makes the right code `otp_expired`, and unlock lets a
/// locked contact send and verify again.
pub async fn layer_admin_cancel_and_unlock(h: Harness) {
    let (otp, outbox) = h.otp(|b| b.failure_budget(2));
    let admin = otp.admin();
    let email = email();
    let contact = admin.parse_contact(&email).unwrap();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    let (status, _, body) = verify(&otp, &email, &wrong(&code)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let report = admin.pending(&contact).await.unwrap();
    assert_eq!(report.codes.len(), 1, "{report:?}");
    assert_eq!(report.codes[0].purpose, "verify");
    assert_eq!(report.codes[0].attempts_left, 4);
    assert_eq!((report.sends_in_window, report.failures), (1, 1));
    assert!(report.cooldown_left > 0);

    assert_eq!(admin.cancel(&contact, None).await.unwrap(), 1);
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "otp_expired");

    // Lock the contact (budget 2), then unlock it.
    admin.unlock(&contact).await.unwrap();
    assert_eq!(send(&otp, &email).await.0, StatusCode::OK);
    let code = code_for(&outbox, &email);
    for _ in 0..2 {
        verify(&otp, &email, &wrong(&code)).await;
    }
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(send(&otp, &email).await.0, StatusCode::TOO_MANY_REQUESTS);
    admin.unlock(&contact).await.unwrap();
    let report = admin.pending(&contact).await.unwrap();
    assert_eq!(
        (report.failures, report.locked_for, report.cooldown_left),
        (0, 0, 0)
    );
    let (status, _, body) = verify(&otp, &email, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Measures how long `f` takes.
pub async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// Runs `future` to completion on a fresh 4-thread tokio runtime (what
/// each test of [`store_conformance!`](crate::store_conformance) does).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// Expands to a module `$name` with one `#[test]` per property of the store
/// conformance suite, for the store made by `$factory`: a closure returning
/// a future of `Option<Harness>` (`None`: the test returns at once, skipped;
/// the factory says why).
///
/// ```ignore
/// use crate::test_util::Harness;
///
/// crate::store_conformance!(my_store, || async {
///     Some(Harness::new(MyStore::connect().await, ()))
/// });
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $factory:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::store_conformance!(@tests $factory;
                expiry,
                replace_on_resend,
                purposes_keep_codes_apart,
                attempts,
                attempts_exceeded_destroys_code,
                single_use,
                grant_spent_once,
                cooldown,
                zero_cooldown_grants_concurrent_sends,
                quota,
                concurrent_correct_verifies_succeed_once,
                concurrent_wrong_guesses_bounded,
                failure_budget,
                failure_record_expires,
                inspect_without_secrets,
                delete_code_and_clear_sends,
                block_survives_a_released_send,
                layer_admin_cancel_and_unlock,
                layer_expiry,
                layer_replace_on_resend,
                layer_attempts_exceeded_destroys_code,
                layer_single_use,
                layer_failure_budget,
                layer_cooldown,
                layer_quota,
                layer_concurrent_correct_verifies_succeed_once,
                layer_concurrent_wrong_guesses_bounded,
                range_breaker_trips_and_lifts,
                range_breaker_needs_volume,
                range_breaker_ignores_decoys,
                range_block_ends,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::test_util::store_suite::block_on(async {
                    let Some(harness) = ($factory)().await else {
                        return;
                    };
                    $crate::test_util::store_suite::$test(harness).await;
                });
            }
        )*
    };
}

/// Random bits from the OS generator.
fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    u128::from_le_bytes(bytes)
}
