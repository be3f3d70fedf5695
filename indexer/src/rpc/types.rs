//! The slice of an RPC block the indexer needs. Deserialising only these fields keeps header
//! batches cheap (a full block carries hundreds of transaction hashes).

use alloy::primitives::{Bloom, B256, U64};
use serde::Deserialize;

/// Number, hash, parent hash and timestamp of a block, and what it commits to about its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    #[serde(deserialize_with = "quantity")]
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
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
