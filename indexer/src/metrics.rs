//! Every metric the indexer exports, declared in one place with its description. Code elsewhere
//! uses these names through the `metrics` macros.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const HEAD_BLOCK: &str = "tripwire_chain_head_block";
pub const INGESTED_BLOCK: &str = "tripwire_ingested_block";
pub const INDEXED_BLOCK: &str = "tripwire_indexed_block";
pub const LAG_BLOCKS: &str = "tripwire_lag_blocks";
pub const LOGS_PRODUCED: &str = "tripwire_logs_produced_total";
pub const LOGS_UNDECODED: &str = "tripwire_logs_undecoded_total";
pub const BLOCKS_PRODUCED: &str = "tripwire_blocks_produced_total";
pub const LOGS_WRITTEN: &str = "tripwire_logs_written_total";
pub const RECORDS_CONSUMED: &str = "tripwire_records_consumed_total";
pub const DEAD_LETTERS: &str = "tripwire_dead_letters_total";
pub const REORGS: &str = "tripwire_reorgs_total";
pub const REORG_DEPTH: &str = "tripwire_reorg_depth_blocks";
pub const RETRACTIONS_APPLIED: &str = "tripwire_retractions_applied_total";
pub const KAFKA_ERRORS: &str = "tripwire_kafka_errors_total";
pub const POSTGRES_ERRORS: &str = "tripwire_postgres_errors_total";
pub const BATCH_SECONDS: &str = "tripwire_batch_duration_seconds";

/// Registers descriptions (called once when the recorder is installed).
pub fn describe() {
    describe_gauge!(
        HEAD_BLOCK,
        "Latest block number reported by the chain's RPC."
    );
    describe_gauge!(
        INGESTED_BLOCK,
        "Last block whose records Kafka acknowledged."
    );
    describe_gauge!(INDEXED_BLOCK, "Last block written to Postgres by the sink.");
    describe_gauge!(
        LAG_BLOCKS,
        "Head minus the last block of this process's stage."
    );
    describe_counter!(LOGS_PRODUCED, "Log records published to Kafka.");
    describe_counter!(
        LOGS_UNDECODED,
        "Logs published raw because no ABI event decoded them."
    );
    describe_counter!(BLOCKS_PRODUCED, "Block markers published to Kafka.");
    describe_counter!(
        LOGS_WRITTEN,
        "Log rows inserted into Postgres (duplicates not counted)."
    );
    describe_counter!(RECORDS_CONSUMED, "Records read from Kafka by the sink.");
    describe_counter!(
        DEAD_LETTERS,
        "Unreadable Kafka records kept in dead_letters."
    );
    describe_counter!(
        REORGS,
        "Chain reorganisations detected (ingest) or applied (sink)."
    );
    describe_histogram!(
        REORG_DEPTH,
        Unit::Count,
        "Depth of each reorganisation in blocks."
    );
    describe_counter!(
        RETRACTIONS_APPLIED,
        "Retraction records applied to Postgres."
    );
    describe_counter!(KAFKA_ERRORS, "Kafka errors by operation.");
    describe_counter!(POSTGRES_ERRORS, "Postgres errors by operation.");
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "Time to process one range or batch."
    );
    describe_counter!("tripwire_rpc_requests_total", "JSON-RPC calls by method.");
    describe_counter!(
        "tripwire_rpc_errors_total",
        "JSON-RPC failures by method and kind."
    );
    describe_counter!(
        "tripwire_rpc_failovers_total",
        "Calls moved to the next provider."
    );
    describe_histogram!(
        "tripwire_rpc_latency_seconds",
        Unit::Seconds,
        "JSON-RPC latency."
    );
}
