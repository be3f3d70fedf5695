//! Why an ingest step failed, whether the failure ends the process, and how it shows in
//! `/health`.

use rdkafka::error::KafkaError;
use tripwire_rpc::records::RangeError;
use tripwire_rpc::RpcError;
use tripwire_runtime::Component;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    /// A test stopped the process at a fault point (see `faults.rs`).
    #[error(transparent)]
    Stopped(#[from] tripwire_runtime::faults::Stopped),
    #[error("chain {chain}: inconsistent RPC answer for blocks {from}..={to}")]
    Inconsistent {
        chain: String,
        from: u64,
        to: u64,
        source: RangeError,
    },
    #[error(
        "chain {chain}: reorg deeper than max_reorg_depth = {max}: none of the last {checked} \
         indexed blocks (up to block {tip}) is still canonical. Stopping instead of writing \
         inconsistent data; raise max_reorg_depth or reset the cursor with replay"
    )]
    ReorgTooDeep {
        chain: String,
        tip: u64,
        checked: usize,
        max: u64,
    },
}

impl IngestError {
    /// Retrying cannot help: the process must stop.
    pub fn is_fatal(&self) -> bool {
        match self {
            IngestError::ReorgTooDeep { .. } => true,
            IngestError::Rpc(e) => e.is_fatal(),
            _ => false,
        }
    }

    /// The fault in an operator's words (see [`RpcError::fault`]).
    pub fn fault(&self) -> String {
        match self {
            IngestError::Rpc(e) => e.fault(),
            IngestError::Kafka(e) => format!("Kafka error ({e})"),
            IngestError::Postgres(_) => "Postgres error".into(),
            IngestError::Stopped(_) => "stopped".into(),
            IngestError::Inconsistent { .. } => "inconsistent answers".into(),
            IngestError::ReorgTooDeep { .. } => "reorg too deep".into(),
        }
    }

    /// The part of the process the failure shows in, in `/health`.
    pub(super) fn component(&self, chain: &str) -> Component {
        match self {
            IngestError::Rpc(_) | IngestError::Inconsistent { .. } => Component::Rpc(chain.into()),
            IngestError::Kafka(_) => Component::Kafka,
            IngestError::Postgres(_) => Component::Postgres,
            IngestError::Stopped(_) => Component::Ingest(chain.into()),
            IngestError::ReorgTooDeep { .. } => Component::Reorg,
        }
    }
}
