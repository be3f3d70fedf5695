//! The slice of an RPC block the indexer needs. Deserialising only these fields keeps header
//! batches cheap (a full block carries hundreds of transaction hashes).

use alloy::primitives::{Bloom, B256, U64};
use serde::Deserialize;

/// Number, hash, parent hash and timestamp of a block, and what it commits to about its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Block height.
    #[serde(deserialize_with = "quantity")]
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Hash of the parent block, to check that headers chain.
    pub parent_hash: B256,
    /// Block timestamp, in Unix seconds.
    #[serde(deserialize_with = "quantity")]
    pub timestamp: u64,
    /// Bloom of every log's address and topics (`None`: the provider sent none, or an all-zero
    /// one, which some chains send for every block; either way log answers for the block cannot
    /// be checked against it).
    #[serde(default, deserialize_with = "bloom")]
    pub logs_bloom: Option<Bloom>,
    /// Root of the block's receipts trie (`None`: not sent).
    #[serde(default)]
    pub receipts_root: Option<B256>,
}

fn bloom<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Bloom>, D::Error> {
    Ok(Option::<Bloom>::deserialize(d)?.filter(|b| !b.is_zero()))
}

fn quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = U64::deserialize(d)?;
    Ok(v.to::<u64>())
}

/// About how many bytes of JSON an `eth_getLogs` answer spends on `log`: the hex of its data and
/// topics plus the fixed fields (address, hashes, numbers, key names), ~470 bytes. An estimate
/// for range sizing, not a measurement.
pub(crate) fn json_size(log: &alloy::rpc::types::Log) -> u64 {
    const FIXED: u64 = 470;
    FIXED + 2 * log.data().data.len() as u64 + 69 * log.topics().len() as u64
}

/// An `eth_getLogs` entry, deserialised field by field. alloy's `Log` flattens the address,
/// topics and data into an inner struct (`#[serde(flatten)]`), which makes serde buffer every
/// field of every log before reading it: a sixth of the ingest's CPU in the backfill benchmark's
/// profile. The ingest's hot path reads this instead and converts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireLog {
    address: alloy::primitives::Address,
    topics: Vec<B256>,
    data: alloy::primitives::Bytes,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default)]
    block_number: Option<U64>,
    #[serde(default)]
    block_timestamp: Option<U64>,
    #[serde(default)]
    transaction_hash: Option<B256>,
    #[serde(default)]
    transaction_index: Option<U64>,
    #[serde(default)]
    log_index: Option<U64>,
    #[serde(default)]
    removed: bool,
}

impl From<WireLog> for alloy::rpc::types::Log {
    fn from(w: WireLog) -> Self {
        let q = |v: Option<U64>| v.map(|v| v.to::<u64>());
        alloy::rpc::types::Log {
            inner: alloy::primitives::Log {
                address: w.address,
                data: alloy::primitives::LogData::new_unchecked(w.topics, w.data),
            },
            block_hash: w.block_hash,
            block_number: q(w.block_number),
            block_timestamp: q(w.block_timestamp),
            transaction_hash: w.transaction_hash,
            transaction_index: q(w.transaction_index),
            log_index: q(w.log_index),
            removed: w.removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_logs_read_as_alloy_reads_them() {
        let json = r#"[{"address":"0x5fbdb2315678afecb367f032d93f642f64180aa3","topics":["0x48257dc961b6f792c2b78a080dacfed693b660960a702de21cee364e20270e2f","0x0000000000000000000000000000000000000000000000000000000000000007"],"data":"0x000000000000000000000000000000000000000000000000000000000000002a","blockHash":"0x8f6d1bb1e0b3f4dd4ab2d4c8e8c4a8d2c8b1e0b3f4dd4ab2d4c8e8c4a8d2c8b1","blockNumber":"0x1b4","blockTimestamp":"0x6553f100","transactionHash":"0x1f6d1bb1e0b3f4dd4ab2d4c8e8c4a8d2c8b1e0b3f4dd4ab2d4c8e8c4a8d2c8b1","transactionIndex":"0x0","logIndex":"0x11","removed":false},
            {"address":"0x5fbdb2315678afecb367f032d93f642f64180aa3","topics":[],"data":"0x","blockHash":null,"blockNumber":null,"transactionHash":null,"transactionIndex":null,"logIndex":null,"removed":true,"extra":1}]"#;
        let ours: Vec<alloy::rpc::types::Log> = serde_json::from_str::<Vec<WireLog>>(json)
            .unwrap()
            .into_iter()
            .map(Into::into)
            .collect();
        let theirs: Vec<alloy::rpc::types::Log> = serde_json::from_str(json).unwrap();
        assert_eq!(ours, theirs);
    }
}
