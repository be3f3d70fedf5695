//! Records of the stream. One Kafka topic per chain, every record keyed by the chain id so that a
//! chain's records share a partition and keep their order: a retraction always follows the rows it
//! retracts. Encoded as one JSON object per Kafka message, with `v` (format version) and `type`.

use alloy_primitives::{Address, Bytes, FixedBytes, B256, U256};
use serde::{Deserialize, Serialize};

mod view;
pub use view::{EventView, LogView};

/// The newest version of the wire format this build reads and writes (`"v"`). Readers reject a
/// record whose `v` is newer than theirs.
///
/// A record carries the oldest version that can read it, so a format grows without stopping older
/// readers on records they know: `log`, `block` and `retraction` are still written as version 1;
/// `transaction` came with version 2.
pub const WIRE_VERSION: u16 = 2;

/// The version `transaction` records are written with (the first that has them).
pub const TRANSACTION_WIRE_VERSION: u16 = 2;

/// The version the records of version 1 (`log`, `block`, `retraction`) are still written with.
pub const BASE_WIRE_VERSION: u16 = 1;

/// Any record of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamRecord {
    /// A contract log on a block the indexer considers canonical.
    Log(LogRecord),
    /// A processed block. Follows all logs of that block, so a reader that has seen the marker has
    /// seen the whole block; sent also for blocks without matching logs, so time advances.
    Block(BlockMarker),
    /// A reorganisation: the listed blocks left the canonical chain; every record of theirs is void.
    Retraction(Retraction),
    /// A transaction sent to a contract that opted in (`transactions` of `[[contracts]]`), with
    /// its receipt's outcome; in block order, before the block's logs.
    Transaction(TransactionRecord),
}

/// A transaction sent to a watched contract, checked against its block's `transactionsRoot` and,
/// with its receipt, `receiptsRoot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// EIP-155 id of the chain.
    pub chain_id: u64,
    /// Height of the block holding the transaction.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Unix seconds.
    pub block_timestamp: u64,
    /// The transaction's hash.
    pub tx_hash: B256,
    /// Position of the transaction within its block, from 0.
    pub tx_index: u64,
    /// The sender (recovered from the signature by the provider).
    pub from: Address,
    /// The watched contract it was sent to.
    pub to: Address,
    /// Wei sent along, as a decimal string (it exceeds 2^53).
    #[serde(with = "decimal")]
    pub value: U256,
    /// The first four bytes of the calldata (`None`: the calldata is shorter, e.g. a plain
    /// transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<FixedBytes<4>>,
    /// Present when the contract's ABI knows the function and the calldata decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<DecodedCall>,
    /// The receipt's outcome.
    pub status: TxStatus,
    /// Gas the transaction used (from its receipt).
    pub gas_used: u64,
    /// Gas limit the sender set.
    pub gas_limit: u64,
    /// Wei paid per unit of gas (from the receipt), as a decimal string.
    #[serde(with = "decimal")]
    pub effective_gas_price: U256,
    /// Name of the configured contract it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// A transaction's outcome, from its receipt's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Status 1: the call's effects stand.
    Success,
    /// Status 0: the call reverted (or ran out of gas); it still paid for its gas.
    Reverted,
}

impl TxStatus {
    /// The name used on the wire and in Postgres: `success` or `reverted`.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Success => "success",
            TxStatus::Reverted => "reverted",
        }
    }
}

/// Calldata decoded with the contract's ABI: the same shape as [`DecodedEvent`] (name, canonical
/// signature, parameters by name).
pub type DecodedCall = DecodedEvent;

/// Large integers as decimal strings, as the decoded parameters write them.
mod decimal {
    use alloy_primitives::U256;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(D::Error::custom(format!(
                "expected a decimal integer string, got {text:?}"
            )));
        }
        U256::from_str_radix(&text, 10).map_err(D::Error::custom)
    }
}

/// A contract log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// EIP-155 id of the chain the log is on (1 for Ethereum mainnet).
    pub chain_id: u64,
    /// Height of the block holding the log.
    pub block_number: u64,
    /// Hash of that block; with the height it tells the log's fork apart after a reorganisation.
    pub block_hash: B256,
    /// Unix seconds.
    pub block_timestamp: u64,
    /// Hash of the transaction that emitted the log.
    pub tx_hash: B256,
    /// Position of that transaction within its block, from 0.
    pub tx_index: u64,
    /// Position of the log within its block (not within its transaction), from 0.
    pub log_index: u64,
    /// Address of the contract that emitted the log.
    pub address: Address,
    /// The log's topics, topic0 (the event's signature hash, unless anonymous) first; at most four.
    pub topics: Vec<B256>,
    /// The log's non-indexed data, ABI-encoded.
    pub data: Bytes,
    /// Name of the configured contract that emitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Present when the contract's ABI knows the event and the log decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<DecodedEvent>,
}

