//! [`Notifier`]: send your own emails and SMS (welcome, password reset, a
//! document, …) through the senders, templates and retry policy the
//! [`Otp`](crate::Otp) handle was configured with.
//!
//! - [`Notifier::email`] renders a template (`email/NAME.subject.txt`,
//!   `email/NAME.html`, optional `email/NAME.txt`) with a serde context;
//!   `app_name` is added to the context unless you set it.
//! - [`Notifier::raw_email`] sends a subject and an HTML body you made
//!   (the text part is derived from the HTML unless you give one).
//! - Both take To, Cc, Bcc, a From and attachments.
//! - [`Notifier::sms`] sends a text through the SMS sender. It fails with
//!   [`NotifyError::SmsUnsupported`] when SMS goes through a verifier-only
//!   provider (Twilio Verify only sends its own codes).
//!
//! Transient failures are retried as for codes; errors are returned to you
//! (nothing is answered to a client here).
//!
//! Built-in email templates: `otp`, `welcome` (`name`, `action_url`),
//! `reset` (`reset_url`, `ttl_minutes`), `document` (`name`,
//! `document_name`, `message`) and `default` (`subject`, `heading`,
//! `message`, `action_url`, `action_label`); all take `app_name`.
//!
//! ```
//! use serde_json::json;
//! use tower_otp::{Otp, delivery::{MemoryOutbox, OutboxMessage}};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let outbox = MemoryOutbox::new();
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .app_name("Shop")
//!     .email_sender(outbox.clone())
//!     .build()
//!     .unwrap();
//!
//! otp.notifier()
//!     .email("welcome")
//!     .context(json!({ "name": "Ada" }))
//!     .to("ada@example.com")
//!     .bcc("audit@shop.example")
//!     .attach("terms.txt", "text/plain", b"Be nice.".to_vec())
//!     .send()
//!     .await
//!     .unwrap();
//!
//! let OutboxMessage::Email(sent) = &outbox.messages()[0] else { panic!() };
//! assert_eq!(sent.subject, "Welcome to Shop");
//! assert!(sent.text.contains("Ada"));
//! assert_eq!(sent.attachments[0].filename, "terms.txt");
//! # });
//! ```

use std::{fmt, sync::Arc};

use bytes::Bytes;
use serde::Serialize;

use crate::{
    contact::Mobile,
    delivery::{Attachment, DeliveryError, EmailMessage, dispatch::Dispatcher},
    language::Languages,
    template::{TemplateError, html_to_text},
};

/// Sends templated or raw emails and SMS through the configured senders.
/// Get one with [`Otp::notifier`](crate::Otp::notifier); cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    dispatch: Arc<Dispatcher>,
}

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The template is missing or failed to render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The email has no To, Cc or Bcc recipient.
    #[error("the email has no recipient")]
    NoRecipient,
    /// The sender failed (after retries, for transient failures).
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// SMS goes through a verifier-only provider (Twilio Verify), which
    /// cannot send arbitrary text.
    #[error("the SMS provider only sends verification codes; configure an SMS sender")]
    SmsUnsupported,
}

impl Notifier {
    pub(crate) fn new(dispatch: Arc<Dispatcher>) -> Self {
        Self { dispatch }
    }

    /// An email from template `name` (e.g. `"welcome"`); add recipients,
    /// a [`context`](EmailBuilder::context), then [`send`](EmailBuilder::send).
    pub fn email(&self, template: impl Into<String>) -> EmailBuilder<'_> {
        self.builder(Content::Template {
            name: template.into(),
            context: minijinja::context! {},
            languages: Languages::none(),
        })
    }

    /// An email with this subject and HTML body (escape what you put in
    /// it); the plain-text part is derived from the HTML unless
    /// [`text`](EmailBuilder::text) gives one.
    pub fn raw_email(
        &self,
        subject: impl Into<String>,
        html: impl Into<String>,
    ) -> EmailBuilder<'_> {
        self.builder(Content::Raw {
            subject: subject.into(),
            html: html.into(),
            text: None,
        })
    }

    fn builder(&self, content: Content) -> EmailBuilder<'_> {
        EmailBuilder {
            notifier: self,
            content,
            message: EmailMessage::default(),
        }
    }

    /// Sends `text` to `to` through the SMS sender.
    pub async fn sms(&self, to: &Mobile, text: impl Into<String>) -> Result<(), NotifyError> {
        if !self.dispatch.can_send_sms() {
            return Err(NotifyError::SmsUnsupported);
        }
        self.dispatch.send_sms(to, text.into()).await?;
        tracing::info!(contact = %to.masked(), "notification sms sent");
        Ok(())
    }

    /// Renders email template `name` with `context` (plus `app_name`),
    /// without sending it.
    pub fn render_email(
        &self,
        name: &str,
        context: impl Serialize,
    ) -> Result<crate::template::RenderedEmail, NotifyError> {
        let context = minijinja::Value::from_serialize(context);
        Ok(self
            .dispatch
            .render_email(name, &Languages::none(), context)?)
    }
}

