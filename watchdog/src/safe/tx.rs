//! The Safe transaction itself: target calls encoded from their signatures, one call sent
//! directly or several packed for `MultiSendCallOnly` (delegatecall), the EIP-712 `safeTxHash`
//! (domain: chain id and Safe address), and signatures in the Safe's `r || s || v` layout.

use alloy::dyn_abi::{DynSolType, DynSolValue, JsonAbiExt};
use alloy::json_abi::Function;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::sol;
use alloy::sol_types::{eip712_domain, SolStruct};
use serde::{Deserialize, Serialize};

sol! {
    /// The struct a Safe signs (Safe >= 1.3.0).
    struct SafeTx {
        address to;
        uint256 value;
        bytes data;
        uint8 operation;
        uint256 safeTxGas;
        uint256 baseGas;
        uint256 gasPrice;
        address gasToken;
        address refundReceiver;
        uint256 nonce;
    }
}

/// `0` call, `1` delegatecall.
pub const CALL: u8 = 0;
pub const DELEGATECALL: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("function `{function}`: {message}")]
    Function { function: String, message: String },
}

/// One call the Safe makes to pause a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub to: Address,
    /// The signature it was built from, e.g. `pause()`.
    pub function: String,
    pub data: Bytes,
}

impl Call {
    /// Encodes `function` (a signature such as `pause()` or `pause(uint256)`) with `args` given as
    /// text in ABI order.
    pub fn new(to: Address, function: &str, args: &[String]) -> Result<Call, TxError> {
        let err = |message: String| TxError::Function {
            function: function.to_owned(),
            message,
        };
        let f = Function::parse(function).map_err(|e| err(e.to_string()))?;
        if f.inputs.len() != args.len() {
            return Err(err(format!(
                "takes {} argument(s), {} given",
                f.inputs.len(),
                args.len()
            )));
        }
        let mut values = Vec::new();
        for (input, arg) in f.inputs.iter().zip(args) {
            let ty: DynSolType = input
                .ty
                .parse()
                .map_err(|e| err(format!("type {}: {e}", input.ty)))?;
            values.push(
                ty.coerce_str(arg)
                    .map_err(|e| err(format!("argument `{arg}` as {}: {e}", input.ty)))?,
            );
        }
        let data = f
            .abi_encode_input(&values)
            .map_err(|e| err(e.to_string()))?;
        Ok(Call {
            to,
            function: f.signature(),
            data: data.into(),
        })
    }

    pub fn selector(&self) -> [u8; 4] {
        let mut s = [0u8; 4];
        s.copy_from_slice(&self.data[..4]);
        s
    }
}

/// `MultiSendCallOnly.multiSend(bytes)` calldata for `calls`: each packed as
/// `uint8 operation || address to || uint256 value || uint256 length || data`.
pub fn multisend(calls: &[Call]) -> Bytes {
    let mut packed = Vec::new();
    for c in calls {
        packed.push(CALL);
        packed.extend_from_slice(c.to.as_slice());
        packed.extend_from_slice(&U256::ZERO.to_be_bytes::<32>());
        packed.extend_from_slice(&U256::from(c.data.len()).to_be_bytes::<32>());
        packed.extend_from_slice(&c.data);
    }
    let f = Function::parse("multiSend(bytes)").expect("static signature");
    f.abi_encode_input(&[DynSolValue::Bytes(packed)])
        .expect("bytes encode")
        .into()
}

/// The Safe transaction for `calls` at `nonce`: the call itself for one target, a delegatecall
/// to `multisend` for several. No gas refund: the executing owner pays.
pub fn build(calls: &[Call], multisend_at: Address, nonce: U256) -> SafeTx {
    let (to, data, operation) = match calls {
        [one] => (one.to, one.data.clone(), CALL),
        many => (multisend_at, multisend(many), DELEGATECALL),
    };
    SafeTx {
        to,
        value: U256::ZERO,
        data,
        operation,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        nonce,
    }
}

/// `safeTxHash`: the EIP-712 hash of `tx` for the Safe at `safe` on `chain_id`.
pub fn safe_tx_hash(tx: &SafeTx, chain_id: u64, safe: Address) -> B256 {
    let domain = eip712_domain! {
        chain_id: chain_id,
        verifying_contract: safe,
    };
    tx.eip712_signing_hash(&domain)
}

/// Signatures as `execTransaction` takes them: sorted by signer address, concatenated.
pub fn pack_signatures(mut sigs: Vec<(Address, Vec<u8>)>) -> Bytes {
    sigs.sort_by_key(|(a, _)| *a);
    sigs.into_iter()
        .flat_map(|(_, s)| s)
        .collect::<Vec<u8>>()
        .into()
}
