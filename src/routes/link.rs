//! The email link actions: the sign-in link and the "this wasn't me"
//! cancel link (see [`crate::link`]).
//!
//! GET and HEAD answer a confirm page and touch nothing (no store, no
//! failure budget): mail scanners that follow every link spend nothing. The
//! page's POST does the work. The edge limits (per client IP) ran before
//! this, as for every route; a sign-in POST then checks the token against
//! the stored record (a keyed digest, in constant time; no hashing), the
//! device, the contact rules, takes the code through the failure-budget
//! lock check and spends it atomically.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};
use http_body::Body;
use http_body_util::Full;
use serde_json::json;

use super::{Action, BoxError, RouteContext, body, verify};
use crate::{
    audit::{self, Outcome},
    contact::{Channel, Contact},
    error::{ApiError, json_response},
    events::EventKind,
    limit::Traffic,
    link::{Checked, Kind, Links, Token, page},
    store::{Attempt, StoreError, StoreKey, deadline},
    time::ceil_secs,
};

/// Serves a link route: the confirm page (GET, HEAD) or the action (POST).
pub(super) async fn serve<B>(
    ctx: &Arc<RouteContext>,
    action: Action,
    parts: Parts,
    body: B,
    deadline: tokio::time::Instant,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let kind = match action {
        Action::Cancel => Kind::Cancel,
        _ => Kind::SignIn,
    };
    let Some(links) = ctx.engine.links.clone() else {
        // The table has no link route without links.
        return ApiError::Internal.render(ctx.http.error_format.shape_for(&parts.headers));
    };
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let mut response = confirm_page(ctx, kind, &parts);
        if parts.method == Method::HEAD {
            *response.body_mut() = Full::default();
        }
        return response;
    }
    let json = wants_json(&parts.headers);
    if !same_site(&parts.headers, links.settings.base_url()) {
        audit::record_channel(Outcome::Rejected, Channel::Email);
        let error = ApiError::CrossSite;
        return if json {
            error.render(ctx.http.error_format.shape_for(&parts.headers))
        } else {
            error_page(&error)
        };
    }
    let read = body::read_link_token(&parts.headers, body, ctx.http.body_limit);
    let read = tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout));
    // All of the action's store calls share one store timeout, as a
    // verify's do.
    let outcome = match read {
        Ok(text) => {
            deadline::scope(async {
                match kind {
                    Kind::SignIn => sign_in(ctx, &links, &parts, text.as_deref(), json).await,
                    Kind::Cancel => cancel(ctx, &links, text.as_deref(), json).await,
                }
            })
            .await
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(response) => response,
        Err(error) if json => error.render(ctx.http.error_format.shape_for(&parts.headers)),
        Err(error) => error_page(&error),
    }
}

/// A refusal before the action ran (the edge limits): a page for a
/// browser, the error body for a JSON client.
pub(super) fn refusal(
    ctx: &RouteContext,
    headers: &http::HeaderMap,
    error: &ApiError,
) -> Response<Full<Bytes>> {
    if wants_json(headers) {
        error.render(ctx.http.error_format.shape_for(headers))
    } else {
        error_page(error)
    }
}

/// The confirm page for a well-formed token; the "cannot be used" page
/// (400) otherwise. Reads nothing from the store.
fn confirm_page(ctx: &RouteContext, kind: Kind, parts: &Parts) -> Response<Full<Bytes>> {
    let token = parts
        .uri
        .query()
        .and_then(body::query_token)
        .filter(|t| Token::parse(t, kind).is_some());
    match token {
        Some(token) => page::html(
            StatusCode::OK,
            page::confirm(
                kind,
                ctx.engine.dispatch.app_name(),
                &relative_action(parts.uri.path()),
                token,
            ),
        ),
        None => page::html(StatusCode::BAD_REQUEST, page::invalid_link()),
    }
}

/// The confirm form's action: this page's own path, written relative to
/// it (`./` for `/otp/link/`), so that the browser posts to the path it
/// fetched the page from. The path this handler sees lacks any prefix that
/// axum's `nest` or a reverse proxy stripped; an absolute action would post
/// past it.
fn relative_action(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or_default();
    format!("./{last}")
}

/// Whether a link POST came from the link's own confirm page, or from no
/// web page at all (a script, curl): a form on another site must not sign
/// the victim's browser in to an account of the attacker's (login CSRF;
/// the `SameSite=Lax` grant cookie would be set by the 303). Browsers send
/// `Sec-Fetch-Site`; older ones at least `Origin` on a cross-site POST.
fn same_site(headers: &http::HeaderMap, base_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| origin.eq_ignore_ascii_case(origin_of(base_url))),
    }
}

