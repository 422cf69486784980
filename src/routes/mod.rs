//! The OTP routes, by action. A route is an [`Action`] on a [`Channel`];
//! each action declares its method, the body it reads and the limits it
//! draws from, and has its own file (`send.rs`, `verify.rs`) and one engine
//! method. Every route shares the same prelude, cheapest check first:
//! method (405), the edge limits (429, before the body is read), content
//! type (415), bounded body (413), JSON (400).
//!
//! Adding an action: a variant of [`Action`] with its [`ActionSpec`], its
//! path in [`RoutePaths`], a file here with its `serve`, and an engine
//! method.

mod body;
mod link;
pub(crate) mod paths;
mod send;
pub(crate) mod table;
mod verify;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tracing::Instrument;

pub(crate) use paths::RoutePaths;

use crate::{
    contact::{Channel, Contact, Region},
    engine::Engine,
    error::{ApiError, ErrorFormat},
    events::{EventBus, EventKind},
    gate::{extract::GrantChecker, proof::DEFAULT_PURPOSE},
    limit::{Limiter, Traffic, client_ip::TrustedProxies, client_ip::client_ip},
};

/// Type-erased error of a request body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Issue and deliver a code.
    Send,
    /// Check a code and grant.
    Verify,
    /// The email sign-in link: GET/HEAD a confirm page, POST to sign in.
    Link,
    /// The email "this wasn't me" link: GET/HEAD a confirm page, POST to
    /// cancel the code and block sends.
    Cancel,
}

/// What the body of an action's request must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// A JSON object (`application/json` or `application/*+json`).
    JsonObject,
    /// A link token: none for GET/HEAD; for POST, a form
    /// (`application/x-www-form-urlencoded`, field `t`) or a JSON object.
    LinkToken,
}

/// What an action declares: its method, its body and the limits it draws
/// from.
#[derive(Debug, Clone)]
pub(crate) struct ActionSpec {
    pub(crate) method: Method,
    pub(crate) body: BodyKind,
    pub(crate) traffic: Traffic,
}

impl Action {
    pub(crate) fn spec(self) -> ActionSpec {
        match self {
            Self::Send => ActionSpec {
                method: Method::POST,
                body: BodyKind::JsonObject,
                traffic: Traffic::Send,
            },
            Self::Verify => ActionSpec {
                method: Method::POST,
                body: BodyKind::JsonObject,
                traffic: Traffic::Verify,
            },
            // Also GET and HEAD (the confirm page): see `allows`.
            Self::Link | Self::Cancel => ActionSpec {
                method: Method::POST,
                body: BodyKind::LinkToken,
                traffic: Traffic::Verify,
            },
        }
    }
}

impl ActionSpec {
    /// Whether the action answers `method`.
    fn allows(&self, method: &Method) -> bool {
        *method == self.method
            || (self.body == BodyKind::LinkToken
                && (*method == Method::GET || *method == Method::HEAD))
    }
}

/// One OTP route: an action on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) action: Action,
    pub(crate) channel: Channel,
}

impl Route {
    /// Every route the layer serves (the last two only with email links
    /// on).
    pub(crate) const ALL: [Route; 6] = [
        Route::new(Action::Send, Channel::Email),
        Route::new(Action::Verify, Channel::Email),
        Route::new(Action::Send, Channel::Mobile),
        Route::new(Action::Verify, Channel::Mobile),
        Route::new(Action::Link, Channel::Email),
        Route::new(Action::Cancel, Channel::Email),
    ];

    pub(crate) const fn new(action: Action, channel: Channel) -> Self {
        Self { action, channel }
    }

    /// The route's configured path (without the prefix).
    pub(crate) fn path(self, paths: &RoutePaths) -> &str {
        match (self.action, self.channel) {
            (Action::Send, Channel::Email) => &paths.send_email,
            (Action::Verify, Channel::Email) => &paths.verify_email,
            (Action::Send, Channel::Mobile) => &paths.send_mobile,
            (Action::Verify, Channel::Mobile) => &paths.verify_mobile,
            (Action::Link, _) => &paths.link,
            (Action::Cancel, _) => &paths.cancel,
        }
    }

    /// The route's name in logs.
    fn name(self) -> &'static str {
        match (self.action, self.channel) {
            (Action::Send, Channel::Email) => "send_email",
            (Action::Verify, Channel::Email) => "verify_email",
            (Action::Send, Channel::Mobile) => "send_mobile",
            (Action::Verify, Channel::Mobile) => "verify_mobile",
            (Action::Link, _) => "email_link",
            (Action::Cancel, _) => "email_cancel",
        }
    }
}

/// The HTTP settings the routes read.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: std::time::Duration,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) default_region: Option<Region>,
    pub(crate) grant_ttl: std::time::Duration,
    pub(crate) cookie_secure: bool,
    pub(crate) error_format: ErrorFormat,
}

/// What the routes need: the flow, the limiter, the grant checker, the
/// event subscribers and the HTTP settings.
#[derive(Debug)]
pub(crate) struct RouteContext {
    pub(crate) engine: Arc<Engine>,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) checker: GrantChecker,
    pub(crate) events: EventBus,
    pub(crate) http: HttpSettings,
}

impl RouteContext {
    /// Queues an event for the subscribers (never waits).
    pub(crate) fn emit(
        &self,
        kind: EventKind,
        channel: Channel,
        contact: Option<&Contact>,
        purpose: &str,
    ) {
        self.events.emit(kind, channel, contact, purpose);
    }

