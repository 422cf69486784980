//! Configuration from the environment: one table of every variable
//! [`OtpBuilder::from_env`] reads, what each sets and how it is parsed.
//!
//! [`variables`] is that table. `from_env` walks it in order; the README's
//! and the crate docs' tables are checked against it by a test, so a
//! variable cannot be documented wrong or half-wired. Stores and senders are
//! picked here too (`REDIS_OTP_URL`, `EMAIL_SERVER`, `SMS_SERVER`): no store
//! or sender reads the environment itself.
//!
//! | variable | sets | format | default |
//! |---|---|---|---|
//! | `OTP_SECRET` | `secret` | 16+ bytes (use 32 random bytes) | required, unless `random_secret` is called |
//! | `OTP_OLD_SECRETS` | `old_secret` | comma-separated secrets | none |
//! | `OTP_APP_NAME` | `app_name` | text shown in messages | `tower-otp` |
//! | `OTP_APP_ID` | `app_id` | the grants' audience: grants of another app id are refused | derived from `OTP_APP_NAME` |
//! | `OTP_DEFAULT_REGION` | `default_region` | region code (`IN`) for numbers without `+` | none |
//! | `OTP_LENGTH` | `code_length` | digits, 4 to 10 | 6 |
//! | `OTP_TTL_SECONDS` | `code_ttl` | seconds | 300 |
//! | `OTP_MAX_ATTEMPTS` | `max_attempts` | wrong codes per code | 5 |
//! | `OTP_FAILURE_BUDGET` | `failure_budget` | consecutive wrong codes per contact, across codes, 0 = off | 25 |
//! | `OTP_RESEND_SECONDS` | `resend_cooldown` | seconds | 30 |
//! | `OTP_SEND_QUOTA` | `send_quota` | sends per contact per window | 5 |
//! | `OTP_SEND_QUOTA_WINDOW_SECONDS` | `send_quota` (window) | seconds | 600 |
//! | `OTP_GRANT_TTL_SECONDS` | `grant_ttl` | seconds | 1800 |
//! | `OTP_SINGLE_USE_GRANTS` | `single_use_grants` | boolean: a grant is spent the first time an extractor accepts it | false |
//! | `OTP_BODY_TIMEOUT_SECONDS` | `body_timeout` | seconds for the body to arrive | 10 |
//! | `OTP_DELIVERY_DEADLINE_SECONDS` | `retry_policy` (deadline) | seconds for one delivery, retries included (1 or more) | 15 |
//! | `OTP_COOKIE_SECURE` | `insecure_cookie` | boolean: `Secure` on the grant cookie | true |
//! | `OTP_ERROR_FORMAT` | `error_format` | `contract` or `problem` (RFC 9457) | `contract` |
//! | `OTP_IP_SEND_PER_MINUTE` | `ip_limits` (sends) | per client IP per minute, 0 = off | 10 |
//! | `OTP_IP_VERIFY_PER_MINUTE` | `ip_limits` (verifies) | per client IP per minute, 0 = off | 30 |
//! | `OTP_TRUSTED_PROXIES` | `trusted_proxies` | comma-separated CIDRs | none |
//! | `OTP_FORWARDED_HEADER` | `trusted_proxies` (header) | `x-forwarded-for` or `forwarded` | `x-forwarded-for` |
//! | `OTP_SMS_ALLOWED_COUNTRIES` | `sms_guard` (allow) | comma-separated calling codes (`91,1`) | all |
//! | `OTP_SMS_DENIED_COUNTRIES` | `sms_guard` (deny) | comma-separated calling codes | none |
//! | `OTP_SMS_COUNTRY_BUDGET_PER_HOUR` | `sms_guard` (budget) | SMS codes per calling code per hour, 0 = no cap | no cap |
//! | `OTP_SMS_BREAKER` | `sms_guard` (breaker) | boolean: refuse SMS sends to a number range whose codes go unverified (SMS pumping) | false |
//! | `OTP_SMS_BREAKER_DIGITS` | `sms_guard` (breaker range) | digits after the country code that make a range, 0 to 8 | 4 |
//! | `OTP_SMS_BREAKER_WINDOW_SECONDS` | `sms_guard` (breaker window) | seconds sends and verifies are counted over | 3600 |
//! | `OTP_SMS_BREAKER_MIN_SENDS` | `sms_guard` (breaker volume) | sends in the window below which a range is never blocked | 20 |
//! | `OTP_SMS_BREAKER_MIN_CONVERSION` | `sms_guard` (breaker threshold) | lowest share of codes verified, 0 to 1 | 0.2 |
//! | `OTP_SMS_BREAKER_BLOCK_SECONDS` | `sms_guard` (breaker block) | seconds a tripped range stays blocked | 3600 |
//! | `OTP_WEBHOOK_URL` | `webhook` | `http(s)://` URL that receives every event, signed (Standard Webhooks; feature `webhooks`) | none |
//! | `OTP_WEBHOOK_SECRET` | `webhook` (key) | `whsec_` + base64 of 24 to 64 bytes; required with `OTP_WEBHOOK_URL`, and only with it | none |
//! | `OTP_WEBOTP_HOST` | `webotp_host` | host name for the `@host #code` SMS line | none |
//! | `OTP_WEBOTP_EMBEDDED_HOST` | `webotp_embedded_host` | the host of the frame that asks for the code (a second `@host` after the code) | none |
//! | `OTP_ANDROID_APP_HASH` | `android_app_hash` | 11-character SMS Retriever app hash added to SMS codes | none |
//! | `OTP_WHATSAPP_FALLBACK_SMS` | `whatsapp_fallback_sms` | boolean: a permanent WhatsApp failure is retried once by SMS | false |
//! | `OTP_LINK_BASE_URL` | `email_links` | `https://` origin (optional path) the email sign-in and cancel links point to | none: emails carry the code alone |
//! | `OTP_LINK_REDIRECT` | `email_links` (redirect) | local path, or a URL under `OTP_LINK_BASE_URL`, a browser goes to after a sign-in link | `/` |
//! | `OTP_LINK_SAME_DEVICE` | `email_links` (same device) | boolean: a sign-in link works only in the browser that asked for the code | false |
//! | `OTP_CANCEL_BLOCK_SECONDS` | `email_links` (cancel block) | seconds sends stay blocked after a "this wasn't me" link | 3600 |
//! | `OTP_PRODUCTION` | `production` | boolean: refuse development senders, an insecure cookie, weak or example secrets, weak hash parameters, test mode | false |
//! | `OTP_CHANNELS` | `channels` | `email`, `mobile` or `email,mobile`: a channel turned off has no routes | `email,mobile` |
//! | `OTP_TEST_MODE` | `dangerous_test_contacts` (switch) | `enabled` | off |
//! | `OTP_TEST_CONTACTS` | `dangerous_test_contacts` | comma-separated emails and `+`numbers | none |
//! | `OTP_TEST_CODE` | `dangerous_test_contacts` (code) | the fixed code | required in test mode |
//! | `REDIS_OTP_URL` | `shared_store`, `shared_limits` | one URL, or comma-separated cluster seeds | memory store |
//! | `OTP_REDIS_WAIT_REPLICAS` | `shared_store` (`RedisStoreBuilder::wait_for_replicas`) | replicas that must acknowledge each attempt count and single-use delete; run at least one more per master | 0 (off) |
//! | `OTP_REDIS_WAIT_MS` | `shared_store` (`RedisStoreBuilder::wait_for_replicas`, timeout) | milliseconds, above 0 | 50 |
//! | `EMAIL_SERVER` | `email_sender` | `SMTP`, `SENDGRID` or `CONSOLE` | `CONSOLE` |
//! | `EMAIL_HOST` | `email_sender` (SMTP host) | host name | required for SMTP |
//! | `EMAIL_PORT` | `email_sender` (SMTP port) | port; 465 means implicit TLS | 587 (25 without TLS) |
//! | `EMAIL_HOST_USER` | `email_sender` (SMTP login) | user name | no login |
//! | `EMAIL_HOST_PASSWORD` | `email_sender` (SMTP login) | password | required once a user is set |
//! | `EMAIL_USE_TLS` | `email_sender` (SMTP security) | boolean; `false` is plain SMTP | true |
//! | `DEFAULT_FROM_EMAIL` | `email_sender` (From) | address | `webmaster@localhost` (SMTP); required for SendGrid |
//! | `SENDGRID_API_KEY` | `email_sender` (SendGrid) | API key | required for SendGrid |
//! | `SENDGRID_BASE_URL` | `email_sender` (SendGrid origin) | bare origin | `https://api.sendgrid.com` |
//! | `SMS_SERVER` | `sms_sender` / `sms_verifier` | `TWILIO_VERIFY`, `TWILIO` or `CONSOLE` | `CONSOLE` |
//! | `TWILIO_ACCOUNT_SID` | `sms_sender` / `sms_verifier` (account) | account SID | required for Twilio |
//! | `TWILIO_AUTH_TOKEN` | `sms_sender` / `sms_verifier` (account) | auth token | required for Twilio |
//! | `TWILIO_VERIFY_SERVICE_SID` | `sms_verifier` | Verify Service SID (`VA…`) | required for `TWILIO_VERIFY` |
//! | `TWILIO_FROM_NUMBER` | `sms_sender` | E.164 sending number | required for `TWILIO` |
//! | `TWILIO_VERIFY_BASE_URL` | `sms_verifier` (origin) | bare origin | Twilio's |
//! | `TWILIO_API_BASE_URL` | `sms_sender` (origin) | bare origin | Twilio's |
//! | `TWILIO_WHATSAPP_FROM` | `sms_sender` (WhatsApp sender) | E.164 WhatsApp sender number; unset: no WhatsApp in `TWILIO` mode | none |
//! | `TWILIO_WHATSAPP_CONTENT_SID` | `sms_sender` (WhatsApp template) | approved template `HX…` with the code as variable 1; unset: plain `Body` | none |
//!
//! Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`. Empty
//! values count as unset. A value that does not parse stops start-up with
//! an error naming the variable.

