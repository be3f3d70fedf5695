//! A cuttable TCP forwarder: tests point the code under test at the proxy and
//! then sever it to simulate a dependency (Postgres, typically) going away
//! without having to stop the real server other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
struct Shared {
    cut: AtomicBool,
    active: AtomicUsize,
    /// Bumped on every cut (and on drop); connection tasks end when it changes.
    epoch: watch::Sender<u64>,
}

/// Forwards `127.0.0.1:<random port>` to a fixed target until cut. Must be
/// started inside a tokio runtime; stops forwarding when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target` (resolved once, now).
    pub async fn start(target: impl ToSocketAddrs) -> anyhow::Result<TcpProxy> {
        let target = tokio::net::lookup_host(target)
            .await
            .context("resolving proxy target")?
            .next()
            .context("proxy target resolved to no address")?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding proxy listener")?;
        let addr = listener.local_addr()?;
        let (epoch, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            epoch,
        });
        let accept_task = tokio::spawn(accept_loop(listener, target, Arc::clone(&shared)));
        Ok(TcpProxy {
            addr,
            target,
            shared,
            accept_task,
        })
    }

    /// Where clients should connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every forwarded connection and makes new ones fail: they are
    /// accepted and dropped at once, so clients see a reset/EOF quickly
    /// instead of hanging until a connect timeout.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Forwards new connections again after [`TcpProxy::cut`].
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Number of connections currently being forwarded.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.epoch.send_modify(|e| *e += 1);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (inbound, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Typically EMFILE; back off rather than spin.
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Subscribe before checking the flag: a cut landing in between then
        // still shows up as an epoch change and closes this connection.
        let mut epoch = shared.epoch.subscribe();
        if shared.cut.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            shared.active.fetch_add(1, Ordering::SeqCst);
            forward(inbound, target, &mut epoch).await;
            shared.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, epoch: &mut watch::Receiver<u64>) {
    let mut outbound = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%target, error = %e, "proxy could not reach target");
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = epoch.changed() => {}
    }
    // Both sockets drop here, closing the connection on both sides.
}
