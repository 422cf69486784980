//! A TCP proxy for fault tests: forwards bytes between its clients and an
//! upstream (e.g. the shared Redis), holding each chunk of the upstream's
//! answers back by a configurable delay, or black-holing: accepting
//! connections and swallowing what they send, answering nothing. Both can be
//! changed while connections are open (the change applies to the next
//! chunk), so a test can make a dependency slow, dead, then well again.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
};

#[derive(Default)]
struct State {
    delay_ms: AtomicU64,
    black_hole: AtomicBool,
    live: AtomicUsize,
    peak: AtomicUsize,
    accepted: AtomicUsize,
}

/// Counts a live client connection while it lives.
struct Live(Arc<State>);

impl Live {
    fn new(state: &Arc<State>) -> Self {
        let now = state.live.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(now, Ordering::SeqCst);
        state.accepted.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The proxy; it stops accepting when dropped (open connections end when
/// either side closes).
pub struct SlowProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SlowProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let upstream = upstream.to_owned();
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let live = Live::new(&state);
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // Either direction ending ends the connection.
                    tokio::select! {
                        () = pump(client_read, server_write, &state, false) => {}
                        () = pump(server_read, client_write, &state, true) => {}
                    }
                    drop(live);
                });
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// A `redis://` URL through the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Holds each chunk of the upstream's answers back by `delay`
    /// (zero: forward at once).
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// While on, what clients send is swallowed (never reaches the
    /// upstream) and nothing is answered; connections are still accepted.
    pub fn set_black_hole(&self, on: bool) {
        self.state.black_hole.store(on, Ordering::SeqCst);
    }

    /// Client connections open now.
    pub fn live_connections(&self) -> usize {
        self.state.live.load(Ordering::SeqCst)
    }

    /// The most client connections open at once so far.
    pub fn peak_connections(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far.
    pub fn accepted_connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` chunk by chunk; `answers` marks the upstream's
/// direction (the one that is delayed). A black hole drops client chunks.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: &State, answers: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !answers && state.black_hole.load(Ordering::SeqCst) {
            continue;
        }
        if answers {
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
