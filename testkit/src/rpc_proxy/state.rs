//! The state every part of the proxy shares, and the record it keeps: [`Shared`] (the node's
//! URL, the HTTP client, the current [`Mode`], the event log and the stop token) and the
//! [`ProxyEvent`] / [`Outcome`] pushed for every request. A leaf module: it depends on the fault
//! catalogue only, so the handle, the server loop, the rewriting faults and the upstream client
//! can all use it without depending on one another in a circle.

use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::faults::Mode;

/// What the proxy did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the node, unchanged.
    Forwarded,
    /// A fault was injected: `rate_limited`, `server_error`, `reset`, `hang`, `stale_head`,
    /// `empty_logs`, `range_limit`, `wrong_hash`, `lying_logs`, `lying_receipts` or
    /// `method_missing`.
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
