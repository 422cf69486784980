//! [`OtpConfig`]: every tunable, with the security defaults in one
//! `impl Default` and the reasoning beside each number.

use std::time::Duration;

use http::HeaderName;

use crate::{
    contact::Region,
    error::{ConfigError, ErrorFormat},
    hash::{HashParams, HashThreadPriority},
    limit::{
        DEFAULT_IP_SEND_PER_MINUTE, DEFAULT_IP_VERIFY_PER_MINUTE, DEFAULT_MAX_TRACKED_IPS,
        client_ip::TrustedProxies, sms_guard::SmsGuard,
    },
};
pub use crate::{
    gate::location::{DEFAULT_TOKEN_HEADER, GRANT_COOKIE, SECURE_GRANT_COOKIE},
    routes::paths::RoutePaths,
};

/// Default code length: 6 digits, one in a million per guess.
pub const DEFAULT_CODE_LENGTH: u8 = 6;
/// Default code lifetime: 5 minutes, as the Django recipe and most providers.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(300);
/// Default wrong attempts per code before it is destroyed.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default time before the same contact can be sent another code.
pub const DEFAULT_RESEND_COOLDOWN: Duration = Duration::from_secs(30);
/// Default sends per contact per quota window (Twilio Verify's default).
pub const DEFAULT_SEND_QUOTA: u32 = 5;
/// Default quota window: 10 minutes (Twilio Verify's default).
pub const DEFAULT_SEND_QUOTA_WINDOW: Duration = Duration::from_secs(600);
/// Default lifetime of a verification grant: 30 minutes.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(1800);
/// Default request body limit: 4 KiB, far above any legitimate body.
pub const DEFAULT_BODY_LIMIT: usize = 4096;
/// Default time a request body may take to arrive after the request head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default waiting hashes per hashing thread before `overloaded` answers.
pub const DEFAULT_HASH_QUEUE_PER_WORKER: usize = 32;

