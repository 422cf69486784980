//! The verify action: check the code and answer with a grant (JSON and
//! cookie) that adds the contact to what the caller already proved.

use bytes::Bytes;
use http::{Response, StatusCode, header, request::Parts};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{RouteContext, body::string_field, contact_field, purpose_field};
use crate::{
    code,
    contact::{Channel, Contact},
    error::{ApiError, json_response},
    events::EventKind,
    gate::{
        codec::{self, VerifiedToken},
        extract::VerifiedContact,
        location::grant_cookie,
    },
};

pub(super) async fn serve(
    ctx: &RouteContext,
    channel: Channel,
    parts: &Parts,
    object: &Map<String, Value>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let contact = contact_field(ctx, channel, object)?;
    let purpose = purpose_field(ctx, object)?;
    let length = ctx.engine.settings.code_length;
    let candidate = string_field(object, "otp", || ApiError::InvalidOtpFormat { length })?;
    if !code::is_well_formed(candidate, length) {
        return Err(ApiError::InvalidOtpFormat { length });
    }
    let held = ctx
        .checker
        .codec()
        .find_in_headers(&parts.headers, ctx.checker.location());
    let granted = ctx
        .engine
        .verify(&contact, candidate, &purpose, held.clone())
        .await
        .inspect_err(|error| ctx.emit_refusal(error, &contact, &purpose))?;
    Ok(grant_answer(ctx, &contact, &purpose, held, granted).await)
}

/// The answer to a successful verify (code or sign-in link): the held
/// grant claimed, event `verified`, the JSON body and the grant cookie.
pub(super) async fn grant_answer(
    ctx: &RouteContext,
    contact: &Contact,
    purpose: &str,
    held: Option<VerifiedContact>,
    mut granted: VerifiedToken,
) -> Response<Full<Bytes>> {
    let channel = contact.channel();
    // Single-use grants: the held grant is claimed (spent) only once the
    // code is right, so a typo does not burn it; if it was spent already,
    // the new grant carries nothing of it.
    if let Some(grant) = &held
        && !ctx.checker.claim_held(grant).await
    {
        granted = ctx.checker.codec().issue(contact, purpose, None);
    }
    ctx.emit(EventKind::Verified, channel, Some(contact), purpose);

    // What the grant now proves for this purpose.
    let mut verified = Map::new();
    for proof in granted
        .contact
        .proofs()
        .iter()
        .filter(|p| p.purpose == purpose)
    {
        verified
            .entry(proof.contact.channel().as_str())
            .or_insert_with(|| json!(proof.contact.as_str()));
    }
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "status": "success",
            "message": format!("Your {} is verified.", contact.channel()),
            "verified": verified,
            "purpose": purpose,
            "token": granted.token,
        }),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        codec::set_cookie(
            grant_cookie(ctx.http.cookie_secure),
            &granted.token,
            ctx.http.grant_ttl,
            ctx.http.cookie_secure,
        ),
    );
    response
}
