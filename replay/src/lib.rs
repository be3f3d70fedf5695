//! `tripwire-replay`: the runbooks' data-healing steps as one command. `reindex` fetches a block
//! range again through the same RPC pool and publishes it to Kafka for the sink to write
//! idempotently, removing rows no longer on the canonical chain; `reset-cursor` moves the ingest
//! cursor to a safe block with a confirmation and an audit row; `detect` back-tests the
//! configured detectors over the range, with no side effect. Bad ranges are refused before
//! anything is written. `detect` needs no old chain state: it reads Postgres, and only blocks
//! Postgres lacks are read over RPC (logs and headers, which pruned nodes keep).

use std::path::PathBuf;

pub mod detect;
pub mod plan;
pub mod progress;
pub mod reindex;
pub mod report;
pub mod reset;

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The request itself is wrong (names the option and value); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] tripwire_config::ConfigError),
    #[error(transparent)]
    Rpc(#[from] tripwire_rpc::RpcError),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Range(String),
    /// The node could not say whether a contract was deployed by `--from-block`: a node without
    /// the state of old blocks (full or pruned, not archive) refuses `eth_getCode` there.
    #[error(
        "cannot check that contract `{contract}` was deployed by block {block} (eth_getCode at \
         that block failed on every provider; a node without archive state refuses it): set \
         `start_block` of [[contracts]] `{contract}` in the config to skip the check, or add an \
         archive node to the chain's `rpc_urls`"
    )]
    DeploymentCheck {
        contract: String,
        block: u64,
        #[source]
        source: Box<tripwire_rpc::RpcError>,
    },
    /// detect: blocks missing from Postgres had to be read over RPC, and that failed.
    #[error(
        "blocks {from}..={to} are not in Postgres and reading them over RPC failed: reindex them \
         first (--mode reindex --from-block {from} --to-block {to}), or start --warmup-from / \
         --from-block after them"
    )]
    NotStored {
        from: u64,
        to: u64,
        #[source]
        source: Box<tripwire_rpc::RpcError>,
    },
    /// detect: the report could not be written to `--output` (or stdout when `path` is `None`).
    #[error("writing the report to {}", path.as_ref().map_or("stdout".to_string(), |p| format!("--output {}", p.display())))]
    Output {
        path: Option<PathBuf>,
        #[source]
        source: report::ReportError,
    },
    #[error("interrupted at block {next}: run the same command again to continue from there")]
    Interrupted { next: u64 },
}
