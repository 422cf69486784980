//! The flow: limits, issue, hash, store, deliver; check, grant.
//!
//! Order matters for safety and cost: the cooldown and quota are reserved in
//! the store **before** any hashing or delivery, a hashing slot is reserved
//! **before** an attempt is taken from the store (so an overloaded server does
//! not eat a user's attempts), and the attempt is counted **before** the
//! candidate is hashed (so parallel guesses cannot exceed the limit).
//!
//! Each send and each verify runs in one [`deadline::scope`]: its store
//! calls (the contact and country limits' shared counters included) share
//! the store's timeout, instead of each having its own.

mod owner;

use std::{sync::Arc, time::Duration};

use rand::{TryRng, rngs::SysRng};

pub(crate) use owner::CodeOwners;
use owner::Owner;

use crate::{
    audit::{self, Outcome},
    code::Code,
    contact::{Contact, Mobile},
    delivery::{
        DeliveryError, MobileChannel, ProviderCheck,
        dispatch::{CodeMessage, Dispatcher},
    },
    error::ApiError,
    gate::{
        codec::{GrantCodec, VerifiedToken},
        extract::VerifiedContact,
    },
    hash::{HashError, HashPool},
    language::Languages,
    limit::{Limiter, Traffic, sms_guard::SmsGuard},
    policy::{ContactPolicy, PolicyDecision},
    purpose::{DEFAULT_PURPOSE, Purposes},
    secret::KeyRing,
    store::{
        Attempt, CodeRecord, FailureBudget, OtpStore, RangeVerdict, SendLimits, SendReservation,
        StoreError, StoreKey, deadline,
    },
    telemetry::store_op,
    test_mode::TestContacts,
    time::ceil_secs,
};

/// The flow's own settings, taken from the configuration when the `Otp`
/// is built.
#[derive(Debug, Clone)]
pub(crate) struct FlowSettings {
    pub(crate) code_length: u8,
    pub(crate) code_ttl: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) limits: SendLimits,
    /// Consecutive wrong codes per contact before verifies are refused
    /// (`None`: no budget).
    pub(crate) failure_budget: Option<FailureBudget>,
    pub(crate) enumeration_safe: bool,
    /// The purposes requests may name.
    pub(crate) purposes: Purposes,
}

/// The send and verify flow, and what it needs: store, hashing pool,
/// dispatcher, limiter, grant codec.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) settings: FlowSettings,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) store: Arc<dyn OtpStore>,
    pub(crate) hasher: HashPool,
    pub(crate) dispatch: Arc<Dispatcher>,
    pub(crate) owners: CodeOwners,
    pub(crate) policy: Option<Arc<dyn ContactPolicy>>,
    pub(crate) sms_guard: SmsGuard,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) test_contacts: Option<TestContacts>,
    pub(crate) grants: GrantCodec,
    /// Email sign-in and cancel links, when configured.
    pub(crate) links: Option<Arc<crate::link::Links>>,
}

/// What a send request asks for besides the contact.
#[derive(Debug, Clone)]
pub(crate) struct SendOptions {
    /// The reader's languages, best first.
    pub(crate) languages: Languages,
    /// The purpose the code is for (a registered name).
    pub(crate) purpose: String,
    /// The channel for a mobile number (SMS unless asked otherwise).
    pub(crate) channel: MobileChannel,
    /// The requesting browser's device id, when email links are bound to
    /// it (same-device option).
    pub(crate) device: Option<crate::link::DeviceId>,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            languages: Languages::none(),
            purpose: DEFAULT_PURPOSE.to_owned(),
            channel: MobileChannel::default(),
            device: None,
        }
    }
}

/// A successful send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendOutcome {
    pub(crate) expires_in: u64,
    pub(crate) resend_in: u64,
    /// The channel that carried a mobile code (the one asked for when the
    /// answer does not wait for delivery).
    pub(crate) channel: MobileChannel,
}

impl Engine {
    /// The store key of `contact` under the secret `entry` (current = 0).
    pub(crate) fn store_key(&self, contact: &Contact, secret_index: usize) -> StoreKey {
        StoreKey::new(contact.digest(&self.keys.all()[secret_index].store_key[..]))
    }

