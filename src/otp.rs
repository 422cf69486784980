//! [`Otp`], the handle a host builds once, and its [`OtpBuilder`].

use std::{path::PathBuf, sync::Arc, time::Duration};

use http::HeaderName;

use crate::{
    config::{OtpConfig, RoutePaths},
    contact::{Channels, Contact, Region},
    delivery::{
        ConsoleSender, EmailSender, RetryPolicy, SmsSender, SmsVerifier, dispatch::Dispatcher,
    },
    engine::{CodeOwners, Engine, FlowSettings},
    error::{ConfigError, ErrorFormat},
    events::{EventSettings, EventSink},
    gate::{codec::GrantCodec, extract::GrantChecker, location::GrantLocation},
    hash::{HashParams, HashPool},
    limit::{
        Limiter, Rule, RuleScope, client_ip::TrustedProxies, shared::SharedRateLimiter,
        sms_guard::SmsGuard,
    },
    middleware::{LayerState, OtpLayer},
    policy::ContactPolicy,
    routes::{HttpSettings, RouteContext, table::RouteTable},
    secret::{KeyRing, Secret},
    store::{MemoryStore, OtpStore, SendLimits, StoreKey},
    template::Templates,
    test_mode::TestContacts,
};

/// The shortest accepted server secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The OTP service of one application instance: configuration, store,
/// senders, hashing pool and grant keys. Cheap to clone.
///
/// ```
/// use tower_otp::Otp;
///
/// let otp = Otp::builder()
///     .secret("an example secret, use 32+ random bytes")
///     .build()
///     .unwrap();
/// let layer = otp.layer(); // mount it on your Router or service
/// ```
#[derive(Debug, Clone)]
pub struct Otp {
    inner: Arc<OtpParts>,
}

/// What an `Otp` composes: the layer's state (which holds the flow) and
/// the dispatcher the notifier shares.
#[derive(Debug)]
struct OtpParts {
    config: OtpConfig,
    layer: Arc<LayerState>,
    /// The same state with no route: the gate only.
    gate: Arc<LayerState>,
    dispatch: Arc<Dispatcher>,
}

impl Otp {
    /// A builder with the secure defaults of [`OtpConfig::default`], the
    /// memory store and console delivery.
    pub fn builder() -> OtpBuilder {
        OtpBuilder::default()
    }

    /// The layer to mount in front of the host's router or service.
    pub fn layer(&self) -> OtpLayer {
        OtpLayer::new(Arc::clone(&self.inner.layer))
    }

    /// A layer that only gates: it lets the extractors check grants on the
    /// requests it wraps and serves no OTP route. Use it with
    /// [`router`](Self::router), which serves the routes where axum's
    /// routing puts them.
    pub fn gate_layer(&self) -> OtpLayer {
        OtpLayer::new(Arc::clone(&self.inner.gate))
    }

