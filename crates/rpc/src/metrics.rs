//! The RPC pool's metrics, declared once as typed structs: a field is a metric (its name the
//! struct's scope and the field's name), its doc comment the description. The names are what
//! the dashboard and the alert rules query, and what the deploy checks import ([`NAMES`]).
//!
//! Each struct holds the metrics of one label set. The pool builds a provider's and a chain's
//! structs once; label values known only at the event (error kind, method, range-limit style,
//! settle outcome, contract) go through a [`Family`]. Gauges are [`Lazy`]: a provider's head or
//! "in rotation" at 0 before the first real value would be false, and alert rules compare them.

use std::sync::{Arc, OnceLock};

use ::metrics::{Counter, Gauge, Histogram, Label};
use metrics_derive::Metrics;
use tripwire_runtime::metrics::{Family, Lazy};

/// Counter: HTTP requests per provider and method (a batch counts once).
pub const REQUESTS: &str = "tripwire_rpc_requests_total";
/// Counter: JSON-RPC calls per provider (each call of a batch counts).
pub const CALLS: &str = "tripwire_rpc_calls_total";
/// Counter: RPC failures per provider and kind (`timeout`, `rate_limited`, `range_limit`, ...).
pub const ERRORS: &str = "tripwire_rpc_errors_total";
/// Counter: calls moved from a provider to the next one.
pub const FAILOVERS: &str = "tripwire_rpc_failovers_total";
/// Histogram: HTTP request latency per provider and method, in seconds.
pub const LATENCY: &str = "tripwire_rpc_latency_seconds";
/// Gauge: 1 while the provider is in rotation, 0 while benched or lagging.
pub const PROVIDER_UP: &str = "tripwire_rpc_provider_up";
/// Gauge: head block last reported by the provider.
pub const PROVIDER_HEAD: &str = "tripwire_rpc_provider_head_block";
/// Gauge: moving average of the provider's failure rate (0 to 1).
pub const PROVIDER_ERROR_RATE: &str = "tripwire_rpc_provider_error_rate";
/// Gauge: providers of the chain in rotation (0: all down).
pub const IN_ROTATION: &str = "tripwire_rpc_providers_in_rotation";
/// Gauge: highest head reported by any provider of the chain.
pub const BEST_HEAD: &str = "tripwire_rpc_best_head_block";
/// Counter: range or response-size limits that shrank the `eth_getLogs` range.
pub const RANGE_SHRINKS: &str = "tripwire_rpc_range_shrinks_total";
/// Counter: a provider's answers caught contradicting the evidence (a log outside its block's
/// `logsBloom`, no logs where a second source shows some, or transactions or receipts that do
/// not hash to the block's roots).
pub const INCONSISTENT_ANSWERS: &str = "tripwire_rpc_inconsistent_answers_total";
/// Counter: blocks whose `logsBloom` may hold configured logs but whose answer had none, by
/// outcome (`false_positive`, `caught`, `unsettled`).
pub const BLOOM_SUSPECTS: &str = "tripwire_rpc_bloom_suspects_total";
/// Counter: blocks whose receipts a provider without `eth_getBlockReceipts` gave one
/// transaction at a time (`eth_getTransactionReceipt`).
pub const RECEIPTS_ONE_BY_ONE: &str = "tripwire_rpc_receipts_one_by_one_total";
/// Logs no ABI event decoded (published raw), per contract.
pub const LOGS_UNDECODED: &str = "tripwire_logs_undecoded_total";
/// Gauge: blocks per `eth_getLogs` request now (sized by the answers, shrunk by provider limits).
pub const RANGE_BLOCKS: &str = "tripwire_rpc_range_blocks";
/// Gauge: logs per block of the configured contracts, as estimated from the answers.
pub const RANGE_LOGS_PER_BLOCK: &str = "tripwire_rpc_range_logs_per_block";

