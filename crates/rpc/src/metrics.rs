//! The RPC pool's metrics, declared once: the names below are what the code records, what the
//! dashboard and the alert rules query, and what the deploy checks import.

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

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
/// `logsBloom`, or no logs where a second source shows some).
pub const INCONSISTENT_ANSWERS: &str = "tripwire_rpc_inconsistent_answers_total";
/// Counter: blocks whose `logsBloom` may hold configured logs but whose answer had none, by
/// outcome (`false_positive`, `caught`, `unsettled`).
pub const BLOOM_SUSPECTS: &str = "tripwire_rpc_bloom_suspects_total";
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
    BLOOM_SUSPECTS,
    RANGE_BLOCKS,
    RANGE_LOGS_PER_BLOCK,
    LOGS_UNDECODED,
];

/// Registers the descriptions (called once, when the recorder is installed).
pub fn describe() {
    describe_counter!(
        LOGS_UNDECODED,
        "Logs published raw because no ABI event decoded them."
    );
    describe_counter!(
        REQUESTS,
        "HTTP requests per provider and method (a batch counts once)."
    );
    describe_counter!(
        CALLS,
        "JSON-RPC calls per provider (each call of a batch counts)."
    );
    describe_counter!(
        ERRORS,
        "RPC failures per provider and kind (timeout, transport, http, rate_limited, range_limit, response, missing_block, inconsistent, unsettled, invalid)."
    );
    describe_counter!(FAILOVERS, "Calls moved from this provider to the next one.");
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "HTTP request latency per provider and method."
    );
    describe_gauge!(
        PROVIDER_UP,
        "1 while the provider is in rotation, 0 while benched or lagging."
    );
    describe_gauge!(PROVIDER_HEAD, "Head block last reported by the provider.");
    describe_gauge!(
        PROVIDER_ERROR_RATE,
        "Moving average of the provider's failure rate (0..1)."
    );
    describe_gauge!(
        IN_ROTATION,
        "Providers of the chain in rotation (0: all down)."
    );
    describe_gauge!(
        BEST_HEAD,
        "Highest head reported by any provider of the chain."
    );
    describe_counter!(
        RANGE_SHRINKS,
        "Range or response-size limits that shrank the range."
    );
    describe_counter!(
        INCONSISTENT_ANSWERS,
        "Answers of a provider caught contradicting the evidence (a log outside its block's \
         logsBloom, or no logs where a second source shows some)."
    );
    describe_counter!(
        BLOOM_SUSPECTS,
        "Blocks whose logsBloom may hold configured logs but whose answer had none, by outcome \
         (false_positive: a second source agrees; caught: it shows logs; unsettled: no source)."
    );
    describe_gauge!(
        RANGE_BLOCKS,
        "Blocks per eth_getLogs request now (sized by the answers, shrunk by provider limits)."
    );
    describe_gauge!(
        RANGE_LOGS_PER_BLOCK,
        "Logs per block of the configured contracts, as estimated from the answers."
    );
}