    /// Issues a new code for `contact` and delivers it; its store calls
    /// together within the store's timeout.
    pub(crate) async fn send(
        self: &Arc<Self>,
        contact: &Contact,
        options: &SendOptions,
    ) -> Result<SendOutcome, ApiError> {
        deadline::scope(self.send_in_scope(contact, options)).await
    }

    async fn send_in_scope(
        self: &Arc<Self>,
        contact: &Contact,
        options: &SendOptions,
    ) -> Result<SendOutcome, ApiError> {
        let outcome = SendOutcome {
            expires_in: self.settings.code_ttl.as_secs(),
            resend_in: self.settings.limits.cooldown.as_secs(),
            channel: options.channel,
        };
        if self.is_test_contact(contact) {
            // A record with no hash (the fixed code is compared instead), so
            // that wrong guesses cost attempts like anyone's.
            let key = self.store_key(contact, 0).with_purpose(&options.purpose);
            let record = CodeRecord::new(random_salt(), Vec::new(), self.keys.current().id);
            self.store
                .put_code(&key, &record, self.settings.code_ttl)
                .await
                .map_err(|e| store_failure(&e, contact))?;
            tracing::info!(contact = %contact.masked(), "test contact: nothing sent");
            return Ok(outcome);
        }
        self.provider_allows(contact, &options.purpose)?;
        if let Contact::Mobile(mobile) = contact {
            self.sms_guard.check_country(mobile).inspect_err(|_| {
                audit::record(Outcome::Rejected, contact);
            })?;
        }
        let decision = match &self.policy {
            Some(policy) => policy.check(contact).await,
            None => PolicyDecision::Allow,
        };
        let refused = matches!(decision, PolicyDecision::Reject { .. });
        if let PolicyDecision::Reject { status, message } = decision
            && !self.settings.enumeration_safe
        {
            audit::record(Outcome::Rejected, contact);
            return Err(ApiError::ContactRejected { status, message });
        }

        let key = self.store_key(contact, 0);
        // When this send's cooldown began (at the latest): see
        // `release_cooldown`.
        let reserved = tokio::time::Instant::now();
        match store_op(
            "reserve_send",
            self.store.reserve_send(&key, &self.settings.limits),
        )
        .await
        .map_err(|e| store_failure(&e, contact))?
        {
            SendReservation::Granted => {}
            SendReservation::Cooldown { retry_after }
            | SendReservation::QuotaExceeded { retry_after } => {
                audit::record(Outcome::RateLimited, contact);
                return Err(ApiError::RateLimited {
                    retry_after: ceil_secs(retry_after),
                });
            }
        }
        // The contact and country rules, after the cooldown (requests it
        // refuses draw nothing) and before any hashing or delivery.
        if let Err(err) = self
            .limiter
            .check_contact(Traffic::Send, contact, key.as_str())
            .await
        {
            audit::record(Outcome::RateLimited, contact);
            self.release_cooldown(&key, reserved).await;
            return Err(err);
        }
        // The fraud breaker, last before any hashing or delivery, so that
        // it counts only sends that go out. A decoy (enumeration-safe
        // refusal) meets it too, so that a blocked range answers alike for
        // refused and accepted numbers (else a tripped range would tell
        // them apart), but is not counted: nothing goes out, so decoys
        // never add to a range's figures.
        if let Err(err) = self.check_range(contact, !refused).await {
            self.release_cooldown(&key, reserved).await;
            return Err(err);
        }

        let salt = random_salt();
        // Codes live per (purpose, contact); the cooldown and quota above
        // are the contact's.
        let code_key = key.with_purpose(&options.purpose);
        // An enumeration-safe refusal keeps a real, hashed decoy even when a
        // provider owns the contact's codes.
        let owner = if refused {
            Owner::Hash
        } else {
            self.owners.of(contact)
        };
        // Email links: their record goes in before the code, so that a
        // link of the code this one replaces never meets the new code.
        // Decoys get one too (same work, same timing).
        let links = match self.store_links(&code_key, salt, contact, options).await {
            Ok(links) => links,
            Err(err) => {
                self.release_cooldown(&key, reserved).await;
                return Err(err);
            }
        };
        // Store the code (or the provider's placeholder) first: a failure
        // here means nothing was sent, so the cooldown is released.
        let stored = match owner {
            Owner::Provider { .. } => self
                .store_placeholder(&code_key, salt, contact)
                .await
                .map(|()| None),
            Owner::Hash => self
                .store_new_code(&code_key, salt, contact)
                .await
                .map(Some),
        };
        let code = match stored {
            Ok(code) => code,
            Err(err) => {
                self.release_cooldown(&key, reserved).await;
                return Err(err);
            }
        };
        if refused {
            // Enumeration-safe refusal: a real, hashed, stored code that is
            // never sent, so send and verify answer exactly as for others.
            audit::record(Outcome::Rejected, contact);
            return Ok(outcome);
        }

        let delivery = {
            let engine = Arc::clone(self);
            let contact = contact.clone();
            let options = options.clone();
            async move {
                let result = match (engine.owners.of(&contact), code) {
                    (Owner::Provider { verifier, mobile }, None) => {
                        (engine.dispatch)
                            .start_verification(verifier, mobile, options.channel)
                            .await
                    }
                    (Owner::Hash, Some(code)) => {
                        let message = CodeMessage {
                            code: code.as_str(),
                            ttl: engine.settings.code_ttl,
                            languages: &options.languages,
                            channel: options.channel,
                            links: links
                                .as_ref()
                                .map(|l| (&l.sign_in_url[..], &l.cancel_url[..])),
                        };
                        engine.dispatch.send_code(&contact, message).await
                    }
                    _ => Err(DeliveryError::permanent("no code to deliver")),
                };
                match result {
                    Ok(channel) => {
                        audit::record(Outcome::Delivered, &contact);
                        Ok(channel)
                    }
                    Err(err) => {
                        // The user never got a code: delete it and let them
                        // ask again at once. The failed send still counts
                        // toward the quota.
                        engine.forget(&code_key, &salt).await;
                        engine.release_cooldown(&key, reserved).await;
                        if !err.may_have_been_sent() {
                            // Nothing reached the range: a provider outage
                            // must not trip the fraud breaker.
                            engine.release_range_send(&contact).await;
                        }
                        Err(delivery_failure(&contact, &err))
                    }
                }
            }
        };
        if self.settings.enumeration_safe {
            // Answer before the provider does, so timing reveals nothing.
            tokio::spawn(delivery);
            return Ok(outcome);
        }
        delivery
            .await
            .map(|channel| SendOutcome { channel, ..outcome })
    }

