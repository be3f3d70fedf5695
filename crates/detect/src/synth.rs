//! Synthetic records for the detectors' tests and benchmarks: decoded logs, transactions and block
//! markers as the indexer writes them, without a chain.

use alloy_primitives::{Address, Bytes, B256};
use serde_json::{Map, Value};
use tripwire_schema::{
    BlockMarker, DecodedCall, DecodedEvent, LogRecord, TransactionRecord, TxStatus,
};

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

/// A call of `signature` (e.g. `pause()`) from `from` to `contract` at `to`, with its outcome and
/// the gas it used (limit: twice that), at position `tx_index` of `block`.
#[allow(clippy::too_many_arguments)]
pub fn transaction(
    to: Address,
    contract: &str,
    signature: &str,
    from: Address,
    status: TxStatus,
    gas_used: u64,
    block: u64,
    ts: u64,
    tx_index: u64,
) -> TransactionRecord {
    let name = signature.split('(').next().unwrap_or(signature);
    TransactionRecord {
        chain_id: CHAIN,
        block_number: block,
        block_hash: B256::from(alloy_primitives::U256::from(block)),
        block_timestamp: ts,
        tx_hash: B256::from(alloy_primitives::U256::from(block << 16 | tx_index)),
        tx_index,
        from,
        to,
        value: alloy_primitives::U256::ZERO,
        selector: Some(alloy_primitives::FixedBytes::repeat_byte(0xab)),
        function: Some(DecodedCall {
            name: name.to_owned(),
            signature: signature.to_owned(),
            params: Map::new(),
        }),
        status,
        gas_used,
        gas_limit: gas_used * 2,
        effective_gas_price: alloy_primitives::U256::from(1_000_000_000u64),
        contract: Some(contract.to_owned()),
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
