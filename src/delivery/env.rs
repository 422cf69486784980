//! Senders chosen by environment variables (`EMAIL_SERVER`, `SMS_SERVER`, …).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `EMAIL_SERVER` | `SMTP`, `SENDGRID` or `CONSOLE` | `CONSOLE` |
//! | `EMAIL_HOST` | SMTP host | required for SMTP |
//! | `EMAIL_PORT` | SMTP port; 465 means implicit TLS | 587 (25 without TLS) |
//! | `EMAIL_HOST_USER`, `EMAIL_HOST_PASSWORD` | SMTP login (the password is required once a user is set) | no login |
//! | `EMAIL_USE_TLS` | `false`: plain SMTP (a warning unless the host is loopback) | `true` (STARTTLS, or implicit TLS on 465) |
//! | `DEFAULT_FROM_EMAIL` | the From address | `webmaster@localhost` (SMTP); required for SendGrid |
//! | `SENDGRID_API_KEY` | SendGrid API key | required for SendGrid |
//! | `SENDGRID_BASE_URL` | SendGrid origin | `https://api.sendgrid.com` |
//! | `SMS_SERVER` | `TWILIO_VERIFY`, `TWILIO` or `CONSOLE` | `CONSOLE` |
//! | `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` | Twilio account | required for Twilio |
//! | `TWILIO_VERIFY_SERVICE_SID` | Verify Service (`VA…`) | required for `TWILIO_VERIFY` |
//! | `TWILIO_FROM_NUMBER` | sending number (E.164) | required for `TWILIO` |
//! | `TWILIO_VERIFY_BASE_URL`, `TWILIO_API_BASE_URL` | Twilio origins | Twilio's |

#[allow(unused_imports)] // which are used depends on the features
use crate::{ConfigError, OtpBuilder, config::Env};

/// Applies the delivery variables to a builder. No email settings means the
/// console sender.
pub(crate) fn apply_env(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let builder = apply_email(builder, env)?;
    apply_sms(builder, env)
}

fn apply_email(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let server = env.get("EMAIL_SERVER").map(|s| s.to_ascii_uppercase());
    match server.as_deref() {
        None | Some("CONSOLE") => Ok(builder),
        Some("SMTP") => smtp(builder, env),
        Some("SENDGRID") => sendgrid(builder, env),
        Some(other) => Err(ConfigError::invalid(
            "EMAIL_SERVER",
            format!("{other:?} is not one of SMTP, SENDGRID, CONSOLE"),
        )),
    }
}

fn apply_sms(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let server = env.get("SMS_SERVER").map(|s| s.to_ascii_uppercase());
    match server.as_deref() {
        None | Some("CONSOLE") => Ok(builder),
        Some("TWILIO_VERIFY") => twilio_verify(builder, env),
        Some("TWILIO") => twilio_messaging(builder, env),
        Some(other) => Err(ConfigError::invalid(
            "SMS_SERVER",
            format!("{other:?} is not one of TWILIO_VERIFY, TWILIO, CONSOLE"),
        )),
    }
}

#[allow(dead_code)] // unused when every provider feature is on
fn feature_missing(variable: &'static str, value: &str, feature: &str) -> ConfigError {
    ConfigError::invalid(
        variable,
        format!(
            "{value} needs tower-otp's `{feature}` feature, which is not compiled in \
             (enable it in Cargo.toml)"
        ),
    )
}

#[cfg(feature = "smtp")]
fn smtp(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    use super::smtp::SmtpSender;

    let host = env.require(
        "EMAIL_HOST",
        "EMAIL_SERVER=SMTP needs the SMTP server's host",
    )?;
    let use_tls = env.flag("EMAIL_USE_TLS")?.unwrap_or(true);
    let port: Option<u16> = env.parse("EMAIL_PORT")?;
    let mut sender = match (use_tls, port) {
        (false, _) => SmtpSender::unencrypted(host),
        (true, Some(465)) => SmtpSender::implicit_tls(host),
        (true, _) => SmtpSender::starttls(host),
    };
    if let Some(port) = port {
        sender = sender.port(port);
    }
    if let Some(from) = env.get("DEFAULT_FROM_EMAIL") {
        sender = sender.from(from);
    }
    if let Some(user) = env.get("EMAIL_HOST_USER") {
        let password = env.require(
            "EMAIL_HOST_PASSWORD",
            "EMAIL_HOST_USER is set, so the SMTP login needs its password",
        )?;
        sender = sender.credentials(user, password);
    }
    Ok(builder.email_sender(sender.build()?))
}

#[cfg(not(feature = "smtp"))]
fn smtp(_builder: OtpBuilder, _env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    Err(feature_missing("EMAIL_SERVER", "SMTP", "smtp"))
}

#[cfg(feature = "sendgrid")]
fn sendgrid(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let key = env.require("SENDGRID_API_KEY", "EMAIL_SERVER=SENDGRID needs an API key")?;
    let from = env.require(
        "DEFAULT_FROM_EMAIL",
        "SendGrid only sends from a verified sender address",
    )?;
    let mut sender = super::SendGridSender::new(key, from);
    if let Some(base) = env.get("SENDGRID_BASE_URL") {
        sender = sender.base_url(base);
    }
    Ok(builder.email_sender(sender))
}

#[cfg(not(feature = "sendgrid"))]
fn sendgrid(_builder: OtpBuilder, _env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    Err(feature_missing("EMAIL_SERVER", "SENDGRID", "sendgrid"))
}

#[cfg(feature = "twilio")]
fn twilio_account(env: &Env<'_>, mode: &str) -> Result<(String, String), ConfigError> {
    let why = format!("SMS_SERVER={mode} needs the Twilio account");
    Ok((
        env.require("TWILIO_ACCOUNT_SID", &why)?,
        env.require("TWILIO_AUTH_TOKEN", &why)?,
    ))
}

#[cfg(feature = "twilio")]
fn twilio_verify(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let (sid, token) = twilio_account(env, "TWILIO_VERIFY")?;
    let service = env.require(
        "TWILIO_VERIFY_SERVICE_SID",
        "SMS_SERVER=TWILIO_VERIFY needs the Verify Service SID (VA…)",
    )?;
    let mut verifier = super::TwilioVerify::new(sid, token, service);
    if let Some(base) = env.get("TWILIO_VERIFY_BASE_URL") {
        verifier = verifier.base_url(base);
    }
    Ok(builder.sms_verifier(verifier))
}

#[cfg(feature = "twilio")]
fn twilio_messaging(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    let (sid, token) = twilio_account(env, "TWILIO")?;
    let from = env.require(
        "TWILIO_FROM_NUMBER",
        "SMS_SERVER=TWILIO needs the Twilio number to send from",
    )?;
    let mut sender = super::TwilioMessaging::new(sid, token, from);
    if let Some(base) = env.get("TWILIO_API_BASE_URL") {
        sender = sender.base_url(base);
    }
    Ok(builder.sms_sender(sender))
}

#[cfg(not(feature = "twilio"))]
fn twilio_verify(_builder: OtpBuilder, _env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    Err(feature_missing("SMS_SERVER", "TWILIO_VERIFY", "twilio"))
}

#[cfg(not(feature = "twilio"))]
fn twilio_messaging(_builder: OtpBuilder, _env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
    Err(feature_missing("SMS_SERVER", "TWILIO", "twilio"))
}