/// `scheme://host[:port]` of a base URL.
fn origin_of(base_url: &str) -> &str {
    let after_scheme = base_url.find("://").map_or(0, |i| i + 3);
    match base_url[after_scheme..].find('/') {
        Some(i) => &base_url[..after_scheme + i],
        None => base_url,
    }
}

/// Whether the client asked for JSON (`Accept` naming a JSON type, or a
/// JSON body): a verify-shaped answer instead of a page or redirect.
fn wants_json(headers: &http::HeaderMap) -> bool {
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| item.split(';').next())
        .map(str::trim)
        .any(|media| {
            media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case(crate::error::PROBLEM_JSON)
        });
    let sends_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    accepts || sends_json
}

/// A sign-in link POST.
async fn sign_in(
    ctx: &RouteContext,
    links: &Links,
    parts: &Parts,
    text: Option<&str>,
    json: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let engine = &ctx.engine;
    let Presented {
        token,
        purpose,
        contact_key,
        code_key,
        stored,
    } = present(ctx, text, Kind::SignIn).await?;
    let device = links.device_in(&parts.headers);
    let (checked, salt) = links.check(&token, stored.as_deref(), device.as_ref());
    let (email, salt) = match (checked, salt) {
        (Checked::Valid(email), Some(salt)) => (email, salt),
        (Checked::WrongDevice, _) => {
            audit::record_channel(Outcome::Rejected, Channel::Email);
            return Err(ApiError::DeviceMismatch);
        }
        _ if stored.is_some() => return Err(count_failure(ctx, &contact_key).await),
        _ => return Err(no_record()),
    };
    let contact = Contact::Email(email);
    let refuse = |error: ApiError, outcome: Outcome| {
        audit::record(outcome, &contact);
        ctx.emit_refusal(&error, &contact, &purpose);
        error
    };
    // The contact and country rules, as for a verify.
    if let Err(error) = engine
        .limiter
        .check_contact(Traffic::Verify, &contact, contact_key.as_str())
        .await
    {
        return Err(refuse(error, Outcome::RateLimited));
    }
    // The failure-budget lock check (and one attempt: the code is spent
    // right after, or was replaced).
    match engine
        .store
        .begin_attempt(&code_key, engine.settings.max_attempts)
        .await
        .map_err(|e| store_error(&e))?
    {
        Attempt::Locked { retry_after } => {
            let error = ApiError::RateLimited {
                retry_after: ceil_secs(retry_after).max(1),
            };
            return Err(refuse(error, Outcome::RateLimited));
        }
        Attempt::Granted { record, .. } if record.salt == salt => {}
        _ => {
            forget_link(ctx, &code_key).await;
            return Err(refuse(ApiError::OtpExpired, Outcome::OtpExpired));
        }
    }
    // Single use: only the caller that deletes the code succeeds; the same
    // operation resets the failure budget.
    let consumed = engine
        .store
        .consume_code(&code_key, &salt)
        .await
        .map_err(|e| store_error(&e))?;
    forget_link(ctx, &code_key).await;
    if !consumed {
        return Err(refuse(ApiError::OtpExpired, Outcome::OtpExpired));
    }
    audit::record(Outcome::Verified, &contact);
    let held = ctx
        .checker
        .codec()
        .find_in_headers(&parts.headers, ctx.checker.location());
    let granted = engine.grants.issue(&contact, &purpose, held.as_ref());
    let answer = verify::grant_answer(ctx, &contact, &purpose, held, granted).await;
    if json {
        return Ok(answer);
    }
    let mut response = page::html(StatusCode::SEE_OTHER, String::new());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Ok(location) = HeaderValue::from_str(links.settings.redirect_to()) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = answer.headers().get(header::SET_COOKIE) {
        headers.insert(header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}

/// A cancel link POST.
async fn cancel(
    ctx: &RouteContext,
    links: &Links,
    text: Option<&str>,
    json: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let engine = &ctx.engine;
    let Presented {
        token,
        purpose,
        contact_key,
        code_key,
        stored,
    } = present(ctx, text, Kind::Cancel).await?;
    let Checked::Valid(email) = links.check(&token, stored.as_deref(), None).0 else {
        return Err(if stored.is_some() {
            count_failure(ctx, &contact_key).await
        } else {
            no_record()
        });
    };
    let contact = Contact::Email(email);
    let block = links.settings.cancel_block_for();
    engine
        .store
        .delete_code(&code_key)
        .await
        .map_err(|e| store_error(&e))?;
    forget_link(ctx, &code_key).await;
    engine
        .store
        .block_sends(&contact_key, block)
        .await
        .map_err(|e| store_error(&e))?;
    audit::record(Outcome::Cancelled, &contact);
    ctx.emit(
        EventKind::Cancelled,
        Channel::Email,
        Some(&contact),
        &purpose,
    );
    if json {
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "status": "success",
                "message": "The code was cancelled.",
                "blocked_for": block.as_secs(),
            }),
        ));
    }
    Ok(page::html(
        StatusCode::OK,
        page::cancelled(block.as_secs().div_ceil(60)),
    ))
}

