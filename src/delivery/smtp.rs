//! [`SmtpSender`]: email over SMTP with lettre's pooled async transport
//! (tokio, rustls).
//!
//! Pick the mode with the constructor:
//!
//! | constructor | mode | default port |
//! |---|---|---|
//! | [`SmtpSender::starttls`] | plain connection upgraded with STARTTLS (required) | 587 |
//! | [`SmtpSender::implicit_tls`] | TLS from the first byte ("SMTPS") | 465 |
//! | [`SmtpSender::unencrypted_localhost`] | no TLS, to `127.0.0.1` (a local relay or a development catcher) | given |
//! | [`SmtpSender::unencrypted`] | no TLS to any host (start-up warns unless the host is loopback) | 25 |
//!
//! Certificates are checked against the Mozilla roots (webpki-roots) plus
//! any [`add_root_certificate_pem`](SmtpSenderBuilder::add_root_certificate_pem)
//! (a private CA, or a test server's self-signed certificate). Login is
//! optional ([`credentials`](SmtpSenderBuilder::credentials)); the password
//! is a [`Secret`] and never printed.
//!
//! Each message is sent as `multipart/alternative` (plain text, then HTML),
//! inside `multipart/mixed` when it has attachments. Bcc recipients get the
//! message but no `Bcc` header.
//!
//! Failures: SMTP 4xx replies, timeouts and connection errors are transient
//! (the engine retries them); 5xx replies, TLS and address errors are
//! permanent. The server's reply text goes to the log only.
//!
//! Connections are pooled ([`max_connections`](SmtpSenderBuilder::max_connections),
//! default 10; a send waits for a free one within its timeout) and reused
//! only when they are known to be clean: a send that times out or is
//! cancelled (its future dropped, e.g. when the delivery deadline passes)
//! closes its connection instead of returning it to the pool, so the next
//! message can never read the previous one's late replies or end up inside
//! its body. A reused connection must answer `NOOP` first. A sender may be
//! built outside a tokio runtime, but its connections belong to the
//! runtime that opened them: use one sender per runtime.
//!
//! ```
//! use tower_otp::{Otp, delivery::SmtpSender};
//!
//! let sender = SmtpSender::starttls("smtp.example.com")
//!     .credentials("mailer", "app-password")
//!     .from("Shop <no-reply@shop.example>")
//!     .build()
//!     .unwrap();
//! assert!(!format!("{sender:?}").contains("app-password"));
//! let otp = Otp::builder().email_sender(sender);
//! ```

use std::time::Duration;

use async_trait::async_trait;
use lettre::{
    Message,
    address::Envelope,
    message::{
        Mailbox, MultiPart, SinglePart,
        header::{ContentDisposition, ContentType},
    },
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, TlsParameters},
        extension::ClientId,
    },
};

use super::{
    DeliveryError, EmailMessage, EmailSender, is_loopback,
    smtp_pool::{self, Checkout, Connector, Security, SmtpPool},
};
use crate::{ConfigError, Secret};

/// The From used when none is configured (Django's `DEFAULT_FROM_EMAIL`
/// default).
pub const DEFAULT_FROM: &str = "webmaster@localhost";

/// How the connection to the SMTP server is protected.
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS; the upgrade is required.
    StartTls,
    /// TLS from the first byte (port 465).
    ImplicitTls,
    /// No encryption. Only for a relay on the same machine (start-up warns
    /// for any other host).
    Plain,
}

