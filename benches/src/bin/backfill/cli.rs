//! The command line of `tripwire-bench-backfill` (documented in `benches/README.md`). Every
//! setting of the indexer is optional, so that the benchmark measures the documented defaults
//! unless told otherwise.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tripwire-bench-backfill",
    about = "Backfill 1M logs per chain shape from anvil through Kafka into Postgres at the \
             indexer's defaults; print logs/s, the eth_getLogs ceiling, and the peak RSS and \
             CPU-seconds per 1M logs of each process"
)]
pub(crate) struct Args {
    /// Logs on the generated chain (of each shape).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) logs: u64,
    /// Logs per block, as a comma-separated list of chain shapes: one chain per shape (one or
    /// more `emitMany` transactions per block), each indexed in every `--mode`. E.g. `10,200,1000`.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub(crate) logs_per_block: Vec<u64>,
    /// How the indexer runs, as a comma-separated list: `run` is one `tripwire-indexer run`
    /// process with the embedded Kafka broker (what the README's first command does); `split` is
    /// `tripwire-indexer ingest` and `tripwire-indexer sink` as two processes with the Kafka of
    /// `KAFKA_BROKERS` (librdkafka's mock broker inside this benchmark when unset).
    #[arg(long, value_delimiter = ',', default_value = "run,split")]
    pub(crate) mode: Vec<Mode>,
    /// `chains.range_blocks` (the upper bound of blocks per `eth_getLogs`). Unset: the indexer's
    /// default. Everything below is written into the indexer's config only when given, so that
    /// the benchmark measures the documented defaults unless told otherwise.
    #[arg(long)]
    pub(crate) range_blocks: Option<u64>,
    /// `chains.ranges_in_flight` of the ingest.
    #[arg(long)]
    pub(crate) ranges_in_flight: Option<usize>,
    /// `kafka.max_lead_records` of the ingest (`--staged` sets 0: no limit).
    #[arg(long)]
    pub(crate) max_lead_records: Option<u64>,
    /// `kafka.max_lead_bytes` of the ingest (`--staged` sets 0: no limit).
    #[arg(long)]
    pub(crate) max_lead_bytes: Option<u64>,
    /// `sink.batch_records`.
    #[arg(long)]
    pub(crate) batch_records: Option<usize>,
    /// `sink.batch_wait_ms`.
    #[arg(long)]
    pub(crate) batch_wait_ms: Option<u64>,
    /// Blocks per request of the ceiling measurement. Unset: as many as hold about 5,000 logs
    /// (`chains.range_target_logs`' default), at least one.
    #[arg(long)]
    pub(crate) ceiling_range_blocks: Option<u64>,
    /// Concurrent fetchers of the second ceiling measurement.
    #[arg(long, default_value_t = 2)]
    pub(crate) fetchers: usize,
    /// Run the ingest to completion first, then the sink alone, and report each stage's rate
    /// (instead of running both at once).
    #[arg(long)]
    pub(crate) staged: bool,
    /// Skip the ceiling measurements (only the indexer is run).
    #[arg(long)]
    pub(crate) skip_ceiling: bool,
    /// Measure the ceiling only (no indexer run), e.g. to compare range sizes.
    #[arg(long, conflicts_with = "skip_ceiling")]
    pub(crate) ceiling_only: bool,
    /// Profile both indexer processes with `perf record` (written to the run folder). Perturbs the
    /// measurement; for finding bottlenecks only.
    #[arg(long)]
    pub(crate) perf: bool,
    /// Extra librdkafka property for both indexer processes, `KEY=VALUE` (repeatable); goes to
    /// `[kafka.properties]`, e.g. `--kafka-prop linger.ms=50`.
    #[arg(long = "kafka-prop", value_name = "KEY=VALUE")]
    pub(crate) kafka_props: Vec<String>,
    /// `tripwire-indexer` binary to run. Default: build it with `cargo build --release` when run
    /// through `cargo run`, then use `<target>/release/tripwire-indexer`.
    #[arg(long, env = "TRIPWIRE_BENCH_INDEXER")]
    pub(crate) indexer_bin: Option<PathBuf>,
    /// Healthy RPC providers the indexer is given, as a comma-separated list of counts: one
    /// indexer run per count on the same chain (e.g. `1,3`). Every provider is the same anvil
    /// under its own name, so the difference is the provider pool's own cost.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub(crate) providers: Vec<usize>,
    /// The ingest's logsBloom check of log answers (`chains.check_logs_bloom`), as a
    /// comma-separated list: one indexer run per value and provider count on the same chain
    /// (`off,on` measures what the check costs).
    #[arg(long, value_delimiter = ',', default_value = "on")]
    pub(crate) bloom_check: Vec<BloomCheck>,
    /// Give up on the indexer after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub(crate) timeout_s: u64,
    /// `RUST_LOG` of the indexer processes (their logs go to files in the run folder).
    #[arg(long, env = "TRIPWIRE_BENCH_RUST_LOG", default_value = "info")]
    pub(crate) indexer_log: String,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// `tripwire-indexer run`: ingest and sink in one process, embedded broker.
    Run,
    /// `tripwire-indexer ingest` + `tripwire-indexer sink`, Kafka outside them.
    Split,
}

impl Mode {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Split => "split",
        }
    }
}

/// `--bloom-check` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BloomCheck {
    On,
    Off,
}

impl BloomCheck {
    pub(crate) fn label(self) -> &'static str {
        match self {
            BloomCheck::On => "on",
            BloomCheck::Off => "off",
        }
    }
}