/// A log decoded with the contract's ABI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodedEvent {
    /// Event name, e.g. `Transfer`.
    pub name: String,
    /// Canonical signature, e.g. `Transfer(address,address,uint256)`.
    pub signature: String,
    /// Parameters by name (positional `arg{i}` when unnamed), in ABI order. Integers are decimal
    /// strings (they exceed 2^53), addresses checksummed hex, bytes 0x-hex.
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// A processed block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMarker {
    /// EIP-155 id of the chain.
    pub chain_id: u64,
    /// Block height.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Hash of the block's parent, to follow the chain and detect reorganisations.
    pub parent_hash: B256,
    /// Unix seconds.
    pub timestamp: u64,
    /// How many log records of this block precede the marker.
    pub log_count: u32,
}

/// A block identified by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block height.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// A reorganisation seen by the indexer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retraction {
    /// EIP-155 id of the chain that reorganised.
    pub chain_id: u64,
    /// The highest block both forks share; records at or below it stay valid.
    pub common_ancestor: BlockRef,
    /// The blocks that left the canonical chain, lowest first.
    pub orphaned: Vec<BlockRef>,
}

impl Retraction {
    /// Number of orphaned blocks.
    pub fn depth(&self) -> usize {
        self.orphaned.len()
    }
}

/// Why a Kafka message could not be read as a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The payload is not JSON, or not a record of any known `type` (a field missing or of the
    /// wrong type).
    #[error("record is not valid JSON or lacks a field")]
    Malformed(#[from] serde_json::Error),
    /// The record's wire version (`v`) is newer than [`WIRE_VERSION`], the newest this build reads.
    #[error("record has wire version {found}, this build reads up to {WIRE_VERSION}")]
    UnsupportedVersion {
        /// The record's `v`.
        found: u64,
    },
    /// The payload is not a JSON object, or its `v` is missing or not a non-negative integer.
    #[error("record has no numeric \"v\" (wire version) field")]
    MissingVersion,
}

impl StreamRecord {
    /// The chain the record belongs to.
    pub fn chain_id(&self) -> u64 {
        match self {
            StreamRecord::Log(l) => l.chain_id,
            StreamRecord::Block(b) => b.chain_id,
            StreamRecord::Retraction(r) => r.chain_id,
            StreamRecord::Transaction(t) => t.chain_id,
        }
    }

    /// The wire version the record is written with: the oldest that can read it.
    pub fn wire_version(&self) -> u16 {
        match self {
            StreamRecord::Transaction(_) => TRANSACTION_WIRE_VERSION,
            _ => BASE_WIRE_VERSION,
        }
    }

    /// The Kafka message key: the decimal chain id.
    pub fn key(&self) -> String {
        self.chain_id().to_string()
    }

