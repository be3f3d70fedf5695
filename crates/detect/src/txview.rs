//! Transactions as the detectors read them. A detector on transactions uses the same kinds as one
//! on logs, so a transaction is handed to them as a log of its contract whose event is the decoded
//! call (or, undecoded, its selector), with the transaction's own fields among the parameters.
//! Those fields ([`TX_FIELDS`](crate::TX_FIELDS)) take precedence over a decoded parameter of the
//! same name, as the configuration documents.

use alloy_primitives::Bytes;
use serde_json::Value;
use tripwire_schema::{DecodedEvent, LogRecord, TransactionRecord};

/// The name of a call the ABI did not decode: its selector, or `(no calldata)`.
fn raw_name(tx: &TransactionRecord) -> String {
    match tx.selector {
        Some(s) => s.to_string(),
        None => "(no calldata)".to_owned(),
    }
}

/// The log-shaped view of `tx` the kinds read.
pub(crate) fn view(tx: &TransactionRecord) -> LogRecord {
    let (name, signature, mut params) = match &tx.function {
        Some(f) => (f.name.clone(), f.signature.clone(), f.params.clone()),
        None => (raw_name(tx), String::new(), serde_json::Map::new()),
    };
    params.insert("from".into(), Value::String(tx.from.to_checksum(None)));
    params.insert("status".into(), Value::String(tx.status.as_str().into()));
    params.insert("gas_used".into(), Value::String(tx.gas_used.to_string()));
    params.insert("gas_limit".into(), Value::String(tx.gas_limit.to_string()));
    params.insert("value".into(), Value::String(tx.value.to_string()));
    params.insert(
        "effective_gas_price".into(),
        Value::String(tx.effective_gas_price.to_string()),
    );
    LogRecord {
        chain_id: tx.chain_id,
        block_number: tx.block_number,
        block_hash: tx.block_hash,
        block_timestamp: tx.block_timestamp,
        tx_hash: tx.tx_hash,
        tx_index: tx.tx_index,
        // Not a log: findings of a transaction carry no log index (cleared by the caller).
        log_index: 0,
        address: tx.to,
        topics: Vec::new(),
        data: Bytes::new(),
        contract: tx.contract.clone(),
        event: Some(DecodedEvent {
            name,
            signature,
            params,
        }),
    }
}

/// The name a finding of `tx` gives its call: the function, or the raw selector.
pub(crate) fn call_name(tx: &TransactionRecord) -> String {
    tx.function
        .as_ref()
        .map_or_else(|| raw_name(tx), |f| f.name.clone())
}
