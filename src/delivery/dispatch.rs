//! The one dispatcher of messages: senders, templates, retry policy and the
//! app name, shared by the code flow and the [`Notifier`](crate::Notifier).

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    DeliveryError, Duplicates, EmailMessage, EmailSender, MobileChannel, RetryPolicy, SmsMessage,
    SmsSender, SmsVerifier, sms_text::SmsText,
};
use crate::{
    contact::{Contact, Email, Mobile},
    language::Languages,
    telemetry::{self, Stopwatch},
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
    /// Whether a permanent WhatsApp failure is retried once by SMS.
    whatsapp_fallback: bool,
}

/// What a code message says besides the code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeMessage<'a> {
    pub(crate) code: &'a str,
    pub(crate) ttl: Duration,
    /// The reader's languages, best first.
    pub(crate) languages: &'a Languages,
    /// The channel asked for, for a mobile number.
    pub(crate) channel: MobileChannel,
    /// The email's sign-in and cancel URLs, when email links are on.
    pub(crate) links: Option<(&'a str, &'a str)>,
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
            whatsapp_fallback: false,
        }
    }

    /// Retries a permanent WhatsApp failure once by SMS.
    pub(crate) fn with_whatsapp_fallback(mut self, on: bool) -> Self {
        self.whatsapp_fallback = on;
        self
    }

    /// Whether the SMS sender can send on `channel` (`false` without one:
    /// a verifier then owns mobile codes and is asked instead).
    pub(crate) fn can_send_on(&self, channel: MobileChannel) -> bool {
        self.sms
            .as_ref()
            .is_some_and(|sender| sender.supports(channel))
    }

    /// Whether `error`, a failure on `channel`, is retried once by SMS: a
    /// permanent WhatsApp failure, with the fallback on. Never after a
    /// failure that may have been sent, nor when the provider refused the
    /// number itself (SMS would be refused too), nor when the user opted
    /// out of messages.
    fn falls_back(&self, channel: MobileChannel, error: &DeliveryError) -> bool {
        self.whatsapp_fallback
            && channel == MobileChannel::WhatsApp
            && !error.is_transient()
            && !error.may_have_been_sent()
            && !error.is_invalid_recipient()
            && error.allows_other_channel()
    }

    /// Has `verifier` send its own code to `mobile` on `channel` (retrying
    /// only failures that prove nothing was sent), falling back to SMS
    /// after a permanent WhatsApp failure when configured. Answers the
    /// channel that carried the code.
    pub(crate) async fn start_verification(
        &self,
        verifier: &dyn SmsVerifier,
        mobile: &Mobile,
        channel: MobileChannel,
    ) -> Result<MobileChannel, DeliveryError> {
        // The fallback shares the first send's deadline: one delivery.
        let deadline = self.retry.deadline_from_now();
        let start = |channel: MobileChannel| async move {
            let clock = Stopwatch::start();
            let result = self
                .retry
                .run_until(deadline, Duplicates::Never, || {
                    verifier.start_on(mobile, channel)
                })
                .await;
            telemetry::delivery(
                || verifier.provider_name(),
                channel.as_str(),
                result.is_ok(),
                clock.elapsed(),
            );
            result
        };
        match start(channel).await {
            Ok(()) => Ok(channel),
            Err(err) if self.falls_back(channel, &err) => {
                log_fallback(mobile, &err);
                start(MobileChannel::Sms).await.map(|()| MobileChannel::Sms)
            }
            Err(err) => Err(err),
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
        let context = self.code_context(&code, ttl, None);
        for language in self.templates.sms_languages("otp") {
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

    fn code_context(
        &self,
        code: &str,
        ttl: Duration,
        links: Option<(&str, &str)>,
    ) -> serde_json::Value {
        let mut context = json!({
            "code": code,
            "app_name": self.app_name,
            "ttl_minutes": ttl.as_secs().div_ceil(60),
            "ttl_seconds": ttl.as_secs(),
        });
        // Only with links on: templates test `link_url` to show them.
        if let Some((sign_in, cancel)) = links {
            context["link_url"] = json!(sign_in);
            context["cancel_url"] = json!(cancel);
        }
        context
    }

    /// The app name messages show.
    pub(crate) fn app_name(&self) -> &str {
        &self.app_name
    }

    /// Renders the `otp` template for `contact` and sends it, retrying
    /// transient failures. For a mobile number, sends on the message's
    /// channel (falling back to SMS after a permanent WhatsApp failure when
    /// configured) and answers the channel that carried the code; for an
    /// email, answers the channel asked for, unused.
    pub(crate) async fn send_code(
        &self,
        contact: &Contact,
        message: CodeMessage<'_>,
    ) -> Result<MobileChannel, DeliveryError> {
        let context = self.code_context(message.code, message.ttl, message.links);
        match contact {
            Contact::Email(email) => {
                let rendered = self
                    .templates
                    .render_email_in("otp", message.languages, &context)
                    .map_err(DeliveryError::permanent)?;
                self.send_email(&code_email(email, rendered))
                    .await
                    .map(|()| message.channel)
            }
            Contact::Mobile(mobile) => {
                let body = self
                    .templates
                    .render_sms_in("otp", message.languages, &context)
                    .map_err(DeliveryError::permanent)?;
                let whatsapp = || {
                    // The WebOTP / app-hash lines are for SMS only.
                    SmsMessage::new(mobile.as_str(), body.clone())
                        .with_channel(MobileChannel::WhatsApp)
                        .with_code(message.code)
                };
                let sms = || {
                    SmsMessage::new(
                        mobile.as_str(),
                        self.sms_text.finish(body.clone(), message.code),
                    )
                };
                // The fallback shares the first send's deadline: one delivery.
                let deadline = self.retry.deadline_from_now();
                match message.channel {
                    MobileChannel::WhatsApp => match self.send_text(&whatsapp(), deadline).await {
                        Ok(()) => Ok(MobileChannel::WhatsApp),
                        Err(err) if self.falls_back(MobileChannel::WhatsApp, &err) => {
                            log_fallback(mobile, &err);
                            self.send_text(&sms(), deadline)
                                .await
                                .map(|()| MobileChannel::Sms)
                        }
                        Err(err) => Err(err),
                    },
                    MobileChannel::Sms => self
                        .send_text(&sms(), deadline)
                        .await
                        .map(|()| MobileChannel::Sms),
                }
            }
        }
    }

    /// Sends an email, retrying transient failures, timeouts included (a
    /// duplicate email is harmless), within the policy's deadline.
    pub(crate) async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let clock = Stopwatch::start();
        let result = self
            .retry
            .run_with(Duplicates::Harmless, || self.email.send_email(message))
            .await;
        telemetry::delivery(
            || self.email.provider_name(),
            "email",
            result.is_ok(),
            clock.elapsed(),
        );
        result
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

    /// Sends an SMS text, retrying only failures that prove it was not
    /// sent (never after a timeout: it may have been), within the policy's
    /// deadline.
    pub(crate) async fn send_sms(&self, to: &Mobile, body: String) -> Result<(), DeliveryError> {
        self.send_text(
            &SmsMessage::new(to.as_str(), body),
            self.retry.deadline_from_now(),
        )
        .await
    }

    /// Sends a text message on its channel, retrying as
    /// [`send_sms`](Self::send_sms) does, within `deadline`.
    async fn send_text(
        &self,
        message: &SmsMessage,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), DeliveryError> {
        let Some(sender) = &self.sms else {
            return Err(DeliveryError::permanent(
                "the SMS provider sends only its own codes",
            ));
        };
        let clock = Stopwatch::start();
        let result = self
            .retry
            .run_until(deadline, Duplicates::Never, || sender.send_sms(message))
            .await;
        telemetry::delivery(
            || sender.provider_name(),
            message.channel.as_str(),
            result.is_ok(),
            clock.elapsed(),
        );
        result
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

fn log_fallback(mobile: &Mobile, error: &DeliveryError) {
    // The provider's text is scrubbed of contacts; the number is masked.
    tracing::warn!(
        mobile = %mobile.masked(),
        error = %error,
        "WhatsApp delivery failed permanently; sending the code by SMS instead"
    );
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