/// Sends email over SMTP (see the [module docs](self)).
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub struct SmtpSender {
    settings: SmtpSenderBuilder,
    from: Mailbox,
    pool: SmtpPool,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("settings", &self.settings)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Settings of an [`SmtpSender`]; start from one of its constructors.
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
#[derive(Clone)]
#[must_use]
pub struct SmtpSenderBuilder {
    host: String,
    port: u16,
    security: SmtpSecurity,
    tls_server_name: Option<String>,
    root_certificates: Vec<Vec<u8>>,
    credentials: Option<(String, Secret)>,
    from: String,
    timeout: Duration,
    max_connections: u32,
}

impl std::fmt::Debug for SmtpSenderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSenderBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("tls_server_name", &self.tls_server_name)
            .field("root_certificates", &self.root_certificates.len())
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, password)| (user, password)),
            )
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl SmtpSender {
    /// STARTTLS (required) to `host`, port 587.
    pub fn starttls(host: impl Into<String>) -> SmtpSenderBuilder {
        SmtpSenderBuilder::new(host.into(), 587, SmtpSecurity::StartTls)
    }

    /// Implicit TLS to `host`, port 465.
    pub fn implicit_tls(host: impl Into<String>) -> SmtpSenderBuilder {
        SmtpSenderBuilder::new(host.into(), 465, SmtpSecurity::ImplicitTls)
    }

    /// No encryption, to `127.0.0.1:port`: a relay on this machine or a
    /// development mail catcher.
    pub fn unencrypted_localhost(port: u16) -> SmtpSenderBuilder {
        SmtpSenderBuilder::new("127.0.0.1".to_owned(), port, SmtpSecurity::Plain)
    }

    /// No encryption to any host, port 25. Building an `Otp` with it logs a
    /// warning unless the host is a loopback address: messages hold one-time
    /// codes and, with a login, the password crosses the network in the
    /// clear.
    pub fn unencrypted(host: impl Into<String>) -> SmtpSenderBuilder {
        SmtpSenderBuilder::new(host.into(), 25, SmtpSecurity::Plain)
    }

    /// One exchange on a pooled connection. The connection goes back to
    /// the pool only if lettre's `send` returns; if this future is dropped
    /// first, the connection is closed (see `smtp_pool`).
    async fn send_raw(&self, envelope: &Envelope, email: &[u8]) -> Result<(), DeliveryError> {
        let mut checkout = Checkout::take(&self.pool).await.map_err(pool_failure)?;
        let result = checkout.conn().send(envelope, email).await;
        checkout.finish();
        result.map(drop).map_err(classify)
    }

    fn message(&self, message: &EmailMessage) -> Result<Message, DeliveryError> {
        let from = match &message.from {
            Some(from) => from.parse::<Mailbox>().map_err(DeliveryError::permanent)?,
            None => self.from.clone(),
        };
        let mut builder = Message::builder().from(from).subject(&message.subject);
        if let Some(language) = &message.content_language {
            builder = builder.header(ContentLanguage(language.clone()));
        }
        for to in &message.to {
            builder = builder.to(recipient(to)?);
        }
        for cc in &message.cc {
            builder = builder.cc(recipient(cc)?);
        }
        for bcc in &message.bcc {
            builder = builder.bcc(recipient(bcc)?);
        }
        let alternative =
            MultiPart::alternative_plain_html(message.text.clone(), message.html.clone());
        let body = if message.attachments.is_empty() {
            alternative
        } else {
            let mut mixed = MultiPart::mixed().multipart(alternative);
            for attachment in &message.attachments {
                let content_type = ContentType::parse(&attachment.content_type)
                    .map_err(DeliveryError::permanent)?;
                mixed = mixed.singlepart(
                    SinglePart::builder()
                        .header(content_type)
                        .header(ContentDisposition::attachment(&attachment.filename))
                        .body(attachment.data.to_vec()),
                );
            }
            mixed
        };
        builder.multipart(body).map_err(DeliveryError::permanent)
    }
}

fn recipient(address: &str) -> Result<Mailbox, DeliveryError> {
    address
        .parse::<Mailbox>()
        .map_err(DeliveryError::invalid_recipient)
}

impl SmtpSenderBuilder {
    fn new(host: String, port: u16, security: SmtpSecurity) -> Self {
        Self {
            host,
            port,
            security,
            tls_server_name: None,
            root_certificates: Vec::new(),
            credentials: None,
            from: DEFAULT_FROM.to_owned(),
            timeout: Duration::from_secs(10),
            max_connections: 10,
        }
    }

    /// The server port (default: 587, 465 or 25 by mode).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Logs in with `user` and `password` (over TLS unless the mode is
    /// plain). Default: no login.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The default From (`addr@host` or `Name <addr@host>`). Default
    /// [`DEFAULT_FROM`].
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self
    }

    /// Time allowed for one whole send (waiting for a pooled connection,
    /// connecting, and the exchange), and for opening the connection.
    /// Default 10 s. A send that runs out of time closes its connection.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The name the server certificate must carry. Default: the host.
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls_server_name = Some(name.into());
        self
    }

    /// Also trusts this PEM certificate (a private CA, or a self-signed
    /// server certificate). Checked by [`build`](Self::build).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The most connections open at once (sends beyond it wait for one to
    /// be free). Default 10.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Checks the settings (From address, certificates) and makes the
    /// sender.
    pub fn build(self) -> Result<SmtpSender, ConfigError> {
        let from = self.from.parse::<Mailbox>().map_err(|e| {
            ConfigError::invalid("SmtpSenderBuilder::from", format!("{:?}: {e}", self.from))
        })?;
        let tls = match self.security {
            // Plain SMTP to another host: `Otp`'s start-up warns (see
            // `cleartext_host`).
            SmtpSecurity::Plain => Security::Plain,
            SmtpSecurity::StartTls | SmtpSecurity::ImplicitTls => {
                let name = self
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| self.host.clone());
                let mut params = TlsParameters::builder(name);
                for pem in &self.root_certificates {
                    // lettre accepts a PEM holding no certificate at all.
                    if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                        return Err(ConfigError::invalid(
                            "smtp root certificate",
                            "no PEM certificate found",
                        ));
                    }
                    let certificate =
                        Certificate::from_pem(pem).map_err(|e| ConfigError::Backend {
                            what: "SMTP root certificate",
                            source: Box::new(e),
                        })?;
                    params = params.add_root_certificate(certificate);
                }
                let params = params.build_rustls().map_err(|e| ConfigError::Backend {
                    what: "SMTP TLS",
                    source: Box::new(e),
                })?;
                if self.security == SmtpSecurity::StartTls {
                    Security::StartTls(params)
                } else {
                    Security::Wrapper(params)
                }
            }
        };
        let connector = Connector {
            host: self.host.clone(),
            port: self.port,
            security: tls,
            credentials: self.credentials.as_ref().map(|(user, password)| {
                Credentials::new(user.clone(), password.expose().to_owned())
            }),
            hello_name: ClientId::default(),
            connect_timeout: self.timeout,
        };
        let pool = smtp_pool::pool(connector, self.max_connections as usize);
        Ok(SmtpSender {
            settings: self,
            from,
            pool,
        })
    }
}

