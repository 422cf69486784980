//! Events: what happened on the OTP routes, for the host's own code
//! (in-process hooks) and for other systems (signed webhooks).
//!
//! Every answer of a send or verify route that matters to an operator is an
//! [`Event`]: its [`EventKind`], when it happened, the channel, the contact
//! (masked, `a***@example.com`, unless the host opts in with
//! [`OtpBuilder::unmasked_event_contacts`](crate::OtpBuilder::unmasked_event_contacts))
//! and the purpose. An event never carries a code.
//!
//! | kind | type (webhooks) | when |
//! |---|---|---|
//! | `sent` | `otp.sent` | a send was answered with success |
//! | `delivered` | `otp.delivered` | the provider accepted the message (not emitted in enumeration-safe mode, which delivers after answering) |
//! | `verified` | `otp.verified` | a correct code was used |
//! | `otp_invalid` | `otp.otp_invalid` | a wrong code |
//! | `attempts_exceeded` | `otp.attempts_exceeded` | the last attempt failed; the code is destroyed |
//! | `rate_limited` | `otp.rate_limited` | an IP limit (contact `null`: refused before the body was read), a cooldown, a quota or a contact rule refused the request |
//! | `cancelled` | `otp.cancelled` | the user cancelled a pending code (the "this wasn't me" email link) |
//! | `delivery_failed` | `otp.delivery_failed` | the provider failed after retries, or refused the recipient |
//! | `range_blocked` | `otp.range_blocked` | the SMS fraud breaker refused a send: the number's range is blocked. The contact is `null` and `range` names the range (`"+447400"`), so that the range and the masked number's last digits never travel together |
//!
//! # Subscribing
//!
//! [`OtpBuilder::on_event`](crate::OtpBuilder::on_event) takes an async
//! closure (or any [`EventSink`]). Each subscriber has its own bounded
//! queue, drained by its own task: a request only puts the event in the
//! queue (`try_send`, never waiting). When a queue is full the event is
//! dropped and counted ([`Otp::events_dropped`](crate::Otp::events_dropped);
//! with the `metrics` feature also the counter
//! `tower_otp_events_dropped_total`, label `sink`: `hook` or `webhook`).
//! A slow subscriber therefore loses events; it never slows an answer.
//!
//! ```
//! use tower_otp::{Otp, events::{Event, EventKind}};
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .on_event(|event: Event| async move {
//!         if event.kind() == EventKind::Verified {
//!             // e.g. mark the contact verified in a CRM
//!             let _ = (event.channel(), event.contact(), event.purpose());
//!         }
//!     })
//!     .build()
//!     .unwrap();
//! assert_eq!(otp.events_dropped(), 0);
//! ```
//!
//! # Webhooks
//!
//! With the `webhooks` feature, [`OtpBuilder::webhook`](crate::OtpBuilder::webhook)
//! (or `OTP_WEBHOOK_URL` + `OTP_WEBHOOK_SECRET`) POSTs every event in the
//! Standard Webhooks format: see [`webhook`].

#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub mod webhook;

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::contact::{Channel, Contact};

/// Events each subscriber's queue holds before new ones are dropped, by
/// default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A send was answered with success.
    Sent,
    /// The provider accepted the message.
    Delivered,
    /// A correct code was used.
    Verified,
    /// A wrong code.
    OtpInvalid,
    /// The last attempt failed: the code is destroyed.
    AttemptsExceeded,
    /// A limit refused the request.
    RateLimited,
    /// The user cancelled a pending code (the "this wasn't me" email
    /// link).
    Cancelled,
    /// The provider failed after retries, or refused the recipient.
    DeliveryFailed,
    /// The SMS fraud breaker refused a send to a blocked number range
    /// ([`Event::range`] names it; the contact is `None`).
    RangeBlocked,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 9] = [
        Self::Sent,
        Self::Delivered,
        Self::Verified,
        Self::OtpInvalid,
        Self::AttemptsExceeded,
        Self::RateLimited,
        Self::Cancelled,
        Self::DeliveryFailed,
        Self::RangeBlocked,
    ];

    /// The kind's name (`verified`), as in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Verified => "verified",
            Self::OtpInvalid => "otp_invalid",
            Self::AttemptsExceeded => "attempts_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Cancelled => "cancelled",
            Self::DeliveryFailed => "delivery_failed",
            Self::RangeBlocked => "range_blocked",
        }
    }

    /// The event type of webhooks (`otp.verified`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Sent => "otp.sent",
            Self::Delivered => "otp.delivered",
            Self::Verified => "otp.verified",
            Self::OtpInvalid => "otp.otp_invalid",
            Self::AttemptsExceeded => "otp.attempts_exceeded",
            Self::RateLimited => "otp.rate_limited",
            Self::Cancelled => "otp.cancelled",
            Self::DeliveryFailed => "otp.delivery_failed",
            Self::RangeBlocked => "otp.range_blocked",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event. Never holds a code; the contact is masked unless the host
