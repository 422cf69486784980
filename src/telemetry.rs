//! Metrics for an operator during an incident (feature `metrics`), through
//! the [`metrics`](https://docs.rs/metrics) facade: install any recorder
//! (Prometheus, StatsD, ...) in the host. Without the feature none of this
//! is compiled: no clock reads, no atomics.
//!
//! Times are in **seconds**. Every label takes a small, fixed set of
//! values: never a contact, a number, a code or an address.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `tower_otp_events_total` | counter | `event` (the audit events: `sent`, `verified`, `range_blocked`, ...), `channel` (`email`, `mobile`) | one per audit event ([`audit`](crate::audit)) |
//! | `tower_otp_events_dropped_total` | counter | `sink` (`hook`, `webhook`) | events dropped because a subscriber's queue was full (refusals, `rate_limited` and `range_blocked`, already when it is half full) |
//! | `tower_otp_webhook_failures_total` | counter | `reason` (`status`, `transport`, `gave_up`) | failed webhook POSTs (`status`: a non-2xx answer, `transport`: no answer), and events given up after every retry (`gave_up`) |
//! | `tower_otp_hash_seconds` | histogram | none | one Argon2id hash on a pool thread (the work itself) |
//! | `tower_otp_hash_queue_wait_seconds` | histogram | none | from a hash being queued to a pool thread taking it |
//! | `tower_otp_hash_pool_busy` | gauge | none | hashes running now (at most the pool's threads) |
//! | `tower_otp_hash_pool_queued` | gauge | none | hashes waiting for a thread now (at most the pool's queue) |
//! | `tower_otp_store_op_seconds` | histogram | `op` (see below), `outcome` (`ok`, `error`) | one store operation of the send and verify flow, as the engine waits for it |
//! | `tower_otp_delivery_seconds` | histogram | `provider` (`smtp`, `sendgrid`, `twilio_verify`, `twilio_messaging`, `console`, `memory`, or a host sender's [`provider_name`](crate::delivery::EmailSender::provider_name); `custom` by default), `channel` (`email`, `sms`, `whatsapp`), `outcome` (`ok`, `error`) | one delivery, retries included, as the user waits for it |
//!
//! `op` is one of [`STORE_OPS`]: `reserve_send`, `release_cooldown`,
//! `put_code`, `begin_attempt`, `remove_code`, `consume_code`,
//! `record_failure`, `reset_failures`, `record_range_send`,
//! `check_range_send`, `record_range_verify`, `release_range_send`.
//!
//! The descriptions (with their units) are registered when an
//! [`Otp`](crate::Otp) is built; call [`describe`] again after installing
//! a recorder later than that.

use std::time::Duration;

/// Histogram: one Argon2id hash, in seconds.
pub const HASH_SECONDS: &str = "tower_otp_hash_seconds";
/// Histogram: time a hash waited for a pool thread, in seconds.
pub const HASH_QUEUE_WAIT_SECONDS: &str = "tower_otp_hash_queue_wait_seconds";
/// Gauge: hashes running.
pub const HASH_POOL_BUSY: &str = "tower_otp_hash_pool_busy";
/// Gauge: hashes waiting for a thread.
pub const HASH_POOL_QUEUED: &str = "tower_otp_hash_pool_queued";
/// Histogram: one store operation, in seconds (labels `op`, `outcome`).
pub const STORE_OP_SECONDS: &str = "tower_otp_store_op_seconds";
/// Histogram: one delivery with its retries, in seconds (labels
/// `provider`, `channel`, `outcome`).
pub const DELIVERY_SECONDS: &str = "tower_otp_delivery_seconds";
/// Counter: audit events (labels `event`, `channel`).
pub const EVENTS_TOTAL: &str = "tower_otp_events_total";

/// Every value of the `op` label of [`STORE_OP_SECONDS`].
pub const STORE_OPS: [&str; 12] = [
    "reserve_send",
    "release_cooldown",
    "put_code",
    "begin_attempt",
    "remove_code",
    "consume_code",
    "record_failure",
    "reset_failures",
    "record_range_send",
    "check_range_send",
    "record_range_verify",
    "release_range_send",
];

/// Registers the description and unit of every metric with the installed
/// recorder (done when an [`Otp`](crate::Otp) is built). Does nothing
/// without the `metrics` feature.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_histogram!(
            HASH_SECONDS,
            Unit::Seconds,
            "One Argon2id hash on a pool thread."
        );
        describe_histogram!(
            HASH_QUEUE_WAIT_SECONDS,
            Unit::Seconds,
            "Time a hash waited for a hashing thread."
        );
        describe_gauge!(HASH_POOL_BUSY, Unit::Count, "Hashes running now.");
        describe_gauge!(
            HASH_POOL_QUEUED,
            Unit::Count,
            "Hashes waiting for a thread now."
        );
        describe_histogram!(
            STORE_OP_SECONDS,
            Unit::Seconds,
            "One store operation of the OTP flow, by op and outcome."
        );
        describe_histogram!(
            DELIVERY_SECONDS,
            Unit::Seconds,
            "One code delivery with its retries, by provider, channel and outcome."
        );
        describe_counter!(
            EVENTS_TOTAL,
            Unit::Count,
            "OTP audit events, by event and channel."
        );
        describe_counter!(
            "tower_otp_events_dropped_total",
            Unit::Count,
            "Events dropped because a subscriber's queue was full (refusals: half full)."
        );
        describe_counter!(
            "tower_otp_webhook_failures_total",
            Unit::Count,
            "Failed webhook POSTs, and events given up after every retry, by reason."
        );
    }
}

/// Runs one store operation, timing it under `op` (one of [`STORE_OPS`]).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) async fn store_op<T, E>(
    op: &'static str,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    #[cfg(feature = "metrics")]
    {
        let start = std::time::Instant::now();
        let result = operation.await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(STORE_OP_SECONDS, "op" => op, "outcome" => outcome)
            .record(start.elapsed());
        result
    }
    #[cfg(not(feature = "metrics"))]
    {
        operation.await
    }
}

/// Records one delivery that took `elapsed` (`provider` is asked only
/// with the feature).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn delivery(
    provider: impl FnOnce() -> &'static str,
    channel: &'static str,
    ok: bool,
    elapsed: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let provider = provider();
        let outcome = if ok { "ok" } else { "error" };
        metrics::histogram!(
            DELIVERY_SECONDS,
            "provider" => provider,
            "channel" => channel,
            "outcome" => outcome
        )
        .record(elapsed);
    }
}

/// A clock read for a delivery's timing, only with the feature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Stopwatch {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn elapsed(self) -> Duration {
        #[cfg(feature = "metrics")]
        {
            self.start.elapsed()
        }
        #[cfg(not(feature = "metrics"))]
        {
            Duration::ZERO
        }
    }
}