mod delivery;
mod store;

use std::time::Duration;

use crate::{
    ConfigError, OtpBuilder,
    error::ErrorFormat,
    limit::{
        client_ip::{ForwardedHeader, TrustedProxies},
        sms_guard::SmsGuard,
    },
};

/// One environment variable read by [`OtpBuilder::from_env`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// The [`OtpBuilder`] method whose setting it gives.
    pub sets: &'static str,
    /// The configuration field named in errors about it (for a value that
    /// passes parsing but fails validation).
    pub field: &'static str,
    /// How its value is read.
    pub format: &'static str,
    /// What holds when it is unset.
    pub default: &'static str,
    apply: Apply,
}

/// How a variable reaches the builder.
#[derive(Clone, Copy)]
enum Apply {
    /// Applied on its own when set.
    Own(fn(OtpBuilder, &str, &Env<'_>) -> Result<OtpBuilder, ConfigError>),
    /// Read by the entry of the named variable (a group: a sender's
    /// settings, test mode).
    ReadBy(&'static str),
}

impl std::fmt::Debug for Apply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Own(_) => f.write_str("Own"),
            Self::ReadBy(name) => write!(f, "ReadBy({name})"),
        }
    }
}

impl EnvVar {
    /// The variable whose entry reads this one, when it is part of a group
    /// (e.g. `EMAIL_HOST` is read by `EMAIL_SERVER`).
    pub fn read_by(&self) -> Option<&'static str> {
        match self.apply {
            Apply::Own(_) => None,
            Apply::ReadBy(name) => Some(name),
        }
    }
}

