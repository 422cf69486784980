//! The send action: issue a code for the contact and deliver it.

use bytes::Bytes;
use http::{Response, StatusCode, request::Parts};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{RouteContext, contact_field, purpose_field};
use crate::{
    contact::Channel,
    engine::SendOptions,
    error::{ApiError, json_response},
    events::EventKind,
    language::Languages,
};

pub(super) async fn serve(
    ctx: &RouteContext,
    channel: Channel,
    parts: &Parts,
    object: &Map<String, Value>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let contact = contact_field(ctx, channel, object)?;
    let purpose = purpose_field(ctx, object)?;
    // An unknown or malformed "locale" is ignored: Accept-Language, then
    // English, decide.
    let locale = object.get("locale").and_then(Value::as_str);
    let options = SendOptions {
        languages: Languages::for_request(locale, &parts.headers),
        purpose,
    };
    let sent = ctx
        .engine
        .send(&contact, &options)
        .await
        .inspect_err(|error| ctx.emit_refusal(error, &contact, &options.purpose))?;
    ctx.emit(EventKind::Sent, channel, Some(&contact), &options.purpose);
    // Enumeration-safe mode delivers after answering, and test contacts
    // are sent nothing: only here is an answer a delivery.
    let test_contact = ctx
        .engine
        .test_contacts
        .as_ref()
        .is_some_and(|t| t.contains(&contact));
    if !ctx.engine.settings.enumeration_safe && !test_contact {
        ctx.emit(
            EventKind::Delivered,
            channel,
            Some(&contact),
            &options.purpose,
        );
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "status": "success",
            "message": format!("A verification code was sent to your {}.", contact.channel()),
            "expires_in": sent.expires_in,
            "resend_in": sent.resend_in,
        }),
    ))
}
