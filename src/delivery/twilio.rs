//! Twilio: [`TwilioVerify`] (Twilio generates, sends and checks the code)
//! and [`TwilioMessaging`] (our code, sent as an SMS or a WhatsApp message).
//!
//! Both use HTTP Basic auth with the account SID and auth token and send
//! form-encoded bodies (Twilio API reference):
//!
//! - Verify, start: `POST {verify base}/v2/Services/{ServiceSid}/Verifications`
//!   with `To`, `Channel=sms` (or `Channel=whatsapp`); `201` with
//!   `"status":"pending"`.
//! - Verify, check: `POST {verify base}/v2/Services/{ServiceSid}/VerificationCheck`
//!   with `To`, `Code`; `200` whose `status` is `approved` when the code is
//!   right (`pending` when it is wrong). Once a verification is approved,
//!   expired or out of attempts Twilio deletes it and answers `404`
//!   (error 20404).
//! - Messaging: `POST {api base}/2010-04-01/Accounts/{AccountSid}/Messages.json`
//!   with `To`, `From` (or `MessagingServiceSid`), `Body`; `201` with
//!   `"status":"queued"`.
//! - WhatsApp through Messaging: the same request with
//!   `To=whatsapp:+E164` and `From=whatsapp:<sender>` (the sender set with
//!   [`TwilioMessaging::whatsapp_from`], `TWILIO_WHATSAPP_FROM`); without a
//!   WhatsApp sender, WhatsApp is not offered (`invalid_channel`).
//!
//! ## What a WhatsApp code message carries
//!
//! WhatsApp lets a business send free-form text only inside the 24-hour
//! window after the user last wrote to it; a business-initiated message
//! outside it must be a template approved by WhatsApp, sent with
//! `ContentSid` (and `ContentVariables`), or Twilio refuses it with error
//! 63016. A one-time code is nearly always business-initiated, so:
//!
//! - with a Content SID ([`TwilioMessaging::whatsapp_content_sid`],
//!   `TWILIO_WHATSAPP_CONTENT_SID`; a `whatsapp/authentication` template,
//!   whose single variable is the code) the message is sent as
//!   `ContentSid=HX…`, `ContentVariables={"1":"<code>"}` and no `Body`.
//!   This is what production needs;
//! - without one, the rendered `otp` SMS template is sent as a plain
//!   `Body` (without the WebOTP / app-hash lines, which are for SMS only).
//!   That works in Twilio's WhatsApp sandbox and inside the 24-hour window
//!   only; outside it Twilio answers 63016, a permanent WhatsApp failure
//!   (below).
//!
//! Twilio Verify uses its own approved WhatsApp authentication template
//! (`Channel=whatsapp`), so it needs neither.
//!
//! Errors carry `{"code":21211,"message":"…","more_info":"…","status":400}`.
//! How they are read:
//!
//! | answer | meaning |
//! |---|---|
//! | 21211 "Invalid 'To' Phone Number", 21614 "'To' number is not a valid mobile number" | invalid recipient: the route answers `invalid_mobile` (no fallback: SMS would be refused too) |
//! | Verify 60205 "SMS is not supported by landline phone number" | invalid recipient, `invalid_mobile` (a landline: falling back to SMS is pointless) |
//! | WhatsApp: 63003 "Channel could not find To address" | the number is not a WhatsApp user: permanent WhatsApp failure¹ |
//! | WhatsApp: 63016 "Failed to send freeform message because you are outside the allowed window" | a business-initiated message needs an approved template: permanent WhatsApp failure¹ |
//! | WhatsApp: 63024 "Invalid message recipient" | permanent WhatsApp failure¹ |
//! | WhatsApp: 63032 "We cannot send this message to this user because of a WhatsApp limitation" | WhatsApp will not deliver to this user: permanent WhatsApp failure¹ |
//! | WhatsApp: 21408 "Permission to send an SMS has not been enabled for the region indicated by the 'To' number" | permanent WhatsApp failure¹ |
//! | WhatsApp: 21612 "The 'To' phone number is not currently reachable via SMS" | not reachable on that channel: permanent WhatsApp failure¹ |
//! | WhatsApp, Verify: 60223 "Delivery channel disabled" | WhatsApp is turned off on the Verify Service: permanent WhatsApp failure¹ |
//! | WhatsApp, Verify: 68008 "Verify WhatsApp channel not configured" | Twilio itself suggests SMS as the fallback: permanent WhatsApp failure¹ |
//! | 21610 "Attempt to send to unsubscribed recipient" | the user opted out: permanent, and never followed by the SMS fallback (reaching them on another channel would disregard the opt-out) |
//! | check: 20404 (a 404 without it is a failure) | [`ProviderCheck::Expired`] |
//! | check: 60202 (max check attempts; any other 429 is transient) | [`ProviderCheck::TooManyAttempts`] |
//! | check: `status` `max_attempts_reached` | [`ProviderCheck::TooManyAttempts`] |
//! | check: `status` `expired` / `canceled` | [`ProviderCheck::Expired`] |
//! | connection refused, 429, 503 | transient, nothing sent: retried (after `Retry-After` if given) |
//! | timeout, connection lost, 500, 502, 504 | transient, may have been sent: **not** retried (an SMS could go out twice) |
//! | other 4xx | permanent (on WhatsApp the dispatcher reads every permanent failure but 21610 as a permanent WhatsApp failure¹) |
//!
//! ¹ A permanent WhatsApp failure answers 502 `delivery_failed`, or, with
//! `OTP_WHATSAPP_FALLBACK_SMS`, is sent once by SMS. The WhatsApp codes
//! above are read so whatever the HTTP status. Titles are Twilio's, from
//! its error dictionary (`twilio.com/docs/api/errors/<code>`) and its
//! "WhatsApp error code mapping" (WhatsApp's own codes to Twilio's).
//!
//! Only a failure that proves nothing was sent ever leads to the SMS
//! fallback: a timeout or a 5xx may mean the WhatsApp message went out.
//! Most WhatsApp delivery errors (63003, 63016, 63024...) arrive later,
//! in Twilio's status callback, when the request itself was accepted
//! (`201 queued`); the crate does not read status callbacks, so those
//! reach the user as a code that never arrives (they may ask again, by
//! SMS). Twilio's WhatsApp error codes are listed in its error dictionary
//! (`63xxx`, "Channels") and its table of WhatsApp-to-Twilio error codes.
//!
//! The engine counts attempts itself in Verify mode too, so `attempts_left`
//! is always reported and our limit applies even if Twilio's is higher.
//!
//! ```
//! use tower_otp::{Otp, delivery::{TwilioMessaging, TwilioVerify}};
//!
//! let verify = TwilioVerify::new("ACxxxxxxxx", "auth-token", "VAxxxxxxxx");
//! assert!(!format!("{verify:?}").contains("auth-token"));
//! let otp = Otp::builder().sms_verifier(verify);
//!
//! let messaging = TwilioMessaging::new("ACxxxxxxxx", "auth-token", "+14155550100")
//!     .whatsapp_from("+14155550199")
//!     .whatsapp_content_sid("HXxxxxxxxx");
//! assert!(!format!("{messaging:?}").contains("auth-token"));
//! let otp = Otp::builder().sms_sender(messaging);
//! ```

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    DeliveryError, MobileChannel, ProviderCheck, SmsMessage, SmsSender, SmsVerifier,
    http::{self, ProviderError},
};
use crate::{Secret, contact::Mobile};

