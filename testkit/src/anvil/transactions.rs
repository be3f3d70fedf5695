//! Contracts and transactions: deploying artifacts, sending calls from the first dev account
//! with a tight gas estimate, and waiting for the [`Receipt`].

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::encoding::{hex_bytes, parse_b256, parse_quantity, quantity};
use super::Anvil;

/// Upper bound for a single transaction's gas, equal to anvil's default block
/// gas limit so one transaction can still fill a whole block.
pub const MAX_TX_GAS: u64 = 30_000_000;

const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The fields of a transaction receipt tests usually need; `raw` has the rest.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
    /// `true` when the transaction succeeded (status 0x1).
    pub status: bool,
    pub gas_used: u64,
    pub contract_address: Option<Address>,
    /// The receipt's logs as returned by the node.
    pub logs: Vec<Value>,
    pub raw: Value,
}

impl Receipt {
    fn from_json(raw: Value) -> anyhow::Result<Self> {
        let contract_address = match &raw["contractAddress"] {
            Value::String(s) => Some(s.parse().context("receipt contractAddress")?),
            _ => None,
        };
        Ok(Self {
            tx_hash: parse_b256(&raw["transactionHash"]).context("receipt transactionHash")?,
            block_number: parse_quantity(&raw["blockNumber"]).context("receipt blockNumber")?,
            block_hash: parse_b256(&raw["blockHash"]).context("receipt blockHash")?,
            status: parse_quantity(&raw["status"]).context("receipt status")? == 1,
            gas_used: parse_quantity(&raw["gasUsed"]).context("receipt gasUsed")?,
            contract_address,
            logs: raw["logs"].as_array().cloned().unwrap_or_default(),
            raw,
        })
    }
}

impl Anvil {
    /// A transaction request object from account 0, as [`Anvil::reorg`] and
    /// [`Anvil::send_tx`] take.
    pub fn tx_request(&self, to: Address, calldata: &[u8]) -> Value {
        let mut request = json!({
            "to": format!("{to:#x}"),
            "data": hex_bytes(calldata),
        });
        if let Ok(from) = self.sender() {
            request["from"] = json!(format!("{from:#x}"));
        }
        request
    }

    /// Deploys `contracts/out/<artifact>.json` from account 0 with the given
    /// ABI-encoded constructor arguments and waits until it is mined.
    pub async fn deploy(
        &self,
        artifact: &str,
        ctor_args_abi_encoded: &[u8],
    ) -> anyhow::Result<Address> {
        Ok(self
            .deploy_with_receipt(artifact, ctor_args_abi_encoded)
            .await?
            .0)
    }

    /// [`Anvil::deploy`], also returning the receipt (e.g. for the deployment block).
    pub async fn deploy_with_receipt(
        &self,
        artifact: &str,
        ctor_args_abi_encoded: &[u8],
    ) -> anyhow::Result<(Address, Receipt)> {
        let artifact = crate::contracts::try_artifact(artifact)?;
        let mut code = artifact.bytecode.clone();
        code.extend_from_slice(ctor_args_abi_encoded);
        let request = json!({
            "from": format!("{:#x}", self.sender()?),
            "data": hex_bytes(&code),
        });
        let receipt = self.send_tx_and_mine(request).await?;
        if !receipt.status {
            bail!(
                "deployment of {} reverted in tx {}",
                artifact.name,
                receipt.tx_hash
            );
        }
        let address = receipt.contract_address.with_context(|| {
            format!(
                "receipt of {} deployment has no contractAddress",
                artifact.name
            )
        })?;
        Ok((address, receipt))
    }

    /// Sends a call from account 0 without mining it (under automine the node
    /// mines it by itself). Returns the transaction hash.
    pub async fn send(&self, to: Address, calldata: Vec<u8>) -> anyhow::Result<B256> {
        self.send_tx(self.tx_request(to, &calldata)).await
    }

    /// Sends a call and makes sure it lands in a block, returning its receipt.
    /// Fails if the transaction reverted.
    pub async fn send_and_mine(&self, to: Address, calldata: Vec<u8>) -> anyhow::Result<Receipt> {
        let receipt = self
            .send_tx_and_mine(self.tx_request(to, &calldata))
            .await?;
        if !receipt.status {
            bail!("transaction {} to {to:#x} reverted", receipt.tx_hash);
        }
        Ok(receipt)
    }

    /// Sends an arbitrary transaction request (`eth_sendTransaction`), filling
    /// in `from` (account 0) and `gas` when absent. Does not mine.
    pub async fn send_tx(&self, mut request: Value) -> anyhow::Result<B256> {
        let map = request
            .as_object_mut()
            .context("transaction request must be a JSON object")?;
        if !map.contains_key("from") {
            map.insert("from".into(), json!(format!("{:#x}", self.sender()?)));
        }
        if !map.contains_key("gas") {
            let gas = self.gas_for(&request).await;
            request["gas"] = json!(quantity(gas));
        }
        let hash = self.rpc("eth_sendTransaction", json!([request])).await?;
        parse_b256(&hash)
    }

    /// [`Anvil::send_tx`], then mines if automine is off, then waits for the
    /// receipt. Does not check the receipt status.
    pub async fn send_tx_and_mine(&self, request: Value) -> anyhow::Result<Receipt> {
        let automine = self.automine().await?;
        let hash = self.send_tx(request).await?;
        if !automine {
            // Deliberately a separate request after the send: in a batch anvil
            // may handle evm_mine before the transaction reaches the pool.
            self.rpc("evm_mine", json!([])).await?;
        }
        self.wait_for_receipt(hash).await
    }

    /// `eth_getTransactionReceipt`, or `None` while the transaction is pending.
    pub async fn receipt(&self, tx_hash: B256) -> anyhow::Result<Option<Receipt>> {
        match self
            .rpc(
                "eth_getTransactionReceipt",
                json!([format!("{tx_hash:#x}")]),
            )
            .await?
        {
            Value::Null => Ok(None),
            raw => Receipt::from_json(raw).map(Some),
        }
    }

    /// Polls for the receipt of `tx_hash` (30 s timeout). Someone else must
    /// mine the block when automine is off.
    pub async fn wait_for_receipt(&self, tx_hash: B256) -> anyhow::Result<Receipt> {
        let deadline = Instant::now() + RECEIPT_TIMEOUT;
        loop {
            if let Some(receipt) = self.receipt(tx_hash).await? {
                return Ok(receipt);
            }
            if Instant::now() > deadline {
                bail!("no receipt for {tx_hash} after {RECEIPT_TIMEOUT:?} (is anything mining?)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sender(&self) -> anyhow::Result<Address> {
        self.accounts
            .first()
            .copied()
            .context("the node has no unlocked accounts")
    }

    /// Estimated gas with headroom, capped at [`MAX_TX_GAS`]. Without a
    /// tight estimate every transaction would reserve a whole block's gas and
    /// anvil would put each one in its own block.
    async fn gas_for(&self, request: &Value) -> u64 {
        match self.rpc("eth_estimateGas", json!([request])).await {
            Ok(v) => match parse_quantity(&v) {
                Ok(est) => (est + est / 4 + 10_000).min(MAX_TX_GAS),
                Err(_) => MAX_TX_GAS,
            },
            Err(e) => {
                // Estimation runs against the latest block, so it fails for
                // calls that depend on still-pending transactions; send those
                // with the cap and let the receipt tell whether they reverted.
                tracing::debug!(error = %e, "gas estimation failed, using the cap");
                MAX_TX_GAS
            }
        }
    }
}