/// Every setting of the layer. Build one with [`OtpConfig::default`] and
/// change fields, or through the [`OtpBuilder`](crate::OtpBuilder) methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OtpConfig {
    /// Digits per code, 4 to 10. Default [`DEFAULT_CODE_LENGTH`].
    pub code_length: u8,
    /// Code lifetime. Default [`DEFAULT_CODE_TTL`].
    pub code_ttl: Duration,
    /// Wrong codes allowed per code. Default [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// Consecutive wrong codes per contact, across codes, before its
    /// verifies are refused for a while (0 = no budget). Default
    /// [`DEFAULT_FAILURE_BUDGET`](crate::store::DEFAULT_FAILURE_BUDGET).
    pub failure_budget: u32,
    /// Resend cooldown per contact. Default [`DEFAULT_RESEND_COOLDOWN`].
    pub resend_cooldown: Duration,
    /// Sends per contact per window. Default [`DEFAULT_SEND_QUOTA`].
    pub send_quota: u32,
    /// The send quota window. Default [`DEFAULT_SEND_QUOTA_WINDOW`].
    pub send_quota_window: Duration,
    /// Grant lifetime. Default [`DEFAULT_GRANT_TTL`].
    pub grant_ttl: Duration,
    /// Whether a grant is spent the first time an extractor accepts it.
    /// Default `false`.
    pub single_use_grants: bool,
    /// Largest accepted request body in bytes. Default [`DEFAULT_BODY_LIMIT`].
    pub body_limit: usize,
    /// Time the body may take to arrive, counted from the end of the
    /// request head; then 408 `request_timeout`. Default
    /// [`DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// Whether the grant cookie carries `Secure`. Default `true`.
    pub cookie_secure: bool,
    /// The header API clients send the grant in. Default
    /// [`DEFAULT_TOKEN_HEADER`].
    pub token_header: HeaderName,
    /// Region for mobile numbers written without `+`. Default none: such
    /// numbers are refused.
    pub default_region: Option<Region>,
    /// The route paths.
    pub paths: RoutePaths,
    /// Argon2id parameters. Default m=19456 KiB, t=2, p=1 (OWASP minimum).
    pub hash_params: HashParams,
    /// Hashing threads. Default: the number of CPUs.
    pub hash_workers: usize,
    /// Hashes allowed to wait for a thread before `overloaded` answers.
    /// Default [`DEFAULT_HASH_QUEUE_PER_WORKER`] per thread.
    pub hash_queue: usize,
    /// OS priority of the hashing threads. Default
    /// [`HashThreadPriority::Low`]: a verification flood barely slows the
    /// other routes.
    pub hash_priority: HashThreadPriority,
    /// The application's name, shown in messages. Default `"tower-otp"`.
    pub app_name: String,
    /// The channels served (`OTP_CHANNELS`). Default both.
    pub channels: crate::contact::Channels,
    /// The grants' audience. Default `None`: derived from `app_name`
    /// ([`OtpConfig::audience`]).
    pub app_id: Option<String>,
    /// Host name for the WebOTP line (`@host #code`) at the end of SMS
    /// codes. Default none.
    pub webotp_host: Option<String>,
    /// The host of the frame that asks for the code, when it runs inside
    /// the site of `webotp_host`: a second `@host` after the code on the
    /// WebOTP line. Default none.
    pub webotp_embedded_host: Option<String>,
    /// The Android SMS Retriever hash (11 characters) added to SMS codes.
    /// Default none.
    pub android_app_hash: Option<String>,
    /// Whether a permanent WhatsApp failure is retried once by SMS (never
    /// after a failure that may have sent the message). Default `false`.
    pub whatsapp_fallback_sms: bool,
    /// Send requests per client IP per minute (0 = off). Default
    /// [`DEFAULT_IP_SEND_PER_MINUTE`].
    pub ip_send_per_minute: u32,
    /// Verify requests per client IP per minute (0 = off). Default
    /// [`DEFAULT_IP_VERIFY_PER_MINUTE`].
    pub ip_verify_per_minute: u32,
    /// Keys (client addresses, contacts, countries) each limiter table
    /// tracks in process; when full, tracked keys keep their budgets and new
    /// ones share one overflow budget. Default [`DEFAULT_MAX_TRACKED_IPS`].
    pub max_tracked_ips: usize,
    /// Proxies whose forwarded headers are believed. Default none.
    pub trusted_proxies: TrustedProxies,
    /// Which countries may receive SMS codes, and how many per hour.
    /// Default: no restriction.
    pub sms_guard: SmsGuard,
    /// Answer refused contacts exactly like accepted ones (see
    /// [`policy`](crate::policy)). Default `false`.
    pub enumeration_safe: bool,
    /// The shape of error bodies. Default [`ErrorFormat::Contract`]: the
    /// seed-compatible body unless the client prefers problem details.
    pub error_format: ErrorFormat,
    /// Email sign-in and cancel links (see [`link`](crate::link)). Default
    /// `None`: code emails carry the code only.
    pub email_links: Option<crate::link::EmailLinks>,
}

impl Default for OtpConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            // 10^6 codes; with 5 attempts per code an attacker's odds per code
            // are 5e-6, and the send quota bounds codes per contact.
            code_length: DEFAULT_CODE_LENGTH,
            // Long enough to switch to a mail app, short enough to limit guessing.
            code_ttl: DEFAULT_CODE_TTL,
            // NIST SP 800-63B asks for a limit on failed attempts; 5 is common.
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            // NIST SP 800-63B: at most 100 consecutive failures per account;
            // 25 is five codes' worth of wrong guesses.
            failure_budget: crate::store::DEFAULT_FAILURE_BUDGET,
            // Stops resend-button mashing and message floods to one victim.
            resend_cooldown: DEFAULT_RESEND_COOLDOWN,
            // Bounds paid SMS per contact; short window limits victim lock-out.
            send_quota: DEFAULT_SEND_QUOTA,
            send_quota_window: DEFAULT_SEND_QUOTA_WINDOW,
            grant_ttl: DEFAULT_GRANT_TTL,
            // Opt-in: a grant usually gates several requests (a page and its
            // form post); single use suits one-shot actions.
            single_use_grants: false,
            // The largest legitimate body is well under 400 bytes.
            body_limit: DEFAULT_BODY_LIMIT,
            // A slow-loris body must not hold a connection and a task for
            // long; a real client sends 100 bytes in well under a second.
            body_timeout: DEFAULT_BODY_TIMEOUT,
            // Grants are bearer credentials: never over plain HTTP by default.
            cookie_secure: true,
            token_header: HeaderName::from_static(DEFAULT_TOKEN_HEADER),
            default_region: None,
            paths: RoutePaths::default(),
            // OWASP Password Storage Cheat Sheet: Argon2id m=19 MiB, t=2, p=1.
            hash_params: HashParams::default(),
            hash_workers: workers,
            hash_queue: workers * DEFAULT_HASH_QUEUE_PER_WORKER,
            // Hashes wait for spare CPU; request handling never waits for them.
            hash_priority: HashThreadPriority::Low,
            app_name: "tower-otp".into(),
            // Derived from the app name: two apps sharing a secret still
            // refuse each other's grants.
            app_id: None,
            channels: crate::contact::Channels::BOTH,
            webotp_host: None,
            webotp_embedded_host: None,
            android_app_hash: None,
            // Off: a host that offers WhatsApp may not want to pay for SMS.
            whatsapp_fallback_sms: false,
            // A person sends a few codes a minute at most; a bot wants thousands.
            ip_send_per_minute: DEFAULT_IP_SEND_PER_MINUTE,
            // Typing mistakes are common; 30 guesses a minute is still far
            // from brute force (5 per code, and sends are limited).
            ip_verify_per_minute: DEFAULT_IP_VERIFY_PER_MINUTE,
            max_tracked_ips: DEFAULT_MAX_TRACKED_IPS,
            // Forwarded headers are client-controlled unless a proxy says so.
            trusted_proxies: TrustedProxies::none(),
            // Apps know their markets; set an allow-list in production.
            sms_guard: SmsGuard::none(),
            // Opt-in: it hides delivery failures from the user.
            enumeration_safe: false,
            // The seed's page reads this body; problem details on request.
            error_format: ErrorFormat::Contract,
            // Opt-in: links need the public base URL.
            email_links: None,
        }
    }
}