    /// Makes and stores the email link record of the code about to be
    /// stored at `code_key` with `salt`, when links are on and the code is
    /// ours to email. A store that does not keep link records (a host's
    /// own store) sends the code alone.
    async fn store_links(
        &self,
        code_key: &StoreKey,
        salt: [u8; 16],
        contact: &Contact,
        options: &SendOptions,
    ) -> Result<Option<crate::link::IssuedLinks>, ApiError> {
        let (Some(links), Contact::Email(email)) = (&self.links, contact) else {
            return Ok(None);
        };
        let issued = links.issue(code_key, email, salt, options.device.as_ref());
        match self
            .store
            .put_link(code_key, &issued.record, self.settings.code_ttl)
            .await
        {
            Ok(()) => Ok(Some(issued)),
            Err(e) if e.is_unsupported() => {
                tracing::warn!("the OTP store keeps no email link records: sending the code alone");
                Ok(None)
            }
            Err(e) => Err(store_failure(&e, contact)),
        }
    }

    /// Generates a code, hashes it and stores the hash.
    async fn store_new_code(
        &self,
        key: &StoreKey,
        salt: [u8; 16],
        contact: &Contact,
    ) -> Result<Code, ApiError> {
        let code = Code::generate(self.settings.code_length);
        let hash = self
            .hasher
            .hash(code.as_str(), &salt)
            .await
            .map_err(|e| hash_failure(e, contact))?;
        let record = CodeRecord {
            salt,
            hash: hash.to_vec(),
            secret_id: self.keys.current().id,
        };
        store_op(
            "put_code",
            self.store.put_code(key, &record, self.settings.code_ttl),
        )
        .await
        .map_err(|e| store_failure(&e, contact))?;
        audit::record(Outcome::Sent, contact);
        Ok(code)
    }