    /// Encodes the record as a JSON message.
    ///
    /// Written field by field rather than through serde: hashes, addresses and byte strings are
    /// hex and never need JSON escaping. The output is byte for byte what serde_json makes of the
    /// record behind `"v"` (a test holds the two together); the free-form strings (contract name,
    /// decoded event) still go through serde_json.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.extend_from_slice(b"{\"v\":");
        push_u64(&mut out, u64::from(self.wire_version()));
        match self {
            StreamRecord::Log(l) => {
                out.extend_from_slice(b",\"type\":\"log\",\"chain_id\":");
                push_u64(&mut out, l.chain_id);
                out.extend_from_slice(b",\"block_number\":");
                push_u64(&mut out, l.block_number);
                out.extend_from_slice(b",\"block_hash\":");
                push_hex(&mut out, l.block_hash.as_slice());
                out.extend_from_slice(b",\"block_timestamp\":");
                push_u64(&mut out, l.block_timestamp);
                out.extend_from_slice(b",\"tx_hash\":");
                push_hex(&mut out, l.tx_hash.as_slice());
                out.extend_from_slice(b",\"tx_index\":");
                push_u64(&mut out, l.tx_index);
                out.extend_from_slice(b",\"log_index\":");
                push_u64(&mut out, l.log_index);
                out.extend_from_slice(b",\"address\":");
                push_hex(&mut out, l.address.as_slice());
                out.extend_from_slice(b",\"topics\":[");
                for (i, topic) in l.topics.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_hex(&mut out, topic.as_slice());
                }
                out.extend_from_slice(b"],\"data\":");
                push_hex(&mut out, &l.data);
                if let Some(contract) = &l.contract {
                    out.extend_from_slice(b",\"contract\":");
                    push_serde(&mut out, contract);
                }
                if let Some(event) = &l.event {
                    out.extend_from_slice(b",\"event\":");
                    push_serde(&mut out, event);
                }
            }
            StreamRecord::Block(b) => {
                out.extend_from_slice(b",\"type\":\"block\",\"chain_id\":");
                push_u64(&mut out, b.chain_id);
                out.extend_from_slice(b",\"number\":");
                push_u64(&mut out, b.number);
                out.extend_from_slice(b",\"hash\":");
                push_hex(&mut out, b.hash.as_slice());
                out.extend_from_slice(b",\"parent_hash\":");
                push_hex(&mut out, b.parent_hash.as_slice());
                out.extend_from_slice(b",\"timestamp\":");
                push_u64(&mut out, b.timestamp);
                out.extend_from_slice(b",\"log_count\":");
                push_u64(&mut out, u64::from(b.log_count));
            }
            StreamRecord::Retraction(r) => {
                out.extend_from_slice(b",\"type\":\"retraction\",\"chain_id\":");
                push_u64(&mut out, r.chain_id);
                out.extend_from_slice(b",\"common_ancestor\":");
                push_block_ref(&mut out, &r.common_ancestor);
                out.extend_from_slice(b",\"orphaned\":[");
                for (i, block) in r.orphaned.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_block_ref(&mut out, block);
                }
                out.push(b']');
            }
            StreamRecord::Transaction(t) => {
                // Rarer than logs: serde_json's encoding, after the tag.
                out.extend_from_slice(b",\"type\":\"transaction\",");
                let body = serde_json::to_vec(t).expect("a transaction record always serialises");
                out.extend_from_slice(&body[1..]);
                return out;
            }
        }
        out.push(b'}');
        out
    }

    /// Enough capacity for the encoded record in the common case, so `to_json` rarely reallocates.
    fn encoded_len_hint(&self) -> usize {
        match self {
            StreamRecord::Log(l) => {
                let event = l.event.as_ref().map_or(0, |e| {
                    64 + e.name.len() + e.signature.len() + 96 * e.params.len()
                });
                400 + 70 * l.topics.len() + 2 * l.data.len() + event
            }
            StreamRecord::Block(_) => 320,
            StreamRecord::Retraction(r) => 160 + 100 * r.orphaned.len(),
            StreamRecord::Transaction(t) => {
                let call = t.function.as_ref().map_or(0, |f| {
                    64 + f.name.len() + f.signature.len() + 96 * f.params.len()
                });
                600 + call
            }
        }
    }

    /// Decodes a JSON message, checking the wire version first.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        // One pass straight into the record. It accepts a subset of what `from_json_general`
        // accepts (it gives up on anything unusual: unknown or repeated fields, a missing or
        // newer `v`, ...) and then yields the same record; everything else, errors included, is
        // left to the general path, so what is accepted and every error stay exactly the same.
        match wire::decode(bytes) {
            Some(record) => Ok(record),
            None => Self::from_json_general(bytes),
        }
    }

    /// The reference decoder: through a `serde_json::Value`, version first, then the record.
    fn from_json_general(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
        let obj = value.as_object_mut().ok_or(RecordError::MissingVersion)?;
        let v = obj
            .remove("v")
            .and_then(|v| v.as_u64())
            .ok_or(RecordError::MissingVersion)?;
        if v > u64::from(WIRE_VERSION) {
            return Err(RecordError::UnsupportedVersion { found: v });
        }
        Ok(serde_json::from_value(value)?)
    }
}

/// Appends the decimal digits of `n`, as serde_json writes integers.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `bytes` as a JSON string of `0x` and lowercase hex, as alloy's serde impls write them.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(b"\"0x");
    let at = out.len();
    out.resize(at + 2 * bytes.len(), 0);
    alloy_primitives::hex::encode_to_slice(bytes, &mut out[at..])
        .expect("the output has exactly twice the input's length");
    out.push(b'"');
}