macro_rules! var {
    ($name:literal, $sets:literal, $field:literal, $format:literal, $default:literal, $apply:expr) => {
        EnvVar {
            name: $name,
            sets: $sets,
            field: $field,
            format: $format,
            default: $default,
            apply: Apply::Own($apply),
        }
    };
    ($name:literal, $sets:literal, $format:literal, $default:literal, read by $by:literal) => {
        EnvVar {
            name: $name,
            sets: $sets,
            field: $sets,
            format: $format,
            default: $default,
            apply: Apply::ReadBy($by),
        }
    };
}

/// Every variable [`OtpBuilder::from_env`] reads, in the order it applies
/// them.
pub fn variables() -> &'static [EnvVar] {
    VARIABLES
}

static VARIABLES: &[EnvVar] = &[
    var!(
        "OTP_SECRET",
        "secret",
        "secret",
        "16+ bytes",
        "required",
        |b, v, _| Ok(b.secret(v))
    ),
    var!(
        "OTP_OLD_SECRETS",
        "old_secret",
        "secret",
        "comma-separated secrets",
        "none",
        |mut b, v, _| {
            for s in list(v) {
                b = b.old_secret(s);
            }
            Ok(b)
        }
    ),
    var!(
        "OTP_APP_NAME",
        "app_name",
        "app_name",
        "text",
        "tower-otp",
        |b, v, _| Ok(b.app_name(v))
    ),
    var!(
        "OTP_APP_ID",
        "app_id",
        "app_id",
        "text: the grants' audience",
        "derived from OTP_APP_NAME",
        |b, v, _| Ok(b.app_id(v))
    ),
    var!(
        "OTP_DEFAULT_REGION",
        "default_region",
        "default_region",
        "region code",
        "none",
        |b, v, _| {
            let region = v.to_ascii_uppercase().parse().map_err(|_| {
                ConfigError::invalid("OTP_DEFAULT_REGION", format!("{v:?} is not a region code"))
            })?;
            Ok(b.default_region(region))
        }
    ),
    var!(
        "OTP_LENGTH",
        "code_length",
        "code_length",
        "digits",
        "6",
        |b, v, _| { Ok(b.code_length(parse("OTP_LENGTH", v)?)) }
    ),
    var!(
        "OTP_TTL_SECONDS",
        "code_ttl",
        "code_ttl",
        "seconds",
        "300",
        |b, v, _| { Ok(b.code_ttl(seconds("OTP_TTL_SECONDS", v)?)) }
    ),
    var!(
        "OTP_MAX_ATTEMPTS",
        "max_attempts",
        "max_attempts",
        "count",
        "5",
        |b, v, _| { Ok(b.max_attempts(parse("OTP_MAX_ATTEMPTS", v)?)) }
    ),
    var!(
        "OTP_FAILURE_BUDGET",
        "failure_budget",
        "failure_budget",
        "count",
        "25",
        |b, v, _| { Ok(b.failure_budget(parse("OTP_FAILURE_BUDGET", v)?)) }
    ),
    var!(
        "OTP_RESEND_SECONDS",
        "resend_cooldown",
        "resend_cooldown",
        "seconds",
        "30",
        |b, v, _| { Ok(b.resend_cooldown(seconds("OTP_RESEND_SECONDS", v)?)) }
    ),
    var!(
        "OTP_SEND_QUOTA",
        "send_quota",
        "send_quota",
        "count",
        "5",
        |mut b, v, _| {
            b.config.send_quota = parse("OTP_SEND_QUOTA", v)?;
            Ok(b)
        }
    ),
    var!(
        "OTP_SEND_QUOTA_WINDOW_SECONDS",
        "send_quota",
        "send_quota_window",
        "seconds",
        "600",
        |mut b, v, _| {
            b.config.send_quota_window = seconds("OTP_SEND_QUOTA_WINDOW_SECONDS", v)?;
            Ok(b)
        }
    ),
    var!(
        "OTP_GRANT_TTL_SECONDS",
        "grant_ttl",
        "grant_ttl",
        "seconds",
        "1800",
        |b, v, _| { Ok(b.grant_ttl(seconds("OTP_GRANT_TTL_SECONDS", v)?)) }
    ),
    var!(
        "OTP_SINGLE_USE_GRANTS",
        "single_use_grants",
        "single_use_grants",
        "boolean",
        "false",
        |b, v, _| Ok(if flag("OTP_SINGLE_USE_GRANTS", v)? {
            b.single_use_grants()
        } else {
            b
        })
    ),
    var!(
        "OTP_BODY_TIMEOUT_SECONDS",
        "body_timeout",
        "body_timeout",
        "seconds",
        "10",
        |b, v, _| Ok(b.body_timeout(seconds("OTP_BODY_TIMEOUT_SECONDS", v)?))
    ),
    var!(
        "OTP_DELIVERY_DEADLINE_SECONDS",
        "retry_policy",
        "retry_policy",
        "seconds for one delivery, retries included (1 or more)",
        "15",
        |mut b, v, _| {
            let deadline = seconds("OTP_DELIVERY_DEADLINE_SECONDS", v)?;
            if deadline.is_zero() {
                return Err(ConfigError::invalid(
                    "OTP_DELIVERY_DEADLINE_SECONDS",
                    "must be at least 1 second",
                ));
            }
            b.retry = b.retry.with_deadline(deadline);
            Ok(b)
        }
    ),
    var!(
        "OTP_COOKIE_SECURE",
        "insecure_cookie",
        "cookie_secure",
        "boolean",
        "true",
        |mut b, v, _| {
            b.config.cookie_secure = flag("OTP_COOKIE_SECURE", v)?;
            Ok(b)
        }
    ),
    var!(
        "OTP_ERROR_FORMAT",
        "error_format",
        "error_format",
        "contract or problem",
        "contract",
        |b, v, _| {
            let format = match v.to_ascii_lowercase().as_str() {
                "contract" => ErrorFormat::Contract,
                "problem" => ErrorFormat::Problem,
                _ => {
                    return Err(ConfigError::invalid(
                        "OTP_ERROR_FORMAT",
                        format!("{v:?}: use contract or problem"),
                    ));
                }
            };
            Ok(b.error_format(format))
        }
    ),
    var!(
        "OTP_IP_SEND_PER_MINUTE",
        "ip_limits",
        "ip_send_per_minute",
        "count, 0 = off",
        "10",
        |mut b, v, _| {
            b.config.ip_send_per_minute = parse("OTP_IP_SEND_PER_MINUTE", v)?;
            Ok(b)
        }
    ),
    var!(
        "OTP_IP_VERIFY_PER_MINUTE",
        "ip_limits",
        "ip_verify_per_minute",
        "count, 0 = off",
        "30",
        |mut b, v, _| {
            b.config.ip_verify_per_minute = parse("OTP_IP_VERIFY_PER_MINUTE", v)?;
            Ok(b)
        }
    ),
    var!(
        "OTP_TRUSTED_PROXIES",
        "trusted_proxies",
        "trusted_proxies",
        "CIDRs",
        "none",
        |mut b, v, _| {
            b.config.trusted_proxies =
                TrustedProxies::parse(v).map_err(|e| rename(e, "OTP_TRUSTED_PROXIES"))?;
            Ok(b)
        }
    ),
    var!(
        "OTP_FORWARDED_HEADER",
        "trusted_proxies",
        "trusted_proxies",
        "x-forwarded-for or forwarded",
        "x-forwarded-for",
        |mut b, v, _| {
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
            b.config.trusted_proxies =
                std::mem::take(&mut b.config.trusted_proxies).with_header(header);
            Ok(b)
        }
    ),
    var!(
        "OTP_SMS_ALLOWED_COUNTRIES",
        "sms_guard",
        "sms_guard",
        "calling codes",
        "all",
        |mut b, v, _| {
            let allowed = SmsGuard::parse_codes("OTP_SMS_ALLOWED_COUNTRIES", v)?;
            b.config.sms_guard = SmsGuard::allow(allowed);
            Ok(b)
        }
    ),
    var!(
        "OTP_SMS_DENIED_COUNTRIES",
        "sms_guard",
        "sms_guard",
        "calling codes",
        "none",
        |mut b, v, _| {
            let denied = SmsGuard::parse_codes("OTP_SMS_DENIED_COUNTRIES", v)?;
            b.config.sms_guard = std::mem::take(&mut b.config.sms_guard).deny(denied);
            Ok(b)
        }
    ),
    var!(
        "OTP_SMS_COUNTRY_BUDGET_PER_HOUR",
        "sms_guard",
        "sms_guard",
        "count, 0 = no cap",
        "no cap",
        |mut b, v, _| {
            let budget = parse::<u32>("OTP_SMS_COUNTRY_BUDGET_PER_HOUR", v)?;
            b.config.sms_guard =
                std::mem::take(&mut b.config.sms_guard).per_country_per_hour(budget);
            Ok(b)
        }
    ),
    var!(
        "OTP_SMS_BREAKER",
        "sms_guard",
        "sms_breaker",
        "boolean: the SMS fraud breaker per number range",
        "false",
        sms_breaker
    ),
    var!("OTP_SMS_BREAKER_DIGITS", "sms_guard", "digits after the country code, 0 to 8", "4", read by "OTP_SMS_BREAKER"),
    var!("OTP_SMS_BREAKER_WINDOW_SECONDS", "sms_guard", "seconds", "3600", read by "OTP_SMS_BREAKER"),
    var!("OTP_SMS_BREAKER_MIN_SENDS", "sms_guard", "count", "20", read by "OTP_SMS_BREAKER"),
    var!("OTP_SMS_BREAKER_MIN_CONVERSION", "sms_guard", "share verified, 0 to 1", "0.2", read by "OTP_SMS_BREAKER"),
    var!("OTP_SMS_BREAKER_BLOCK_SECONDS", "sms_guard", "seconds", "3600", read by "OTP_SMS_BREAKER"),
    var!(
        "OTP_WEBHOOK_URL",
        "webhook",
        "webhook_url",
        "http(s) URL",
        "none",
        webhook
    ),
    var!(
        "OTP_WEBHOOK_SECRET",
        "webhook",
        "webhook_secret",
        "whsec_ + base64",
        "none",
        |b, _, env| {
            // Read by OTP_WEBHOOK_URL's entry; alone it is a mistake.
            match env.get("OTP_WEBHOOK_URL") {
                Some(_) => Ok(b),
                None => Err(ConfigError::missing(
                    "OTP_WEBHOOK_URL",
                    "OTP_WEBHOOK_SECRET is set: set both or neither",
                )),
            }
        }
    ),
    var!(
        "OTP_WEBOTP_HOST",
        "webotp_host",
        "webotp_host",
        "host name",
        "none",
        |b, v, _| Ok(b.webotp_host(v))
    ),
    var!(
        "OTP_WEBOTP_EMBEDDED_HOST",
        "webotp_embedded_host",
        "webotp_embedded_host",
        "host name",
        "none",
        |b, v, _| Ok(b.webotp_embedded_host(v))
    ),
    var!(
        "OTP_ANDROID_APP_HASH",
        "android_app_hash",
        "android_app_hash",
        "11 characters",
        "none",
        |b, v, _| Ok(b.android_app_hash(v))
    ),
    var!(
        "OTP_WHATSAPP_FALLBACK_SMS",
        "whatsapp_fallback_sms",
        "whatsapp_fallback_sms",
        "boolean",
        "false",
        |b, v, _| Ok(b.whatsapp_fallback_sms(flag("OTP_WHATSAPP_FALLBACK_SMS", v)?))
    ),
    var!(
        "OTP_LINK_BASE_URL",
        "email_links",
        "email_links",
        "https:// origin, optional path",
        "none",
        email_links
    ),
    var!("OTP_LINK_REDIRECT", "email_links", "local path or URL under the base URL", "/", read by "OTP_LINK_BASE_URL"),
    var!("OTP_LINK_SAME_DEVICE", "email_links", "boolean", "false", read by "OTP_LINK_BASE_URL"),
    var!("OTP_CANCEL_BLOCK_SECONDS", "email_links", "seconds", "3600", read by "OTP_LINK_BASE_URL"),
    var!(
        "OTP_CHANNELS",
        "channels",
        "channels",
        "email, mobile or email,mobile",
        "email,mobile",
        |b, v, _| {
            let channels = v
                .parse()
                .map_err(|reason: String| ConfigError::invalid("OTP_CHANNELS", reason))?;
            Ok(b.channels(channels))
        }
    ),
    var!(
        "OTP_PRODUCTION",
        "production",
        "production",
        "boolean",
        "false",
        |b, v, _| {
            Ok(if flag("OTP_PRODUCTION", v)? {
                b.production()
            } else {
                b
            })
        }
    ),
    var!("OTP_TEST_MODE", "dangerous_test_contacts", "enabled", "off", read by "OTP_TEST_CONTACTS"),
    var!(
        "OTP_TEST_CONTACTS",
        "dangerous_test_contacts",
        "test_contacts",
        "emails and +numbers",
        "none",
        test_contacts
    ),
    EnvVar {
        name: "OTP_TEST_CODE",
        sets: "dangerous_test_contacts",
        field: "test_code",
        format: "digits",
        default: "required in test mode",
        apply: Apply::ReadBy("OTP_TEST_CONTACTS"),
    },
    var!(
        "REDIS_OTP_URL",
        "shared_store",
        "store",
        "URL or cluster seed URLs",
        "memory store",
        store::apply_redis
    ),
    var!("OTP_REDIS_WAIT_REPLICAS", "shared_store", "replicas", "0 (off)", read by "REDIS_OTP_URL"),
    var!("OTP_REDIS_WAIT_MS", "shared_store", "milliseconds", "50", read by "REDIS_OTP_URL"),
    var!(
        "EMAIL_SERVER",
        "email_sender",
        "email_sender",
        "SMTP, SENDGRID or CONSOLE",
        "CONSOLE",
        |b, _, env| delivery::apply_email(b, env)
    ),
    var!("EMAIL_HOST", "email_sender", "host name", "required for SMTP", read by "EMAIL_SERVER"),
    var!("EMAIL_PORT", "email_sender", "port", "587 (25 without TLS)", read by "EMAIL_SERVER"),
    var!("EMAIL_HOST_USER", "email_sender", "user name", "no login", read by "EMAIL_SERVER"),
    var!("EMAIL_HOST_PASSWORD", "email_sender", "password", "required with a user", read by "EMAIL_SERVER"),
    var!("EMAIL_USE_TLS", "email_sender", "boolean", "true", read by "EMAIL_SERVER"),
    var!("DEFAULT_FROM_EMAIL", "email_sender", "address", "webmaster@localhost", read by "EMAIL_SERVER"),
    var!("SENDGRID_API_KEY", "email_sender", "API key", "required for SendGrid", read by "EMAIL_SERVER"),
    var!("SENDGRID_BASE_URL", "email_sender", "bare origin", "https://api.sendgrid.com", read by "EMAIL_SERVER"),
    var!(
        "SMS_SERVER",
        "sms_sender",
        "sms_sender",
        "TWILIO_VERIFY, TWILIO or CONSOLE",
        "CONSOLE",
        |b, _, env| delivery::apply_sms(b, env)
    ),
    var!("TWILIO_ACCOUNT_SID", "sms_sender", "account SID", "required for Twilio", read by "SMS_SERVER"),
    var!("TWILIO_AUTH_TOKEN", "sms_sender", "auth token", "required for Twilio", read by "SMS_SERVER"),
    var!("TWILIO_VERIFY_SERVICE_SID", "sms_verifier", "VA… SID", "required for TWILIO_VERIFY", read by "SMS_SERVER"),
    var!("TWILIO_FROM_NUMBER", "sms_sender", "E.164 number", "required for TWILIO", read by "SMS_SERVER"),
    var!("TWILIO_VERIFY_BASE_URL", "sms_verifier", "bare origin", "Twilio's", read by "SMS_SERVER"),
    var!("TWILIO_API_BASE_URL", "sms_sender", "bare origin", "Twilio's", read by "SMS_SERVER"),
    var!("TWILIO_WHATSAPP_FROM", "sms_sender", "E.164 WhatsApp sender", "none", read by "SMS_SERVER"),
    var!("TWILIO_WHATSAPP_CONTENT_SID", "sms_sender", "HX… template SID", "none", read by "SMS_SERVER"),
];

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
        self.get(name).map(|v| parse(name, &v)).transpose()
    }

    /// `name` as a boolean.
    pub(crate) fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(name).map(|v| flag(name, &v)).transpose()
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| ConfigError::invalid(name, format!("{v:?}: {e}")))
}

