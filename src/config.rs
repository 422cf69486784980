//! [`OtpConfig`]: every tunable, with the security defaults in one
//! `impl Default` and the reasoning beside each number.

use std::time::Duration;

use http::HeaderName;

use crate::{
    contact::Region,
    error::ConfigError,
    hash::{HashParams, HashThreadPriority},
    limit::{
        DEFAULT_IP_SEND_PER_MINUTE, DEFAULT_IP_VERIFY_PER_MINUTE, DEFAULT_MAX_TRACKED_IPS,
        client_ip::{ForwardedHeader, TrustedProxies},
        sms_guard::SmsGuard,
    },
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
/// The grant cookie's name.
pub const GRANT_COOKIE: &str = "otp_verification";
/// The default header API clients send the grant in.
pub const DEFAULT_TOKEN_HEADER: &str = "x-verification-token";
/// Default waiting hashes per hashing thread before `overloaded` answers.
pub const DEFAULT_HASH_QUEUE_PER_WORKER: usize = 32;

/// The four route paths, relative to [`prefix`](Self::prefix). Each is
/// served with and without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePaths {
    /// Prepended to every path, e.g. `/api`. Empty by default.
    pub prefix: String,
    /// Send an email code. Default `/send-otp/`.
    pub send_email: String,
    /// Verify an email code. Default `/verify-otp/`.
    pub verify_email: String,
    /// Send an SMS code. Default `/send-mobile-otp/`.
    pub send_mobile: String,
    /// Verify an SMS code. Default `/verify-mobile-otp/`.
    pub verify_mobile: String,
}

impl Default for RoutePaths {
    /// The Django recipe's paths, so its page and JavaScript work unchanged.
    fn default() -> Self {
        Self {
            prefix: String::new(),
            send_email: "/send-otp/".into(),
            verify_email: "/verify-otp/".into(),
            send_mobile: "/send-mobile-otp/".into(),
            verify_mobile: "/verify-mobile-otp/".into(),
        }
    }
}

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
    /// Resend cooldown per contact. Default [`DEFAULT_RESEND_COOLDOWN`].
    pub resend_cooldown: Duration,
    /// Sends per contact per window. Default [`DEFAULT_SEND_QUOTA`].
    pub send_quota: u32,
    /// The send quota window. Default [`DEFAULT_SEND_QUOTA_WINDOW`].
    pub send_quota_window: Duration,
    /// Grant lifetime. Default [`DEFAULT_GRANT_TTL`].
    pub grant_ttl: Duration,
    /// Largest accepted request body in bytes. Default [`DEFAULT_BODY_LIMIT`].
    pub body_limit: usize,
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
    /// Host name for the WebOTP line (`@host #code`) at the end of SMS
    /// codes. Default none.
    pub webotp_host: Option<String>,
    /// Send requests per client IP per minute (0 = off). Default
    /// [`DEFAULT_IP_SEND_PER_MINUTE`].
    pub ip_send_per_minute: u32,
    /// Verify requests per client IP per minute (0 = off). Default
    /// [`DEFAULT_IP_VERIFY_PER_MINUTE`].
    pub ip_verify_per_minute: u32,
    /// Client addresses tracked per limiter before new ones are refused.
    /// Default [`DEFAULT_MAX_TRACKED_IPS`].
    pub max_tracked_ips: usize,
    /// Proxies whose forwarded headers are believed. Default none.
    pub trusted_proxies: TrustedProxies,
    /// Which countries may receive SMS codes, and how many per hour.
    /// Default: no restriction.
    pub sms_guard: SmsGuard,
    /// Answer refused contacts exactly like accepted ones (see
    /// [`policy`](crate::policy)). Default `false`.
    pub enumeration_safe: bool,
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
            // Stops resend-button mashing and message floods to one victim.
            resend_cooldown: DEFAULT_RESEND_COOLDOWN,
            // Bounds paid SMS per contact; short window limits victim lock-out.
            send_quota: DEFAULT_SEND_QUOTA,
            send_quota_window: DEFAULT_SEND_QUOTA_WINDOW,
            grant_ttl: DEFAULT_GRANT_TTL,
            // The largest legitimate body is well under 400 bytes.
            body_limit: DEFAULT_BODY_LIMIT,
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
            webotp_host: None,
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
        }
    }
}

impl OtpConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }
}

