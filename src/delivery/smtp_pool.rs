//! The SMTP connection pool behind [`SmtpSender`](super::SmtpSender): lettre
//! connections in a `deadpool` pool, returned to it **only** when an
//! exchange has run to its end.
//!
//! Why not lettre's own pool: its pooled connection goes back to the pool
//! when it is dropped, whatever state it is in, and lettre's tokio stream
//! has no read timeout, so every send is wrapped in a timeout. A send
//! cancelled half-way (the timeout fired, the delivery deadline passed, the
//! request future was dropped) then parked a connection that still owed us
//! a reply, or was in the middle of a message. The next message on it read
//! the previous one's late replies as its own (a `NOOP` answered by the late
//! `250` to the last `DATA`, every later command by the reply to the one
//! before), or, mid-message, became part of the previous message's body.
//!
//! Here a connection is checked out as a [`Checkout`]; only
//! [`Checkout::finish`], called once lettre's `send` has returned, lets it
//! go back. Dropped before that, the checkout takes the connection out of
//! the pool and closes it (no `QUIT`: its reply could not be told apart
//! from the late ones). A reused connection must still answer `NOOP`, and
//! one idle for longer than [`IDLE_TIMEOUT`] is closed instead.

use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, Pool, QueueMode, RecycleError, RecycleResult};
use lettre::transport::smtp::{
    Error,
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, TlsParameters},
    extension::ClientId,
};

/// A pooled connection idle for longer than this is closed rather than
/// reused (servers drop idle clients; lettre's pool uses 60 s too).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a new connection is protected.
#[derive(Clone)]
pub(crate) enum Security {
    /// No TLS.
    Plain,
    /// STARTTLS, required.
    StartTls(TlsParameters),
    /// TLS from the first byte.
    Wrapper(TlsParameters),
}

/// What a new connection needs.
pub(crate) struct Connector {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: Security,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) hello_name: ClientId,
    /// Time allowed to open the TCP connection (lettre's connect timeout).
    pub(crate) connect_timeout: Duration,
}

impl managed::Manager for Connector {
    type Type = AsyncSmtpConnection;
    type Error = Error;

    async fn create(&self) -> Result<AsyncSmtpConnection, Error> {
        let wrapper = match &self.security {
            Security::Wrapper(tls) => Some(tls.clone()),
            Security::Plain | Security::StartTls(_) => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.connect_timeout),
            &self.hello_name,
            wrapper,
            None,
        )
        .await?;
        if let Security::StartTls(tls) = &self.security {
            conn.starttls(tls.clone(), &self.hello_name).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut AsyncSmtpConnection,
        metrics: &Metrics,
    ) -> RecycleResult<Error> {
        if conn.has_broken() {
            return Err(RecycleError::message("the connection failed"));
        }
        if metrics.last_used() > IDLE_TIMEOUT {
            return Err(RecycleError::message("the connection was idle too long"));
        }
        // The server may have closed it since. A clean connection owes us
        // nothing, so the next reply is NOOP's own.
        if !conn.test_connected().await {
            return Err(RecycleError::message("the connection does not answer NOOP"));
        }
        Ok(())
    }
}

/// The pool.
pub(crate) type SmtpPool = Pool<Connector>;

/// A pool of at most `max_size` connections (a send waits for a free one,
/// within its timeout), most recently used first.
pub(crate) fn pool(connector: Connector, max_size: usize) -> SmtpPool {
    Pool::builder(connector)
        .max_size(max_size)
        .queue_mode(QueueMode::Lifo)
        .build()
        // Only fails with timeouts but no runtime; none is set.
        .expect("an SMTP pool without timeouts builds")
}

/// A connection checked out of the pool: it goes back only through
/// [`finish`](Self::finish).
pub(crate) struct Checkout {
    conn: Option<Object<Connector>>,
}

impl Checkout {
    /// Takes a connection: a parked one that answers `NOOP`, or a new one.
    pub(crate) async fn take(pool: &SmtpPool) -> Result<Self, managed::PoolError<Error>> {
        Ok(Self {
            conn: Some(pool.get().await?),
        })
    }

    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut AsyncSmtpConnection {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until finished or dropped")
    }

    /// The exchange ran to its end: the connection may go back to the pool
    /// (if lettre found it broken, the next checkout closes it).
    pub(crate) fn finish(mut self) {
        drop(self.conn.take());
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Cancelled mid-exchange: its state is unknown. Out of the pool,
            // and closed (dropping the stream closes the socket).
            drop(Object::take(conn));
        }
    }
}