fn seconds(name: &'static str, v: &str) -> Result<Duration, ConfigError> {
    parse::<u64>(name, v).map(Duration::from_secs)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`.
fn flag(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            name,
            format!("{v:?} is not a boolean"),
        )),
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The same error, naming `variable` instead of a field or method.
fn rename(error: ConfigError, variable: &'static str) -> ConfigError {
    match error {
        ConfigError::Invalid { reason, .. } => ConfigError::Invalid {
            name: variable,
            reason,
        },
        ConfigError::Missing { reason, .. } => ConfigError::Missing {
            name: variable,
            reason,
        },
        other => other,
    }
}

/// `OTP_SMS_BREAKER` and its thresholds (`OTP_SMS_BREAKER_*`, read only
/// when the switch is on).
fn sms_breaker(mut b: OtpBuilder, on: &str, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    use crate::limit::sms_breaker::SmsBreaker;
    if !flag("OTP_SMS_BREAKER", on)? {
        return Ok(b);
    }
    let mut breaker = SmsBreaker::new();
    if let Some(digits) = env.parse::<u8>("OTP_SMS_BREAKER_DIGITS")? {
        breaker = breaker.digits(digits);
    }
    if let Some(secs) = env.parse::<u64>("OTP_SMS_BREAKER_WINDOW_SECONDS")? {
        breaker = breaker.window(Duration::from_secs(secs));
    }
    if let Some(sends) = env.parse::<u32>("OTP_SMS_BREAKER_MIN_SENDS")? {
        breaker = breaker.min_sends(sends);
    }
    if let Some(share) = env.parse::<f64>("OTP_SMS_BREAKER_MIN_CONVERSION")? {
        breaker = breaker.min_conversion(share);
    }
    if let Some(secs) = env.parse::<u64>("OTP_SMS_BREAKER_BLOCK_SECONDS")? {
        breaker = breaker.block_for(Duration::from_secs(secs));
    }
    breaker.validate().map_err(|e| {
        let variable = match &e {
            ConfigError::Invalid { name, .. } => match *name {
                "sms_breaker_digits" => "OTP_SMS_BREAKER_DIGITS",
                "sms_breaker_window" => "OTP_SMS_BREAKER_WINDOW_SECONDS",
                "sms_breaker_min_sends" => "OTP_SMS_BREAKER_MIN_SENDS",
                "sms_breaker_min_conversion" => "OTP_SMS_BREAKER_MIN_CONVERSION",
                _ => "OTP_SMS_BREAKER_BLOCK_SECONDS",
            },
            _ => "OTP_SMS_BREAKER",
        };
        rename(e, variable)
    })?;
    b.config.sms_guard = std::mem::take(&mut b.config.sms_guard).breaker(breaker);
    Ok(b)
}

/// `OTP_WEBHOOK_URL` with `OTP_WEBHOOK_SECRET`: both or neither.
fn webhook(builder: OtpBuilder, url: &str, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let secret = env.require(
        "OTP_WEBHOOK_SECRET",
        "OTP_WEBHOOK_URL is set, so the webhook needs its signing secret (whsec_...)",
    )?;
    #[cfg(feature = "webhooks")]
    {
        let hook = crate::events::webhook::Webhook::new(url, &secret).map_err(|e| {
            let variable = match &e {
                ConfigError::Invalid {
                    name: "webhook_secret",
                    ..
                } => "OTP_WEBHOOK_SECRET",
                _ => "OTP_WEBHOOK_URL",
            };
            rename(e, variable)
        })?;
        Ok(builder.webhook(hook))
    }
    #[cfg(not(feature = "webhooks"))]
    {
        let _ = (builder, url, secret);
        Err(ConfigError::invalid(
            "OTP_WEBHOOK_URL",
            "webhooks need tower-otp's `webhooks` feature, which is not compiled in \
             (enable it in Cargo.toml)",
        ))
    }
}

/// `OTP_LINK_BASE_URL` with `OTP_LINK_REDIRECT`, `OTP_LINK_SAME_DEVICE` and
/// `OTP_CANCEL_BLOCK_SECONDS`: checked here, so errors name the variable.
fn email_links(builder: OtpBuilder, base: &str, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let mut links = crate::link::EmailLinks::new(base);
    if let Some(redirect) = env.get("OTP_LINK_REDIRECT") {
        links = links.redirect(redirect);
    }
    if let Some(on) = env.flag("OTP_LINK_SAME_DEVICE")? {
        links = links.same_device(on);
    }
    if let Some(block) = env.get("OTP_CANCEL_BLOCK_SECONDS") {
        links = links.cancel_block(seconds("OTP_CANCEL_BLOCK_SECONDS", &block)?);
    }
    links.validate().map_err(|e| {
        let variable = match &e {
            ConfigError::Invalid {
                name: "link_redirect",
                ..
            } => "OTP_LINK_REDIRECT",
            ConfigError::Invalid {
                name: "cancel_block",
                ..
            } => "OTP_CANCEL_BLOCK_SECONDS",
            _ => "OTP_LINK_BASE_URL",
        };
        rename(e, variable)
    })?;
    Ok(builder.email_links(links))
}

fn test_contacts(
    builder: OtpBuilder,
    value: &str,
    env: &Env<'_>,
) -> Result<OtpBuilder, ConfigError> {
    if env.get("OTP_TEST_MODE").as_deref() != Some("enabled") {
        return Err(ConfigError::invalid(
            "OTP_TEST_MODE",
            "OTP_TEST_CONTACTS is set: test mode must be enabled explicitly with OTP_TEST_MODE=enabled",
        ));
    }
    let code = env.require("OTP_TEST_CODE", "test mode needs the fixed code")?;
    let mut contacts = crate::test_mode::TestContacts::new(code);
    for item in list(value) {
        contacts = contacts.any(item).map_err(|_| {
            ConfigError::invalid(
                "OTP_TEST_CONTACTS",
                format!("{item:?} is not an email or +number"),
            )
        })?;
    }
    Ok(builder.dangerous_test_contacts(contacts))
}

impl OtpBuilder {
    /// A builder configured from the process environment (see
    /// [`from_env_with`](Self::from_env_with)).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// A builder configured from variables read through `lookup`: every
    /// variable of [`variables()`] (the table in the [`env`](crate::env)
    /// module's docs). Errors name the variable at fault; errors found
    /// later by [`build`](Self::build) name the variable that set the
    /// setting.
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
        builder.origins.from_env = true;
        for var in VARIABLES {
            let Apply::Own(apply) = var.apply else {
                continue;
            };
            // A group member is read by its head's entry: EMAIL_HOST without
            // EMAIL_SERVER means nothing (the console sender).
            let Some(value) = env.get(var.name) else {
                continue;
            };
            builder = apply(builder, &value, &env)?;
            builder.origins.set.push((var.field, var.name));
        }
        builder
            .config
            .validate()
            .map_err(|e| builder.origins.name(e))?;
        Ok(builder)
    }
}

/// Where a builder's settings came from, so that errors name the
/// environment variable when there is one, and the builder method
/// otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    /// Whether [`OtpBuilder::from_env`] made the builder.
    pub(crate) from_env: bool,
    /// (field, variable) for each variable applied.
    pub(crate) set: Vec<(&'static str, &'static str)>,
}

impl Origins {
    /// Renames an error about a field to the variable that set it, when the
    /// setting came from the environment.
    pub(crate) fn name(&self, error: ConfigError) -> ConfigError {
        let name = match &error {
            ConfigError::Invalid { name, .. } | ConfigError::Missing { name, .. } => *name,
            _ => return error,
        };
        // An error names a field or the builder method that sets it.
        let sets_it = |variable: &str| {
            VARIABLES
                .iter()
                .any(|v| v.name == variable && (v.field == name || v.sets == name))
        };
        let set_by = self
            .set
            .iter()
            .rev()
            .find(|(field, variable)| *field == name || sets_it(variable))
            .map(|(_, variable)| *variable);
        // A setting the environment left at its default still has a
        // variable that would set it.
        let would_set = || {
            VARIABLES
                .iter()
                .find(|v| v.read_by().is_none() && (v.field == name || v.sets == name))
                .map(|v| v.name)
        };
        match set_by.or_else(|| self.from_env.then(would_set).flatten()) {
            Some(variable) => rename(error, variable),
            None => error,
        }
    }
}
