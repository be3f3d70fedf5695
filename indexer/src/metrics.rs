//! Every metric the indexer exports, declared in one place with its description. Code elsewhere
//! uses these names through the `metrics` macros.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

pub const HEAD_BLOCK: &str = "tripwire_chain_head_block";
pub const INGESTED_BLOCK: &str = "tripwire_ingested_block";
pub const INDEXED_BLOCK: &str = "tripwire_indexed_block";
pub const LAG_BLOCKS: &str = "tripwire_lag_blocks";
pub const LOGS_PRODUCED: &str = "tripwire_logs_produced_total";
pub const BLOCKS_PRODUCED: &str = "tripwire_blocks_produced_total";
pub const LOGS_WRITTEN: &str = "tripwire_logs_written_total";
pub const RECORDS_CONSUMED: &str = "tripwire_records_consumed_total";
pub const DEAD_LETTERS: &str = "tripwire_dead_letters_total";
/// Blocks retracted at start because they were published before a crash and replaced meanwhile.
pub const PENDING_RETRACTED: &str = "tripwire_ingest_pending_retracted_total";
pub const REORGS: &str = "tripwire_reorgs_total";
pub const REORG_DEPTH: &str = "tripwire_reorg_depth_blocks";
/// Histograms whose unit is not seconds: reorg depths are block counts, up to a deep reorg.
pub const BUCKETS: &[tripwire_runtime::server::Buckets] = &[(
    REORG_DEPTH,
    &[
        1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0, 128.0,
    ],
)];
pub const RETRACTIONS_APPLIED: &str = "tripwire_retractions_applied_total";
pub const KAFKA_ERRORS: &str = "tripwire_kafka_errors_total";
pub const POSTGRES_ERRORS: &str = "tripwire_postgres_errors_total";
pub const SINK_FENCED: &str = "tripwire_sink_batches_fenced_total";
pub const BATCH_SECONDS: &str = "tripwire_batch_duration_seconds";
pub const HEAD_AGE: &str = "tripwire_chain_head_age_seconds";
pub const PROVIDER_FORKS: &str = "tripwire_rpc_provider_forks_total";
/// The lead over the sink right after each publish (its peak), when a lead limit is set.
pub const LEAD_RECORDS: &str = "tripwire_ingest_lead_records";
pub const LEAD_BYTES: &str = "tripwire_ingest_lead_bytes";
/// Publishes that took the lead past its limit (a single block larger than the limit).
pub const LEAD_OVERRUNS: &str = "tripwire_ingest_lead_overruns_total";
/// Every metric name the indexer declares (the deploy checks read it).
pub const NAMES: &[&str] = &[
    HEAD_BLOCK,
    INGESTED_BLOCK,
    INDEXED_BLOCK,
    LAG_BLOCKS,
    LOGS_PRODUCED,
    BLOCKS_PRODUCED,
    LOGS_WRITTEN,
    RECORDS_CONSUMED,
    DEAD_LETTERS,
    PENDING_RETRACTED,
    REORGS,
    REORG_DEPTH,
    RETRACTIONS_APPLIED,
    KAFKA_ERRORS,
    POSTGRES_ERRORS,
    SINK_FENCED,
    BATCH_SECONDS,
    HEAD_AGE,
    PROVIDER_FORKS,
    LEAD_RECORDS,
    LEAD_BYTES,
    LEAD_OVERRUNS,
];

/// Registers descriptions (called once when the recorder is installed).
pub fn describe() {
    tripwire_rpc::metrics::describe();
    tripwire_kafka::metrics::describe();
    describe_gauge!(
        LEAD_RECORDS,
        "Records in the topic beyond the sink's stored position right after the last publish \
         (with a lead limit)."
    );
    describe_gauge!(
        LEAD_BYTES,
        Unit::Bytes,
        "Bytes of records in the topic beyond the sink's stored position right after the last \
         publish (with a byte limit; -1 while unknown)."
    );
    describe_counter!(
        LEAD_OVERRUNS,
        "Publishes that took the lead past its limit: a single block larger than the whole limit, \
         sent alone once the sink had caught up."
    );
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
        "Chain reorganisations detected by the ingest (the sink counts retractions applied)."
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
    describe_counter!(
        SINK_FENCED,
        "Sink batches dropped unwritten because another instance stored a later position."
    );
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "Time to process one range or batch."
    );
    describe_gauge!(
        HEAD_AGE,
        "Seconds since any RPC provider last reported the head (grows while all are down)."
    );
    describe_counter!(
        PROVIDER_FORKS,
        "Times a provider alone reported another block at the indexed tip (benched, not a reorg)."
    );
    describe_counter!(
        PENDING_RETRACTED,
        "Blocks retracted at start: published before a crash, replaced before the restart."
    );
}
