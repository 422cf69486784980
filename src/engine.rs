//! The flow: limits, issue, hash, store, deliver; check, grant.
//!
//! Order matters for safety and cost: the cooldown and quota are reserved in
//! the store **before** any hashing or delivery, a hashing slot is reserved
//! **before** an attempt is taken from the store (so an overloaded server does
//! not eat a user's attempts), and the attempt is counted **before** the
//! candidate is hashed (so parallel guesses cannot exceed the limit).

use std::{sync::Arc, time::Duration};

use rand::{TryRngCore, rngs::OsRng};
use serde_json::json;

use crate::{
    code::Code,
    config::OtpConfig,
    contact::{Contact, Mobile},
    delivery::{
        DeliveryError, EmailMessage, EmailSender, ProviderCheck, RetryPolicy, SmsMessage,
        SmsSender, SmsVerifier,
    },
    error::ApiError,
    extract::VerifiedContact,
    grant::{GrantCodec, VerifiedToken},
    hash::{HashError, HashPool},
    middleware::RouteTable,
    secret::KeyRing,
    store::{Attempt, CodeRecord, OtpStore, SendLimits, SendReservation, StoreError, StoreKey},
    template::Templates,
};

/// How SMS codes are delivered.
#[derive(Debug, Clone)]
pub(crate) enum SmsBackend {
    /// We generate the code and send it as a message.
    Messages(Arc<dyn SmsSender>),
    /// The provider generates and checks the code (Twilio Verify).
    Verifier(Arc<dyn SmsVerifier>),
}

/// Everything the routes and extractors share.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) config: OtpConfig,
    pub(crate) routes: RouteTable,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) store: Arc<dyn OtpStore>,
    pub(crate) hasher: HashPool,
    pub(crate) email: Arc<dyn EmailSender>,
    pub(crate) sms: SmsBackend,
    pub(crate) templates: Templates,
    pub(crate) grants: GrantCodec,
    pub(crate) retry: RetryPolicy,
}

/// A successful send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendOutcome {
    pub(crate) expires_in: u64,
    pub(crate) resend_in: u64,
}

impl Engine {
    /// The store key of `contact` under the secret `entry` (current = 0).
    pub(crate) fn store_key(&self, contact: &Contact, secret_index: usize) -> StoreKey {
        StoreKey::new(contact.digest(&self.keys.all()[secret_index].store_key[..]))
    }

    fn limits(&self) -> SendLimits {
        SendLimits {
            cooldown: self.config.resend_cooldown,
            quota: self.config.send_quota,
            window: self.config.send_quota_window,
        }
    }

    /// Issues a new code for `contact` and delivers it.
    pub(crate) async fn send(&self, contact: &Contact) -> Result<SendOutcome, ApiError> {
        let key = self.store_key(contact, 0);
        let masked = contact.masked();
        let channel = contact.channel().as_str();
        match self
            .store
            .reserve_send(&key, &self.limits())
            .await
            .map_err(|e| store_failure(&e))?
        {
            SendReservation::Granted => {}
            SendReservation::Cooldown { retry_after }
            | SendReservation::QuotaExceeded { retry_after } => {
                tracing::info!(contact = %masked, channel, "otp send refused: cooldown or quota");
                return Err(ApiError::RateLimited {
                    retry_after: ceil_secs(retry_after),
                });
            }
        }

        let salt = random_salt();
        let issued = match (&self.sms, contact) {
            (SmsBackend::Verifier(verifier), Contact::Mobile(mobile)) => {
                self.issue_with_provider(&key, salt, verifier.as_ref(), mobile)
                    .await
            }
            _ => self.issue_own_code(&key, salt, contact).await,
        };
        if let Err(err) = issued {
            // The user never got a code: let them ask again at once. The
            // failed send still counts toward the quota.
            if let Err(e) = self.store.release_cooldown(&key).await {
                tracing::warn!(error = %e, "could not release the resend cooldown");
            }
            return Err(err);
        }
        tracing::info!(contact = %masked, channel, "otp sent");
        Ok(SendOutcome {
            expires_in: self.config.code_ttl.as_secs(),
            resend_in: self.config.resend_cooldown.as_secs(),
        })
    }

