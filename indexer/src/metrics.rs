//! Every metric the indexer exports, declared once as typed structs (`metrics-derive`): the field
//! is the name after the struct's scope, its doc comment the description. Code elsewhere calls
//! the handles of a struct it built once per label set ([`Ingest`] per chain, [`Sink`] per sink,
//! [`Errors`] per failing operation, [`Probed`] per chain of the lag probe).
//!
//! Gauges stand apart, each in a [`Lazy`] struct of its own: a head, cursor or lag at 0 before
//! the first real value would be false, and the alert rules compare them.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Label};
use metrics_derive::Metrics;
use tripwire_runtime::metrics::{no_labels, Family, Lazy};

pub const HEAD_BLOCK: &str = "tripwire_chain_head_block";
pub const INGESTED_BLOCK: &str = "tripwire_ingested_block";
pub const INDEXED_BLOCK: &str = "tripwire_indexed_block";
pub const LAG_BLOCKS: &str = "tripwire_lag_blocks";
pub const LOGS_PRODUCED: &str = "tripwire_logs_produced_total";
pub const BLOCKS_PRODUCED: &str = "tripwire_blocks_produced_total";
pub const LOGS_WRITTEN: &str = "tripwire_logs_written_total";
pub const TRANSACTIONS_WRITTEN: &str = "tripwire_transactions_written_total";
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
    TRANSACTIONS_WRITTEN,
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
///
/// Unconditionally (`force_describe`): metrics-derive describes a struct once per process, to
/// whichever recorder exists when the first one is built, which may be none or a test's own.
pub fn describe() {
    tripwire_rpc::metrics::describe();
    tripwire_kafka::metrics::describe();
    describe_own();
}

/// The indexer's own descriptions (without those of the crates it uses).
fn describe_own() {
    LeadGauges::force_describe();
    ChainCounters::force_describe();
    HeadBlock::force_describe();
    IngestedBlock::force_describe();
    IndexedBlock::force_describe();
    LagGauge::force_describe();
    SinkCounters::force_describe();
    StageCounters::force_describe();
    ReorgDepth::force_describe();
    KafkaErrors::force_describe();
    PostgresErrors::force_describe();
    BatchSeconds::force_describe();
    HeadAge::force_describe();
}

/// The lead over the sink, with a lead limit (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_ingest", separator = "_")]
pub(crate) struct LeadGauges {
    /// Records in the topic beyond the sink's stored position right after the last publish
    /// (with a lead limit).
    pub(crate) lead_records: Gauge,
    /// Bytes of records in the topic beyond the sink's stored position right after the last
    /// publish (with a byte limit; -1 while unknown).
    pub(crate) lead_bytes: Gauge,
}

/// The ingest's counters of one chain (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct ChainCounters {
    /// Publishes that took the lead past its limit: a single block larger than the whole limit,
    /// sent alone once the sink had caught up.
    pub(crate) ingest_lead_overruns_total: Counter,
    /// Log records published to Kafka.
    pub(crate) logs_produced_total: Counter,
    /// Block markers published to Kafka.
    pub(crate) blocks_produced_total: Counter,
    /// Times a provider alone reported another block at the indexed tip (benched, not a reorg).
    pub(crate) rpc_provider_forks_total: Counter,
    /// Blocks retracted at start: published before a crash, replaced before the restart.
    pub(crate) ingest_pending_retracted_total: Counter,
}

/// The chain's head (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct HeadBlock {
    /// Latest block number reported by the chain's RPC.
    pub(crate) chain_head_block: Gauge,
}

/// The ingest's cursor (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct IngestedBlock {
    /// Last block whose records Kafka acknowledged.
    pub(crate) ingested_block: Gauge,
}

/// The sink's cursor (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct IndexedBlock {
    /// Last block written to Postgres by the sink.
    pub(crate) indexed_block: Gauge,
}

/// A stage's lag (labels `chain`, `stage`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct LagGauge {
    /// Head minus the last block of this process's stage.
    pub(crate) lag_blocks: Gauge,
}

/// The sink's counters (no labels).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct SinkCounters {
    /// Log rows inserted into Postgres (duplicates not counted).
    pub(crate) logs_written_total: Counter,
    /// Transaction rows inserted into Postgres (duplicates not counted).
    pub(crate) transactions_written_total: Counter,
    /// Records read from Kafka by the sink.
    pub(crate) records_consumed_total: Counter,
    /// Unreadable Kafka records kept in dead_letters.
    pub(crate) dead_letters_total: Counter,
    /// Retraction records applied to Postgres.
    pub(crate) retractions_applied_total: Counter,
    /// Sink batches dropped unwritten because another instance stored a later position.
    pub(crate) sink_batches_fenced_total: Counter,
}

/// The ingest's reorgs (labels `chain`, `stage`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct StageCounters {
    /// Chain reorganisations detected by the ingest (the sink counts retractions applied).
    pub(crate) reorgs_total: Counter,
}

/// Reorg depths (label `chain`; buckets in blocks, [`BUCKETS`]).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct ReorgDepth {
    /// Depth of each reorganisation in blocks.
    pub(crate) reorg_depth_blocks: Histogram,
}

/// Kafka errors of one operation (label `op`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct KafkaErrors {
    /// Kafka errors by operation.
    pub(crate) kafka_errors_total: Counter,
}

/// Postgres errors of one operation (label `op`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct PostgresErrors {
    /// Postgres errors by operation.
    pub(crate) postgres_errors_total: Counter,
}