enum Content {
    Template {
        name: String,
        context: minijinja::Value,
        languages: Languages,
    },
    Raw {
        subject: String,
        html: String,
        text: Option<String>,
    },
}

/// An email being put together by [`Notifier::email`] or
/// [`Notifier::raw_email`].
#[must_use = "an email is sent only by `.send().await`"]
pub struct EmailBuilder<'a> {
    notifier: &'a Notifier,
    content: Content,
    message: EmailMessage,
}

impl fmt::Debug for EmailBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let template = match &self.content {
            Content::Template { name, .. } => Some(name.as_str()),
            Content::Raw { .. } => None,
        };
        f.debug_struct("EmailBuilder")
            .field("template", &template)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl EmailBuilder<'_> {
    /// Adds a To recipient.
    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.message.to.push(address.into());
        self
    }

    /// Adds a Cc recipient.
    pub fn cc(mut self, address: impl Into<String>) -> Self {
        self.message.cc.push(address.into());
        self
    }

    /// Adds a Bcc recipient (receives the email, appears in no header).
    pub fn bcc(mut self, address: impl Into<String>) -> Self {
        self.message.bcc.push(address.into());
        self
    }

    /// The From address, instead of the sender's default.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.message.from = Some(address.into());
        self
    }

    /// Attaches a file: its name, MIME type (e.g. `application/pdf`) and
    /// content.
    pub fn attach(
        mut self,
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.message.attachments.push(Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            data: data.into(),
        });
        self
    }

    /// The template context (any serde value, usually a map). For a raw
    /// email it is ignored.
    pub fn context(mut self, context: impl Serialize) -> Self {
        if let Content::Template { context: c, .. } = &mut self.content {
            *c = minijinja::Value::from_serialize(context);
        }
        self
    }

    /// The reader's language (`"fr"`, `"pt-BR"`): the template is rendered
    /// in the first language that has it (`pt-BR`, then `pt`, then
    /// English), and the email carries that `Content-Language`. Pass
    /// [`Languages::from_accept_language`] to follow a request's
    /// `Accept-Language`. For a raw email it sets `Content-Language` only.
    pub fn language(mut self, languages: impl Into<Languages>) -> Self {
        let languages = languages.into();
        match &mut self.content {
            Content::Template { languages: l, .. } => *l = languages,
            Content::Raw { .. } => {
                self.message.content_language = languages.tags().first().cloned();
            }
        }
        self
    }

    /// The plain-text part of a raw email. For a template it is ignored
    /// (the template's `.txt` or the HTML gives it).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        if let Content::Raw { text: t, .. } = &mut self.content {
            *t = Some(text.into());
        }
        self
    }

    /// Renders and sends the email, retrying transient failures.
    pub async fn send(self) -> Result<(), NotifyError> {
        let Self {
            notifier,
            content,
            mut message,
        } = self;
        if message.to.is_empty() && message.cc.is_empty() && message.bcc.is_empty() {
            return Err(NotifyError::NoRecipient);
        }
        let what = match content {
            Content::Template {
                name,
                context,
                languages,
            } => {
                let rendered = notifier.dispatch.render_email(&name, &languages, context)?;
                message.subject = rendered.subject;
                message.html = rendered.html;
                message.text = rendered.text;
                message.content_language = Some(rendered.language);
                name
            }
            Content::Raw {
                subject,
                html,
                text,
            } => {
                message.text = text.unwrap_or_else(|| html_to_text(&html));
                message.subject = subject;
                message.html = html;
                "raw".to_owned()
            }
        };
        notifier.dispatch.send_email(&message).await?;
        tracing::info!(
            template = %what,
            recipients = message.to.len() + message.cc.len() + message.bcc.len(),
            "notification email sent"
        );
        Ok(())
    }
}