/// Every metric name this crate declares.
pub const NAMES: &[&str] = &[
    REQUESTS,
    CALLS,
    ERRORS,
    FAILOVERS,
    LATENCY,
    PROVIDER_UP,
    PROVIDER_HEAD,
    PROVIDER_ERROR_RATE,
    IN_ROTATION,
    BEST_HEAD,
    RANGE_SHRINKS,
    INCONSISTENT_ANSWERS,
    RECEIPTS_ONE_BY_ONE,
    BLOOM_SUSPECTS,
    RANGE_BLOCKS,
    RANGE_LOGS_PER_BLOCK,
    LOGS_UNDECODED,
];

/// Registers the descriptions (called once, when the recorder is installed).
///
/// Unconditionally (`force_describe`): metrics-derive describes a struct once per process, to
/// whichever recorder exists when the first one is built, which may be none or a test's own.
pub fn describe() {
    ProviderCounters::force_describe();
    MethodMetrics::force_describe();
    ErrorMetrics::force_describe();
    ProviderHealth::force_describe();
    ProviderHead::force_describe();
    Rotation::force_describe();
    BestHead::force_describe();
    RangeBlocks::force_describe();
    RangeDensity::force_describe();
    RangeShrinks::force_describe();
    BloomSuspects::force_describe();
    Undecoded::force_describe();
}

/// Counters of one provider (labels `chain`, `provider`).
#[derive(Metrics, Clone)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct ProviderCounters {
    /// JSON-RPC calls per provider (each call of a batch counts).
    pub(crate) calls_total: Counter,
    /// Calls moved from this provider to the next one.
    pub(crate) failovers_total: Counter,
    /// Answers of a provider caught contradicting the evidence (a log outside its block's
    /// logsBloom, no logs where a second source shows some, or transactions or receipts that do
    /// not hash to the block's roots).
    pub(crate) inconsistent_answers_total: Counter,
    /// Blocks whose receipts the provider, lacking eth_getBlockReceipts, gave one transaction at
    /// a time.
    pub(crate) receipts_one_by_one_total: Counter,
}

/// One provider's requests of one method (labels `chain`, `provider`, `method`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct MethodMetrics {
    /// HTTP requests per provider and method (a batch counts once).
    pub(crate) requests_total: Counter,
    /// HTTP request latency per provider and method.
    pub(crate) latency_seconds: Histogram,
}

/// One provider's failures of one kind (labels `chain`, `provider`, `kind`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct ErrorMetrics {
    /// RPC failures per provider and kind (timeout, transport, http, rate_limited, range_limit,
    /// response, missing_block, inconsistent, unsettled, invalid).
    pub(crate) errors_total: Counter,
}

/// A provider's standing, set together whenever it changes (labels `chain`, `provider`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct ProviderHealth {
    /// 1 while the provider is in rotation, 0 while benched or lagging.
    pub(crate) provider_up: Gauge,
    /// Moving average of the provider's failure rate (0..1).
    pub(crate) provider_error_rate: Gauge,
}

/// A provider's head (labels `chain`, `provider`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct ProviderHead {
    /// Head block last reported by the provider.
    pub(crate) provider_head_block: Gauge,
}

/// The chain's providers in rotation (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct Rotation {
    /// Providers of the chain in rotation (0: all down).
    pub(crate) providers_in_rotation: Gauge,
}

/// The chain's best head (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct BestHead {
    /// Highest head reported by any provider of the chain.
    pub(crate) best_head_block: Gauge,
}

/// The chain's range size (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct RangeBlocks {
    /// Blocks per eth_getLogs request now (sized by the answers, shrunk by provider limits).
    pub(crate) range_blocks: Gauge,
}

/// The chain's log density, once the answers gave one (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct RangeDensity {
    /// Logs per block of the configured contracts, as estimated from the answers.
    pub(crate) range_logs_per_block: Gauge,
}

/// Range shrinks of one limit style (labels `chain`, `style`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct RangeShrinks {
    /// Range or response-size limits that shrank the range.
    pub(crate) range_shrinks_total: Counter,
}

/// Bloom suspects of one outcome (labels `chain`, `outcome`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_rpc", separator = "_")]
pub(crate) struct BloomSuspects {
    /// Blocks whose logsBloom may hold configured logs but whose answer had none, by outcome
    /// (false_positive: a second source agrees; caught: it shows logs; unsettled: no source).
    pub(crate) bloom_suspects_total: Counter,
}

