//! Conversions between numbers, bytes and hashes and their `0x`-prefixed JSON-RPC form, shared
//! by the helpers here and by tests that read raw JSON-RPC answers themselves.

use alloy::primitives::B256;
use anyhow::Context;
use serde_json::Value;

/// `0x`-prefixed hex quantity as JSON-RPC expects.
pub fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

/// `0x`-prefixed hex data.
pub fn hex_bytes(data: &[u8]) -> String {
    format!("0x{}", alloy::primitives::hex::encode(data))
}

/// Parses a JSON-RPC quantity (`"0x1a"`) into a u64.
pub fn parse_quantity(v: &Value) -> anyhow::Result<u64> {
    let s = v
        .as_str()
        .with_context(|| format!("expected a hex quantity, got {v}"))?;
    let digits = s
        .strip_prefix("0x")
        .with_context(|| format!("quantity {s:?} lacks 0x"))?;
    u64::from_str_radix(digits, 16).with_context(|| format!("bad quantity {s:?}"))
}

/// Parses a 32-byte hash from JSON.
pub fn parse_b256(v: &Value) -> anyhow::Result<B256> {
    let s = v
        .as_str()
        .with_context(|| format!("expected a 32-byte hex string, got {v}"))?;
    s.parse().with_context(|| format!("bad 32-byte hex {s:?}"))
}
