//! Audit events and metrics: one record per outcome of an OTP request.
//!
//! Every outcome is a `tracing` event under the target `tower_otp::audit`
//! with the fields `event`, `channel` and `contact` (masked:
//! `a***@example.com`, `+91******5678`). The client IP is a field of the
//! enclosing `otp_request` span, with the route. The code is never recorded.
//!
//! | `event` | level | when |
//! |---|---|---|
//! | `sent` | info | a code was issued and stored |
//! | `delivered` | info | the provider accepted the message |
//! | `verified` | info | a correct code was used |
//! | `otp_invalid` | info | a wrong code |
//! | `otp_expired` | info | no live code to check |
//! | `attempts_exceeded` | warn | the last attempt failed, or attempts ran out |
//! | `rate_limited` | info | IP limit, cooldown or quota refused the request |
//! | `rejected` | info | the host policy or the SMS fraud guard refused the contact |
//! | `delivery_failed` | warn | the provider failed after retries |
//! | `store_unavailable` | error | the store could not be reached |
//! | `overloaded` | warn | the hashing pool was full |
//! | `range_blocked` | warn | the SMS fraud breaker refused a send to a blocked number range; `contact` is `-` and the field `range` names the range (`+447400`), so that the range and the masked number's last digits are never on one line |
//! | `cancelled` | info | the "this wasn't me" link destroyed a pending code and blocked sends |
//!
//! With the `metrics` feature, each event also increments the counter
//! `tower_otp_events_total` with the labels `event` and `channel`
//! (`email`, `mobile`), through the `metrics` facade: install any recorder
//! (Prometheus, StatsD, …) in the host.

use crate::contact::{Channel, Contact};

/// The tracing target of audit events.
pub const AUDIT_TARGET: &str = "tower_otp::audit";

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Delivered,
    Verified,
    OtpInvalid,
    OtpExpired,
    AttemptsExceeded,
    RateLimited,
    Rejected,
    DeliveryFailed,
    StoreUnavailable,
    Overloaded,
    RangeBlocked,
    Cancelled,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Verified => "verified",
            Self::OtpInvalid => "otp_invalid",
            Self::OtpExpired => "otp_expired",
            Self::AttemptsExceeded => "attempts_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Rejected => "rejected",
            Self::DeliveryFailed => "delivery_failed",
            Self::StoreUnavailable => "store_unavailable",
            Self::Overloaded => "overloaded",
            Self::RangeBlocked => "range_blocked",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Records an outcome for a known contact.
pub(crate) fn record(outcome: Outcome, contact: &Contact) {
    emit(outcome, contact.channel(), &contact.masked().to_string());
}

/// Records an outcome decided before the contact was read (edge limit,
/// overload).
pub(crate) fn record_channel(outcome: Outcome, channel: Channel) {
    emit(outcome, channel, "-");
}

/// The SMS fraud breaker refused a send to `range` (never with the
/// contact: see the table).
pub(crate) fn range_blocked(range: &str) {
    let event = Outcome::RangeBlocked.name();
    let channel = Channel::Mobile.as_str();
    tracing::warn!(target: AUDIT_TARGET, event, channel, contact = "-", range, "otp {event}");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_otp_events_total", "event" => event, "channel" => channel)
        .increment(1);
}

/// The edge limiter refused a request.
pub(crate) fn refused_at_edge(channel: Channel) {
    record_channel(Outcome::RateLimited, channel);
}

fn emit(outcome: Outcome, channel: Channel, contact: &str) {
    let event = outcome.name();
    let channel = channel.as_str();
    match outcome {
        Outcome::StoreUnavailable => {
            tracing::error!(target: AUDIT_TARGET, event, channel, contact, "otp {event}");
        }
        Outcome::AttemptsExceeded
        | Outcome::DeliveryFailed
        | Outcome::Overloaded
        | Outcome::RangeBlocked => {
            tracing::warn!(target: AUDIT_TARGET, event, channel, contact, "otp {event}");
        }
        _ => tracing::info!(target: AUDIT_TARGET, event, channel, contact, "otp {event}"),
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_otp_events_total", "event" => event, "channel" => channel)
        .increment(1);
}