/// Undecoded logs of one contract (labels `chain`, `contract`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct Undecoded {
    /// Logs published raw because no ABI event decoded them.
    pub(crate) logs_undecoded_total: Counter,
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect()
}

/// The metrics of one provider, built with it.
pub(crate) struct ProviderMetrics {
    pub(crate) counters: ProviderCounters,
    pub(crate) errors: Family<&'static str, ErrorMetrics>,
    pub(crate) health: Lazy<ProviderHealth>,
    pub(crate) head: Lazy<ProviderHead>,
}

impl ProviderMetrics {
    pub(crate) fn new(chain: &str, provider: &str) -> Self {
        let base = labels(&[("chain", chain), ("provider", provider)]);
        let (b1, b2, b3) = (base.clone(), base.clone(), base.clone());
        ProviderMetrics {
            counters: ProviderCounters::new_with_labels(base),
            errors: Family::new(move |&kind: &&'static str| {
                let mut l = b1.clone();
                l.push(Label::from_static_parts("kind", kind));
                ErrorMetrics::new_with_labels(l)
            }),
            health: Lazy::new(move || ProviderHealth::new_with_labels(b2.clone())),
            head: Lazy::new(move || ProviderHead::new_with_labels(b3.clone())),
        }
    }

    /// The request metrics of one method, for the transport layer (one per provider).
    pub(crate) fn methods(chain: &str, provider: &str) -> Family<String, MethodMetrics> {
        let base = labels(&[("chain", chain), ("provider", provider)]);
        Family::new(move |method: &String| {
            let mut l = base.clone();
            l.push(Label::new("method", method.clone()));
            MethodMetrics::new_with_labels(l)
        })
    }
}

/// The metrics of one chain's pool, built with it.
pub(crate) struct ChainMetrics {
    pub(crate) rotation: Lazy<Rotation>,
    pub(crate) best_head: Lazy<BestHead>,
    pub(crate) range_blocks: Lazy<RangeBlocks>,
    pub(crate) density: Lazy<RangeDensity>,
    pub(crate) shrinks: Family<&'static str, RangeShrinks>,
    pub(crate) bloom: Family<&'static str, BloomSuspects>,
}

impl ChainMetrics {
    pub(crate) fn new(chain: &str) -> Self {
        let base = labels(&[("chain", chain)]);
        let [b1, b2, b3, b4, b5, b6] = std::array::from_fn(|_| base.clone());
        ChainMetrics {
            rotation: Lazy::new(move || Rotation::new_with_labels(b1.clone())),
            best_head: Lazy::new(move || BestHead::new_with_labels(b2.clone())),
            range_blocks: Lazy::new(move || RangeBlocks::new_with_labels(b3.clone())),
            density: Lazy::new(move || RangeDensity::new_with_labels(b4.clone())),
            shrinks: Family::new(move |&style: &&'static str| {
                let mut l = b5.clone();
                l.push(Label::from_static_parts("style", style));
                RangeShrinks::new_with_labels(l)
            }),
            bloom: Family::new(move |&outcome: &&'static str| {
                let mut l = b6.clone();
                l.push(Label::from_static_parts("outcome", outcome));
                BloomSuspects::new_with_labels(l)
            }),
        }
    }
}

/// Undecoded logs by chain and contract, for [`crate::records::build`] (a free function, so the
/// cache is the process's; built on the first undecoded log, after the recorder is installed).
pub(crate) fn undecoded(chain: &str, contract: &str) -> Arc<Undecoded> {
    type Key = (String, String);
    static FAMILY: OnceLock<Family<Key, Undecoded>> = OnceLock::new();
    FAMILY
        .get_or_init(|| {
            Family::new(|(chain, contract): &Key| {
                Undecoded::new_with_labels(labels(&[("chain", chain), ("contract", contract)]))
            })
        })
        .get(&(chain.to_owned(), contract.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn names_are_the_described_fields() {
        let described = tripwire_runtime::metrics::described(super::describe);
        let names: BTreeSet<String> = super::NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, names);
    }
}