    /// The provider holds the code (Twilio Verify); we keep an empty record
    /// so that our own expiry and attempt counting still apply.
    async fn store_placeholder(
        &self,
        key: &StoreKey,
        salt: [u8; 16],
        contact: &Contact,
    ) -> Result<(), ApiError> {
        let record = CodeRecord {
            salt,
            hash: Vec::new(),
            secret_id: self.keys.current().id,
        };
        store_op(
            "put_code",
            self.store.put_code(key, &record, self.settings.code_ttl),
        )
        .await
        .map_err(|e| store_failure(&e, contact))?;
        audit::record(Outcome::Sent, contact);
        Ok(())
    }

    /// Ends the cooldown of a send that did not go out (reserved at
    /// `reserved`), so that the user may ask again at once; unless that
    /// cooldown has run out (or nearly): the cooldown in the store may then
    /// be a later send's, which a late delivery failure must not end.
    async fn release_cooldown(&self, key: &StoreKey, reserved: tokio::time::Instant) {
        let cooldown = self.settings.limits.cooldown;
        // (With no cooldown there is none to take from a later send; the
        // release still marks the send as one that did not go out.)
        if !cooldown.is_zero() && reserved.elapsed() + RELEASE_MARGIN.min(cooldown / 4) >= cooldown
        {
            return;
        }
        if let Err(e) = store_op("release_cooldown", self.store.release_cooldown(key)).await {
            tracing::warn!(error = %e, "could not release the resend cooldown");
        }
    }

    /// Deletes the code after a failed delivery, so no code exists that the
    /// user never received.
    async fn forget(&self, key: &StoreKey, salt: &[u8; 16]) {
        if let Err(e) = store_op("remove_code", self.store.remove_code(key, salt)).await {
            tracing::warn!(error = %e, "could not delete an undelivered code");
        }
    }

    /// Checks `candidate` for `contact`; on success returns a grant that adds
    /// `contact` to what `held` already proves. Its store calls together
    /// within the store's timeout.
    pub(crate) async fn verify(
        &self,
        contact: &Contact,
        candidate: &str,
        purpose: &str,
        held: Option<VerifiedContact>,
    ) -> Result<VerifiedToken, ApiError> {
        deadline::scope(self.verify_in_scope(contact, candidate, purpose, held)).await
    }