/// Twilio Verify's API origin.
pub const TWILIO_VERIFY_BASE_URL: &str = "https://verify.twilio.com";
/// Twilio's REST API origin (Programmable Messaging).
pub const TWILIO_API_BASE_URL: &str = "https://api.twilio.com";

/// Account SID and auth token, shared by both modes.
#[derive(Clone)]
struct Account {
    client: reqwest::Client,
    sid: String,
    token: Secret,
    timeout: Duration,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("sid", &self.sid)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A Twilio error body.
#[derive(Debug, Default, Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<u32>,
}

/// The fields of a verification (check) answer we read.
#[derive(Debug, Deserialize)]
struct VerificationAnswer {
    status: String,
}

impl Account {
    fn new(sid: String, token: Secret) -> Self {
        Self {
            client: http::client(),
            sid,
            token,
            timeout: http::DEFAULT_TIMEOUT,
        }
    }

    /// Posts `form` to `url`: the success body, or Twilio's refusal.
    ///
    /// A 2xx whose body cannot be read is still a success (empty body):
    /// Twilio took the request, so it must not be sent again.
    async fn post(
        &self,
        url: String,
        form: &[(&str, &str)],
    ) -> Result<Result<String, Refusal>, DeliveryError> {
        let response = self
            .client
            .post(url)
            .basic_auth(&self.sid, Some(self.token.expose()))
            .timeout(self.timeout)
            .form(form)
            .send()
            .await
            .map_err(http::transport_failure)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response.text().await.unwrap_or_default()));
        }
        let retry_after = http::retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let code = serde_json::from_str::<TwilioError>(&body)
            .unwrap_or_default()
            .code;
        Ok(Err(Refusal {
            status: status.as_u16(),
            code,
            body,
            retry_after,
        }))
    }
}

