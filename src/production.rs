//! The production flag's checks (`.production()` / `OTP_PRODUCTION=true`):
//! start-up refuses settings that are fine on a laptop and dangerous on a
//! server, naming the setting (the builder method, or the environment
//! variable when the configuration came from the environment) and never
//! printing a secret.
//!
//! Refused in production:
//!
//! | what | named setting |
//! |---|---|
//! | a console or memory sender on an enabled channel (the default senders) | `email_sender` / `sms_sender` (`EMAIL_SERVER` / `SMS_SERVER`) |
//! | a grant cookie without `Secure` | `insecure_cookie` (`OTP_COOKIE_SECURE`) |
//! | no secret (a random one), a secret (current or old) shorter than 32 bytes, or a secret printed in this crate's docs | `secret` (`OTP_SECRET`) |
//! | Argon2id parameters below m=19456 KiB, t=2 | `hash_params` |
//! | test mode | `production` (`OTP_PRODUCTION`) |
//!
//! Plain SMTP and provider base URLs over `http://` are allowed (a local
//! relay, a local proxy). With or without the flag, start-up logs a warning
//! for every sender, verifier or webhook that sends codes or events without
//! TLS to a host that is not this machine. Channels that are not served
//! ([`Channels`](crate::Channels), `OTP_CHANNELS`) are not checked.
//!
//! Without the flag, a development sender in effect logs a warning at
//! start-up.

use crate::{
    config::OtpConfig,
    contact::Channel,
    delivery::{EmailSender, SmsSender, SmsVerifier},
    error::ConfigError,
    hash::HashParams,
    secret::Secret,
};

/// The shortest secret production accepts (256 bits of a random key).
pub(crate) const MIN_PRODUCTION_SECRET_LEN: usize = 32;

/// Secrets printed in this crate's README, docs, examples, benches and
/// shared test helpers: public, so never a production key.
/// `tests/production_mode.rs` checks that every secret literal of those
/// files is refused.
const DOCUMENTED_SECRETS: &[&str] = &[
    "an example secret, use 32+ random bytes",
    "a test secret of 32 bytes or so!",
    "load tool secret, 32 bytes long!",
    "benchmark secret, 32 bytes long!",
    "test secret: thirty-two bytes long!",
];

/// What the production checks look at.
pub(crate) struct Deployment<'a> {
    pub(crate) config: &'a OtpConfig,
    /// The configured secret; `None` when a random one will be used.
    pub(crate) secret: Option<&'a Secret>,
    pub(crate) old_secrets: &'a [Secret],
    pub(crate) email: &'a dyn EmailSender,
    /// `None` when a provider checks SMS codes (Twilio Verify).
    pub(crate) sms: Option<&'a dyn SmsSender>,
    /// The provider that checks SMS codes, if one does.
    pub(crate) sms_verifier: Option<&'a dyn SmsVerifier>,
    /// The host the webhook POSTs to without TLS, if not this machine.
    pub(crate) webhook_cleartext_host: Option<String>,
    pub(crate) test_mode: bool,
}

impl Deployment<'_> {
    /// With the production flag: the first unsafe setting, named. Without
    /// it: warnings for development senders in effect.
    pub(crate) fn check(&self, production: bool) -> Result<(), ConfigError> {
        let channels = self.config.channels;
        let dev_email = channels.contains(Channel::Email) && self.email.for_development();
        let dev_sms =
            channels.contains(Channel::Mobile) && self.sms.is_some_and(|s| s.for_development());
        self.warn_cleartext();
        if !production {
            if dev_email || dev_sms {
                tracing::warn!(
                    email = dev_email,
                    sms = dev_sms,
                    "tower-otp is using a development sender (console or memory): codes are \
                     printed or kept, not delivered. Configure EMAIL_SERVER / SMS_SERVER, or \
                     turn the channel off with OTP_CHANNELS"
                );
            }
            return Ok(());
        }
        if self.test_mode {
            return Err(ConfigError::invalid(
                "production",
                "test mode (`dangerous_test_contacts`) is refused in production",
            ));
        }
        if dev_email {
            return Err(ConfigError::invalid(
                "email_sender",
                "a console or memory email sender is refused in production: configure a \
                 real one, or turn email off (`channels`)",
            ));
        }
        if dev_sms {
            return Err(ConfigError::invalid(
                "sms_sender",
                "a console or memory SMS sender is refused in production: configure a \
                 real one, or turn mobile off (`channels`)",
            ));
        }
        if !self.config.cookie_secure {
            return Err(ConfigError::invalid(
                "insecure_cookie",
                "the grant cookie must be Secure in production",
            ));
        }
        let Some(secret) = self.secret else {
            return Err(ConfigError::missing(
                "secret",
                "production needs a configured secret (a random one dies with the process)",
            ));
        };
        // Old secrets still sign accepted grants: a weak one is as bad.
        if std::iter::once(secret)
            .chain(self.old_secrets)
            .any(|s| s.expose().len() < MIN_PRODUCTION_SECRET_LEN)
        {
            return Err(ConfigError::invalid(
                "secret",
                format!(
                    "every secret, old ones included, must be at least \
                     {MIN_PRODUCTION_SECRET_LEN} bytes in production"
                ),
            ));
        }
        if std::iter::once(secret)
            .chain(self.old_secrets)
            .any(is_documented)
        {
            return Err(ConfigError::invalid(
                "secret",
                "is an example value printed in the tower-otp docs: generate a random one \
                 (openssl rand -base64 32)",
            ));
        }
        if self.config.app_id.is_none() {
            tracing::warn!(
                "no app id (OTP_APP_ID): grants carry the audience derived from the app name; \
                 another app with the same secret and name would accept them. Set a unique app id"
            );
        }
        let params = self.config.hash_params;
        let minimum = HashParams::default();
        if params.m_cost < minimum.m_cost || params.t_cost < minimum.t_cost {
            return Err(ConfigError::invalid(
                "hash_params",
                format!(
                    "must be at least m={} KiB, t={} in production",
                    minimum.m_cost, minimum.t_cost
                ),
            ));
        }
        Ok(())
    }

    /// Warns (with or without the production flag) for every sender,
    /// verifier or webhook that sends codes or events without TLS to a host
    /// that is not this machine. Not refused: a relay or proxy elsewhere on
    /// a private network is the operator's call.
    fn warn_cleartext(&self) {
        let channels = self.config.channels;
        let mobile = channels.contains(Channel::Mobile);
        let cleartext = [
            (
                "email_sender",
                channels
                    .contains(Channel::Email)
                    .then(|| self.email.cleartext_host())
                    .flatten(),
            ),
            (
                "sms_sender",
                self.sms.filter(|_| mobile).and_then(|s| s.cleartext_host()),
            ),
            (
                "sms_verifier",
                self.sms_verifier
                    .filter(|_| mobile)
                    .and_then(|v| v.cleartext_host()),
            ),
            ("webhook", self.webhook_cleartext_host.clone()),
        ];
        for (setting, host) in cleartext {
            if let Some(host) = host {
                tracing::warn!(
                    setting,
                    host = %host,
                    "sending codes or events without TLS to a host that is not this machine: \
                     they (and any password or API key) cross the network in the clear. Use \
                     TLS, or a relay or proxy on this machine"
                );
            }
        }
    }
}

fn is_documented(secret: &Secret) -> bool {
    DOCUMENTED_SECRETS
        .iter()
        .any(|known| secret.ct_eq(&Secret::new(*known)))
}
