//! The send action: issue a code for the contact and deliver it.

use bytes::Bytes;
use http::{Response, StatusCode, header, request::Parts};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{RouteContext, contact_field, purpose_field};
use crate::{
    contact::{Channel, Contact},
    delivery::MobileChannel,
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
    let mobile_channel = match contact {
        Contact::Mobile(_) => mobile_channel(ctx, object)?,
        Contact::Email(_) => MobileChannel::default(),
    };
    // Same-device email links: the browser's signed device id (a new one
    // unless it carries a valid one), bound into the link record.
    let device = match (&ctx.engine.links, &contact) {
        (Some(links), Contact::Email(_)) if links.settings.is_same_device() => Some(
            links
                .device_in(&parts.headers)
                .unwrap_or_else(|| links.new_device()),
        ),
        _ => None,
    };
    let options = SendOptions {
        languages: Languages::for_request(locale, &parts.headers),
        purpose,
        channel: mobile_channel,
        device,
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
    let mut body = json!({
        "status": "success",
        "message": format!("A verification code was sent to your {}.", contact.channel()),
        "expires_in": sent.expires_in,
        "resend_in": sent.resend_in,
    });
    if let Contact::Mobile(_) = contact {
        body["channel"] = json!(sent.channel.as_str());
    }
    let mut response = json_response(StatusCode::OK, &body);
    if let (Some(links), Some(device)) = (&ctx.engine.links, &options.device) {
        response.headers_mut().insert(
            header::SET_COOKIE,
            crate::gate::codec::set_cookie(
                links.device_cookie(),
                &links.device_cookie_value(device),
                ctx.engine
                    .settings
                    .code_ttl
                    .max(std::time::Duration::from_secs(60)),
                links.cookie_secure,
            ),
        );
    }
    Ok(response)
}

/// The `"channel"` of a mobile send: absent or `null` is SMS; anything but
/// `"sms"` or `"whatsapp"`, or a channel nothing here can send on, is
/// `invalid_channel`.
fn mobile_channel(
    ctx: &RouteContext,
    object: &Map<String, Value>,
) -> Result<MobileChannel, ApiError> {
    let channel = match object.get("channel") {
        None | Some(Value::Null) => return Ok(MobileChannel::Sms),
        Some(Value::String(name)) => {
            MobileChannel::from_name(name).ok_or(ApiError::InvalidChannel)?
        }
        Some(_) => return Err(ApiError::InvalidChannel),
    };
    let configured = match ctx.engine.owners.mobile_provider_ref() {
        Some(verifier) => verifier.supports(channel),
        None => ctx.engine.dispatch.can_send_on(channel),
    };
    if configured {
        Ok(channel)
    } else {
        Err(ApiError::InvalidChannel)
    }
}