/// Time per range or batch (labels `stage`, then `chain` for the ingest).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct BatchSeconds {
    /// Time to process one range or batch.
    pub(crate) batch_duration_seconds: Histogram,
}

/// Time since a provider last reported the head (label `chain`).
#[derive(Metrics)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct HeadAge {
    /// Seconds since any RPC provider last reported the head (grows while all are down).
    pub(crate) chain_head_age_seconds: Gauge,
}

fn chain_labels(chain: &str) -> Vec<Label> {
    vec![Label::new("chain", chain.to_owned())]
}

/// The metrics of one chain's ingest, built with it.
pub(crate) struct Ingest {
    pub(crate) counters: ChainCounters,
    pub(crate) reorgs: StageCounters,
    pub(crate) reorg_depth: ReorgDepth,
    pub(crate) batch: BatchSeconds,
    pub(crate) head: Lazy<HeadBlock>,
    pub(crate) ingested: Lazy<IngestedBlock>,
    pub(crate) lag: Lazy<LagGauge>,
    pub(crate) head_age: Lazy<HeadAge>,
    pub(crate) lead: Lazy<LeadGauges>,
}

impl Ingest {
    pub(crate) fn new(chain: &str) -> Self {
        let base = chain_labels(chain);
        let mut stage = base.clone();
        stage.push(Label::from_static_parts("stage", "ingest"));
        let mut batch = vec![Label::from_static_parts("stage", "ingest")];
        batch.extend(base.iter().cloned());
        let [b1, b2, b3, b4] = std::array::from_fn(|_| base.clone());
        let lag = stage.clone();
        Ingest {
            counters: ChainCounters::new_with_labels(base.clone()),
            reorgs: StageCounters::new_with_labels(stage),
            reorg_depth: ReorgDepth::new_with_labels(base),
            batch: BatchSeconds::new_with_labels(batch),
            head: Lazy::new(move || HeadBlock::new_with_labels(b1.clone())),
            ingested: Lazy::new(move || IngestedBlock::new_with_labels(b2.clone())),
            lag: Lazy::new(move || LagGauge::new_with_labels(lag.clone())),
            head_age: Lazy::new(move || HeadAge::new_with_labels(b3.clone())),
            lead: Lazy::new(move || LeadGauges::new_with_labels(b4.clone())),
        }
    }
}

/// The metrics of the sink, built with it.
pub(crate) struct Sink {
    pub(crate) counters: SinkCounters,
    pub(crate) batch: BatchSeconds,
}

impl Sink {
    pub(crate) fn new() -> Self {
        Sink {
            counters: SinkCounters::new_with_labels(no_labels()),
            batch: BatchSeconds::new_with_labels(vec![Label::from_static_parts("stage", "sink")]),
        }
    }

    /// A batch of `records` stored in `seconds`, with what the write counted.
    pub(crate) fn stored(
        &self,
        records: u64,
        stats: &tripwire_store::write::BatchStats,
        seconds: f64,
    ) {
        self.counters.records_consumed_total.increment(records);
        self.counters
            .logs_written_total
            .increment(stats.logs_inserted);
        self.counters
            .transactions_written_total
            .increment(stats.transactions_inserted);
        self.counters
            .dead_letters_total
            .increment(stats.dead_letters);
        if stats.retractions > 0 {
            self.counters
                .retractions_applied_total
                .increment(stats.retractions);
        }
        self.batch.batch_duration_seconds.record(seconds);
    }
}

fn op_labels(&op: &&'static str) -> Vec<Label> {
    vec![Label::from_static_parts("op", op)]
}

/// The Kafka error counter (its handle) of operation `op` (`produce`, `consume`, ...), shared by the ingest
/// and the sink of a process; built on the operation's first error (after the recorder is
/// installed, as every error is).
pub(crate) fn kafka_errors(op: &'static str) -> Counter {
    static FAMILY: OnceLock<Family<&'static str, KafkaErrors>> = OnceLock::new();
    FAMILY
        .get_or_init(|| Family::new(|op| KafkaErrors::new_with_labels(op_labels(op))))
        .get(&op)
        .kafka_errors_total
        .clone()
}

/// The Postgres error counter of operation `op` (`write_batch`, `load_offsets`), as
/// [`kafka_errors`].
pub(crate) fn postgres_errors(op: &'static str) -> Counter {
    static FAMILY: OnceLock<Family<&'static str, PostgresErrors>> = OnceLock::new();
    FAMILY
        .get_or_init(|| Family::new(|op| PostgresErrors::new_with_labels(op_labels(op))))
        .get(&op)
        .postgres_errors_total
        .clone()
}

/// The gauges the lag probe sets for one chain, each built with its first value.
pub(crate) struct Probed {
    pub(crate) indexed: Lazy<IndexedBlock>,
    pub(crate) lag: Lazy<LagGauge>,
}

impl Probed {
    /// The gauges of every chain the probe has seen.
    pub(crate) fn family() -> Family<String, Probed> {
        Family::new(|chain: &String| {
            let base = chain_labels(chain);
            let mut lag = base.clone();
            lag.push(Label::from_static_parts("stage", "sink"));
            Probed {
                indexed: Lazy::new(move || IndexedBlock::new_with_labels(base.clone())),
                lag: Lazy::new(move || LagGauge::new_with_labels(lag.clone())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn names_are_the_described_fields() {
        let described = tripwire_runtime::metrics::described(super::describe_own);
        let names: BTreeSet<String> = super::NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, names);
    }
}