    /// The OTP routes as an axum [`Router`](axum::Router), to `nest` or
    /// `merge` like any other (the configured prefix, if any, is part of
    /// the paths; leave it empty when you `nest`). Gated handlers still
    /// need the grant checker: add [`gate_layer`](Self::gate_layer) (or
    /// [`layer`](Self::layer)) to the outermost router.
    ///
    /// Which to use: [`layer`](Self::layer) on the outermost service is the
    /// one-line mount and the only one for plain Tower/hyper hosts; it
    /// matches the configured paths before axum routes anything, so it must
    /// wrap the outermost router (inside `nest` or `route_layer` it never
    /// sees the full path, and the routes answer 404). `router()` plus
    /// `gate_layer()` fits axum's own routing: nesting under `/api`,
    /// merging, route-specific layers.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower_otp::{Otp, VerifiedEmail};
    ///
    /// let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
    /// let app: Router = Router::new()
    ///     .nest("/api", otp.router())   // POST /api/send-otp/, /api/verify-otp/, ...
    ///     .route("/me", get(|VerifiedEmail(e, _): VerifiedEmail| async move { e.as_str().to_owned() }))
    ///     .layer(otp.gate_layer());
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = axum::Router::new();
        for (path, route) in self.inner.layer.table.entries() {
            let ctx = Arc::clone(&self.inner.layer.ctx);
            let handler = move |request: axum::extract::Request| {
                let ctx = Arc::clone(&ctx);
                async move {
                    crate::routes::handle(ctx, route, request)
                        .await
                        .map(axum::body::Body::new)
                }
            };
            router = router.route(path, axum::routing::any(handler));
        }
        router
    }

    /// Checks every configured dependency at once, each within
    /// [`READINESS_DEADLINE`](crate::readiness::READINESS_DEADLINE): the
    /// store, the email sender and the SMS sender or verifier. For a
    /// readiness probe: answer 503 unless [`Readiness::is_ready`](crate::readiness::Readiness::is_ready), and log
    /// the reasons (they may hold a server's error text; do not send them
    /// to clients).
    ///
    /// ```
    /// use tower_otp::Otp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
    /// let readiness = otp.readiness().await;
    /// assert!(readiness.is_ready(), "{readiness}"); // memory store, console senders
    /// # });
    /// ```
    pub async fn readiness(&self) -> crate::readiness::Readiness {
        use crate::readiness::{READINESS_DEADLINE, Readiness, within};
        let engine = self.engine();
        // Three tasks, so the checks run at once: the probe waits for the
        // slowest, not for the sum.
        let store = Arc::clone(&engine.store);
        let store = tokio::spawn(within(READINESS_DEADLINE, async move {
            let probe = StoreKey::new("readiness-probe");
            store.begin_attempt(&probe, 1).await.map(drop)
        }));
        let dispatch = Arc::clone(&engine.dispatch);
        let email = tokio::spawn(within(READINESS_DEADLINE, async move {
            dispatch.email_ready().await
        }));
        let dispatch = Arc::clone(&engine.dispatch);
        let verifier = engine.owners.mobile_provider_ref();
        let sms = tokio::spawn(within(READINESS_DEADLINE, async move {
            match verifier {
                Some(verifier) => verifier.ready().await,
                None => dispatch.sms_ready().await,
            }
        }));
        let joined = |r: Result<crate::readiness::Check, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| crate::readiness::Check::Failed(e.to_string()))
        };
        Readiness {
            store: joined(store.await),
            email: joined(email.await),
            sms: joined(sms.await),
        }
    }

    /// A `Set-Cookie` value that removes the grant cookie, for the host's
    /// response when a grant has done its job (sign-out, the account was
    /// created). API clients holding the token in the header simply drop
    /// it. The grant itself stays valid until it expires.
    ///
    /// ```
    /// use axum::{Json, extract::State, http::header::SET_COOKIE, response::IntoResponse};
    /// use tower_otp::{Otp, VerifiedEmail};
    ///
    /// async fn register(
    ///     State(otp): State<Otp>,
    ///     VerifiedEmail(email, _): VerifiedEmail,
    /// ) -> impl IntoResponse {
    ///     // ... create the account ...
    ///     ([(SET_COOKIE, otp.clear_grant_cookie())], Json(serde_json::json!({"email": email.as_str()})))
    /// }
    /// ```
    pub fn clear_grant_cookie(&self) -> http::HeaderValue {
        let secure = self.inner.config.cookie_secure;
        crate::gate::codec::clear_cookie(crate::gate::location::grant_cookie(secure), secure)
    }

    /// Events dropped so far because a subscriber's queue (an
    /// [`on_event`](OtpBuilder::on_event) hook's or the webhook's) was
    /// full. Dropping keeps a slow subscriber from slowing the routes; a
    /// growing count means a subscriber cannot keep up (see
    /// [`events`](crate::events)).
    pub fn events_dropped(&self) -> u64 {
        self.inner.layer.ctx.events.dropped()
    }

    /// The configuration in force.
    pub fn config(&self) -> &OtpConfig {
        &self.inner.config
    }

    fn engine(&self) -> &Engine {
        &self.inner.layer.ctx.engine
    }

    /// The store key under which `contact`'s code and limits are kept (a
    /// keyed digest under the current secret). Useful in tests that look
    /// inside the store.
    pub fn store_key(&self, contact: &Contact) -> StoreKey {
        self.engine().store_key(contact, 0)
    }

    /// The hashing pool (for the crate's benchmarks and tests; not part of
    /// the stable API).
    #[doc(hidden)]
    pub fn hash_pool(&self) -> &HashPool {
        &self.engine().hasher
    }

    /// The operator's tools for this `Otp`'s store: what is pending for a
    /// contact, cancel its codes, unlock it (see [`admin`](crate::admin)).
    /// Nothing of it is mounted as a route.
    pub fn admin(&self) -> crate::admin::Admin {
        crate::admin::Admin::new(
            Arc::clone(&self.inner.layer.ctx.engine),
            self.inner.config.default_region,
        )
    }

    /// A [`Notifier`](crate::Notifier) for the host's own emails and SMS
    /// (welcome, reset, documents), through the same senders, templates
    /// and retry policy as the codes.
    pub fn notifier(&self) -> crate::Notifier {
        crate::Notifier::new(Arc::clone(&self.inner.dispatch))
    }
}