    async fn verify_in_scope(
        &self,
        contact: &Contact,
        candidate: &str,
        purpose: &str,
        held: Option<VerifiedContact>,
    ) -> Result<VerifiedToken, ApiError> {
        // A test contact's code is the fixed one; its attempts and failure
        // budget count like anyone's.
        let test = self.test_contacts.as_ref().filter(|t| t.contains(contact));
        self.provider_allows(contact, purpose)?;
        let owner = self.owners.of(contact);
        // The current secret's key: the contact rules' key, and the first
        // place the attempt looks.
        let current_key = self.store_key(contact, 0);
        if let Err(err) = self
            .limiter
            .check_contact(Traffic::Verify, contact, current_key.as_str())
            .await
        {
            audit::record(Outcome::RateLimited, contact);
            return Err(err);
        }
        // Reserve a hashing slot before taking an attempt, so that an
        // overloaded server answers 503 without costing the user a guess.
        let permit = match owner {
            _ if test.is_some() => None,
            Owner::Provider { .. } => None,
            Owner::Hash => Some(
                self.hasher
                    .reserve()
                    .map_err(|e| hash_failure(e, contact))?,
            ),
        };

        let (key, attempt) = self
            .begin_attempt(contact, purpose, current_key.with_purpose(purpose))
            .await?;
        let (record, attempts_used) = match attempt {
            Attempt::Locked { retry_after } => {
                // The failure budget is used up: refused before any attempt
                // or hash is spent, even for the right code.
                audit::record(Outcome::RateLimited, contact);
                return Err(ApiError::RateLimited {
                    retry_after: ceil_secs(retry_after).max(1),
                });
            }
            Attempt::NoCode => {
                audit::record(Outcome::OtpExpired, contact);
                return Err(ApiError::OtpExpired);
            }
            Attempt::Exhausted => {
                // The attempts were used up by others: the request that took
                // the last one answers `attempts_exceeded` (or succeeds); for
                // this one there is no live code any more.
                audit::record(Outcome::OtpExpired, contact);
                return Err(ApiError::OtpExpired);
            }
            Attempt::Granted {
                record,
                attempts_used,
            } => (record, attempts_used),
        };
        // Counted as a failure before the check (a success resets it): so
        // parallel guesses that all passed the lock check above cannot
        // exceed the budget; those past it are refused before any hash.
        if let Some(retry_after) = self.record_failure(contact, &current_key).await? {
            audit::record(Outcome::RateLimited, contact);
            return Err(ApiError::RateLimited { retry_after });
        }

        // An empty hash means the provider holds the code; a decoy record
        // (enumeration-safe refusal) has a hash even in provider mode.
        let correct = match owner {
            _ if test.is_some() => test.is_some_and(|t| t.matches(candidate)),
            Owner::Provider { verifier, mobile } if record.hash.is_empty() => {
                // Not retried: a check is not idempotent (an approval whose
                // answer was lost would turn into "expired" on a retry).
                match verifier.check(mobile, candidate).await {
                    Ok(ProviderCheck::Approved) => true,
                    Ok(ProviderCheck::Rejected) => false,
                    Ok(ProviderCheck::Expired) => {
                        self.forget(&key, &record.salt).await;
                        audit::record(Outcome::OtpExpired, contact);
                        return Err(ApiError::OtpExpired);
                    }
                    Ok(ProviderCheck::TooManyAttempts) => {
                        self.forget(&key, &record.salt).await;
                        audit::record(Outcome::AttemptsExceeded, contact);
                        return Err(ApiError::AttemptsExceeded);
                    }
                    Err(err) => return Err(delivery_failure(contact, &err)),
                }
            }
            _ => {
                let permit = match permit {
                    Some(permit) => permit,
                    None => self
                        .hasher
                        .reserve()
                        .map_err(|e| hash_failure(e, contact))?,
                };
                match permit
                    .verify(candidate, &record.salt, record.secret_id, &record.hash)
                    .await
                {
                    Ok(correct) => correct,
                    Err(HashError::UnknownSecret) => false,
                    Err(e) => return Err(hash_failure(e, contact)),
                }
            }
        };

        if !correct {
            let max = self.settings.max_attempts;
            // The failure was counted before the check.
            if attempts_used >= max {
                store_op("remove_code", self.store.remove_code(&key, &record.salt))
                    .await
                    .map_err(|e| store_failure(&e, contact))?;
                audit::record(Outcome::AttemptsExceeded, contact);
                return Err(ApiError::AttemptsExceeded);
            }
            audit::record(Outcome::OtpInvalid, contact);
            return Err(ApiError::OtpInvalid {
                attempts_left: max - attempts_used,
            });
        }

        // Single use: only the caller that deletes the code succeeds; the
        // same store operation resets the failure budget.
        let consumed = store_op("consume_code", self.store.consume_code(&key, &record.salt))
            .await
            .map_err(|e| store_failure(&e, contact))?;
        if !consumed {
            audit::record(Outcome::OtpExpired, contact);
            return Err(ApiError::OtpExpired);
        }
        if key.as_str() != current_key.as_str() && self.settings.failure_budget.is_some() {
            // A code sent before a secret rotation: failures are counted
            // under the current key.
            store_op("reset_failures", self.store.reset_failures(&current_key))
                .await
                .map_err(|e| store_failure(&e, contact))?;
        }
        audit::record(Outcome::Verified, contact);
        if test.is_none()
            && let Contact::Mobile(mobile) = contact
        {
            self.count_range_verify(mobile).await;
        }
        Ok(self.grant(contact, purpose, held))
    }

