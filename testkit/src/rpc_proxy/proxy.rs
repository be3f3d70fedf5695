//! The handle tests hold: [`FaultProxy`] starts the server, switches its [`Mode`] and reads back
//! the [`ProxyEvent`] recorded for every request. The state it shares with the server
//! ([`Shared`]) lives here too, since the handle is what creates and cancels it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::faults::Mode;
use super::server::accept_loop;

/// What the proxy did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the node, unchanged.
    Forwarded,
    /// A fault was injected: `rate_limited`, `server_error`, `reset`, `hang`, `stale_head`,
    /// `empty_logs`, `range_limit`, `wrong_hash` or `lying_logs`.
    Faulted(&'static str),
}

/// One HTTP request the proxy received.
#[derive(Debug, Clone)]
pub struct ProxyEvent {
    pub arrived: Instant,
    /// When the answer was sent (for `reset` and `hang`, when the fault was injected).
    pub finished: Instant,
    /// The JSON-RPC methods in the request, in order (several for a batch).
    pub methods: Vec<String>,
    /// The `(fromBlock, toBlock)` of each numbered `eth_getLogs` in the request.
    pub log_ranges: Vec<(u64, u64)>,
    pub outcome: Outcome,
}

/// What the handle, the accept loop and every request handler share.
pub(super) struct Shared {
    /// The node's JSON-RPC URL.
    pub(super) upstream: String,
    pub(super) client: reqwest::Client,
    pub(super) mode: Mutex<Mode>,
    pub(super) events: Mutex<Vec<ProxyEvent>>,
    /// Cancelled on shutdown or drop: ends the accept loop and every open connection.
    pub(super) stop: CancellationToken,
}

/// The proxy; it stops serving when dropped or shut down.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to the JSON-RPC endpoint `upstream`.
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            client,
            mode: Mutex::new(Mode::Pass),
            events: Mutex::new(Vec::new()),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy { addr, shared })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode.lock().expect("mode lock").clone()
    }

    /// Every request received so far.
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.shared.events.lock().expect("events lock").clone()
    }

    /// How many HTTP requests arrived (a batch counts once).
    pub fn requests(&self) -> usize {
        self.shared.events.lock().expect("events lock").len()
    }

    /// Stops listening and drops every open connection, hanging ones included.
    pub fn shutdown(&self) {
        self.shared.stop.cancel();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}
