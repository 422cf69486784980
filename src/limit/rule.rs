//! [`Rule`]: one rate limit, named, with its key, quota, period and the
//! requests it applies to.

use std::{borrow::Cow, num::NonZeroU32, time::Duration};

use crate::contact::Channel;

/// What a rule counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RuleKey {
    /// The client's IP address: IPv4 per address; IPv6 per /64, and also
    /// per /56 (4× the quota) and per /48 (16×); requests with no known
    /// address share one budget of 16× the quota. Known before the body is
    /// read, so these rules run first.
    ClientIp,
    /// The contact (a keyed digest of the canonical email or the E.164
    /// number). Runs after parsing.
    Contact,
    /// The mobile number's country calling code (SMS pumping defence).
    /// Runs after parsing; applies to mobile requests only.
    CountryCode,
}

/// When a rule runs, which follows from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Before the body is read, before any hashing or delivery: facts of
    /// the connection (the client IP).
    BeforeBody,
    /// After the body is parsed: facts of the contact. On a send, after the
    /// contact's own cooldown and quota were reserved (so requests the
    /// cooldown refuses draw nothing), and a refusal releases that
    /// cooldown; always before any hashing or delivery.
    AfterParse,
}

/// Which requests a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleScope {
    /// Requests that send a code.
    Sends,
    /// Requests that check a code.
    Verifies,
    /// Both.
    All,
}

/// What a request is, as the limiter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    Send,
    Verify,
}

/// One rate limit: `quota` requests per `period` for each value of its
/// key, with a burst of `quota` (GCRA). With a shared store configured
/// ([`OtpBuilder::shared_limits`](crate::OtpBuilder::shared_limits)) every
/// rule holds across instances.
///
/// ```
/// use std::time::Duration;
/// use tower_otp::limit::{Rule, RuleScope};
/// use tower_otp::Channel;
///
/// // At most 20 verifies per contact per hour, on top of the per-code limit.
/// let rule = Rule::per_contact("verify-per-contact", 20, Duration::from_secs(3600))
///     .unwrap()
///     .scope(RuleScope::Verifies);
/// // At most 100 SMS sends per IP per day.
/// let rule = Rule::per_ip("sms-per-ip-day", 100, Duration::from_secs(86_400))
///     .unwrap()
///     .scope(RuleScope::Sends)
///     .channel(Channel::Mobile);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(crate) name: Cow<'static, str>,
    pub(crate) key: RuleKey,
    pub(crate) quota: NonZeroU32,
    pub(crate) period: Duration,
    pub(crate) scope: RuleScope,
    pub(crate) channel: Option<Channel>,
}

impl Rule {
    /// A rule keyed by `key`: `quota` requests per `period`. `None` when the
    /// quota is 0 or the period is zero (a rule that would refuse
    /// everything). Applies to every request until narrowed with
    /// [`scope`](Self::scope) and [`channel`](Self::channel).
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        key: RuleKey,
        quota: u32,
        period: Duration,
    ) -> Option<Self> {
        let quota = NonZeroU32::new(quota)?;
        (!period.is_zero()).then(|| Self {
            name: name.into(),
            key,
            quota,
            period,
            scope: RuleScope::All,
            channel: None,
        })
    }

    /// A rule per client IP.
    pub fn per_ip(
        name: impl Into<Cow<'static, str>>,
        quota: u32,
        period: Duration,
    ) -> Option<Self> {
        Self::new(name, RuleKey::ClientIp, quota, period)
    }

    /// A rule per contact.
    pub fn per_contact(
        name: impl Into<Cow<'static, str>>,
        quota: u32,
        period: Duration,
    ) -> Option<Self> {
        Self::new(name, RuleKey::Contact, quota, period)
    }

    /// A rule per country calling code (mobile requests only).
    pub fn per_country(
        name: impl Into<Cow<'static, str>>,
        quota: u32,
        period: Duration,
    ) -> Option<Self> {
        Self::new(name, RuleKey::CountryCode, quota, period).map(|r| r.channel(Channel::Mobile))
    }

    /// Only these requests are counted. Default [`RuleScope::All`].
    pub fn scope(mut self, scope: RuleScope) -> Self {
        self.scope = scope;
        self
    }

    /// Only requests on this channel are counted. Default both.
    pub fn channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The rule's name (in the `RateLimit-Policy` header and the shared
    /// store's keys).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the rule counts by.
    pub fn key(&self) -> RuleKey {
        self.key
    }

    /// Requests allowed per period.
    pub fn quota(&self) -> u32 {
        self.quota.get()
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// When the rule runs.
    pub fn stage(&self) -> Stage {
        match self.key {
            RuleKey::ClientIp => Stage::BeforeBody,
            RuleKey::Contact | RuleKey::CountryCode => Stage::AfterParse,
        }
    }

    pub(crate) fn applies(&self, traffic: Traffic, channel: Channel) -> bool {
        let scoped = match self.scope {
            RuleScope::All => true,
            RuleScope::Sends => traffic == Traffic::Send,
            RuleScope::Verifies => traffic == Traffic::Verify,
        };
        scoped && self.channel.is_none_or(|c| c == channel)
    }
}
