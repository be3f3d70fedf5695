//! The accept loop of every process's HTTP server, built to survive hostile or broken clients:
//! at most `max_connections` connections are served at once (the rest wait in the kernel's
//! backlog, costing no file descriptor), a connection that has not sent a request's headers
//! within `header_timeout` is closed (idle keep-alive connections too), a request (its body
//! included) that takes longer than `request_timeout` is answered 408, and an accept that fails
//! (file descriptors exhausted, say) is retried with backoff instead of ending the server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of an HTTP server (`[server]` of the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A connection that sends no complete request header within this time is closed, idle keep-alive
    /// connections included.
    pub header_timeout: Duration,
    /// A request (its body included) not answered within this time is answered 408.
    pub request_timeout: Duration,
    /// Connections served at once; the rest wait in the kernel's backlog.
    pub max_connections: usize,
}

/// The documented defaults of `[server]`, kept in one place (the config model).
impl Default for Limits {
    fn default() -> Self {
        (&tripwire_config::ServerConfig::default()).into()
    }
}

impl From<&tripwire_config::ServerConfig> for Limits {
    fn from(c: &tripwire_config::ServerConfig) -> Self {
        Limits {
            header_timeout: c.header_timeout(),
            request_timeout: c.request_timeout(),
            max_connections: c.max_connections.max(1),
        }
    }
}

/// First and longest pause after a failed accept.
const ACCEPT_RETRY_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish (bounded by the
/// request timeout).
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let mut retry = ACCEPT_RETRY_FIRST;
    let metrics = crate::metrics::ServerMetrics::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => {
                retry = ACCEPT_RETRY_FIRST;
                a
            }
            Err(e) => {
                // EMFILE/ENFILE (or a connection reset before it was accepted): the listener
                // stays fine; waiting lets connections close and free descriptors.
                metrics.http_accept_errors_total.increment(1);
                if retry == ACCEPT_RETRY_FIRST {
                    tracing::warn!(error = %e, "HTTP accept failed; retrying with backoff");
                }
                drop(permit);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(ACCEPT_RETRY_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(limits.request_timeout, connections.wait()).await;
}
