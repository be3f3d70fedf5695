//! Contract reads through the pool: `eth_getCode` and `eth_call`, with its failover, timeouts and
//! metrics, and typed calls from `sol!` definitions (`SolCall`), so no caller builds a call from a
//! signature string. A revert is the contract's answer, not a provider fault: it is returned as
//! such and moves no call to another provider.

use alloy::primitives::{Address, Bytes, U64};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

use crate::{ChainRpc, RpcError};

/// Why a contract call gave no value.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call reverted (with the node's message, which carries the reason when there is one).
    #[error("reverted: {0}")]
    Reverted(String),
    /// No provider answered.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answer does not decode as the function's return type.
    #[error("{function}: the answer ({bytes} bytes) does not decode: {message}")]
    Decode {
        /// The function's signature, e.g. `balanceOf(address)`.
        function: &'static str,
        /// Length of the answer, in bytes.
        bytes: usize,
        /// The decoder's message.
        message: String,
    },
}

/// Which state a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The provider's latest block.
    Latest,
    /// A given block (a node without archive state may refuse an old one).
    Block(u64),
}

impl At {
    fn tag(self) -> serde_json::Value {
        match self {
            At::Latest => serde_json::Value::from("latest"),
            At::Block(n) => serde_json::json!(U64::from(n)),
        }
    }
}

/// Node wordings of a revert (`execution reverted`, geth's and anvil's code 3, an invalid opcode).
fn is_revert(e: &RpcError) -> Option<String> {
    match e {
        RpcError::Response { code, message, .. } => {
            let m = message.to_ascii_lowercase();
            (*code == 3 || m.contains("revert") || m.contains("invalid opcode"))
                .then(|| message.clone())
        }
        _ => None,
    }
}

impl ChainRpc {
    /// The code at `address`, from the first provider in rotation that answers.
    pub async fn code(&self, address: Address, at: At) -> Result<Bytes, RpcError> {
        self.with_failover(None, None, |i| async move {
            self.call::<_, Bytes>(i, "eth_getCode", (address, at.tag()))
                .await
        })
        .await
    }

    /// `eth_call` of `data` on `to` at the latest block, `from` someone when given (a dry run as
    /// the Safe, say).
    pub async fn call_raw(
        &self,
        to: Address,
        data: Bytes,
        from: Option<Address>,
    ) -> Result<Bytes, CallError> {
        let mut tx = TransactionRequest::default().to(to).input(data.into());
        if let Some(f) = from {
            tx = tx.from(f);
        }
        let answer = self
            .with_failover(None, None, |i| {
                let tx = tx.clone();
                async move {
                    match self.call::<_, Bytes>(i, "eth_call", (tx, "latest")).await {
                        Ok(b) => Ok(Ok(b)),
                        // The contract answered: the provider did its job.
                        Err(e) => match is_revert(&e) {
                            Some(reason) => Ok(Err(reason)),
                            None => Err(e),
                        },
                    }
                }
            })
            .await?;
        answer.map_err(CallError::Reverted)
    }

    /// A typed call of `C` on `to` (from `sol!`), decoded to its return type.
    pub async fn call_sol<C: SolCall>(
        &self,
        to: Address,
        call: &C,
        from: Option<Address>,
    ) -> Result<C::Return, CallError> {
        let out = self
            .call_raw(to, Bytes::from(call.abi_encode()), from)
            .await?;
        C::abi_decode_returns(&out).map_err(|e| CallError::Decode {
            function: C::SIGNATURE,
            bytes: out.len(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverts_are_recognised_and_other_errors_are_not() {
        let response = |code, message: &str| RpcError::Response {
            provider: "p".into(),
            method: "eth_call",
            code,
            message: message.into(),
        };
        assert!(is_revert(&response(3, "execution reverted: Pausable: paused")).is_some());
        assert!(is_revert(&response(-32000, "execution reverted")).is_some());
        assert!(is_revert(&response(-32603, "EVM error InvalidOpcode")).is_none());
        assert!(is_revert(&response(-32000, "invalid opcode: INVALID")).is_some());
        assert!(is_revert(&response(-32000, "header not found")).is_none());
        assert_eq!(At::Block(16).tag(), serde_json::json!("0x10"));
    }
}