/// A non-2xx answer from Twilio.
#[derive(Debug)]
struct Refusal {
    status: u16,
    /// Twilio's error code, when the body has one.
    code: Option<u32>,
    body: String,
    /// The wait its `Retry-After` header asks for.
    retry_after: Option<Duration>,
}

impl Account {
    /// `GET url` with the account's credentials: ready when it answers 2xx.
    async fn ready(&self, url: String) -> Result<(), DeliveryError> {
        let request = self
            .client
            .get(url)
            .basic_auth(&self.sid, Some(self.token.expose()))
            .timeout(self.timeout);
        http::ready_check(request, "Twilio").await
    }
}

/// Twilio error codes that say a WhatsApp message cannot reach this user
/// (see the module table): permanent, whatever the HTTP status.
const WHATSAPP_PERMANENT: &[u32] = &[63003, 63016, 63024, 63032, 21408, 21612, 60223, 68008];

/// The usual reading of a Twilio error (see the module table).
fn failure(refusal: &Refusal) -> DeliveryError {
    let error = ProviderError::new("Twilio", refusal.status, &refusal.body);
    match refusal.code {
        // A landline (Verify 60205) cannot receive SMS either.
        Some(21211 | 21614 | 60205) => DeliveryError::invalid_recipient(error),
        _ => http::status_failure(error, refusal.retry_after),
    }
}

/// The reading of a Twilio error for a request on `channel`: on WhatsApp,
/// the codes of [`WHATSAPP_PERMANENT`] are permanent failures (which the
/// SMS fallback may follow); an opted-out user (21610) is not sent the
/// message on another channel.
fn failure_on(channel: MobileChannel, refusal: &Refusal) -> DeliveryError {
    match refusal.code {
        Some(21610) => failure(refusal).without_other_channel(),
        Some(code) if channel == MobileChannel::WhatsApp && WHATSAPP_PERMANENT.contains(&code) => {
            DeliveryError::permanent(ProviderError::new("Twilio", refusal.status, &refusal.body))
        }
        _ => failure(refusal),
    }
}

/// Twilio Verify: Twilio generates, sends and checks the code (see the
/// [module docs](self)).
#[cfg_attr(docsrs, doc(cfg(feature = "twilio")))]
#[derive(Debug, Clone)]
pub struct TwilioVerify {
    account: Account,
    service_sid: String,
    base_url: String,
}

impl TwilioVerify {
    /// Twilio Verify with the account SID, auth token and the Verify
    /// Service SID (`VA…`). Timeout 10 s; base URL
    /// [`TWILIO_VERIFY_BASE_URL`].
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<Secret>,
        service_sid: impl Into<String>,
    ) -> Self {
        Self {
            account: Account::new(account_sid.into(), auth_token.into()),
            service_sid: service_sid.into(),
            base_url: TWILIO_VERIFY_BASE_URL.to_owned(),
        }
    }

    /// The Verify API origin, e.g. `http://127.0.0.1:8080` for a local mock;
    /// the crate appends `/v2/Services/…`.
    pub fn base_url(mut self, origin: impl Into<String>) -> Self {
        self.base_url = http::origin(origin);
        self
    }

    /// Time allowed for one request. Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.account.timeout = timeout;
        self
    }

    fn url(&self, resource: &str) -> String {
        format!(
            "{}/v2/Services/{}/{resource}",
            self.base_url, self.service_sid
        )
    }
}