/// opted in to unmasked contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    kind: EventKind,
    timestamp: SystemTime,
    channel: Channel,
    contact: Option<String>,
    purpose: String,
    range: Option<String>,
}

impl Event {
    /// What happened.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// When it happened.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The channel of the route.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The contact, masked (`a***@example.com`, `+91******5678`) unless
    /// unmasked contacts were asked for; `None` when the request was
    /// refused before its body was read (an IP limit).
    pub fn contact(&self) -> Option<&str> {
        self.contact.as_deref()
    }

    /// The purpose of the code (`verify`).
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The number range of a `range_blocked` event (`+447400`); `None`
    /// for every other kind.
    pub fn range(&self) -> Option<&str> {
        self.range.as_deref()
    }

    /// The event as the JSON body of a webhook:
    /// `{"type":"otp.verified","timestamp":"<RFC 3339>","data":{"channel","contact","purpose"}}`
    /// (`range_blocked` adds `"range"` to `data`).
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Data<'a> {
            channel: &'a str,
            contact: Option<&'a str>,
            purpose: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            range: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            timestamp: String,
            data: Data<'a>,
        }
        let body = Body {
            kind: self.kind.type_name(),
            timestamp: rfc3339(self.timestamp),
            data: Data {
                channel: self.channel.as_str(),
                contact: self.contact(),
                purpose: &self.purpose,
                range: self.range(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// A subscriber to events: an async closure `Fn(Event) -> impl Future`, or
/// a type of the host's. It runs on its own task, off the request path.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Handles one event. The next event of this subscriber waits for it;
    /// meanwhile new events queue up to the queue's capacity, then are
    /// dropped (and counted).
    async fn handle(&self, event: Event);
}

#[async_trait]
impl<F, Fut> EventSink for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    async fn handle(&self, event: Event) {
        self(event).await;
    }
}

/// Which kind of subscriber (the `sink` label of the drop counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    Hook,
    #[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
    Webhook,
}

impl SinkKind {
    fn label(self) -> &'static str {
        match self {
            Self::Hook => "hook",
            Self::Webhook => "webhook",
        }
    }
}

/// What a subscriber's task takes when it starts: the queue's receiving
/// end and the subscriber.
type Pending = (mpsc::Receiver<Event>, Arc<dyn EventSink>);

/// One subscriber: its queue, and what its task needs until it starts.
struct Subscription {
    kind: SinkKind,
    tx: mpsc::Sender<Event>,
    /// Taken by the first emit, which starts the task (building an `Otp`
    /// needs no runtime; serving a request runs on one).
    pending: Mutex<Option<Pending>>,
    started: OnceLock<()>,
}

impl Subscription {
    fn start(&self) {
        if self.started.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.started.get_or_init(|| {
            let taken = self.pending.lock().ok().and_then(|mut p| p.take());
            if let Some((rx, sink)) = taken {
                tokio::spawn(drain(rx, sink));
            }
        });
    }
}

/// A subscriber's task: one event at a time. A panicking handler loses its
/// event, not the subscription.
async fn drain(mut rx: mpsc::Receiver<Event>, sink: Arc<dyn EventSink>) {
    while let Some(event) = rx.recv().await {
        let sink = Arc::clone(&sink);
        let kind = event.kind;
        if tokio::spawn(async move { sink.handle(event).await })
            .await
            .is_err()
        {
            tracing::error!(event = kind.name(), "an OTP event handler panicked");
        }
    }
}