    /// A grant for `contact` (proven for `purpose`) plus whatever `held`
    /// already proves (each held proof keeps its own expiry; see
    /// [`GrantCodec::issue`]).
    fn grant(
        &self,
        contact: &Contact,
        purpose: &str,
        held: Option<VerifiedContact>,
    ) -> VerifiedToken {
        self.grants.issue(contact, purpose, held.as_ref())
    }

    /// A provider that generates and checks codes itself (Twilio Verify)
    /// keeps one pending code per number, and may send the same code again:
    /// it cannot keep purposes apart, so it serves the default purpose only.
    fn provider_allows(&self, contact: &Contact, purpose: &str) -> Result<(), ApiError> {
        match self.owners.of(contact) {
            Owner::Provider { .. } if purpose != DEFAULT_PURPOSE => Err(ApiError::InvalidPurpose),
            _ => Ok(()),
        }
    }

    fn is_test_contact(&self, contact: &Contact) -> bool {
        self.test_contacts
            .as_ref()
            .is_some_and(|t| t.contains(contact))
    }

    /// Counts a failure against `contact`'s failure budget (under the
    /// current secret's key), if there is one. `Some(retry_after)` when a
    /// lock was already in force as this failure was counted (a parallel
    /// request started it): the request is refused before its check. The
    /// one that reaches the budget, and the first after a lock ends, are
    /// still checked.
    async fn record_failure(
        &self,
        contact: &Contact,
        key: &StoreKey,
    ) -> Result<Option<u64>, ApiError> {
        let Some(budget) = &self.settings.failure_budget else {
            return Ok(None);
        };
        let outcome = store_op("record_failure", self.store.record_failure(key, budget))
            .await
            .map_err(|e| store_failure(&e, contact))?;
        let Some(lock) = outcome.locked_for else {
            return Ok(None);
        };
        if outcome.was_locked {
            // A parallel request's failure started the lock after this one
            // passed the lock check: refused before its check.
            return Ok(Some(ceil_secs(lock).max(1)));
        }
        if outcome.failures == budget.limit {
            tracing::warn!(
                contact = %contact.masked(),
                failures = outcome.failures,
                lock_seconds = lock.as_secs(),
                "failure budget used up: verifies for this contact are refused for a while"
            );
        }
        Ok(None)
    }

    /// Takes an attempt on the live code, looking under the current secret's
    /// key first and then under older secrets' keys (codes sent before a
    /// rotation).
    async fn begin_attempt(
        &self,
        contact: &Contact,
        purpose: &str,
        current_key: StoreKey,
    ) -> Result<(StoreKey, Attempt), ApiError> {
        let max = self.settings.max_attempts;
        let older = (1..self.keys.all().len())
            .map(|index| self.store_key(contact, index).with_purpose(purpose));
        for key in std::iter::once(current_key.clone()).chain(older) {
            let attempt = store_op("begin_attempt", self.store.begin_attempt(&key, max))
                .await
                .map_err(|e| store_failure(&e, contact))?;
            if attempt != Attempt::NoCode {
                return Ok((key, attempt));
            }
        }
        Ok((current_key, Attempt::NoCode))
    }
}

impl Engine {
    /// The SMS fraud breaker for `mobile`'s range, if it is on: counts the
    /// send, or refuses it (429, audit `range_blocked`) while the range is
    /// blocked. A store without the breaker's operations lets every send
    /// through (logged once).
    async fn check_range(&self, contact: &Contact, count: bool) -> Result<(), ApiError> {
        let (Contact::Mobile(mobile), Some(breaker)) = (contact, self.sms_guard.breaker_settings())
        else {
            return Ok(());
        };
        let range = breaker.range_of(mobile);
        let limits = breaker.limits();
        let verdict = if count {
            store_op(
                "record_range_send",
                self.store.record_range_send(&range, &limits),
            )
            .await
        } else {
            store_op(
                "check_range_send",
                self.store.check_range_send(&range, &limits),
            )
            .await
        };
        match verdict {
            Ok(RangeVerdict::Allowed) => Ok(()),
            Ok(RangeVerdict::Blocked {
                retry_after,
                tripped,
            }) => {
                if tripped {
                    tracing::warn!(
                        range = %range,
                        block_seconds = limits.block.as_secs(),
                        min_sends = limits.min_sends,
                        min_verified_per_mille = limits.min_verified_per_mille,
                        "SMS fraud breaker tripped: too few codes verified in this number range; \
                         sends to it are refused for a while"
                    );
                }
                audit::range_blocked(&range);
                Err(ApiError::RangeBlocked {
                    retry_after: ceil_secs(retry_after).max(1),
                })
            }
            Err(e) if e.is_unsupported() => {
                breaker_unsupported();
                Ok(())
            }
            Err(e) => Err(store_failure(&e, contact)),
        }
    }