#[async_trait]
impl SmsVerifier for TwilioVerify {
    fn provider_name(&self) -> &'static str {
        "twilio_verify"
    }

    /// A base URL over `http://` to a host that is not this machine.
    fn cleartext_host(&self) -> Option<String> {
        http::cleartext_host(&self.base_url)
    }

    async fn start(&self, to: &Mobile) -> Result<(), DeliveryError> {
        self.start_on(to, MobileChannel::Sms).await
    }

    /// `Channel=sms` or `Channel=whatsapp` (Verify sends WhatsApp codes
    /// with its own approved template).
    async fn start_on(&self, to: &Mobile, channel: MobileChannel) -> Result<(), DeliveryError> {
        let form = [("To", to.as_str()), ("Channel", channel.as_str())];
        match self.account.post(self.url("Verifications"), &form).await? {
            Ok(_) => Ok(()),
            Err(refusal) => Err(failure_on(channel, &refusal)),
        }
    }

    /// SMS and WhatsApp.
    fn supports(&self, channel: MobileChannel) -> bool {
        matches!(channel, MobileChannel::Sms | MobileChannel::WhatsApp)
    }

    async fn check(&self, to: &Mobile, code: &str) -> Result<ProviderCheck, DeliveryError> {
        let form = [("To", to.as_str()), ("Code", code)];
        match self
            .account
            .post(self.url("VerificationCheck"), &form)
            .await?
        {
            Ok(body) => {
                let answer: VerificationAnswer = serde_json::from_str(&body).map_err(|e| {
                    DeliveryError::transient(format!("unreadable Twilio Verify answer: {e}"))
                })?;
                Ok(match answer.status.as_str() {
                    "approved" => ProviderCheck::Approved,
                    "max_attempts_reached" => ProviderCheck::TooManyAttempts,
                    "expired" | "canceled" | "deleted" => ProviderCheck::Expired,
                    _ => ProviderCheck::Rejected,
                })
            }
            // By its code too: a bare 404 (a proxy, a wrong base URL) says
            // nothing about the code, which `Expired` would destroy.
            Err(refusal) if refusal.code == Some(20404) => Ok(ProviderCheck::Expired),
            // By its code only: Twilio answers 429 for its own rate limits
            // too (20429), and reading those as this code's attempts being
            // used up would destroy a user's code for traffic elsewhere.
            Err(refusal) if refusal.code == Some(60202) => Ok(ProviderCheck::TooManyAttempts),
            Err(refusal) => Err(failure(&refusal)),
        }
    }

    /// `GET /v2/Services/{ServiceSid}`: the service exists and the
    /// credentials work.
    async fn ready(&self) -> Result<(), DeliveryError> {
        let url = format!("{}/v2/Services/{}", self.base_url, self.service_sid);
        self.account.ready(url).await
    }
}

impl TwilioMessaging {
    /// `To=whatsapp:+…`, `From=whatsapp:…`, and the template with the code
    /// (`ContentSid`, `ContentVariables`) or the text (`Body`).
    async fn send_whatsapp(&self, url: String, message: &SmsMessage) -> Result<(), DeliveryError> {
        let Some(from) = &self.whatsapp_from else {
            return Err(DeliveryError::permanent(
                "WhatsApp is not configured: no WhatsApp sender (TWILIO_WHATSAPP_FROM)",
            ));
        };
        let to = format!("whatsapp:{}", message.to);
        let from = format!("whatsapp:{from}");
        let variables;
        let mut form = vec![("To", to.as_str()), ("From", from.as_str())];
        match (&self.whatsapp_content_sid, &message.code) {
            (Some(content_sid), Some(code)) => {
                variables = serde_json::json!({ "1": code }).to_string();
                form.push(("ContentSid", content_sid.as_str()));
                form.push(("ContentVariables", variables.as_str()));
            }
            _ => form.push(("Body", message.body.as_str())),
        }
        match self.account.post(url, &form).await? {
            Ok(_) => Ok(()),
            Err(refusal) => Err(failure_on(MobileChannel::WhatsApp, &refusal)),
        }
    }
}

/// Who a message is sent from: a number, or a Messaging Service.
#[derive(Debug, Clone)]
enum Origin {
    From(String),
    MessagingService(String),
}