/// A connection could not be had from the pool: the server's refusal (or
/// our TLS check's) is classified like any SMTP error; nothing was sent.
fn pool_failure(
    error: deadpool::managed::PoolError<lettre::transport::smtp::Error>,
) -> DeliveryError {
    match error {
        deadpool::managed::PoolError::Backend(error) => classify(error),
        other => DeliveryError::transient(format!("no SMTP connection: {other}")),
    }
}

fn classify(error: lettre::transport::smtp::Error) -> DeliveryError {
    let permanent =
        error.is_permanent() || error.is_tls() || error.is_client() || is_bad_tls_peer(&error);
    let error = SmtpError::new(&error);
    if permanent {
        DeliveryError::permanent(error)
    } else {
        // 4xx replies, timeouts, connection and protocol errors.
        DeliveryError::transient(error)
    }
}

/// A lettre error with contacts masked, in its text and in every cause of
/// its chain: SMTP replies often quote the recipient
/// (`550 5.1.1 <ada@example.com>: unknown`), and lettre keeps the reply
/// itself as the error's source, which a host printing the chain (`{:#}`,
/// `?err`) would show. The chain's length and texts are kept, masked.
struct SmtpError(Scrubbed);

impl SmtpError {
    fn new(error: &lettre::transport::smtp::Error) -> Self {
        Self(Scrubbed::of(error))
    }
}

/// One error of a chain, its text masked, its cause likewise.
struct Scrubbed {
    text: String,
    source: Option<Box<Scrubbed>>,
}

impl Scrubbed {
    fn of(error: &dyn std::error::Error) -> Self {
        Self {
            text: super::scrub(&error.to_string()),
            source: error.source().map(|cause| Box::new(Self::of(cause))),
        }
    }
}

impl std::fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Scrubbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)?;
        if let Some(cause) = &self.source {
            write!(f, " <- {cause:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Scrubbed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|cause| cause as _)
    }
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SmtpError").field(&self.0).finish()
    }
}

impl std::error::Error for SmtpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A TLS handshake refused by us (untrusted or mismatched certificate):
/// lettre reports it as a connection error whose I/O source is
/// `InvalidData`. Retrying cannot fix it.
fn is_bad_tls_peer(error: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        source = err.source();
    }
    false
}

#[async_trait]
impl EmailSender for SmtpSender {
    fn provider_name(&self) -> &'static str {
        "smtp"
    }

    /// Plain SMTP to a host that is not this machine.
    fn cleartext_host(&self) -> Option<String> {
        (self.settings.security == SmtpSecurity::Plain && !is_loopback(&self.settings.host))
            .then(|| self.settings.host.clone())
    }

    /// A connection from the pool: a parked one that answers `NOOP`, or a
    /// new one (connected, TLS and login done).
    async fn ready(&self) -> Result<(), DeliveryError> {
        let checkout = async {
            let mut checkout = Checkout::take(&self.pool).await.map_err(pool_failure)?;
            let answered = checkout.conn().test_connected().await;
            checkout.finish();
            if answered {
                Ok(())
            } else {
                Err(DeliveryError::transient(
                    "the SMTP server did not answer NOOP",
                ))
            }
        };
        match tokio::time::timeout(self.settings.timeout, checkout).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::transient(
                "the SMTP server did not answer in time",
            )),
        }
    }

    async fn send_email(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let email = self.message(message)?;
        let bytes = email.formatted();
        match tokio::time::timeout(
            self.settings.timeout,
            self.send_raw(email.envelope(), &bytes),
        )
        .await
        {
            Ok(result) => result,
            // The server may have taken the message and not yet answered.
            Err(_elapsed) => Err(DeliveryError::maybe_sent("SMTP send timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]", "127.1.2.3"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["smtp.example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let err = SmtpSender::starttls("smtp.example.com")
            .from("not an address")
            .build()
            .unwrap_err();
        // Named by the builder method here; from the environment, by the
        // variable (tests/delivery_env.rs).
        assert!(err.to_string().contains("SmtpSenderBuilder::from"), "{err}");
        let err = SmtpSender::starttls("smtp.example.com")
            .add_root_certificate_pem("not a certificate")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("root certificate"), "{err}");
    }
}

/// The `Content-Language` header (lettre has no type for it).
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl lettre::message::header::Header for ContentLanguage {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}
