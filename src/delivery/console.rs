//! [`ConsoleSender`]: prints messages to standard output, for development.
//!
//! This is the only place in the crate that prints, and it prints the whole
//! message, code included: that is its purpose. Never use it in production.

#![allow(clippy::print_stdout)]

use async_trait::async_trait;

use super::{DeliveryError, EmailMessage, EmailSender, MobileChannel, SmsMessage, SmsSender};

/// Prints emails (their plain-text part) and SMS to standard output.
///
/// ```
/// use tower_otp::{Otp, delivery::ConsoleSender};
///
/// let otp = Otp::builder()
///     .email_sender(ConsoleSender::new())
///     .sms_sender(ConsoleSender::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleSender {
    _private: (),
}

impl ConsoleSender {
    /// A console sender.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EmailSender for ConsoleSender {
    fn provider_name(&self) -> &'static str {
        "console"
    }

    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let mut out = String::new();
        out.push_str("---------- email ----------\n");
        if let Some(from) = &message.from {
            out.push_str(&format!("From: {from}\n"));
        }
        out.push_str(&format!("To: {}\n", message.to.join(", ")));
        if !message.cc.is_empty() {
            out.push_str(&format!("Cc: {}\n", message.cc.join(", ")));
        }
        if !message.bcc.is_empty() {
            out.push_str(&format!("Bcc: {}\n", message.bcc.join(", ")));
        }
        out.push_str(&format!(
            "Subject: {}\n\n{}\n",
            message.subject, message.text
        ));
        for attachment in &message.attachments {
            out.push_str(&format!(
                "[attachment: {} ({}, {} bytes)]\n",
                attachment.filename,
                attachment.content_type,
                attachment.data.len()
            ));
        }
        out.push_str("---------------------------");
        println!("{out}");
        Ok(())
    }

    fn for_development(&self) -> bool {
        true
    }
}

#[async_trait]
impl SmsSender for ConsoleSender {
    fn provider_name(&self) -> &'static str {
        "console"
    }

    async fn send_sms(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        println!(
            "---------- {} ----------\nTo: {}\n\n{}\n-------------------------",
            message.channel, message.to, message.body
        );
        Ok(())
    }

    fn for_development(&self) -> bool {
        true
    }

    /// SMS and WhatsApp (the header line names the channel), so the
    /// quickstart offers both in development.
    fn supports(&self, _channel: MobileChannel) -> bool {
        true
    }
}