    async fn issue_own_code(
        &self,
        key: &StoreKey,
        salt: [u8; 16],
        contact: &Contact,
    ) -> Result<(), ApiError> {
        let code = Code::generate(self.config.code_length);
        let hash = self
            .hasher
            .hash(code.as_str(), &salt)
            .await
            .map_err(|e| self.hash_failure(e))?;
        let record = CodeRecord {
            salt,
            hash: hash.to_vec(),
            secret_id: self.keys.current().id,
        };
        self.store
            .put_code(key, &record, self.config.code_ttl)
            .await
            .map_err(|e| store_failure(&e))?;
        if let Err(err) = self.deliver(contact, &code).await {
            self.forget(key, &salt).await;
            return Err(delivery_failure(contact, &err));
        }
        Ok(())
    }

    async fn issue_with_provider(
        &self,
        key: &StoreKey,
        salt: [u8; 16],
        verifier: &dyn SmsVerifier,
        mobile: &Mobile,
    ) -> Result<(), ApiError> {
        // The provider holds the code; we keep an empty record so that our
        // own expiry and attempt counting still apply.
        let record = CodeRecord {
            salt,
            hash: Vec::new(),
            secret_id: self.keys.current().id,
        };
        self.store
            .put_code(key, &record, self.config.code_ttl)
            .await
            .map_err(|e| store_failure(&e))?;
        if let Err(err) = self.retry.run(|| verifier.start(mobile)).await {
            self.forget(key, &salt).await;
            return Err(delivery_failure(&Contact::Mobile(mobile.clone()), &err));
        }
        Ok(())
    }

    async fn deliver(&self, contact: &Contact, code: &Code) -> Result<(), DeliveryError> {
        let ttl_minutes = self.config.code_ttl.as_secs().div_ceil(60);
        let context = json!({
            "code": code.as_str(),
            "app_name": self.config.app_name,
            "ttl_minutes": ttl_minutes,
            "ttl_seconds": self.config.code_ttl.as_secs(),
            "webotp_host": self.config.webotp_host,
        });
        match contact {
            Contact::Email(email) => {
                let rendered = self
                    .templates
                    .render_email("otp", &context)
                    .map_err(DeliveryError::permanent)?;
                let message = EmailMessage {
                    to: vec![email.as_str().to_owned()],
                    subject: rendered.subject,
                    html: rendered.html,
                    text: rendered.text,
                    ..EmailMessage::default()
                };
                self.retry.run(|| self.email.send_email(&message)).await
            }
            Contact::Mobile(mobile) => {
                let SmsBackend::Messages(sender) = &self.sms else {
                    unreachable!("provider-checked SMS never reaches deliver()");
                };
                let body = self
                    .templates
                    .render_sms("otp", &context)
                    .map_err(DeliveryError::permanent)?;
                let message = SmsMessage {
                    to: mobile.as_str().to_owned(),
                    body,
                };
                self.retry.run(|| sender.send_sms(&message)).await
            }
        }
    }

    /// Deletes the code after a failed delivery, so no code exists that the
    /// user never received.
    async fn forget(&self, key: &StoreKey, salt: &[u8; 16]) {
        if let Err(e) = self.store.remove_code(key, salt).await {
            tracing::warn!(error = %e, "could not delete an undelivered code");
        }
    }

