//! The send action: issue a code for the contact and deliver it.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{RouteContext, contact_field};
use crate::{
    contact::Channel,
    error::{ApiError, json_response},
    events::EventKind,
};

pub(super) async fn serve(
    ctx: &RouteContext,
    channel: Channel,
    object: &Map<String, Value>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let contact = contact_field(ctx, channel, object)?;
    let sent = ctx
        .engine
        .send(&contact)
        .await
        .inspect_err(|error| ctx.emit_refusal(error, &contact))?;
    ctx.emit(EventKind::Sent, channel, Some(&contact));
    // Enumeration-safe mode delivers after answering, and test contacts
    // are sent nothing: only here is an answer a delivery.
    let test_contact = ctx
        .engine
        .test_contacts
        .as_ref()
        .is_some_and(|t| t.contains(&contact));
    if !ctx.engine.settings.enumeration_safe && !test_contact {
        ctx.emit(EventKind::Delivered, channel, Some(&contact));
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