/// A POSTed token with what the store holds for it.
struct Presented {
    token: Token,
    purpose: String,
    /// The contact's key (failure budget, send block).
    contact_key: StoreKey,
    /// The code slot's key (the code and its link record).
    code_key: StoreKey,
    /// The live link record of the slot, if any.
    stored: Option<Vec<u8>>,
}

/// Parses the token of `kind` in `text` and reads its slot's link record.
async fn present(
    ctx: &RouteContext,
    text: Option<&str>,
    kind: Kind,
) -> Result<Presented, ApiError> {
    let (token, purpose) = parse(ctx, text, kind)?;
    let contact_key = token.contact_key();
    let code_key = contact_key.with_purpose(&purpose);
    let stored = ctx
        .engine
        .store
        .get_link(&code_key)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(Presented {
        token,
        purpose,
        contact_key,
        code_key,
        stored,
    })
}

/// The token of `kind` in `text` and its registered purpose; anything else
/// is `otp_expired` (a link that cannot be used), counted nowhere: it names
/// no contact.
fn parse(ctx: &RouteContext, text: Option<&str>, kind: Kind) -> Result<(Token, String), ApiError> {
    let token = text.and_then(|t| Token::parse(t, kind)).ok_or_else(|| {
        audit::record_channel(Outcome::OtpExpired, Channel::Email);
        ApiError::OtpExpired
    })?;
    let purpose = ctx
        .engine
        .settings
        .purposes
        .get(token.purpose())
        .map(str::to_owned)
        .ok_or_else(|| {
            audit::record_channel(Outcome::OtpExpired, Channel::Email);
            ApiError::OtpExpired
        })?;
    Ok((token, purpose))
}

/// A well-formed token with no live link record behind it (used, expired,
/// or made up): `otp_expired`, counted nowhere. Counting it would let
/// anyone write failure records for made-up digests (filling the memory
/// store's table, pushing out a victim's count).
fn no_record() -> ApiError {
    audit::record_channel(Outcome::OtpExpired, Channel::Email);
    ApiError::OtpExpired
}

/// A well-formed token that does not match the live link record of its
/// contact (a link the newer code replaced, or a forgery): counted against
/// the contact's failure budget like a wrong code. `otp_expired`, or `rate_limited` when a lock was already
/// in force.
async fn count_failure(ctx: &RouteContext, contact_key: &StoreKey) -> ApiError {
    audit::record_channel(Outcome::OtpExpired, Channel::Email);
    let Some(budget) = &ctx.engine.settings.failure_budget else {
        return ApiError::OtpExpired;
    };
    match ctx.engine.store.record_failure(contact_key, budget).await {
        Ok(outcome) if outcome.was_locked => ApiError::RateLimited {
            retry_after: outcome.locked_for.map_or(1, |l| ceil_secs(l).max(1)),
        },
        Ok(_) => ApiError::OtpExpired,
        Err(error) => store_error(&error),
    }
}

/// Deletes a link record that can no longer be used (best effort: it
/// expires with its code anyway).
async fn forget_link(ctx: &RouteContext, code_key: &StoreKey) {
    if let Err(error) = ctx.engine.store.delete_link(code_key).await {
        tracing::warn!(error = %error, "could not delete a used email link record");
    }
}

fn store_error(error: &StoreError) -> ApiError {
    // The source chain goes to the log only.
    tracing::error!(error = %error, source = ?std::error::Error::source(error), "OTP store failed");
    if error.is_unavailable() {
        audit::record_channel(Outcome::StoreUnavailable, Channel::Email);
        ApiError::StoreUnavailable
    } else {
        ApiError::Internal
    }
}

/// The page answering a refused link POST (a browser's form post).
fn error_page(error: &ApiError) -> Response<Full<Bytes>> {
    let html = match error {
        ApiError::OtpExpired => page::invalid_link(),
        ApiError::DeviceMismatch => page::wrong_device(),
        ApiError::RateLimited { retry_after } => page::message(
            "Too many attempts",
            &format!("Please wait {retry_after} seconds and try again."),
        ),
        other => page::message("Something went wrong", &other.message()),
    };
    let mut response = page::html(error.status(), html);
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
