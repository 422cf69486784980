//! Senders chosen by environment variables (`EMAIL_SERVER`, `SMS_SERVER`,
//! and the variables each of them reads).

#[allow(unused_imports)] // which are used depends on the features
use super::Env;
use crate::{ConfigError, OtpBuilder};

/// `EMAIL_SERVER` and the variables of the sender it names. Unset means
/// the console sender.
pub(super) fn apply_email(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
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

/// `SMS_SERVER` and the variables of the provider it names.
pub(super) fn apply_sms(builder: OtpBuilder, env: &Env<'_>) -> Result<OtpBuilder, ConfigError> {
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
    use crate::delivery::smtp::SmtpSender;

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
    let sender = sender.build().map_err(|e| match e {
        ConfigError::Invalid {
            name: "SmtpSenderBuilder::from",
            reason,
        } => ConfigError::invalid("DEFAULT_FROM_EMAIL", reason),
        other => other,
    })?;
    Ok(builder.email_sender(sender))
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
    let mut sender = crate::delivery::SendGridSender::new(key, from);
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
    let mut verifier = crate::delivery::TwilioVerify::new(sid, token, service);
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
    let mut sender = crate::delivery::TwilioMessaging::new(sid, token, from);
    if let Some(base) = env.get("TWILIO_API_BASE_URL") {
        sender = sender.base_url(base);
    }
    if let Some(number) = env.get("TWILIO_WHATSAPP_FROM") {
        sender = sender.whatsapp_from(number);
    }
    if let Some(content_sid) = env.get("TWILIO_WHATSAPP_CONTENT_SID") {
        sender = sender.whatsapp_content_sid(content_sid);
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