/// Twilio Programmable Messaging: sends our code as an SMS (see the
/// [module docs](self)).
#[cfg_attr(docsrs, doc(cfg(feature = "twilio")))]
#[derive(Debug, Clone)]
pub struct TwilioMessaging {
    account: Account,
    origin: Origin,
    base_url: String,
    /// The WhatsApp sender number (E.164, without `whatsapp:`).
    whatsapp_from: Option<String>,
    /// The approved WhatsApp template for codes (`HX…`).
    whatsapp_content_sid: Option<String>,
}

impl TwilioMessaging {
    /// Messages from the Twilio number `from` (E.164). Timeout 10 s; base
    /// URL [`TWILIO_API_BASE_URL`].
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<Secret>,
        from: impl Into<String>,
    ) -> Self {
        Self {
            account: Account::new(account_sid.into(), auth_token.into()),
            origin: Origin::From(from.into()),
            base_url: TWILIO_API_BASE_URL.to_owned(),
            whatsapp_from: None,
            whatsapp_content_sid: None,
        }
    }

    /// Offers WhatsApp, sent from the WhatsApp sender `number` (E.164; a
    /// leading `whatsapp:` is accepted): `To=whatsapp:+…`,
    /// `From=whatsapp:<number>`. Without it, a WhatsApp request is refused
    /// with `invalid_channel`.
    #[must_use]
    pub fn whatsapp_from(mut self, number: impl Into<String>) -> Self {
        let number = number.into();
        let number = number.strip_prefix("whatsapp:").unwrap_or(&number).trim();
        self.whatsapp_from = Some(number.to_owned());
        self
    }

    /// Sends WhatsApp codes as the approved template `content_sid` (`HX…`,
    /// a `whatsapp/authentication` template) with the code as its variable
    /// `1`, instead of the rendered text as `Body`. Needed outside the
    /// 24-hour window, that is for almost every code (see the
    /// [module docs](self)).
    #[must_use]
    pub fn whatsapp_content_sid(mut self, content_sid: impl Into<String>) -> Self {
        self.whatsapp_content_sid = Some(content_sid.into());
        self
    }

    /// Messages through a Messaging Service (`MG…`), which picks the number.
    pub fn with_messaging_service(
        account_sid: impl Into<String>,
        auth_token: impl Into<Secret>,
        messaging_service_sid: impl Into<String>,
    ) -> Self {
        Self {
            origin: Origin::MessagingService(messaging_service_sid.into()),
            ..Self::new(account_sid, auth_token, String::new())
        }
    }

    /// The REST API origin, e.g. `http://127.0.0.1:8080` for a local mock;
    /// the crate appends `/2010-04-01/Accounts/…`.
    pub fn base_url(mut self, origin: impl Into<String>) -> Self {
        self.base_url = http::origin(origin);
        self
    }

    /// Time allowed for one request. Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.account.timeout = timeout;
        self
    }
}

#[async_trait]
impl SmsSender for TwilioMessaging {
    fn provider_name(&self) -> &'static str {
        "twilio_messaging"
    }

    /// A base URL over `http://` to a host that is not this machine.
    fn cleartext_host(&self) -> Option<String> {
        http::cleartext_host(&self.base_url)
    }

    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base_url, self.account.sid
        );
        if message.channel == MobileChannel::WhatsApp {
            return self.send_whatsapp(url, message).await;
        }
        let origin = match &self.origin {
            Origin::From(number) => ("From", number.as_str()),
            Origin::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [
            ("To", message.to.as_str()),
            origin,
            ("Body", message.body.as_str()),
        ];
        match self.account.post(url, &form).await? {
            Ok(_) => Ok(()),
            Err(refusal) => Err(failure(&refusal)),
        }
    }

    /// SMS always; WhatsApp once [`whatsapp_from`](Self::whatsapp_from) is
    /// set.
    fn supports(&self, channel: MobileChannel) -> bool {
        match channel {
            MobileChannel::Sms => true,
            MobileChannel::WhatsApp => self.whatsapp_from.is_some(),
        }
    }

    /// `GET /2010-04-01/Accounts/{AccountSid}.json`: the account answers.
    async fn ready(&self) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}.json",
            self.base_url, self.account.sid
        );
        self.account.ready(url).await
    }
}
