//! A fault-injecting JSON-RPC proxy in front of an EVM node (anvil, in the tests).
//!
//! Tests give the indexer the proxy's URL instead of the node's and switch its [`Mode`] at any
//! time to reproduce what public providers do: rate limiting with `Retry-After`, 5xx, connection
//! resets, requests that never get an answer, a node answering as of an older block, a load
//! balancer whose backend has not reached a block yet (empty logs while the head looks current),
//! range-limit errors in each provider's own wording, receipts that lie, and wrong block hashes.
//!
//! HTTP-level faults apply to the whole request; the others apply per call, so a JSON-RPC batch
//! can come back partly faulted, as it does from real providers. Every request is recorded as a
//! [`ProxyEvent`] so tests can measure how fast the client turned away from a faulty provider.
//!
//! The code is split by concern: `faults` holds the fault catalogue tests choose from
//! ([`Mode`], [`RangeStyle`]); `state` the state every part shares and the record of what the
//! proxy did ([`Outcome`], [`ProxyEvent`]); `upstream` the requests to the real node underneath;
//! `rewrite` the faults that edit JSON-RPC answers call by call; `server` the accept loop and the
//! per-request dispatch on the current mode; `proxy` the handle tests hold ([`FaultProxy`]).
//! Dependencies run one way, in that order (`faults` <- `state` <- `upstream` <- `rewrite` <-
//! `server` <- `proxy`), with no module using one that uses it back. Only the re-exports below
//! are public, so every path stays `rpc_proxy::X`.

mod faults;
mod proxy;
mod rewrite;
mod server;
mod state;
mod upstream;

#[cfg(test)]
mod tests;

pub use faults::{Mode, RangeStyle, ReceiptLie};
pub use proxy::FaultProxy;
pub use state::{Outcome, ProxyEvent};