/// Test support: grants without the send/verify flow.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl Otp {
    /// A grant token proving `email` and/or `mobile`, signed exactly as a
    /// successful verify signs one, for the host's own tests of gated
    /// handlers (send it in the token header or the grant cookie). `None`
    /// when both are `None`.
    ///
    /// ```
    /// use tower_otp::{Email, Otp};
    ///
    /// let otp = Otp::builder().secret("an example secret, use 32+ random bytes").build().unwrap();
    /// let email = Email::parse("ada@example.com").unwrap();
    /// let token = otp.grant_for_tests(Some(&email), None).unwrap();
    /// assert_eq!(otp.check_grant(&token).unwrap().email(), Some(&email));
    /// assert!(otp.check_grant("forged").is_none());
    /// ```
    pub fn grant_for_tests(
        &self,
        email: Option<&crate::Email>,
        mobile: Option<&crate::Mobile>,
    ) -> Option<String> {
        let contacts: Vec<crate::Contact> = email
            .cloned()
            .map(crate::Contact::Email)
            .into_iter()
            .chain(mobile.cloned().map(crate::Contact::Mobile))
            .collect();
        (!contacts.is_empty()).then(|| self.engine().grants.issue_fresh(&contacts).token)
    }

    /// What a grant token proves, checked as the extractors check it
    /// (signature under any accepted secret, expiry); `None` when invalid.
    pub fn check_grant(&self, token: &str) -> Option<crate::VerifiedContact> {
        self.engine().grants.verify(token).filter(|g| !g.is_empty())
    }
}

/// How SMS codes are delivered, as configured.
#[derive(Debug, Clone)]
enum SmsChoice {
    /// We generate the code and send it as a message.
    Messages(Arc<dyn SmsSender>),
    /// The provider generates and checks the code (Twilio Verify).
    Verifier(Arc<dyn SmsVerifier>),
}

/// Builds an [`Otp`]. Every setter states its default; [`build`](Self::build)
/// validates everything and names the field at fault.
#[derive(Debug, Default)]
#[must_use]
pub struct OtpBuilder {
    pub(crate) config: OtpConfig,
    pub(crate) secret: Option<Secret>,
    pub(crate) random_secret: bool,
    pub(crate) old_secrets: Vec<Secret>,
    pub(crate) store: Option<Arc<dyn OtpStore>>,
    pub(crate) email: Option<Arc<dyn EmailSender>>,
    sms: Option<SmsChoice>,
    pub(crate) templates_dir: Option<PathBuf>,
    pub(crate) policy: Option<Arc<dyn ContactPolicy>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) test_contacts: Option<TestContacts>,
    pub(crate) production: bool,
    pub(crate) shared_limiter: Option<Arc<dyn SharedRateLimiter>>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) purposes: crate::purpose::Purposes,
    invalid_purpose: Option<String>,
    pub(crate) events: EventSettings,
    /// Which settings came from the environment, so that errors name the
    /// variable.
    pub(crate) origins: crate::env::Origins,
}

