//! The one dispatcher of messages: senders, templates, retry policy and the
//! app name, shared by the code flow and the [`Notifier`](crate::Notifier).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    DeliveryError, Duplicates, EmailMessage, EmailSender, RetryPolicy, SmsMessage, SmsSender,
};
use crate::{
    contact::{Contact, Email, Mobile},
    template::{RenderedEmail, TemplateError, Templates},
};

/// Everything that renders and sends messages.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    email: Arc<dyn EmailSender>,
    /// `None` when SMS codes go through a verifier-only provider (Twilio
    /// Verify), which sends nothing else.
    sms: Option<Arc<dyn SmsSender>>,
    templates: Templates,
    retry: RetryPolicy,
    app_name: String,
    webotp_host: Option<String>,
}

/// What a code message says besides the code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeMessage<'a> {
    pub(crate) code: &'a str,
    pub(crate) ttl: Duration,
}

impl Dispatcher {
    pub(crate) fn new(
        email: Arc<dyn EmailSender>,
        sms: Option<Arc<dyn SmsSender>>,
        templates: Templates,
        retry: RetryPolicy,
        app_name: String,
        webotp_host: Option<String>,
    ) -> Self {
        Self {
            email,
            sms,
            templates,
            retry,
            app_name,
            webotp_host,
        }
    }

    /// The retry policy for transient delivery failures. Its
    /// [`run`](RetryPolicy::run) never retries a failure after which the
    /// message may have been sent: right for provider-sent codes (Twilio
    /// Verify).
    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Renders the `otp` template for `contact` and sends it, retrying
    /// transient failures.
    pub(crate) async fn send_code(
        &self,
        contact: &Contact,
        message: CodeMessage<'_>,
    ) -> Result<(), DeliveryError> {
        let context = json!({
            "code": message.code,
            "app_name": self.app_name,
            "ttl_minutes": message.ttl.as_secs().div_ceil(60),
            "ttl_seconds": message.ttl.as_secs(),
            "webotp_host": self.webotp_host,
        });
        match contact {
            Contact::Email(email) => {
                let rendered = self
                    .templates
                    .render_email("otp", &context)
                    .map_err(DeliveryError::permanent)?;
                self.send_email(&code_email(email, rendered)).await
            }
            Contact::Mobile(mobile) => {
                let body = self
                    .templates
                    .render_sms("otp", &context)
                    .map_err(DeliveryError::permanent)?;
                self.send_sms(mobile, body).await
            }
        }
    }

    /// Sends an email, retrying transient failures, timeouts included (a
    /// duplicate email is harmless), within the policy's deadline.
    pub(crate) async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        self.retry
            .run_with(Duplicates::Harmless, || self.email.send_email(message))
            .await
    }

    /// The email sender's readiness check.
    pub(crate) async fn email_ready(&self) -> Result<(), DeliveryError> {
        self.email.ready().await
    }

    /// The SMS sender's readiness check (ready when there is none: a
    /// provider then owns SMS codes and is checked itself).
    pub(crate) async fn sms_ready(&self) -> Result<(), DeliveryError> {
        match &self.sms {
            Some(sender) => sender.ready().await,
            None => Ok(()),
        }
    }

    /// Whether plain SMS can be sent (not with a verifier-only provider).
    pub(crate) fn can_send_sms(&self) -> bool {
        self.sms.is_some()
    }

    /// Sends a text message, retrying only failures that prove it was not
    /// sent (never after a timeout: it may have been), within the policy's
    /// deadline.
    pub(crate) async fn send_sms(&self, to: &Mobile, body: String) -> Result<(), DeliveryError> {
        let Some(sender) = &self.sms else {
            return Err(DeliveryError::permanent(
                "the SMS provider sends only its own codes",
            ));
        };
        let message = SmsMessage {
            to: to.as_str().to_owned(),
            body,
        };
        self.retry.run(|| sender.send_sms(&message)).await
    }

    /// Renders email template `name` with `context` (plus `app_name` unless
    /// the context sets it).
    pub(crate) fn render_email(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<RenderedEmail, TemplateError> {
        let context = minijinja::context! {
            ..context,
            ..minijinja::context! { app_name => self.app_name }
        };
        self.templates.render_email(name, context)
    }
}

fn code_email(to: &Email, rendered: RenderedEmail) -> EmailMessage {
    EmailMessage {
        to: vec![to.as_str().to_owned()],
        subject: rendered.subject,
        html: rendered.html,
        text: rendered.text,
        ..EmailMessage::default()
    }
}
