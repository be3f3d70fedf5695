//! What the proposer reads from the chain: the Safe's nonce, owners, threshold and version, the
//! targets' code, roles and pause state, and dry runs of the pause calls from the Safe. Through
//! the chain's provider pool (`tripwire_rpc::ChainRpc`: its failover, timeouts and metrics), or any
//! other `tripwire_rpc::ChainSource` (tests read an in-memory chain), with calls typed by `sol!`,
//! so a misspelt signature is a compile error, not a revert at start-up.

use alloy::primitives::{Address, Bytes, B256, U256};
use tripwire_config::ChainConfig;
use tripwire_rpc::{At, ChainRpc, ChainSource};

/// A read that gave no value: reverted, unanswered or undecodable.
pub use tripwire_rpc::CallError as ChainError;

alloy::sol! {
    /// The Safe's reads the proposer needs (v1.3.0 and later).
    interface ISafe {
        function nonce() external view returns (uint256);
        function VERSION() external view returns (string memory);
        function getOwners() external view returns (address[] memory);
        function getThreshold() external view returns (uint256);
        function getTransactionHash(
            address to,
            uint256 value,
            bytes calldata data,
            uint8 operation,
            uint256 safeTxGas,
            uint256 baseGas,
            uint256 gasPrice,
            address gasToken,
            address refundReceiver,
            uint256 _nonce
        ) external view returns (bytes32);
    }

    /// OpenZeppelin's `AccessControl`, for the pauser role of a target.
    interface IAccessControl {
        function hasRole(bytes32 role, address account) external view returns (bool);
    }

    /// OpenZeppelin's `Pausable`.
    interface IPausable {
        function paused() external view returns (bool);
    }
}

/// The chain as the proposer reads it: the provider pool unless a test gives another source.
pub struct ChainReader<S = ChainRpc> {
    rpc: S,
}

impl ChainReader {
    /// The reader of `chain`'s providers (no network traffic yet).
    pub fn new(chain: &ChainConfig) -> Result<ChainReader, ChainError> {
        Ok(ChainReader {
            rpc: ChainRpc::new(chain)?,
        })
    }
}

impl<S: ChainSource> ChainReader<S> {
    /// The reader of `source`.
    pub fn from_source(source: S) -> ChainReader<S> {
        ChainReader { rpc: source }
    }

    /// `eth_call` of `data` on `to`, optionally `from` someone (a dry run as the Safe).
    pub async fn call(
        &self,
        to: Address,
        data: &[u8],
        from: Option<Address>,
    ) -> Result<Bytes, ChainError> {
        self.rpc
            .call_raw(to, Bytes::copy_from_slice(data), from)
            .await
    }

    pub async fn code(&self, at: Address) -> Result<Bytes, ChainError> {
        Ok(self.rpc.code(at, At::Latest).await?)
    }

    pub async fn safe_nonce(&self, safe: Address) -> Result<U256, ChainError> {
        self.rpc.call_sol(safe, &ISafe::nonceCall {}, None).await
    }

    pub async fn safe_version(&self, safe: Address) -> Result<String, ChainError> {
        self.rpc.call_sol(safe, &ISafe::VERSIONCall {}, None).await
    }

    pub async fn safe_owners(&self, safe: Address) -> Result<Vec<Address>, ChainError> {
        self.rpc
            .call_sol(safe, &ISafe::getOwnersCall {}, None)
            .await
    }

    pub async fn safe_threshold(&self, safe: Address) -> Result<U256, ChainError> {
        self.rpc
            .call_sol(safe, &ISafe::getThresholdCall {}, None)
            .await
    }

    /// Whether `account` holds `role` on `target` (an `AccessControl` contract).
    pub async fn has_role(
        &self,
        target: Address,
        role: B256,
        account: Address,
    ) -> Result<bool, ChainError> {
        self.rpc
            .call_sol(target, &IAccessControl::hasRoleCall { role, account }, None)
            .await
    }