/// The subscribers and their queues; emitting never waits.
pub(crate) struct EventBus {
    subscriptions: Vec<Subscription>,
    unmasked: bool,
    dropped: AtomicU64,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.subscriptions.len())
            .field("unmasked", &self.unmasked)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl EventBus {
    /// A bus for `sinks`, each with a queue of `capacity` events.
    pub(crate) fn new(
        sinks: Vec<(SinkKind, Arc<dyn EventSink>)>,
        capacity: usize,
        unmasked: bool,
    ) -> Self {
        let subscriptions = sinks
            .into_iter()
            .map(|(kind, sink)| {
                let (tx, rx) = mpsc::channel(capacity.max(1));
                Subscription {
                    kind,
                    tx,
                    pending: Mutex::new(Some((rx, sink))),
                    started: OnceLock::new(),
                }
            })
            .collect();
        Self {
            subscriptions,
            unmasked,
            dropped: AtomicU64::new(0),
        }
    }

    /// Events dropped so far because a subscriber's queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues an event for every subscriber, without waiting: a full queue
    /// drops it and counts the drop.
    pub(crate) fn emit(
        &self,
        kind: EventKind,
        channel: Channel,
        contact: Option<&Contact>,
        purpose: &str,
    ) {
        if self.subscriptions.is_empty() {
            return;
        }
        let event = Event {
            kind,
            timestamp: SystemTime::now(),
            channel,
            contact: contact.map(|c| {
                if self.unmasked {
                    c.as_str().to_owned()
                } else {
                    c.masked().to_string()
                }
            }),
            purpose: purpose.to_owned(),
            range: None,
        };
        self.queue(event);
    }

    /// Queues a `range_blocked` event for `range` (no contact).
    pub(crate) fn emit_range_blocked(&self, range: &str, purpose: &str) {
        if self.subscriptions.is_empty() {
            return;
        }
        self.queue(Event {
            kind: EventKind::RangeBlocked,
            timestamp: SystemTime::now(),
            channel: Channel::Mobile,
            contact: None,
            purpose: purpose.to_owned(),
            range: Some(range.to_owned()),
        });
    }

    fn queue(&self, event: Event) {
        let kind = event.kind;
        for subscription in &self.subscriptions {
            subscription.start();
            // Refusals (at the edge, or into a blocked number range) cost
            // a client nothing (no hash, no delivery), so a flood of them
            // could keep a slow subscriber's queue full and crowd out the
            // events that matter (`verified`, `attempts_exceeded`,
            // `delivery_failed`): they may fill at most half of it.
            let tx = &subscription.tx;
            let queued = tx.max_capacity() - tx.capacity();
            let crowding = matches!(kind, EventKind::RateLimited | EventKind::RangeBlocked)
                && (queued + 1) * 2 > tx.max_capacity();
            if crowding || tx.try_send(event.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    event = kind.name(),
                    sink = subscription.kind.label(),
                    "OTP event dropped: the subscriber's queue is full"
                );
                #[cfg(feature = "metrics")]
                metrics::counter!(
                    "tower_otp_events_dropped_total",
                    "sink" => subscription.kind.label()
                )
                .increment(1);
            }
        }
    }
}

/// What the builder collects for events: subscribers, the webhook, the
/// queue's capacity, whether contacts are unmasked.
#[derive(Default)]
pub(crate) struct EventSettings {
    pub(crate) hooks: Vec<Arc<dyn EventSink>>,
    #[cfg(feature = "webhooks")]
    pub(crate) webhook: Option<webhook::Webhook>,
    pub(crate) capacity: Option<usize>,
    pub(crate) unmasked: bool,
}

impl fmt::Debug for EventSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("EventSettings");
        s.field("hooks", &self.hooks.len());
        #[cfg(feature = "webhooks")]
        s.field("webhook", &self.webhook);
        s.field("capacity", &self.capacity)
            .field("unmasked", &self.unmasked)
            .finish()
    }
}

impl EventSettings {
    /// The bus: one queue per hook and one for the webhook.
    pub(crate) fn into_bus(self) -> Result<EventBus, crate::error::ConfigError> {
        let capacity = self.capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY);
        if capacity == 0 {
            return Err(crate::error::ConfigError::invalid(
                "event_queue",
                "a subscriber's queue holds at least one event",
            ));
        }
        #[cfg_attr(not(feature = "webhooks"), allow(unused_mut))]
        let mut sinks: Vec<(SinkKind, Arc<dyn EventSink>)> = self
            .hooks
            .into_iter()
            .map(|hook| (SinkKind::Hook, hook))
            .collect();
        #[cfg(feature = "webhooks")]
        if let Some(webhook) = self.webhook {
            sinks.push((SinkKind::Webhook, Arc::new(webhook.into_sink())));
        }
        Ok(EventBus::new(sinks, capacity, self.unmasked))
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-07T01:41:55.123Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_667_507_170, 344)), "2022-11-03T20:26:10.344Z");
        assert_eq!(rfc3339(at(4_107_542_399, 999)), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn the_json_body_has_type_timestamp_and_data() {
        let event = Event {
            kind: EventKind::Verified,
            timestamp: UNIX_EPOCH,
            channel: Channel::Email,
            contact: Some("a***@example.com".into()),
            purpose: "verify".into(),
            range: None,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"otp.verified","timestamp":"1970-01-01T00:00:00.000Z","data":{"channel":"email","contact":"a***@example.com","purpose":"verify"}}"#
        );
    }
}
