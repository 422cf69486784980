//! SMS fraud breaker: refuses SMS sends to a number range whose codes are
//! sent but not verified.
//!
//! SMS pumping (artificially inflated traffic) sends codes to numbers a
//! fraudster is paid for, usually consecutive numbers of one operator's
//! range, and never types the codes in. Real users, by contrast, verify
//! most codes they ask for. The breaker counts, per **range** (the country
//! calling code plus the first [`digits`](SmsBreaker::digits) digits of the
//! national number, e.g. `+447400` for `+44 7400 900123` with 4 digits),
//! codes sent and codes verified over a sliding
//! [`window`](SmsBreaker::window). Once a range has at least
//! [`min_sends`](SmsBreaker::min_sends) sends in the window and fewer than
//! [`min_conversion`](SmsBreaker::min_conversion) of them verified, sends
//! to that range are refused for [`block_for`](SmsBreaker::block_for): 429
//! `rate_limited` with `Retry-After` and `"retry_after"`, nothing is sent,
//! and the audit log and the events (hooks and webhooks) get a
//! `range_blocked` event. Other ranges, of the same country included, are
//! not affected.
//!
//! The figures live in the store ([`OtpStore::record_range_send`](crate::store::OtpStore::record_range_send)),
//! so with a [`RedisStore`](crate::store::RedisStore) every instance counts
//! into, and is stopped by, the same figures. The operator lists and lifts
//! blocks with [`Admin::blocked_ranges`](crate::admin::Admin::blocked_ranges)
//! and [`Admin::lift_range_block`](crate::admin::Admin::lift_range_block).
//!
//! The breaker is **off by default**: a conversion threshold can refuse real
//! users of a range whose people verify rarely (a test campaign, a
//! provider outage that loses messages), and only the operator knows the
//! app's usual conversion. Turn it on with
//! [`SmsGuard::breaker`](super::sms_guard::SmsGuard::breaker) or
//! `OTP_SMS_BREAKER=true`; the defaults (4 digits, 1 hour window, 20 sends,
//! 20 % conversion, 1 hour block) suit an app whose users verify most
//! codes.
//!
//! ```
//! use std::time::Duration;
//! use tower_otp::limit::{sms_breaker::SmsBreaker, sms_guard::SmsGuard};
//!
//! let guard = SmsGuard::none().breaker(
//!     SmsBreaker::new()
//!         .digits(3)
//!         .min_sends(50)
//!         .min_conversion(0.3)
//!         .block_for(Duration::from_secs(6 * 3600)),
//! );
//! ```

use std::{fmt::Write as _, time::Duration};

use crate::{contact::Mobile, error::ConfigError, store::RangeLimits};

/// Default digits after the country code that make a range.
pub const DEFAULT_RANGE_DIGITS: u8 = 4;
/// Default sliding window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Default sends in the window below which a range is never blocked.
pub const DEFAULT_MIN_SENDS: u32 = 20;
/// Default lowest conversion (verified / sent), in thousandths (20 %).
pub const DEFAULT_MIN_CONVERSION_PER_MILLE: u32 = 200;
/// Default block.
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(3600);

/// The breaker's settings; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsBreaker {
    digits: u8,
    window: Duration,
    min_sends: u32,
    min_conversion_per_mille: u32,
    block: Duration,
}

impl Default for SmsBreaker {
    fn default() -> Self {
        Self::new()
    }
}

impl SmsBreaker {
    /// A breaker with the default thresholds.
    pub fn new() -> Self {
        Self {
            digits: DEFAULT_RANGE_DIGITS,
            window: DEFAULT_WINDOW,
            min_sends: DEFAULT_MIN_SENDS,
            min_conversion_per_mille: DEFAULT_MIN_CONVERSION_PER_MILLE,
            block: DEFAULT_BLOCK,
        }
    }

    /// Digits of the national number after the country code that make a
    /// range (0 to 8; 0 = the whole country). Default 4.
    pub fn digits(mut self, digits: u8) -> Self {
        self.digits = digits;
        self
    }

    /// The sliding window sends and verifies are counted over (1 s to 7
    /// days). Default 1 hour.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sends in the window below which a range is never blocked (1 or
    /// more). Default 20.
    pub fn min_sends(mut self, sends: u32) -> Self {
        self.min_sends = sends;
        self
    }

