//! Synthetic records for the detectors' tests and benchmarks: decoded logs and block markers as
//! the indexer writes them, without a chain.

use alloy_primitives::{Address, Bytes, B256};
use serde_json::{Map, Value};
use tripwire_schema::{BlockMarker, DecodedEvent, LogRecord};

/// Chain id of the synthetic records (the local development chain id 31337).
pub const CHAIN: u64 = 31337;

/// A decoded log of `contract` at `address`.
pub fn log(
    address: Address,
    contract: &str,
    event: &str,
    params: &[(&str, &str)],
    block: u64,
    ts: u64,
    log_index: u64,
) -> LogRecord {
    let mut map = Map::new();
    for (k, v) in params {
        map.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    LogRecord {
        chain_id: CHAIN,
        block_number: block,
        block_hash: B256::from(alloy_primitives::U256::from(block)),
        block_timestamp: ts,
        tx_hash: B256::from(alloy_primitives::U256::from(block << 16 | log_index)),
        tx_index: log_index,
        log_index,
        address,
        topics: Vec::new(),
        data: Bytes::new(),
        contract: Some(contract.to_owned()),
        event: Some(DecodedEvent {
            name: event.to_owned(),
            signature: format!("{event}()"),
            params: map,
        }),
    }
}

/// The marker of `block` at `ts`.
pub fn marker(block: u64, ts: u64) -> BlockMarker {
    BlockMarker {
        chain_id: CHAIN,
        number: block,
        hash: B256::from(alloy_primitives::U256::from(block)),
        parent_hash: B256::from(alloy_primitives::U256::from(block.saturating_sub(1))),
        timestamp: ts,
        log_count: 0,
    }
}

/// Parses one `[[watchdog.detectors]]` table body.
pub fn detector(toml_body: &str) -> super::DetectorConfig {
    #[derive(serde::Deserialize)]
    struct One {
        d: super::DetectorConfig,
    }
    let one: One = toml::from_str(&format!("[d]\n{toml_body}")).expect("detector config parses");
    one.d
}
