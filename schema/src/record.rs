//! Records of the stream. One Kafka topic per chain, every record keyed by the chain id so that a
//! chain's records share a partition and keep their order: a retraction always follows the rows it
//! retracts. Encoded as one JSON object per Kafka message, with `v` (format version) and `type`.

use alloy_primitives::{Address, Bytes, B256};
use serde::{Deserialize, Serialize};

/// Version of the wire format written into every record (`"v"`). Readers reject a newer major.
pub const WIRE_VERSION: u16 = 1;

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
}

/// A contract log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub chain_id: u64,
    pub block_number: u64,
    pub block_hash: B256,
    /// Unix seconds.
    pub block_timestamp: u64,
    pub tx_hash: B256,
    pub tx_index: u64,
    pub log_index: u64,
    pub address: Address,
    pub topics: Vec<B256>,
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
    pub chain_id: u64,
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// Unix seconds.
    pub timestamp: u64,
    /// How many log records of this block precede the marker.
    pub log_count: u32,
}

/// A block identified by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    pub number: u64,
    pub hash: B256,
}

/// A reorganisation seen by the indexer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retraction {
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
    #[error("record is not valid JSON or lacks a field: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("record has wire version {found}, this build reads up to {WIRE_VERSION}")]
    UnsupportedVersion { found: u64 },
    #[error("record has no numeric \"v\" (wire version) field")]
    MissingVersion,
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u16,
    #[serde(flatten)]
    record: &'a StreamRecord,
}

impl StreamRecord {
    /// The chain the record belongs to.
    pub fn chain_id(&self) -> u64 {
        match self {
            StreamRecord::Log(l) => l.chain_id,
            StreamRecord::Block(b) => b.chain_id,
            StreamRecord::Retraction(r) => r.chain_id,
        }
    }

    /// The Kafka message key: the decimal chain id.
    pub fn key(&self) -> String {
        self.chain_id().to_string()
    }

    /// Encodes the record as a JSON message.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&EnvelopeRef {
            v: WIRE_VERSION,
            record: self,
        })
        .expect("stream records always serialise")
    }

    /// Decodes a JSON message, checking the wire version first.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_log() -> LogRecord {
        LogRecord {
            chain_id: 31337,
            block_number: 7,
            block_hash: B256::repeat_byte(0xab),
            block_timestamp: 1_700_000_000,
            tx_hash: B256::repeat_byte(0x01),
            tx_index: 0,
            log_index: 3,
            address: Address::repeat_byte(0x22),
            topics: vec![B256::repeat_byte(0x33)],
            data: Bytes::from(vec![1, 2, 3]),
            contract: Some("token".into()),
            event: Some(DecodedEvent {
                name: "Transfer".into(),
                signature: "Transfer(address,address,uint256)".into(),
                params: serde_json::json!({"value": "1000000000000000000000"})
                    .as_object()
                    .unwrap()
                    .clone(),
            }),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        let records = [
            StreamRecord::Log(sample_log()),
            StreamRecord::Block(BlockMarker {
                chain_id: 1,
                number: 9,
                hash: B256::repeat_byte(9),
                parent_hash: B256::repeat_byte(8),
                timestamp: 5,
                log_count: 0,
            }),
            StreamRecord::Retraction(Retraction {
                chain_id: 1,
                common_ancestor: BlockRef {
                    number: 8,
                    hash: B256::repeat_byte(8),
                },
                orphaned: vec![BlockRef {
                    number: 9,
                    hash: B256::repeat_byte(9),
                }],
            }),
        ];
        for r in records {
            let bytes = r.to_json();
            assert_eq!(StreamRecord::from_json(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn documented_example_parses() {
        // The example in schema/README.md, so the documentation cannot drift from the code.
        let readme = include_str!("../README.md");
        let start = readme.find("```json\n").expect("README has a json example") + 8;
        let end = start + readme[start..].find("```").unwrap();
        for line in readme[start..end].lines().filter(|l| !l.trim().is_empty()) {
            StreamRecord::from_json(line.as_bytes())
                .unwrap_or_else(|e| panic!("README example {line} does not parse: {e}"));
        }
    }

    #[test]
    fn wire_uses_hex_and_type_tag() {
        let json: serde_json::Value =
            serde_json::from_slice(&StreamRecord::Log(sample_log()).to_json()).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["type"], "log");
        assert_eq!(json["block_hash"], format!("0x{}", "ab".repeat(32)));
        assert_eq!(json["data"], "0x010203");
    }

    #[test]
    fn rejects_newer_version_and_garbage() {
        let err = StreamRecord::from_json(br#"{"v":2,"type":"block"}"#).unwrap_err();
        assert!(err.to_string().contains("wire version 2"), "{err}");
        assert!(matches!(
            StreamRecord::from_json(b"not json"),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(
            StreamRecord::from_json(br#"{"type":"block"}"#),
            Err(RecordError::MissingVersion)
        ));
    }
}