    /// The lowest acceptable share of codes verified, from 0.0 to 1.0
    /// (read to the thousandth; 0 never blocks). Default 0.2.
    pub fn min_conversion(mut self, conversion: f64) -> Self {
        self.min_conversion_per_mille = if conversion.is_nan() || conversion < 0.0 {
            u32::MAX
        } else {
            // In 0..=1000 once validated; out-of-range values fail validate.
            (conversion * 1000.0)
                .round()
                .clamp(0.0, f64::from(u32::MAX)) as u32
        };
        self
    }

    /// How long a tripped range stays blocked (1 s to 30 days). Default 1
    /// hour.
    pub fn block_for(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// The range of `mobile`: `+`, the country calling code and the first
    /// [`digits`](Self::digits) digits of the national number (`+447400`).
    /// Never the whole number: at most all but the last 4 digits of the
    /// national number are taken, so a range holds at least 10,000 numbers
    /// even in countries with short numbers (8 digits in Denmark or
    /// Singapore), and a range in a log or a webhook never names a person.
    pub fn range_of(&self, mobile: &Mobile) -> String {
        let e164 = mobile.as_str();
        let mut range = String::with_capacity(1 + 3 + usize::from(self.digits));
        range.push('+');
        let _ = write!(range, "{}", mobile.country_code());
        let national = e164
            .get(range.len()..)
            .filter(|_| e164.starts_with(&range))
            .unwrap_or("");
        let national_digits = national.chars().filter(char::is_ascii_digit).count();
        let take = usize::from(self.digits).min(national_digits.saturating_sub(4));
        range.extend(national.chars().filter(char::is_ascii_digit).take(take));
        range
    }

    /// The thresholds as the store applies them.
    pub fn limits(&self) -> RangeLimits {
        RangeLimits::new(
            self.window,
            self.min_sends,
            self.min_conversion_per_mille,
            self.block,
        )
    }

    /// Checks the ranges of every setting; `name` is what errors name (a
    /// builder method, or the environment variable).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.digits > 8 {
            return Err(ConfigError::invalid(
                "sms_breaker_digits",
                "at most 8 digits after the country code (a range is never one number)",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(&self.window) {
            return Err(ConfigError::invalid(
                "sms_breaker_window",
                "between 1 second and 7 days",
            ));
        }
        if self.min_sends == 0 {
            return Err(ConfigError::invalid(
                "sms_breaker_min_sends",
                "at least 1 send",
            ));
        }
        if self.min_conversion_per_mille > 1000 {
            return Err(ConfigError::invalid(
                "sms_breaker_min_conversion",
                "a share between 0 and 1",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(30 * 86_400)).contains(&self.block) {
            return Err(ConfigError::invalid(
                "sms_breaker_block",
                "between 1 second and 30 days",
            ));
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

    #[test]
    fn a_range_is_the_country_code_and_leading_digits() {
        let b = SmsBreaker::new();
        assert_eq!(b.range_of(&mobile("+447400900123")), "+447400");
        assert_eq!(b.range_of(&mobile("+14155550123")), "+14155");
        assert_eq!(b.range_of(&mobile("+919812345678")), "+919812");
        // A three-digit country code.
        assert_eq!(b.range_of(&mobile("+353851234567")), "+3538512");
        assert_eq!(b.digits(0).range_of(&mobile("+447400900123")), "+44");
        assert_eq!(b.digits(2).range_of(&mobile("+447400900123")), "+4474");
        // Short numbers: never more than all but the last 4 digits, even
        // with 8 digits asked for (Denmark and Singapore have 8-digit
        // numbers).
        assert_eq!(b.range_of(&mobile("+4520123456")), "+452012");
        assert_eq!(b.digits(8).range_of(&mobile("+4520123456")), "+452012");
        assert_eq!(b.digits(8).range_of(&mobile("+6581234567")), "+658123");
        assert_eq!(b.digits(8).range_of(&mobile("+447400900123")), "+44740090");
    }

    #[test]
    fn settings_are_checked() {
        assert!(SmsBreaker::new().validate().is_ok());
        assert!(SmsBreaker::new().digits(9).validate().is_err());
        assert!(SmsBreaker::new().min_sends(0).validate().is_err());
        assert!(SmsBreaker::new().min_conversion(1.5).validate().is_err());
        assert!(
            SmsBreaker::new()
                .min_conversion(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(SmsBreaker::new().min_conversion(-0.1).validate().is_err());
        assert!(SmsBreaker::new().min_conversion(0.0).validate().is_ok());
        assert!(SmsBreaker::new().window(Duration::ZERO).validate().is_err());
        assert!(
            SmsBreaker::new()
                .block_for(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert_eq!(
            SmsBreaker::new()
                .min_conversion(0.25)
                .limits()
                .min_verified_per_mille,
            250
        );
    }
}
