//! JSON-RPC access to a chain through a pool of providers (`pool.rs`), each an alloy `RpcClient`
//! over a layered HTTP transport (`layers.rs`, `http.rs`: answers larger than
//! `max_response_bytes` are not read). The operation the ingest builds on is
//! [`ChainRpc::fetch_range`]: the headers of a block range and its logs, asked from **one provider
//! in one JSON-RPC batch**, so that an empty log list is only believed together with that same
//! provider's header of every block of the range (a node that has not reached a block answers
//! `null` there, not a hash); for contracts watching transactions the same batch carries each
//! block in full with its receipts, proven against the header's roots (`txs.rs`). Ranges are
//! sized by what the previous answers held and shrink on range limits (`range.rs`, `limits.rs`);
//! provider faults bench the provider and move the call to the next one. What the applications
//! read goes through the [`ChainSource`] trait, which the pool implements and an in-memory chain
//! (`fake`, feature `test-utils`) fakes for tests.

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

pub mod contract;
mod dispatch;
mod error;
pub mod evidence;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
mod http;
mod layers;
pub mod limits;
pub mod metrics;
mod pool;
pub mod range;
mod reads;
pub mod records;
mod settle;
mod source;
mod split;
pub mod txs;
mod txs_fetch;
mod types;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    rpc::{client::ClientBuilder, types::Log},
    transports::layers::ThrottleLayer,
};

pub use contract::{At, CallError};
pub use error::RpcError;
pub use evidence::Interest;
pub use pool::ProviderStatus;
pub use source::ChainSource;
pub use types::Header;

use pool::{Pool, Provider};
use tripwire_config::{redact_url, ChainConfig};

/// Index of a provider in its chain's pool.
pub type ProviderId = usize;

/// The headers and logs of an inclusive block range, as one provider saw them (or several, one
/// sub-range each, when a range limit split the request).
#[derive(Debug, Default)]
pub struct RangeData {
    /// The block headers of the range, lowest first.
    pub headers: Vec<Header>,
    /// The logs of the configured contracts in the range, as the providers returned them.
    pub logs: Vec<Log>,
    /// The transactions sent to contracts that watch them (`transactions` in the config), each
    /// block's proven against its roots by the provider of its header; by block, then tx_index.
    pub transactions: Vec<tripwire_schema::TransactionRecord>,
    /// The provider that answered the first sub-range (whose first header links to the cursor).
    pub provider: ProviderId,
}

/// Heads as known after a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Highest head any provider reported: the chain's head, for lag.
    pub best: u64,
    /// Highest head among providers that can be asked now: how far indexing can go.
    pub serving: u64,
}

/// The RPC providers of one chain. Cheap to clone.
#[derive(Clone)]
pub struct ChainRpc {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// EIP-155 id of the chain, written into transaction records.
    chain_id: u64,
    timeout: Duration,
    range: range::AdaptiveRange,
    verify_ranges: bool,
    /// `verify_ranges` and `check_logs_bloom`: answers are checked against the blooms.
    check_bloom: bool,
    last_heads: Mutex<Option<(Instant, Heads)>>,
    /// Ranges that failed with an error no wording matched, and how often in a row (ranges in
    /// flight fail side by side, so one "last range" would never see a repetition).
    unrecognised: Mutex<std::collections::HashMap<(u64, u64), u32>>,
    /// Times the only provider was caught answering a block wrongly (see `settle.rs`).
    contradictions: Mutex<std::collections::HashMap<u64, u32>>,
}

/// Heads younger than this are not asked again (ranges in flight share one refresh).
const HEADS_FRESH: Duration = Duration::from_millis(200);
/// After the first provider answered its head, how long the others get before the refresh
/// returns without them (a hung provider must not hold up indexing).
const HEADS_GRACE: Duration = Duration::from_millis(150);

impl ChainRpc {
    /// Builds clients for every provider of the chain (no network traffic yet).
    pub fn new(chain: &ChainConfig) -> Result<ChainRpc, RpcError> {
        let timeout = Duration::from_secs(chain.rpc_timeout_s);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RpcError::Invalid {
                provider: "-".into(),
                method: "connect",
                message: e.to_string(),
            })?;
        let mut providers: Vec<Provider> = Vec::new();
        for p in chain.all_providers() {
            let url: url::Url = p
                .url
                .parse()
                .map_err(|e: url::ParseError| RpcError::Invalid {
                    provider: redact_url(&p.url),
                    method: "connect",
                    message: e.to_string(),
                })?;
            let mut label = p.name.clone().unwrap_or_else(|| redact_url(&p.url));
            // Two keys of one service redact to the same label: keep labels distinct.
            if providers.iter().any(|q| q.label == label) {
                label = format!("{label}#{}", providers.len() + 1);
            }
            let provider_metrics = metrics::ProviderMetrics::new(&chain.name, &label);
            let metrics =
                layers::MetricsLayer::new(&chain.name, &label, &provider_metrics.counters);
            let transport = http::CappedHttp::new(http.clone(), url, chain.max_response_bytes);
            let local = transport.is_local();
            let client = match p.max_rps {
                Some(rps) => ClientBuilder::default()
                    .layer(metrics)
                    .layer(ThrottleLayer::new(rps))
                    .transport(transport, local),
                None => ClientBuilder::default()
                    .layer(metrics)
                    .transport(transport, local),
            };
            providers.push(Provider::new(label, p.weight, client, provider_metrics));
        }
        let pool = Pool {
            chain: chain.name.clone(),
            providers,
            max_lag: chain.max_provider_lag_blocks,
            metrics: metrics::ChainMetrics::new(&chain.name),
        };
        pool.publish_all();
        Ok(ChainRpc {
            inner: Arc::new(Inner {
                pool,
                chain_id: chain.chain_id,
                timeout,
                range: range::AdaptiveRange::new(
                    chain.range_blocks,
                    chain.range_target_logs,
                    chain.range_target_bytes,
                ),
                verify_ranges: chain.verify_ranges,
                check_bloom: chain.verify_ranges && chain.check_logs_bloom,
                last_heads: Mutex::new(None),
                unrecognised: Mutex::default(),
                contradictions: Mutex::default(),
            }),
        })
    }

    fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn chain(&self) -> &str {
        &self.inner.pool.chain
    }

    /// The provider's label.
    pub fn label(&self, id: ProviderId) -> &str {
        &self.pool().providers[id].label
    }

    /// Blocks per `eth_getLogs` now: sized by what the answers held, shrunk after range limits
    /// (see `range.rs`).
    pub fn range_blocks(&self) -> u64 {
        self.inner.range.current()
    }

    /// The same for at most `max_logs` logs per request (`None`: the configured targets only).
    pub fn range_blocks_within(&self, max_logs: Option<u64>) -> u64 {
        self.inner.range.span_within(max_logs)
    }

    /// Every provider's state, for `status` and the `rpc_providers` table.
    pub fn snapshot(&self) -> Vec<ProviderStatus> {
        self.pool().snapshot()
    }

    /// Time since a provider last reported the head (`None` before the first answer). Grows while
    /// every provider is down, which is what "indexer stalled" alerts watch.
    pub fn head_age(&self) -> Option<Duration> {
        self.inner
            .last_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(at, _)| at.elapsed())
    }

    /// Providers configured for the chain.
    pub fn provider_count(&self) -> usize {
        self.pool().providers.len()
    }

    /// Providers in rotation now.
    pub fn in_rotation(&self) -> usize {
        self.pool().in_rotation()
    }
}