    /// Queues the event a refusal of the flow stands for, if any.
    pub(crate) fn emit_refusal(&self, error: &ApiError, contact: &Contact, purpose: &str) {
        if let (ApiError::RangeBlocked { .. }, Contact::Mobile(mobile), Some(breaker)) =
            (error, contact, self.engine.sms_guard.breaker_settings())
        {
            // The range, never the contact (see `EventKind::RangeBlocked`).
            self.events
                .emit_range_blocked(&breaker.range_of(mobile), purpose);
            return;
        }
        let kind = match error {
            ApiError::RateLimited { .. } => EventKind::RateLimited,
            ApiError::OtpInvalid { .. } => EventKind::OtpInvalid,
            ApiError::AttemptsExceeded => EventKind::AttemptsExceeded,
            // The contact was read before the flow ran: from the flow,
            // an invalid address is the provider refusing the recipient.
            ApiError::DeliveryFailed | ApiError::InvalidEmail | ApiError::InvalidMobile => {
                EventKind::DeliveryFailed
            }
            _ => return,
        };
        self.emit(kind, contact.channel(), Some(contact), purpose);
    }
}

/// Serves one request on an OTP route.
pub(crate) async fn handle<B>(
    ctx: Arc<RouteContext>,
    route: Route,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // The body deadline counts from here: the server calls the service once
    // the request head is read.
    let deadline = tokio::time::Instant::now() + ctx.http.body_timeout;
    let shape = ctx.http.error_format.shape_for(request.headers());
    let spec = route.action.spec();
    if !spec.allows(request.method()) {
        let mut response = ApiError::MethodNotAllowed.render(shape);
        if spec.body == BodyKind::LinkToken {
            response.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD, POST"),
            );
        }
        return response;
    }
    let ip = client_ip(
        request.extensions(),
        request.headers(),
        &ctx.http.trusted_proxies,
    );
    let span = tracing::info_span!(
        "otp_request",
        route = route.name(),
        client_ip = %ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    );
    async move {
        // The edge limits come before reading the body, hashing or delivery.
        let rate_headers = match ctx
            .limiter
            .check_edge(spec.traffic, route.channel, ip)
            .await
        {
            Ok(headers) => headers,
            Err(refusal) => {
                let (error, headers) = *refusal;
                crate::audit::refused_at_edge(route.channel);
                ctx.emit(EventKind::RateLimited, route.channel, None, DEFAULT_PURPOSE);
                let mut response = match spec.body {
                    // A browser following an email link gets a page.
                    BodyKind::LinkToken => link::refusal(&ctx, request.headers(), &error),
                    BodyKind::JsonObject => error.render(shape),
                };
                response.headers_mut().extend(headers);
                return response;
            }
        };
        let (parts, body) = request.into_parts();
        let served = match spec.body {
            BodyKind::JsonObject => {
                let read = body::read_json_object(&parts.headers, body, ctx.http.body_limit);
                let read = tokio::time::timeout_at(deadline, read)
                    .await
                    .unwrap_or(Err(ApiError::RequestTimeout));
                match read {
                    Ok(object) => match route.action {
                        Action::Send => send::serve(&ctx, route.channel, &parts, &object).await,
                        Action::Verify => verify::serve(&ctx, route.channel, &parts, &object).await,
                        // Link actions read a link token, never a JSON object here.
                        Action::Link | Action::Cancel => Err(ApiError::Internal),
                    },
                    Err(error) => Err(error),
                }
            }
            BodyKind::LinkToken => Ok(link::serve(&ctx, route.action, parts, body, deadline).await),
        };
        let mut response = served.unwrap_or_else(|error| error.render(shape));
        if let Some(headers) = rate_headers {
            response.headers_mut().extend(headers);
        }
        response
    }
    .instrument(span)
    .await
}

/// Reads the contact field of `channel` from a request object.
/// The request's `"purpose"`: absent or `null` is the default; anything
/// else must be a registered name (400 `invalid_purpose` otherwise).
fn purpose_field(
    ctx: &RouteContext,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, ApiError> {
    match object.get("purpose") {
        None | Some(serde_json::Value::Null) => Ok(crate::purpose::DEFAULT_PURPOSE.to_owned()),
        Some(serde_json::Value::String(name)) => ctx
            .engine
            .settings
            .purposes
            .get(name)
            .map(str::to_owned)
            .ok_or(ApiError::InvalidPurpose),
        Some(_) => Err(ApiError::InvalidPurpose),
    }
}

fn contact_field(
    ctx: &RouteContext,
    channel: Channel,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<crate::contact::Contact, ApiError> {
    use crate::contact::{Contact, Email, InvalidContact, Mobile};
    let (field, wrong): (&'static str, fn() -> ApiError) = match channel {
        Channel::Email => ("email", || ApiError::InvalidEmail),
        Channel::Mobile => ("mobile", || ApiError::InvalidMobile),
    };
    let raw = body::string_field(object, field, wrong)?;
    match channel {
        Channel::Email => Email::parse(raw).map(Contact::Email),
        Channel::Mobile => Mobile::parse(raw, ctx.http.default_region).map(Contact::Mobile),
    }
    .map_err(|e| match e {
        InvalidContact::Email => ApiError::InvalidEmail,
        InvalidContact::CannotReceiveSms => ApiError::CannotReceiveSms,
        _ => ApiError::InvalidMobile,
    })
}