/// Reads environment variables through `lookup` (a function so tests need
/// not touch the process environment). Empty values count as unset.
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`, if set and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or an error naming it.
    pub(crate) fn require(&self, name: &'static str, why: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::missing(name, why.to_owned()))
    }

    /// `name` parsed as `T`, or an error naming it.
    pub(crate) fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ConfigError::invalid(name, format!("{v:?}: {e}")))
            })
            .transpose()
    }

    /// `name` as seconds.
    pub(crate) fn seconds(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        Ok(self.parse::<u64>(name)?.map(Duration::from_secs))
    }

    /// `name` as a boolean (`true/false`, `1/0`, `yes/no`, `on/off`).
    pub(crate) fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(
                    name,
                    format!("{v:?} is not a boolean"),
                )),
            })
            .transpose()
    }
}

impl crate::OtpBuilder {
    /// A builder configured from the process environment (see
    /// [`from_env_with`](Self::from_env_with) for the variables).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// A builder configured from variables read through `lookup`.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `OTP_SECRET` | server secret (16+ bytes) | required, unless [`random_secret`](Self::random_secret) is called later |
    /// | `OTP_OLD_SECRETS` | comma-separated older secrets still accepted | none |
    /// | `OTP_DEFAULT_REGION` | region for numbers without `+` (e.g. `IN`) | none |
    /// | `OTP_LENGTH` | code digits | 6 |
    /// | `OTP_TTL_SECONDS` | code lifetime | 300 |
    /// | `OTP_MAX_ATTEMPTS` | wrong codes per code | 5 |
    /// | `OTP_RESEND_SECONDS` | resend cooldown | 30 |
    /// | `OTP_SEND_QUOTA` | sends per contact per window | 5 |
    /// | `OTP_SEND_QUOTA_WINDOW_SECONDS` | quota window | 600 |
    /// | `OTP_GRANT_TTL_SECONDS` | grant lifetime | 1800 |
    /// | `OTP_COOKIE_SECURE` | `Secure` on the grant cookie | true |
    /// | `OTP_IP_SEND_PER_MINUTE` | sends per client IP per minute (0 = off) | 10 |
    /// | `OTP_IP_VERIFY_PER_MINUTE` | verifies per client IP per minute (0 = off) | 30 |
    /// | `OTP_TRUSTED_PROXIES` | comma-separated proxy CIDRs whose forwarded headers count | none |
    /// | `OTP_FORWARDED_HEADER` | the header those proxies write: `x-forwarded-for` or `forwarded` | `x-forwarded-for` |
    /// | `OTP_SMS_ALLOWED_COUNTRIES` | comma-separated calling codes that may get SMS (`91,1`) | all |
    /// | `OTP_SMS_DENIED_COUNTRIES` | calling codes that may never get SMS | none |
    /// | `OTP_PRODUCTION` | production flag: test mode is refused | false |
    /// | `OTP_TEST_MODE`, `OTP_TEST_CONTACTS`, `OTP_TEST_CODE` | test mode (`enabled`), its contacts and fixed code | off |
    /// | `OTP_SMS_COUNTRY_BUDGET_PER_HOUR` | SMS codes per calling code per hour (0 = no cap) | no cap |
    ///
    /// Store and delivery variables (`REDIS_OTP_URL`, `EMAIL_SERVER`,
    /// `SMS_SERVER`, …) are read by their own modules; see the README.
    ///
    /// ```
    /// use tower_otp::OtpBuilder;
    ///
    /// let vars = [("OTP_SECRET", "0123456789abcdef0123"), ("OTP_LENGTH", "8")];
    /// let otp = OtpBuilder::from_env_with(|k| {
    ///     vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    /// })
    /// .unwrap()
    /// .build()
    /// .unwrap();
    /// assert_eq!(otp.config().code_length, 8);
    ///
    /// let err = OtpBuilder::from_env_with(|k| (k == "OTP_LENGTH").then(|| "six".into())).unwrap_err();
    /// assert!(err.to_string().contains("OTP_LENGTH"));
    /// ```
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let mut builder = Self::default();
        if let Some(secret) = env.get("OTP_SECRET") {
            builder = builder.secret(secret);
        }
        if let Some(old) = env.get("OTP_OLD_SECRETS") {
            for s in old.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                builder = builder.old_secret(s);
            }
        }
        let c = &mut builder.config;
        if let Some(region) = env.get("OTP_DEFAULT_REGION") {
            c.default_region = Some(region.to_ascii_uppercase().parse().map_err(|_| {
                ConfigError::invalid(
                    "OTP_DEFAULT_REGION",
                    format!("{region:?} is not a region code"),
                )
            })?);
        }
        if let Some(v) = env.parse("OTP_LENGTH")? {
            c.code_length = v;
        }
        if let Some(v) = env.seconds("OTP_TTL_SECONDS")? {
            c.code_ttl = v;
        }
        if let Some(v) = env.parse("OTP_MAX_ATTEMPTS")? {
            c.max_attempts = v;
        }
        if let Some(v) = env.seconds("OTP_RESEND_SECONDS")? {
            c.resend_cooldown = v;
        }
        if let Some(v) = env.parse("OTP_SEND_QUOTA")? {
            c.send_quota = v;
        }
        if let Some(v) = env.seconds("OTP_SEND_QUOTA_WINDOW_SECONDS")? {
            c.send_quota_window = v;
        }
        if let Some(v) = env.seconds("OTP_GRANT_TTL_SECONDS")? {
            c.grant_ttl = v;
        }
        if let Some(v) = env.flag("OTP_COOKIE_SECURE")? {
            c.cookie_secure = v;
        }
        if let Some(v) = env.parse("OTP_IP_SEND_PER_MINUTE")? {
            c.ip_send_per_minute = v;
        }
        if let Some(v) = env.parse("OTP_IP_VERIFY_PER_MINUTE")? {
            c.ip_verify_per_minute = v;
        }
        if let Some(v) = env.get("OTP_TRUSTED_PROXIES") {
            c.trusted_proxies = TrustedProxies::parse(&v)?;
        }
        if let Some(v) = env.get("OTP_FORWARDED_HEADER") {
            let header = match v.to_ascii_lowercase().as_str() {
                "x-forwarded-for" => ForwardedHeader::XForwardedFor,
                "forwarded" => ForwardedHeader::Forwarded,
                _ => {
                    return Err(ConfigError::invalid(
                        "OTP_FORWARDED_HEADER",
                        format!("{v:?}: use x-forwarded-for or forwarded"),
                    ));
                }
            };
            c.trusted_proxies = std::mem::take(&mut c.trusted_proxies).with_header(header);
        }
        if let Some(v) = env.get("OTP_SMS_ALLOWED_COUNTRIES") {
            c.sms_guard = SmsGuard::allow(SmsGuard::parse_codes("OTP_SMS_ALLOWED_COUNTRIES", &v)?);
        }
        if let Some(v) = env.get("OTP_SMS_DENIED_COUNTRIES") {
            let denied = SmsGuard::parse_codes("OTP_SMS_DENIED_COUNTRIES", &v)?;
            c.sms_guard = std::mem::take(&mut c.sms_guard).deny(denied);
        }
        if let Some(v) = env.parse::<u32>("OTP_SMS_COUNTRY_BUDGET_PER_HOUR")? {
            c.sms_guard = std::mem::take(&mut c.sms_guard).per_country_per_hour(v);
        }
        if env.flag("OTP_PRODUCTION")? == Some(true) {
            builder = builder.production();
        }
        if let Some(list) = env.get("OTP_TEST_CONTACTS") {
            if env.get("OTP_TEST_MODE").as_deref() != Some("enabled") {
                return Err(ConfigError::invalid(
                    "OTP_TEST_MODE",
                    "OTP_TEST_CONTACTS is set: test mode must be enabled explicitly with OTP_TEST_MODE=enabled",
                ));
            }
            let code = env.require("OTP_TEST_CODE", "test mode needs the fixed code")?;
            let mut contacts = crate::test_mode::TestContacts::new(code);
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                contacts = contacts.any(item).map_err(|_| {
                    ConfigError::invalid(
                        "OTP_TEST_CONTACTS",
                        format!("{item:?} is not an email or +number"),
                    )
                })?;
            }
            builder = builder.dangerous_test_contacts(contacts);
        }
        let c = &mut builder.config;
        c.validate().map_err(rename_to_env)?;
        crate::store::apply_env(builder, &env).and_then(|b| crate::delivery::apply_env(b, &env))
    }
}

/// Maps a config field name to the environment variable that set it.
fn rename_to_env(error: ConfigError) -> ConfigError {
    let to_env = |name: &'static str| match name {
        "code_length" => "OTP_LENGTH",
        "code_ttl" => "OTP_TTL_SECONDS",
        "max_attempts" => "OTP_MAX_ATTEMPTS",
        "send_quota" => "OTP_SEND_QUOTA",
        "send_quota_window" => "OTP_SEND_QUOTA_WINDOW_SECONDS",
        "grant_ttl" => "OTP_GRANT_TTL_SECONDS",
        "resend_cooldown" => "OTP_RESEND_SECONDS",
        other => other,
    };
    match error {
        ConfigError::Invalid { name, reason } => ConfigError::Invalid {
            name: to_env(name),
            reason,
        },
        other => other,
    }
}
