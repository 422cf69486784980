//! SMS fraud guard: which country calling codes may be sent SMS codes, and
//! how many per hour each may get.
//!
//! SMS pumping (toll fraud) makes an OTP endpoint send codes to premium
//! numbers in countries the app never serves. The guard refuses numbers
//! outside an allow-list (or inside a deny-list) with `contact_rejected`, and
//! caps sends per country code per hour with a limiter [`Rule`] (keyed by
//! the calling code), so a bot cannot pump one country even from many
//! addresses. With a shared store (Redis) the budget holds across every
//! instance.

use std::{collections::BTreeSet, num::NonZeroU32, time::Duration};

use http::StatusCode;

use super::{Rule, RuleScope, sms_breaker::SmsBreaker};
use crate::{contact::Mobile, error::ApiError, error::ConfigError};

/// The name of the per-country budget's rule.
pub const COUNTRY_BUDGET_RULE: &str = "otp-sms-country";

/// Which countries may receive SMS codes, and how many per hour.
///
/// ```
/// use tower_otp::limit::sms_guard::SmsGuard;
///
/// // Only India and North America, at most 500 codes an hour to each.
/// let guard = SmsGuard::allow([91, 1]).per_country_per_hour(500);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmsGuard {
    allowed: Option<BTreeSet<u16>>,
    denied: BTreeSet<u16>,
    per_country_per_hour: Option<NonZeroU32>,
    breaker: Option<SmsBreaker>,
}

impl SmsGuard {
    /// No restriction (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Only these country calling codes (e.g. `91`, `1`) may receive SMS.
    pub fn allow(codes: impl IntoIterator<Item = u16>) -> Self {
        Self {
            allowed: Some(codes.into_iter().collect()),
            ..Self::default()
        }
    }

    /// These country calling codes may never receive SMS.
    pub fn deny(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.denied.extend(codes);
        self
    }

    /// At most `sends` SMS codes per country code per hour (0 = no cap).
    pub fn per_country_per_hour(mut self, sends: u32) -> Self {
        self.per_country_per_hour = NonZeroU32::new(sends);
        self
    }

    /// Turns on the fraud breaker per number range (see
    /// [`sms_breaker`](super::sms_breaker)); off by default.
    pub fn breaker(mut self, breaker: SmsBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The fraud breaker, if on.
    pub fn breaker_settings(&self) -> Option<&SmsBreaker> {
        self.breaker.as_ref()
    }

    /// Checks the breaker's settings.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.breaker.as_ref().map_or(Ok(()), SmsBreaker::validate)
    }

    /// Parses a comma-separated list of calling codes (`"91, +1"`).
    pub(crate) fn parse_codes(name: &'static str, list: &str) -> Result<Vec<u16>, ConfigError> {
        list.split(',')
            .map(|s| s.trim().trim_start_matches('+'))
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u16>()
                    .ok()
                    .filter(|c| (1..=999).contains(c))
                    .ok_or_else(|| {
                        ConfigError::invalid(name, format!("{s:?} is not a country calling code"))
                    })
            })
            .collect()
    }

    fn allows(&self, country: u16) -> bool {
        !self.denied.contains(&country)
            && self.allowed.as_ref().is_none_or(|a| a.contains(&country))
    }

    /// Refuses numbers of disallowed countries.
    pub(crate) fn check_country(&self, mobile: &Mobile) -> Result<(), ApiError> {
        if self.allows(mobile.country_code()) {
            Ok(())
        } else {
            Err(ApiError::ContactRejected {
                status: StatusCode::FORBIDDEN,
                message: "We cannot send text messages to this country.".into(),
            })
        }
    }

    /// The per-country hourly budget as a limiter rule, if one is set.
    pub(crate) fn budget_rule(&self) -> Option<Rule> {
        let sends = self.per_country_per_hour?;
        Rule::per_country(COUNTRY_BUDGET_RULE, sends.get(), Duration::from_secs(3600))
            .map(|r| r.scope(RuleScope::Sends))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mobile(s: &str) -> Mobile {
        Mobile::parse(s, None).unwrap()
    }

    #[test]
    fn allow_and_deny_lists() {
        let guard = SmsGuard::allow([91, 1]).deny([1]);
        assert!(guard.check_country(&mobile("+919812345678")).is_ok());
        assert!(guard.check_country(&mobile("+14155550123")).is_err());
        assert!(guard.check_country(&mobile("+447400123456")).is_err());
        let guard = SmsGuard::none().deny([44]);
        assert!(guard.check_country(&mobile("+14155550123")).is_ok());
        assert!(guard.check_country(&mobile("+447400123456")).is_err());
    }

    #[test]
    fn the_budget_is_an_hourly_country_rule_on_sends() {
        assert!(SmsGuard::none().budget_rule().is_none());
        let rule = SmsGuard::none()
            .per_country_per_hour(2)
            .budget_rule()
            .unwrap();
        assert_eq!(rule.quota(), 2);
        assert_eq!(rule.period(), Duration::from_secs(3600));
        assert_eq!(rule.key(), super::super::RuleKey::CountryCode);
    }

    #[test]
    fn code_lists_parse() {
        assert_eq!(SmsGuard::parse_codes("X", "91, +1").unwrap(), vec![91, 1]);
        assert!(SmsGuard::parse_codes("X", "91, abc").is_err());
        assert!(SmsGuard::parse_codes("X", "1000").is_err());
    }
}