impl OtpConfig {
    /// The audience grants carry: `app_id`, or one derived from `app_name`
    /// (lower-cased, anything but ASCII letters and digits turned into `-`).
    pub fn audience(&self) -> String {
        match &self.app_id {
            Some(id) => id.clone(),
            None => self
                .app_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect(),
        }
    }

    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .app_id
            .as_ref()
            .is_some_and(|id| id.is_empty() || id.len() > 128)
        {
            return Err(ConfigError::invalid(
                "app_id",
                "must be 1 to 128 characters",
            ));
        }
        use crate::code::{MAX_CODE_LENGTH, MIN_CODE_LENGTH};
        if !(MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&self.code_length) {
            return Err(ConfigError::invalid(
                "code_length",
                format!("must be {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH} digits"),
            ));
        }
        let positive = [
            ("code_ttl", self.code_ttl),
            ("send_quota_window", self.send_quota_window),
            ("grant_ttl", self.grant_ttl),
            ("body_timeout", self.body_timeout),
        ];
        for (name, value) in positive {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::invalid(name, "must be at least one second"));
            }
        }
        const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
        let bounded = [
            ("code_ttl", self.code_ttl),
            ("send_quota_window", self.send_quota_window),
            ("grant_ttl", self.grant_ttl),
            ("resend_cooldown", self.resend_cooldown),
        ];
        for (name, value) in bounded {
            if value > YEAR {
                return Err(ConfigError::invalid(name, "must be at most one year"));
            }
        }
        if self.hash_workers == 0 {
            // (A queue of 0 is valid: no hash waits, a busy pool answers
            // `overloaded` at once.)
            return Err(ConfigError::invalid(
                "hash_pool_size",
                "needs at least one hashing thread",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid("max_attempts", "must be at least 1"));
        }
        if self.send_quota == 0 {
            return Err(ConfigError::invalid("send_quota", "must be at least 1"));
        }
        if self.body_limit < 64 {
            return Err(ConfigError::invalid(
                "body_limit",
                "must be at least 64 bytes",
            ));
        }
        let p = &self.paths;
        let all = [
            &p.send_email,
            &p.verify_email,
            &p.send_mobile,
            &p.verify_mobile,
            &p.link,
            &p.cancel,
        ];
        for path in all {
            if !path.starts_with('/') || path.trim_end_matches('/').is_empty() {
                return Err(ConfigError::invalid(
                    "paths",
                    format!("{path:?} must start with '/' and name a path"),
                ));
            }
        }
        if !p.prefix.is_empty() && !p.prefix.starts_with('/') {
            return Err(ConfigError::invalid("paths.prefix", "must start with '/'"));
        }
        self.sms_guard.validate()?;
        if let Some(links) = &self.email_links {
            links.validate()?;
        }
        Ok(())
    }
}
