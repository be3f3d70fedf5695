//! The handle tests hold: [`FaultProxy`] creates the [`Shared`] state, starts the server loop on
//! it, switches its [`Mode`] and reads back the [`ProxyEvent`] recorded for every request. The
//! state and event types themselves live in [`super::state`], so the server can use them without
//! depending on this module; the dependency runs one way, from the handle to the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::faults::Mode;
use super::server::accept_loop;
use super::state::{ProxyEvent, Shared};

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