    /// Checks `candidate` for `contact`; on success returns a grant that adds
    /// `contact` to what `held` already proves.
    pub(crate) async fn verify(
        &self,
        contact: &Contact,
        candidate: &str,
        held: Option<VerifiedContact>,
    ) -> Result<VerifiedToken, ApiError> {
        let masked = contact.masked();
        let channel = contact.channel().as_str();
        let provider_checked = matches!(
            (&self.sms, contact),
            (SmsBackend::Verifier(_), Contact::Mobile(_))
        );
        // Reserve a hashing slot before taking an attempt, so that an
        // overloaded server answers 503 without costing the user a guess.
        let permit = if provider_checked {
            None
        } else {
            Some(self.hasher.reserve().map_err(|e| self.hash_failure(e))?)
        };

        let (key, attempt) = self.begin_attempt(contact).await?;
        let (record, attempts_used) = match attempt {
            Attempt::NoCode => {
                tracing::info!(contact = %masked, channel, "otp verify: no live code");
                return Err(ApiError::OtpExpired);
            }
            Attempt::Exhausted => {
                tracing::info!(contact = %masked, channel, "otp verify: attempts exhausted");
                return Err(ApiError::AttemptsExceeded);
            }
            Attempt::Granted {
                record,
                attempts_used,
            } => (record, attempts_used),
        };

        let correct = match (permit, &self.sms, contact) {
            (Some(permit), _, _) => {
                match permit
                    .verify(candidate, &record.salt, record.secret_id, &record.hash)
                    .await
                {
                    Ok(correct) => correct,
                    Err(HashError::UnknownSecret) => false,
                    Err(e) => return Err(self.hash_failure(e)),
                }
            }
            (None, SmsBackend::Verifier(verifier), Contact::Mobile(mobile)) => {
                match self.retry.run(|| verifier.check(mobile, candidate)).await {
                    Ok(ProviderCheck::Approved) => true,
                    Ok(ProviderCheck::Rejected) => false,
                    Ok(ProviderCheck::Expired) => {
                        self.forget(&key, &record.salt).await;
                        return Err(ApiError::OtpExpired);
                    }
                    Ok(ProviderCheck::TooManyAttempts) => {
                        self.forget(&key, &record.salt).await;
                        return Err(ApiError::AttemptsExceeded);
                    }
                    Err(err) => {
                        tracing::warn!(contact = %masked, error = %err, "provider check failed");
                        return Err(ApiError::DeliveryFailed);
                    }
                }
            }
            (None, _, _) => return Err(ApiError::Internal),
        };

        if !correct {
            let max = self.config.max_attempts;
            if attempts_used >= max {
                self.store
                    .remove_code(&key, &record.salt)
                    .await
                    .map_err(|e| store_failure(&e))?;
                tracing::warn!(contact = %masked, channel, "otp attempts exceeded; code destroyed");
                return Err(ApiError::AttemptsExceeded);
            }
            tracing::info!(contact = %masked, channel, attempts_used, "otp invalid");
            return Err(ApiError::OtpInvalid {
                attempts_left: max - attempts_used,
            });
        }

        // Single use: only the caller that deletes the code succeeds.
        let consumed = self
            .store
            .remove_code(&key, &record.salt)
            .await
            .map_err(|e| store_failure(&e))?;
        if !consumed {
            tracing::info!(contact = %masked, channel, "otp already used");
            return Err(ApiError::OtpExpired);
        }
        tracing::info!(contact = %masked, channel, "otp verified");

        let held = held.unwrap_or_default();
        let (email, mobile) = match contact {
            Contact::Email(e) => (Some(e), held.mobile()),
            Contact::Mobile(m) => (held.email(), Some(m)),
        };
        Ok(self.grants.issue(email, mobile))
    }

    /// Takes an attempt on the live code, looking under the current secret's
    /// key first and then under older secrets' keys (codes sent before a
    /// rotation).
    async fn begin_attempt(&self, contact: &Contact) -> Result<(StoreKey, Attempt), ApiError> {
        let max = self.config.max_attempts;
        let mut first = None;
        for index in 0..self.keys.all().len() {
            let key = self.store_key(contact, index);
            let attempt = self
                .store
                .begin_attempt(&key, max)
                .await
                .map_err(|e| store_failure(&e))?;
            if attempt != Attempt::NoCode {
                return Ok((key, attempt));
            }
            first.get_or_insert(key);
        }
        Ok((first.expect("the key ring is never empty"), Attempt::NoCode))
    }

    fn hash_failure(&self, error: HashError) -> ApiError {
        match error {
            HashError::Overloaded => {
                tracing::warn!("hashing pool overloaded; shedding an OTP request");
                ApiError::Overloaded { retry_after: 1 }
            }
            other => {
                tracing::error!(error = %other, "hashing failed");
                ApiError::Internal
            }
        }
    }
}

fn store_failure(error: &StoreError) -> ApiError {
    tracing::error!(error = %error, source = ?std::error::Error::source(error), "OTP store failed");
    if error.is_unavailable() {
        ApiError::StoreUnavailable
    } else {
        ApiError::Internal
    }
}

fn delivery_failure(contact: &Contact, error: &DeliveryError) -> ApiError {
    tracing::warn!(
        contact = %contact.masked(),
        channel = contact.channel().as_str(),
        error = %error,
        "otp delivery failed"
    );
    match (error.is_invalid_recipient(), contact) {
        (true, Contact::Email(_)) => ApiError::InvalidEmail,
        (true, Contact::Mobile(_)) => ApiError::InvalidMobile,
        (false, _) => ApiError::DeliveryFailed,
    }
}

fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut salt)
        .expect("the OS random number generator failed");
    salt
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}
