//! A borrowed view of a log record, for readers that only copy its fields elsewhere (the sink).
//!
//! [`StreamRecord::from_json`](super::StreamRecord::from_json) builds an owned record: a `Vec` of
//! topics, a `Bytes` for the data and, for a decoded event, a `serde_json::Map` of owned strings
//! that the sink then serialises again into a `jsonb` column. [`LogView::from_json`] reads the
//! same message without any of that: hashes into fixed arrays, the data and the strings borrowed
//! from the message, and the parameters as their JSON text.
//!
//! It is only a shortcut. It gives up (`None`) on anything it cannot prove to mean the same as the
//! owned record: a message that is not a log, a string with an escape sequence (it could not be
//! borrowed, and `\u0000` cannot be stored in Postgres), a number anywhere in the parameters (the
//! owned decoder reads numbers as 64-bit integers or floats and writes them back in its own
//! spelling), or anything the owned decoder would refuse. The caller then takes the owned path, so
//! what is accepted, and every row written, stays exactly the same; a test holds the two together.

use alloy_primitives::{hex, Address, B256};
use serde::{
    de::{self, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::value::RawValue;

use super::WIRE_VERSION;

/// A log record, borrowed from its message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogView<'a> {
    /// As in [`LogRecord`](super::LogRecord): EIP-155 id of the chain.
    pub chain_id: u64,
    /// Height of the block holding the log.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// The block's timestamp, in Unix seconds.
    pub block_timestamp: u64,
    /// Hash of the transaction that emitted the log.
    pub tx_hash: B256,
    /// Position of that transaction within its block, from 0.
    pub tx_index: u64,
    /// Position of the log within its block, from 0.
    pub log_index: u64,
    /// Address of the contract that emitted the log.
    pub address: Address,
    /// The first four topics (the EVM allows no more); `topic_count` says how many are set.
    pub topics: [B256; 4],
    /// How many of `topics` are set (0 to 4); the rest are zero.
    pub topic_count: usize,
    /// The data as hex digits, without its `0x`; checked to be valid hex of even length.
    pub data_hex: &'a str,
    /// Name of the configured contract that emitted it, if any.
    pub contract: Option<&'a str>,
    /// Present when the contract's ABI knows the event and the log decoded.
    pub event: Option<EventView<'a>>,
}

/// A decoded event, borrowed from its message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventView<'a> {
    /// Event name, e.g. `Transfer`.
    pub name: &'a str,
    /// Canonical signature, e.g. `Transfer(address,address,uint256)`.
    pub signature: &'a str,
    /// The parameters' JSON object as written in the message: no escape sequence, no number.
    pub params_json: &'a str,
}

impl<'a> LogView<'a> {
    /// Reads a log record; `None` when the message is anything else or needs the owned decoder.
    pub fn from_json(bytes: &'a [u8]) -> Option<LogView<'a>> {
        let w: Wire<'a> = serde_json::from_slice(bytes).ok()?;
        if w.v? > u64::from(WIRE_VERSION) || w.kind? != "log" {
            return None;
        }
        let data = w.data?;
        let data_hex = data.strip_prefix("0x")?;
        if data_hex.len() % 2 != 0 || !data_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let topics = w.topics?;
        let event = match w.event {
            None => None,
            Some(e) => {
                let params_json = e.params.get();
                // The owned decoder wants an object, and this view only plain strings inside
                // (`PlainJson` refuses a string or key with an escape: it cannot be borrowed).
                if !params_json.starts_with('{')
                    || serde_json::from_str::<PlainJson>(params_json).is_err()
                {
                    return None;
                }
                Some(EventView {
                    name: e.name,
                    signature: e.signature,
                    params_json,
                })
            }
        };
        Some(LogView {
            chain_id: w.chain_id?,
            block_number: w.block_number?,
            block_hash: w.block_hash?,
            block_timestamp: w.block_timestamp?,
            tx_hash: w.tx_hash?,
            tx_index: w.tx_index?,
            log_index: w.log_index?,
            address: w.address?,
            topics: topics.first,
            topic_count: topics.count.min(4),
            data_hex,
            contract: w.contract,
            event,
        })
    }

    /// The data's bytes, decoded into `out` (which must be `data_len()` long).
    pub fn decode_data(&self, out: &mut [u8]) {
        hex::decode_to_slice(self.data_hex, out).expect("checked to be hex of this length");
    }

    /// Length of the data in bytes.
    pub fn data_len(&self) -> usize {
        self.data_hex.len() / 2
    }

    /// The topics that are set.
    pub fn topics(&self) -> &[B256] {
        &self.topics[..self.topic_count]
    }
}

/// The fields of a log message. Every field a record of another kind carries is refused
/// (`deny_unknown_fields`), so a message the owned decoder would read differently never passes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    chain_id: Option<u64>,
    block_number: Option<u64>,
    block_hash: Option<B256>,
    block_timestamp: Option<u64>,
    tx_hash: Option<B256>,
    tx_index: Option<u64>,
    log_index: Option<u64>,
    address: Option<Address>,
    topics: Option<Topics>,
    #[serde(borrow)]
    data: Option<&'a str>,
    #[serde(borrow)]
    contract: Option<&'a str>,
    #[serde(borrow)]
    event: Option<WireEvent<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    signature: &'a str,
    #[serde(borrow)]
    params: &'a RawValue,
}

/// Topics without a `Vec`: every element is parsed (and must be a hash), the first four kept.
struct Topics {
    first: [B256; 4],
    count: usize,
}

impl<'de> Deserialize<'de> for Topics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Topics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of 32-byte hashes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Topics, A::Error> {
                let mut t = Topics {
                    first: [B256::ZERO; 4],
                    count: 0,
                };
                while let Some(topic) = seq.next_element::<B256>()? {
                    if let Some(slot) = t.first.get_mut(t.count) {
                        *slot = topic;
                    }
                    t.count += 1;
                }
                Ok(t)
            }
        }
        d.deserialize_seq(V)
    }
}

/// Accepts JSON made only of objects, arrays, strings without escapes, booleans and null: the
/// values whose text means the same to serde_json and to Postgres's `jsonb`.
struct PlainJson;

impl<'de> Deserialize<'de> for PlainJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = PlainJson;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without numbers or escaped strings")
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<PlainJson, E> {
        Ok(PlainJson)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<PlainJson, E> {
        Ok(PlainJson)
    }
    fn visit_unit<E: de::Error>(self) -> Result<PlainJson, E> {
        Ok(PlainJson)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PlainJson, A::Error> {
        while seq.next_element::<PlainJson>()?.is_some() {}
        Ok(PlainJson)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlainJson, A::Error> {
        while map.next_key::<BorrowedKey>()?.is_some() {
            map.next_value::<PlainJson>()?;
        }
        Ok(PlainJson)
    }
}

/// An object key without escapes.
struct BorrowedKey;

impl<'de> Deserialize<'de> for BorrowedKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key without escapes")
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<BorrowedKey, E> {
                Ok(BorrowedKey)
            }
        }
        d.deserialize_str(V)
    }
}