impl OtpBuilder {
    /// The server secret (at least 16 bytes; use 32 random bytes). It keys
    /// the code hashes, the store keys and the grant signatures. Required
    /// unless [`random_secret`](Self::random_secret) is used.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// An older secret still accepted for codes and grants issued under it
    /// (key rotation). May be called several times.
    pub fn old_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.old_secrets.push(secret.into());
        self
    }

    /// Uses a random secret when none is set, with a warning: codes and
    /// grants then die with the process and are not shared between
    /// instances. For development only.
    pub fn random_secret(mut self) -> Self {
        self.random_secret = true;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: OtpConfig) -> Self {
        self.config = config;
        self
    }

    /// The store. Default: a [`MemoryStore`].
    pub fn store(mut self, store: impl OtpStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store, already shared.
    pub fn shared_store(mut self, store: Arc<dyn OtpStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The email sender. Default: [`ConsoleSender`].
    pub fn email_sender(mut self, sender: impl EmailSender) -> Self {
        self.email = Some(Arc::new(sender));
        self
    }

    /// The SMS sender (our code, sent as a message). Default:
    /// [`ConsoleSender`].
    pub fn sms_sender(mut self, sender: impl SmsSender) -> Self {
        self.sms = Some(SmsChoice::Messages(Arc::new(sender)));
        self
    }

    /// An SMS provider that generates and checks codes itself (Twilio
    /// Verify). Our limits and attempt counting still apply.
    pub fn sms_verifier(mut self, verifier: impl SmsVerifier) -> Self {
        self.sms = Some(SmsChoice::Verifier(Arc::new(verifier)));
        self
    }

    /// Retries for transient delivery failures. Default: 3 tries, jittered
    /// waits from 200 ms, 15 s for the whole delivery (see [`RetryPolicy`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A folder whose templates override and extend the built-ins. Default
    /// none.
    pub fn templates_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates_dir = Some(dir.into());
        self
    }

    /// Digits per code, 4 to 10. Default 6.
    pub fn code_length(mut self, length: u8) -> Self {
        self.config.code_length = length;
        self
    }

    /// Code lifetime. Default 300 s.
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.config.code_ttl = ttl;
        self
    }

    /// Wrong codes allowed per code before it is destroyed. Default 5.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// Consecutive wrong codes per contact, counted across codes, before
    /// its verifies answer 429 `rate_limited` (30 s, doubling per further
    /// failure up to 1 h; even the right code is refused meanwhile). A
    /// success resets it. 0 turns the budget off. Default 25.
    pub fn failure_budget(mut self, failures: u32) -> Self {
        self.config.failure_budget = failures;
        self
    }

    /// Time before the same contact can be sent another code. Default 30 s.
    pub fn resend_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.resend_cooldown = cooldown;
        self
    }

    /// Sends allowed per contact per window. Default 5 per 10 minutes.
    pub fn send_quota(mut self, sends: u32, window: Duration) -> Self {
        self.config.send_quota = sends;
        self.config.send_quota_window = window;
        self
    }

    /// Grant lifetime. Default 30 minutes.
    pub fn grant_ttl(mut self, ttl: Duration) -> Self {
        self.config.grant_ttl = ttl;
        self
    }

    /// Largest accepted request body in bytes. Default 4096.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    /// Makes grants single-use: the first time an extractor accepts a grant
    /// it is recorded as spent in the store (shared by every instance on
    /// the same store), and a replay is 401 `verification_required`. Several
    /// extractors in one handler accept it once. A store that cannot be
    /// reached answers 503 (fail closed). Default off: a grant is valid for
    /// its whole lifetime (`OTP_SINGLE_USE_GRANTS`). Hosts without axum use
    /// [`verify_parts_once`](crate::extract::verify_parts_once).
    pub fn single_use_grants(mut self) -> Self {
        self.config.single_use_grants = true;
        self
    }

    /// Time a request body may take to arrive, counted from the end of the
    /// request head; a slower body gets 408 `request_timeout`. Default 10 s.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout;
        self
    }

    /// Sends the grant cookie without `Secure`, so it also travels over
    /// plain HTTP. Default: `Secure` is set.
    ///
    /// # ⚠️ Warning
    ///
    /// **Insecure.** A grant is a bearer credential; without `Secure` it
    /// leaks to anyone on the network path of a plain-HTTP request. Use only
    /// for local development over `http://localhost`.
    pub fn insecure_cookie(mut self) -> Self {
        self.config.cookie_secure = false;
        self
    }

    /// The header API clients send the grant in. Default
    /// `x-verification-token`.
    pub fn token_header(mut self, name: HeaderName) -> Self {
        self.config.token_header = name;
        self
    }

    /// Region for numbers written without `+` (e.g. `Region::IN`, as the
    /// Django recipe assumed). Default none: such numbers are refused.
    pub fn default_region(mut self, region: Region) -> Self {
        self.config.default_region = Some(region);
        self
    }

    /// The route paths and prefix. Default: `/send-otp/`, `/verify-otp/`,
    /// `/send-mobile-otp/`, `/verify-mobile-otp/`, no prefix.
    pub fn paths(mut self, paths: RoutePaths) -> Self {
        self.config.paths = paths;
        self
    }

    /// A prefix for the four paths, e.g. `/api`. Default none.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.paths.prefix = prefix.into();
        self
    }

    /// Argon2id parameters. Default m=19456 KiB, t=2, p=1.
    pub fn hash_params(mut self, params: HashParams) -> Self {
        self.config.hash_params = params;
        self
    }

    /// Hashing threads and waiting hashes allowed before `overloaded`.
    /// Default: one thread per CPU, 32 waiting per thread.
    pub fn hash_pool_size(mut self, workers: usize, queue: usize) -> Self {
        self.config.hash_workers = workers;
        self.config.hash_queue = queue;
        self
    }

    /// OS priority of the hashing threads. Default
    /// [`HashThreadPriority::Low`](crate::hash::HashThreadPriority::Low): the
    /// scheduler favours request handling over the hashes.
    pub fn hash_priority(mut self, priority: crate::hash::HashThreadPriority) -> Self {
        self.config.hash_priority = priority;
        self
    }

    /// The application name shown in messages. Default `"tower-otp"`.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.config.app_name = name.into();
        self
    }

    /// The audience written into every grant and required of every grant
    /// presented: a grant issued for another app id is refused (401, or
    /// `None`), even when both apps share the secret. Default: derived
    /// from [`app_name`](Self::app_name) (lower-cased, anything but ASCII
    /// letters and digits turned into `-`), so `"tower-otp"` unless set.
    /// Changing it signs every user out of their grants once.
    pub fn app_id(mut self, id: impl Into<String>) -> Self {
        self.config.app_id = Some(id.into());
        self
    }

    /// Host name for the WebOTP line (`@host #code`) of SMS codes, so
    /// browsers can autofill them. Default none.
    pub fn webotp_host(mut self, host: impl Into<String>) -> Self {
        self.config.webotp_host = Some(host.into());
        self
    }

    /// The host of the frame that asks for the code, when it runs inside
    /// the site of [`webotp_host`](Self::webotp_host) (a payment page in a
    /// shop's frame, say): the WebOTP line becomes `@host #code @frame-host`,
    /// as the WICG origin-bound one-time codes format and Chrome read it.
    /// Needs [`webotp_host`](Self::webotp_host). Default none.
    pub fn webotp_embedded_host(mut self, host: impl Into<String>) -> Self {
        self.config.webotp_embedded_host = Some(host.into());
        self
    }

    /// The Android SMS Retriever hash of your app (11 characters), added to
    /// SMS codes so the app reads them without the SMS permission. The
    /// message must then fit 140 bytes: checked for every SMS template at
    /// [`build`](Self::build). Default none.
    pub fn android_app_hash(mut self, hash: impl Into<String>) -> Self {
        self.config.android_app_hash = Some(hash.into());
        self
    }

    /// When a WhatsApp code fails permanently (the number is not on
    /// WhatsApp, no template outside the 24-hour window...), send it once
    /// by SMS instead; the answer then says `"channel":"sms"`. Never after
    /// a failure that may have sent the message. Default off.
    pub fn whatsapp_fallback_sms(mut self, on: bool) -> Self {
        self.config.whatsapp_fallback_sms = on;
        self
    }

    /// Per-client-IP limits: send and verify requests per minute (0 turns
    /// one off). Default 10 sends and 30 verifies per minute.
    pub fn ip_limits(mut self, send_per_minute: u32, verify_per_minute: u32) -> Self {
        self.config.ip_send_per_minute = send_per_minute;
        self.config.ip_verify_per_minute = verify_per_minute;
        self
    }

    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed.
    /// Default none: the connection's address is the client's. See
    /// [`client_ip`](crate::limit::client_ip) for the deployment caveat.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config.trusted_proxies = proxies;
        self
    }

    /// Keeps every limit rule (per-IP, per-contact, per-country) in a store
    /// shared by every instance (e.g. the same `Arc<RedisStore>` as the
    /// code store), so they hold across a fleet. The in-process limiter is
    /// the fallback when it is unreachable. Default: in-process only
    /// (`REDIS_OTP_URL` sets it to the Redis store).
    pub fn shared_limits(mut self, limiter: Arc<dyn SharedRateLimiter>) -> Self {
        self.shared_limiter = Some(limiter);
        self
    }

    /// The former name of [`shared_limits`](Self::shared_limits), which now
    /// shares every rule, not only the per-IP ones.
    pub fn shared_ip_limits(self, limiter: Arc<dyn SharedRateLimiter>) -> Self {
        self.shared_limits(limiter)
    }

    /// Adds a rate-limit [`Rule`] (per IP, per contact or per country) to
    /// the built-in ones. Default: only the built-in rules (see
    /// [`limit`](crate::limit)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_otp::{Otp, limit::{Rule, RuleScope}};
    ///
    /// let otp = Otp::builder()
    ///     .secret("an example secret, use 32+ random bytes")
    ///     .limit(Rule::per_contact("verify-per-hour", 20, Duration::from_secs(3600))
    ///         .unwrap()
    ///         .scope(RuleScope::Verifies))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn limit(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The shape of error bodies. Default [`ErrorFormat::Contract`]: the
    /// seed-compatible `{"status":"error","code","message"}` body, or RFC
    /// 9457 problem details when the request's `Accept` prefers
    /// `application/problem+json`; [`ErrorFormat::Problem`] always answers
    /// problem details.
    pub fn error_format(mut self, format: ErrorFormat) -> Self {
        self.config.error_format = format;
        self
    }

    /// Which countries may receive SMS codes and how many per hour (SMS
    /// pumping defence). Default: no restriction.
    pub fn sms_guard(mut self, guard: SmsGuard) -> Self {
        self.config.sms_guard = guard;
        self
    }

    /// Fixed codes for these test contacts (nothing is sent to them and no
    /// cooldown or quota applies; a send is still needed before a verify,
    /// and wrong guesses cost attempts and count toward the failure budget
    /// like anyone's: see [`test_mode`](crate::test_mode)). Default none.
    ///
    /// # ⚠️ Warning
    ///
    /// **Dangerous.** Anyone who knows a test contact and its code passes
    /// verification. Use only for CI and app-store review accounts; `build`
    /// refuses it when [`production`](Self::production) is set, and when
    /// the [`failure_budget`](Self::failure_budget) is off (0): it alone
    /// bounds the guesses of a test contact's code.
    pub fn dangerous_test_contacts(mut self, contacts: TestContacts) -> Self {
        self.test_contacts = Some(contacts);
        self
    }

    /// Marks this as a production deployment: [`build`](Self::build) then
    /// refuses development senders (console, memory) on an enabled channel,
    /// an insecure cookie, a missing, short (under 32 bytes) or documented
    /// example secret, Argon2id parameters below m=19456 KiB, t=2, and test
    /// mode, naming the setting (see [`production`](crate::production)).
    /// Default off (`OTP_PRODUCTION=true` sets it).
    pub fn production(mut self) -> Self {
        self.production = true;
        self
    }

    /// A host policy that may refuse contacts before a code is sent (e.g.
    /// already registered). Default none.
    pub fn contact_policy(mut self, policy: impl ContactPolicy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Registers a purpose declared with [`purpose!`](crate::purpose!), so
    /// that sends and verifies may name it. The built-ins (`verify`,
    /// `signup`, `login`, `reset`, `change_contact`) need no registration.
    pub fn purpose<P: crate::purpose::Purpose>(self) -> Self {
        match P::NAME {
            Some(name) => self.purpose_name(name),
            None => self,
        }
    }

    /// Registers a purpose by name (lower-case ASCII letters, digits and
    /// `_`, at most 32 characters; checked at [`build`](Self::build)).
    pub fn purpose_name(mut self, name: &str) -> Self {
        if crate::purpose::is_valid_name(name) {
            self.purposes.add(name);
        } else {
            self.invalid_purpose = Some(name.chars().take(40).collect());
        }
        self
    }

    /// The channels served. Default [`Channels::BOTH`]; a channel turned
    /// off has no routes (its paths pass through to the inner service) and
    /// its sender is not checked by [`production`](Self::production).
    pub fn channels(mut self, channels: Channels) -> Self {
        self.config.channels = channels;
        self
    }

    /// Subscribes `sink` (an async closure taking an
    /// [`Event`](crate::events::Event), or an [`EventSink`]) to the
    /// events of the routes. It runs on its own task from a bounded queue:
    /// it cannot slow an answer, and events it cannot keep up with are
    /// dropped and counted ([`Otp::events_dropped`]). May be called several
    /// times. Default: no subscriber. See [`events`](crate::events).
    pub fn on_event(mut self, sink: impl EventSink) -> Self {
        self.events.hooks.push(std::sync::Arc::new(sink));
        self
    }

    /// POSTs every event to a signed webhook (Standard Webhooks), off the
    /// request path, with retries. Default none (`OTP_WEBHOOK_URL` and
    /// `OTP_WEBHOOK_SECRET` set it). See [`events::webhook`](crate::events::webhook).
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn webhook(mut self, webhook: crate::events::webhook::Webhook) -> Self {
        self.events.webhook = Some(webhook);
        self
    }

    /// Events each subscriber's queue (each hook's, the webhook's) holds
    /// before new ones are dropped and counted. Default
    /// [`DEFAULT_QUEUE_CAPACITY`](crate::events::DEFAULT_QUEUE_CAPACITY) (1024).
    /// `rate_limited` and `range_blocked` events (refusals, which cost a
    /// client nothing) may fill at most half of it, so that a flood of
    /// them never crowds out the other kinds.
    pub fn event_queue(mut self, capacity: usize) -> Self {
        self.events.capacity = Some(capacity);
        self
    }

    /// Puts contacts in events (hooks and webhooks) as typed
    /// (`ada@example.com`) instead of masked (`a***@example.com`). For a
    /// receiver that must know the address, e.g. a CRM. Default off. Logs
    /// stay masked.
    pub fn unmasked_event_contacts(mut self) -> Self {
        self.events.unmasked = true;
        self
    }

    /// Email sign-in and "this wasn't me" links in every code email (see
    /// [`link`](crate::link)), served at [`RoutePaths::link`] and
    /// [`RoutePaths::cancel`]. Default: off, the email carries the code
    /// alone.
    pub fn email_links(mut self, links: crate::link::EmailLinks) -> Self {
        self.config.email_links = Some(links);
        self
    }

    /// Answers refused contacts exactly as accepted ones and delivers in the
    /// background, so responses reveal nothing about who is registered.
    /// Default off. See [`policy`](crate::policy) for what changes.
    pub fn enumeration_safe(mut self) -> Self {
        self.config.enumeration_safe = true;
        self
    }

    /// Validates the settings and starts the hashing pool. Errors name the
    /// builder method at fault, or the environment variable when the
    /// setting came from [`from_env`](Self::from_env).
    pub fn build(self) -> Result<Otp, ConfigError> {
        let origins = self.origins.clone();
        self.compose().map_err(|e| origins.name(e))
    }

    fn compose(self) -> Result<Otp, ConfigError> {
        self.config.validate()?;
        crate::telemetry::describe();
        if let Some(name) = &self.invalid_purpose {
            return Err(ConfigError::invalid(
                "purpose",
                format!(
                    "{name:?}: purpose names are lower-case ASCII letters, digits and _, at \
                     most 32 characters"
                ),
            ));
        }
        let configured_secret = self.secret.is_some();
        let secret = match (self.secret, self.random_secret) {
            (Some(secret), _) => secret,
            (None, true) => {
                tracing::warn!(
                    "no OTP secret configured: using a random one. Codes and grants will not \
                     survive a restart or be shared between instances; set OTP_SECRET."
                );
                random_secret()
            }
            (None, false) => {
                return Err(ConfigError::missing(
                    "secret",
                    "a server secret of at least 16 bytes is required",
                ));
            }
        };
        for s in std::iter::once(&secret).chain(&self.old_secrets) {
            if s.expose().len() < MIN_SECRET_LEN {
                return Err(ConfigError::invalid(
                    "secret",
                    format!("secrets must be at least {MIN_SECRET_LEN} bytes"),
                ));
            }
        }
        if let Some(test) = &self.test_contacts {
            if !crate::code::is_well_formed(test.code(), self.config.code_length) {
                return Err(ConfigError::invalid(
                    "test_code",
                    format!("must be {} digits", self.config.code_length),
                ));
            }
            // A test contact has no cooldown or quota: every send gives its
            // fixed code fresh attempts, so only the failure budget bounds
            // the guesses.
            if self.config.failure_budget == 0 {
                return Err(ConfigError::invalid(
                    "failure_budget",
                    "test contacts need the failure budget on (it alone bounds guesses of \
                     their fixed code, which every send gives fresh attempts)",
                ));
            }
            tracing::warn!(
                "tower-otp test mode is ON: listed test contacts verify with a fixed code"
            );
        }
        if self.config.enumeration_safe && matches!(self.sms, Some(SmsChoice::Verifier(_))) {
            // A refused number's decoy is checked locally (milliseconds, and
            // only it can answer `overloaded`) while an accepted number's code
            // is checked by the provider (a round trip): the difference
            // would tell them apart.
            return Err(ConfigError::invalid(
                "enumeration_safe",
                "cannot hide refusals while a provider checks SMS codes (`sms_verifier`): \
                 send our own codes with `sms_sender`, or turn enumeration-safe mode off",
            ));
        }
        let email_sender = self.email.unwrap_or_else(|| Arc::new(ConsoleSender::new()));
        let sms_choice = self
            .sms
            .unwrap_or_else(|| SmsChoice::Messages(Arc::new(ConsoleSender::new())));
        crate::production::Deployment {
            config: &self.config,
            secret: configured_secret.then_some(&secret),
            old_secrets: &self.old_secrets,
            email: email_sender.as_ref(),
            sms: match &sms_choice {
                SmsChoice::Messages(sender) => Some(sender.as_ref()),
                SmsChoice::Verifier(_) => None,
            },
            sms_verifier: match &sms_choice {
                SmsChoice::Verifier(verifier) => Some(verifier.as_ref()),
                SmsChoice::Messages(_) => None,
            },
            #[cfg(feature = "webhooks")]
            webhook_cleartext_host: self
                .events
                .webhook
                .as_ref()
                .and_then(|webhook| webhook.cleartext_host()),
            #[cfg(not(feature = "webhooks"))]
            webhook_cleartext_host: None,
            test_mode: self.test_contacts.is_some(),
        }
        .check(self.production)?;
        let keys = Arc::new(KeyRing::new(&secret, &self.old_secrets));
        let config = self.config;
        let hasher = HashPool::with_keys(
            config.hash_params,
            Arc::clone(&keys),
            config.hash_workers,
            config.hash_queue,
            config.hash_priority,
        )?;
        let templates = match &self.templates_dir {
            Some(dir) => Templates::with_overrides(dir)?,
            None => Templates::builtin(),
        };

        let sms_text = crate::delivery::sms_text::SmsText {
            webotp_host: config.webotp_host.clone(),
            embedded_host: config.webotp_embedded_host.clone(),
            app_hash: config.android_app_hash.clone(),
        };
        sms_text.validate()?;
        let (sms_sender, owners) = match sms_choice {
            SmsChoice::Messages(sender) => (Some(sender), CodeOwners::default()),
            SmsChoice::Verifier(verifier) => (None, CodeOwners::mobile_provider(verifier)),
        };
        let dispatch = Arc::new(
            Dispatcher::new(
                email_sender,
                sms_sender,
                templates,
                self.retry,
                config.app_name.clone(),
                sms_text,
            )
            .with_whatsapp_fallback(config.whatsapp_fallback_sms),
        );
        dispatch.check_sms_templates(config.code_length, config.code_ttl)?;

        let minute = Duration::from_secs(60);
        let builtin = [
            Rule::per_ip("otp-send", config.ip_send_per_minute, minute)
                .map(|r| r.scope(RuleScope::Sends)),
            Rule::per_ip("otp-verify", config.ip_verify_per_minute, minute)
                .map(|r| r.scope(RuleScope::Verifies)),
            config.sms_guard.budget_rule(),
        ];
        let rules = builtin.into_iter().flatten().chain(self.rules).collect();
        let limiter = Arc::new(
            Limiter::new(rules, config.max_tracked_ips)
                .with_shared(self.shared_limiter)
                .with_digest_key(keys.current().limit_key()),
        );

        let grants = GrantCodec::new(Arc::clone(&keys), config.grant_ttl, &config.audience());
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let links = config.email_links.clone().map(|settings| {
            let prefix = config.paths.prefix.trim_end_matches('/');
            Arc::new(crate::link::Links::new(
                settings,
                &keys,
                &format!("{prefix}{}", config.paths.link),
                &format!("{prefix}{}", config.paths.cancel),
                config.cookie_secure,
            ))
        });
        let engine = Arc::new(Engine {
            settings: FlowSettings {
                code_length: config.code_length,
                code_ttl: config.code_ttl,
                max_attempts: config.max_attempts,
                limits: SendLimits {
                    cooldown: config.resend_cooldown,
                    quota: config.send_quota,
                    window: config.send_quota_window,
                },
                purposes: self.purposes,
                failure_budget: (config.failure_budget > 0)
                    .then(|| crate::store::FailureBudget::new(config.failure_budget)),
                enumeration_safe: config.enumeration_safe,
            },
            keys,
            store: Arc::clone(&store),
            hasher,
            dispatch: Arc::clone(&dispatch),
            owners,
            policy: self.policy,
            sms_guard: config.sms_guard.clone(),
            limiter: Arc::clone(&limiter),
            test_contacts: self.test_contacts,
            grants: grants.clone(),
            links,
        });
        let checker = GrantChecker::new(
            grants,
            // In Secure mode only the `__Host-` cookie is read.
            GrantLocation::new(
                &config.token_header,
                crate::gate::location::grant_cookie(config.cookie_secure),
            ),
            config.error_format,
            config.single_use_grants.then_some(store),
        );
        let ctx = Arc::new(RouteContext {
            engine,
            limiter,
            checker,
            events: self.events.into_bus()?,
            http: HttpSettings {
                body_limit: config.body_limit,
                body_timeout: config.body_timeout,
                trusted_proxies: config.trusted_proxies.clone(),
                default_region: config.default_region,
                grant_ttl: config.grant_ttl,
                cookie_secure: config.cookie_secure,
                error_format: config.error_format,
            },
        });
        let layer = Arc::new(LayerState {
            table: RouteTable::new(&config.paths, config.channels, config.email_links.is_some()),
            ctx: Arc::clone(&ctx),
        });
        let gate = Arc::new(LayerState {
            table: RouteTable::empty(),
            ctx,
        });
        Ok(Otp {
            inner: Arc::new(OtpParts {
                config,
                layer,
                gate,
                dispatch,
            }),
        })
    }
}

fn random_secret() -> Secret {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(&mut bytes[..])
        .expect("the OS random number generator failed");
    Secret::new(URL_SAFE_NO_PAD.encode(&bytes[..]))
}
