//! `tripwire-replay`: the runbooks' data-healing steps as one command. `reindex` fetches a block
//! range again through the same RPC pool and publishes it to Kafka for the sink to write
//! idempotently, removing rows no longer on the canonical chain; `reset-cursor` moves the ingest
//! cursor to a safe block with a confirmation and an audit row; `detect` back-tests the
//! configured detectors over the range, with no side effect. Bad ranges are refused before
//! anything is written.

pub mod detect;
pub mod plan;
pub mod progress;
pub mod reindex;
pub mod reset;

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The request itself is wrong (names the option and value); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] tripwire_indexer::config::ConfigError),
    #[error("rpc: {0}")]
    Rpc(#[from] tripwire_indexer::rpc::RpcError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Range(String),
    #[error("interrupted at block {next}: run the same command again to continue from there")]
    Interrupted { next: u64 },
}
