//! Calldata encoding for tests: turns a human-readable signature and dynamic
//! values into the bytes a transaction carries, without per-contract bindings.

use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use alloy::json_abi::Function;
use alloy::primitives::{Address, B256, U256};

/// Encodes a call as selector + ABI-encoded arguments, e.g.
/// `call("burst(uint256)", &[uint(5)])`.
///
/// Panics if the signature does not parse or the values do not match its
/// parameter types: in a test that is a bug in the test itself.
pub fn call(signature: &str, args: &[DynSolValue]) -> Vec<u8> {
    try_call(signature, args).unwrap_or_else(|e| panic!("abi::call({signature}): {e:#}"))
}

/// Fallible form of [`call`], for callers that build signatures at run time.
pub fn try_call(signature: &str, args: &[DynSolValue]) -> anyhow::Result<Vec<u8>> {
    let function = Function::parse(signature)
        .map_err(|e| anyhow::anyhow!("invalid function signature {signature:?}: {e}"))?;
    // Going through the parsed Function type-checks the values against the
    // signature, which a bare keccak-selector-plus-encode would not.
    function
        .abi_encode_input(args)
        .map_err(|e| anyhow::anyhow!("arguments do not match {signature:?}: {e}"))
}

/// The 4-byte function selector of `signature`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = alloy::primitives::keccak256(signature.replace(' ', "").as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// ABI-encodes values as a parameter list, as appended to bytecode for constructor arguments.
pub fn encode_args(args: &[DynSolValue]) -> Vec<u8> {
    if args.is_empty() {
        return Vec::new();
    }
    DynSolValue::Tuple(args.to_vec()).abi_encode_params()
}

/// `uint256` value.
pub fn uint(v: u64) -> DynSolValue {
    DynSolValue::Uint(U256::from(v), 256)
}

/// `uint256` value from a full-width integer.
pub fn uint256(v: U256) -> DynSolValue {
    DynSolValue::Uint(v, 256)
}

/// `address` value.
pub fn address(a: Address) -> DynSolValue {
    DynSolValue::Address(a)
}

/// `bytes32` value.
pub fn bytes32(b: B256) -> DynSolValue {
    DynSolValue::FixedBytes(b, 32)
}

/// `string` value.
pub fn string(s: &str) -> DynSolValue {
    DynSolValue::String(s.to_owned())
}

/// Topic0 of an event, e.g. `event_topic("Transfer(address,address,uint256)")`.
pub fn event_topic(signature: &str) -> B256 {
    alloy::primitives::keccak256(signature.replace(' ', "").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_matches_known_value() {
        // transfer(address,uint256) is the ERC20 selector everybody knows.
        assert_eq!(
            selector("transfer(address,uint256)"),
            [0xa9, 0x05, 0x9c, 0xbb]
        );
        let data = call(
            "transfer(address,uint256)",
            &[address(Address::ZERO), uint(7)],
        );
        assert_eq!(&data[..4], &[0xa9, 0x05, 0x9c, 0xbb]);
        assert_eq!(data.len(), 4 + 64);
        assert_eq!(data[4 + 63], 7);
    }

    #[test]
    fn mismatched_args_are_rejected() {
        assert!(try_call("burst(uint256)", &[string("x")]).is_err());
        assert!(try_call("burst(uint256)", &[]).is_err());
    }
}
