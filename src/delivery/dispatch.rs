//! The one dispatcher of messages: senders, templates, retry policy and the
//! app name, shared by the code flow and the [`Notifier`](crate::Notifier).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    DeliveryError, Duplicates, EmailMessage, EmailSender, RetryPolicy, SmsMessage, SmsSender,
    sms_text::SmsText,
};
use crate::{
    contact::{Contact, Email, Mobile},
    language::Languages,
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
    sms_text: SmsText,
}

/// What a code message says besides the code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeMessage<'a> {
    pub(crate) code: &'a str,
    pub(crate) ttl: Duration,
    /// The reader's languages, best first.
    pub(crate) languages: &'a Languages,
}

impl Dispatcher {
    pub(crate) fn new(
        email: Arc<dyn EmailSender>,
        sms: Option<Arc<dyn SmsSender>>,
        templates: Templates,
        retry: RetryPolicy,
        app_name: String,
        sms_text: SmsText,
    ) -> Self {
        Self {
            email,
            sms,
            templates,
            retry,
            app_name,
            sms_text,
        }
    }

    /// Renders every SMS code template (each language) with a code of
    /// `code_length` digits and checks its size: warnings for messages over
    /// one segment, an error over 140 bytes with an Android app hash.
    pub(crate) fn check_sms_templates(
        &self,
        code_length: u8,
        ttl: Duration,
    ) -> Result<(), crate::error::ConfigError> {
        let code = "9".repeat(usize::from(code_length));
        for language in self.templates.sms_languages("otp") {
            let context = self.code_context(&code, ttl);
            let body = self
                .templates
                .render_sms_in("otp", &Languages::from_tag(&language), &context)
                .map_err(|e| crate::error::ConfigError::invalid("templates", e.to_string()))?;
            let text = self.sms_text.finish(body, &code);
            match self.sms_text.check(&language, &text) {
                Ok(None) => {}
                Ok(Some(warning)) => tracing::warn!("{warning}"),
                // A built-in translation in a non-Latin script cannot fit
                // 140 bytes with the hash: say so, but start (the host may
                // not serve that language, or overrides its template).
                Err(error) if self.templates.is_builtin_translation("otp", &language) => {
                    tracing::warn!(
                        "{error}; Android will not read {language} codes by itself unless \
                         <templates>/{language}/sms/otp.txt is shorter"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn code_context(&self, code: &str, ttl: Duration) -> serde_json::Value {
        json!({
            "code": code,
            "app_name": self.app_name,
            "ttl_minutes": ttl.as_secs().div_ceil(60),
            "ttl_seconds": ttl.as_secs(),
        })
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
        let context = self.code_context(message.code, message.ttl);
        match contact {
            Contact::Email(email) => {
                let rendered = self
                    .templates
                    .render_email_in("otp", message.languages, &context)
                    .map_err(DeliveryError::permanent)?;
                self.send_email(&code_email(email, rendered)).await
            }
            Contact::Mobile(mobile) => {
                let body = self
                    .templates
                    .render_sms_in("otp", message.languages, &context)
                    .map_err(DeliveryError::permanent)?;
                self.send_sms(mobile, self.sms_text.finish(body, message.code))
                    .await
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
        languages: &Languages,
        context: minijinja::Value,
    ) -> Result<RenderedEmail, TemplateError> {
        let context = minijinja::context! {
            ..context,
            ..minijinja::context! { app_name => self.app_name }
        };
        self.templates.render_email_in(name, languages, context)
    }
}

fn code_email(to: &Email, rendered: RenderedEmail) -> EmailMessage {
    EmailMessage {
        to: vec![to.as_str().to_owned()],
        subject: rendered.subject,
        html: rendered.html,
        text: rendered.text,
        content_language: Some(rendered.language),
        ..EmailMessage::default()
    }
}