fn push_block_ref(out: &mut Vec<u8>, block: &BlockRef) {
    out.extend_from_slice(b"{\"number\":");
    push_u64(out, block.number);
    out.extend_from_slice(b",\"hash\":");
    push_hex(out, block.hash.as_slice());
    out.push(b'}');
}

fn push_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("strings and JSON values always serialise");
}

/// The single-pass decoder behind [`StreamRecord::from_json`].
///
/// One flat struct holds every field of every record kind; serde fills it in one pass over the
/// message, whatever the field order, and the record is then assembled from it. It is strict where
/// the general decoder is lenient (unknown fields anywhere, a repeated field, a message that is an
/// array rather than an object are errors here), so that it never accepts a message the general
/// decoder would reject: every string in the message is parsed (validated) exactly as there.
mod wire {
    use alloy_primitives::{Address, Bytes, B256};
    use serde::{
        de::{value::MapAccessDeserializer, MapAccess, Visitor},
        Deserialize, Deserializer,
    };

    use super::{
        BlockMarker, BlockRef, DecodedEvent, LogRecord, Retraction, StreamRecord, WIRE_VERSION,
    };

    /// `None` when the message is not an ordinary record of a version this build reads; the
    /// caller then asks the general decoder, which also words the error.
    pub(super) fn decode(bytes: &[u8]) -> Option<StreamRecord> {
        let Envelope(w) = serde_json::from_slice(bytes).ok()?;
        if w.v? > u64::from(WIRE_VERSION) {
            return None;
        }
        let chain_id = w.chain_id?;
        Some(match w.kind? {
            Kind::Log => StreamRecord::Log(LogRecord {
                chain_id,
                block_number: w.block_number?,
                block_hash: w.block_hash?,
                block_timestamp: w.block_timestamp?,
                tx_hash: w.tx_hash?,
                tx_index: w.tx_index?,
                log_index: w.log_index?,
                address: w.address?,
                topics: w.topics?,
                data: w.data?,
                contract: w.contract,
                event: w.event.map(|e| DecodedEvent {
                    name: e.name,
                    signature: e.signature,
                    params: e.params,
                }),
            }),
            Kind::Block => StreamRecord::Block(BlockMarker {
                chain_id,
                number: w.number?,
                hash: w.hash?,
                parent_hash: w.parent_hash?,
                timestamp: w.timestamp?,
                log_count: w.log_count?,
            }),
            Kind::Retraction => StreamRecord::Retraction(Retraction {
                chain_id,
                common_ancestor: w.common_ancestor?.into(),
                orphaned: w.orphaned?.into_iter().map(BlockRef::from).collect(),
            }),
        })
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Log,
        Block,
        Retraction,
    }

    /// Every field of every record kind. A field of another kind is parsed too (and must have its
    /// type) but not used, as the general decoder ignores it.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        v: Option<u64>,
        #[serde(rename = "type")]
        kind: Option<Kind>,
        chain_id: Option<u64>,
        // log
        block_number: Option<u64>,
        block_hash: Option<B256>,
        block_timestamp: Option<u64>,
        tx_hash: Option<B256>,
        tx_index: Option<u64>,
        log_index: Option<u64>,
        address: Option<Address>,
        topics: Option<Vec<B256>>,
        data: Option<Bytes>,
        contract: Option<String>,
        event: Option<WireEvent>,
        // block
        number: Option<u64>,
        hash: Option<B256>,
        parent_hash: Option<B256>,
        timestamp: Option<u64>,
        log_count: Option<u32>,
        // retraction
        common_ancestor: Option<WireBlockRef>,
        orphaned: Option<Vec<WireBlockRef>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WireEvent {
        name: String,
        signature: String,
        params: serde_json::Map<String, serde_json::Value>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WireBlockRef {
        number: u64,
        hash: B256,
    }

    impl From<WireBlockRef> for BlockRef {
        fn from(b: WireBlockRef) -> BlockRef {
            BlockRef {
                number: b.number,
                hash: b.hash,
            }
        }
    }

    /// [`Wire`] from a JSON object only: a derived struct would also take a JSON array.
    struct Envelope(Wire);

    impl<'de> Deserialize<'de> for Envelope {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct ObjectOnly;
            impl<'de> Visitor<'de> for ObjectOnly {
                type Value = Wire;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Wire, A::Error> {
                    Wire::deserialize(MapAccessDeserializer::new(map))
                }
            }
            deserializer.deserialize_map(ObjectOnly).map(Envelope)
        }
    }
}

#[cfg(test)]
mod tests;