    /// Whether `target` (a `Pausable` contract) is paused.
    pub async fn paused(&self, target: Address) -> Result<bool, ChainError> {
        self.rpc
            .call_sol(target, &IPausable::pausedCall {}, None)
            .await
    }

    /// The Safe's own `getTransactionHash(...)` for `tx`.
    pub async fn safe_tx_hash(
        &self,
        safe: Address,
        tx: &super::tx::SafeTx,
    ) -> Result<B256, ChainError> {
        let call = ISafe::getTransactionHashCall {
            to: tx.to,
            value: tx.value,
            data: tx.data.clone(),
            operation: tx.operation,
            safeTxGas: tx.safeTxGas,
            baseGas: tx.baseGas,
            gasPrice: tx.gasPrice,
            gasToken: tx.gasToken,
            refundReceiver: tx.refundReceiver,
            _nonce: tx.nonce,
        };
        self.rpc.call_sol(safe, &call, None).await
    }
}

/// Whether `code` dispatches `selector`: Solidity compares the calldata's selector with a
/// `PUSH4 <selector>` per external function.
pub fn has_selector(code: &[u8], selector: [u8; 4]) -> bool {
    code.windows(5).any(|w| w[0] == 0x63 && w[1..] == selector)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{address, U256};
    use tripwire_rpc::fake::FakeChain;

    use super::*;
    use crate::safe::tx::{self, Call};

    const SAFE: Address = address!("0x5afe5afe5afe5afe5afe5afe5afe5afe5afe5afe");
    const TARGET: Address = address!("0x1111111111111111111111111111111111111111");

    #[tokio::test]
    async fn typed_reads_decode_the_chains_answers_and_keep_reverts_apart() {
        let chain = FakeChain::new();
        let reader = ChainReader::from_source(chain.clone());
        chain.answer(SAFE, &ISafe::nonceCall {}, &U256::from(7));
        chain.answer(SAFE, &ISafe::VERSIONCall {}, &"1.4.1".to_string());
        chain.answer(SAFE, &IPausable::pausedCall {}, &false);
        assert_eq!(reader.safe_nonce(SAFE).await.unwrap(), U256::from(7));
        assert_eq!(reader.safe_version(SAFE).await.unwrap(), "1.4.1");

        let pause = Call::new(TARGET, "pause()", &[]).expect("encodes");
        let safe_tx = tx::build(std::slice::from_ref(&pause), Address::ZERO, U256::from(7));
        let call = ISafe::getTransactionHashCall {
            to: safe_tx.to,
            value: safe_tx.value,
            data: safe_tx.data.clone(),
            operation: safe_tx.operation,
            safeTxGas: safe_tx.safeTxGas,
            baseGas: safe_tx.baseGas,
            gasPrice: safe_tx.gasPrice,
            gasToken: safe_tx.gasToken,
            refundReceiver: safe_tx.refundReceiver,
            _nonce: safe_tx.nonce,
        };
        let hash = B256::repeat_byte(0xab);
        chain.answer(SAFE, &call, &hash);
        assert_eq!(reader.safe_tx_hash(SAFE, &safe_tx).await.unwrap(), hash);

        // A revert is the contract's answer; a missing function an empty, undecodable one.
        chain.revert(SAFE, &ISafe::getOwnersCall {}, "GS000");
        assert!(matches!(
            reader.safe_owners(SAFE).await,
            Err(ChainError::Reverted(r)) if r == "GS000"
        ));
        assert!(matches!(
            reader.paused(TARGET).await,
            Err(ChainError::Decode { bytes: 0, .. })
        ));

        // A dry run goes out as the Safe.
        reader.call(TARGET, &pause.data, Some(SAFE)).await.unwrap();
        let (from, to, data) = chain.calls().pop().expect("a call");
        assert_eq!((from, to, data), (Some(SAFE), TARGET, pause.data.clone()));

        chain.set_down(true);
        assert!(matches!(
            reader.safe_nonce(SAFE).await,
            Err(ChainError::Rpc(_))
        ));
    }
}
