//! SMS fraud guard: which country calling codes may be sent SMS codes, and
//! how many per hour each may get.
//!
//! SMS pumping (toll fraud) makes an OTP endpoint send codes to premium
//! numbers in countries the app never serves. The guard refuses numbers
//! outside an allow-list (or inside a deny-list) with `contact_rejected`, and
//! caps sends per country code per hour with a governor limiter, so a bot
//! cannot pump one country even from many addresses. The budget is per
//! process (per instance).

use std::{collections::BTreeSet, num::NonZeroU32};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use http::StatusCode;

use crate::{contact::Mobile, engine::ceil_secs, error::ApiError, error::ConfigError};

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
}

type CountryLimiter = RateLimiter<u16, DefaultKeyedStateStore<u16>, DefaultClock>;

/// The guard in force, with its per-country budget.
pub(crate) struct SmsGate {
    guard: SmsGuard,
    budget: Option<CountryLimiter>,
    clock: DefaultClock,
}

impl std::fmt::Debug for SmsGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGate")
            .field("guard", &self.guard)
            .finish()
    }
}

impl SmsGate {
    pub(crate) fn new(guard: SmsGuard) -> Self {
        Self {
            budget: guard
                .per_country_per_hour
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            guard,
            clock: DefaultClock::default(),
        }
    }

    /// Refuses numbers of disallowed countries.
    pub(crate) fn check_country(&self, mobile: &Mobile) -> Result<(), ApiError> {
        if self.guard.allows(mobile.country_code()) {
            Ok(())
        } else {
            Err(ApiError::ContactRejected {
                status: StatusCode::FORBIDDEN,
                message: "We cannot send text messages to this country.".into(),
            })
        }
    }

    /// Draws one send from the country's hourly budget.
    pub(crate) fn draw_budget(&self, mobile: &Mobile) -> Result<(), ApiError> {
        let country = mobile.country_code();
        if let Some(budget) = &self.budget
            && let Err(not_until) = budget.check_key(&country)
        {
            tracing::warn!(
                country_code = country,
                "SMS budget for this country code is used up"
            );
            return Err(ApiError::RateLimited {
                retry_after: ceil_secs(not_until.wait_time_from(self.clock.now())),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mobile(s: &str) -> Mobile {
        Mobile::parse(s, None).unwrap()
    }

    impl SmsGate {
        fn check(&self, m: &Mobile) -> Result<(), ApiError> {
            self.check_country(m).and_then(|()| self.draw_budget(m))
        }
    }

    #[test]
    fn allow_and_deny_lists() {
        let gate = SmsGate::new(SmsGuard::allow([91, 1]).deny([1]));
        assert!(gate.check(&mobile("+919812345678")).is_ok());
        assert!(gate.check(&mobile("+14155550123")).is_err());
        assert!(gate.check(&mobile("+447400123456")).is_err());
        let gate = SmsGate::new(SmsGuard::none().deny([44]));
        assert!(gate.check(&mobile("+14155550123")).is_ok());
        assert!(gate.check(&mobile("+447400123456")).is_err());
    }

    #[test]
    fn per_country_budget() {
        let gate = SmsGate::new(SmsGuard::none().per_country_per_hour(2));
        for _ in 0..2 {
            assert!(gate.check(&mobile("+919812345678")).is_ok());
        }
        let err = gate.check(&mobile("+919812345679")).unwrap_err();
        assert!(matches!(err, ApiError::RateLimited { retry_after } if retry_after > 60));
        assert!(gate.check(&mobile("+14155550123")).is_ok());
    }

    #[test]
    fn code_lists_parse() {
        assert_eq!(SmsGuard::parse_codes("X", "91, +1").unwrap(), vec![91, 1]);
        assert!(SmsGuard::parse_codes("X", "91, abc").is_err());
        assert!(SmsGuard::parse_codes("X", "1000").is_err());
    }
}