    /// Takes back the breaker's count of a send to `contact` whose
    /// delivery failed, if the breaker is on. Only logged on failure.
    async fn release_range_send(&self, contact: &Contact) {
        let (Contact::Mobile(mobile), Some(breaker)) = (contact, self.sms_guard.breaker_settings())
        else {
            return;
        };
        let range = breaker.range_of(mobile);
        let result = store_op(
            "release_range_send",
            self.store.release_range_send(&range, &breaker.limits()),
        )
        .await;
        match result {
            Ok(()) => {}
            Err(e) if e.is_unsupported() => breaker_unsupported(),
            Err(e) => {
                tracing::warn!(error = %e, "could not take back a failed send from the SMS fraud breaker");
            }
        }
    }

    /// Counts a verified code for `mobile`'s range, if the breaker is on.
    /// The verify has succeeded already: a failure is only logged.
    async fn count_range_verify(&self, mobile: &Mobile) {
        let Some(breaker) = self.sms_guard.breaker_settings() else {
            return;
        };
        let range = breaker.range_of(mobile);
        let result = store_op(
            "record_range_verify",
            self.store.record_range_verify(&range, &breaker.limits()),
        )
        .await;
        match result {
            Ok(()) => {}
            Err(e) if e.is_unsupported() => breaker_unsupported(),
            Err(e) => {
                tracing::warn!(error = %e, "could not count a verified code for the SMS fraud breaker");
            }
        }
    }
}

/// A failed send's cooldown is not released in its last quarter second:
/// the cooldown began in the store after `reserved` was read, so before
/// `reserved + cooldown` it is still this send's, but the release itself
/// takes a round trip, during which it could end and a later send take a
/// cooldown of its own, which the release would end.
const RELEASE_MARGIN: Duration = Duration::from_millis(250);

/// The store has no breaker operations: said once per process.
fn breaker_unsupported() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::error!(
            "the SMS fraud breaker is on but the store does not implement record_range_send / \
             record_range_verify / check_range_send: the breaker does nothing where they \
             are missing (without check_range_send, enumeration-safe decoys skip it)"
        );
    });
}

fn hash_failure(error: HashError, contact: &Contact) -> ApiError {
    match error {
        HashError::Overloaded => {
            audit::record(Outcome::Overloaded, contact);
            ApiError::Overloaded { retry_after: 1 }
        }
        other => {
            tracing::error!(error = %other, "hashing failed");
            ApiError::Internal
        }
    }
}

fn store_failure(error: &StoreError, contact: &Contact) -> ApiError {
    // The source chain (e.g. the Redis error) goes to the log only.
    tracing::error!(error = %error, source = ?std::error::Error::source(error), "OTP store failed");
    if error.is_unavailable() {
        audit::record(Outcome::StoreUnavailable, contact);
        ApiError::StoreUnavailable
    } else {
        ApiError::Internal
    }
}

fn delivery_failure(contact: &Contact, error: &DeliveryError) -> ApiError {
    // The provider's own error text goes to the log only.
    tracing::warn!(error = %error, "delivery error");
    audit::record(Outcome::DeliveryFailed, contact);
    match (error.is_invalid_recipient(), contact) {
        (true, Contact::Email(_)) => ApiError::InvalidEmail,
        (true, Contact::Mobile(_)) => ApiError::InvalidMobile,
        (false, _) => ApiError::DeliveryFailed,
    }
}

fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut salt)
        .expect("the OS random number generator failed");
    salt
}
