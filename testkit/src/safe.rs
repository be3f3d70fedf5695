//! Real Safe v1.4.1 contracts on anvil, from the npm package's artifacts: the singleton, the proxy
//! factory, `MultiSendCallOnly` and the compatibility fallback handler, and Safes created through
//! the factory exactly as the Safe wallet does (`createProxyWithNonce` with a `setup` call).

use alloy::dyn_abi::DynSolValue;
use alloy::primitives::{Address, B256, U256};
use anyhow::{bail, Context};
use serde_json::json;

use crate::abi;
use crate::anvil::{hex_bytes, Anvil};
use crate::contracts::safe_artifact;

/// Private keys of anvil's dev accounts 1, 2 and 3 (its well-known test mnemonic): the owners of
/// the test Safes. Account 0 deploys and is not an owner.
pub const OWNER_KEYS: [&str; 3] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// The Safe infrastructure deployed once per chain.
#[derive(Debug, Clone, Copy)]
pub struct SafeSingletons {
    pub singleton: Address,
    pub factory: Address,
    pub multisend_call_only: Address,
    pub fallback_handler: Address,
}

async fn deploy_artifact(anvil: &Anvil, rel: &str) -> anyhow::Result<Address> {
    let art = safe_artifact(rel)?;
    let request = json!({
        "from": format!("{:#x}", anvil.accounts()[0]),
        "data": hex_bytes(&art.bytecode),
        "gas": "0x1c9c380",
    });
    let receipt = anvil.send_tx_and_mine(request).await?;
    if !receipt.status {
        bail!("deploying {rel} reverted");
    }
    receipt
        .contract_address
        .with_context(|| format!("{rel}: no contract address in the receipt"))
}

impl SafeSingletons {
    pub async fn deploy(anvil: &Anvil) -> anyhow::Result<SafeSingletons> {
        Ok(SafeSingletons {
            singleton: deploy_artifact(anvil, "Safe.sol/Safe.json").await?,
            factory: deploy_artifact(anvil, "proxies/SafeProxyFactory.sol/SafeProxyFactory.json")
                .await?,
            multisend_call_only: deploy_artifact(
                anvil,
                "libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json",
            )
            .await?,
            fallback_handler: deploy_artifact(
                anvil,
                "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
            )
            .await?,
        })
    }

    /// A new Safe proxy with `owners` and `threshold`.
    pub async fn create_safe(
        &self,
        anvil: &Anvil,
        owners: &[Address],
        threshold: u64,
        salt: u64,
    ) -> anyhow::Result<Address> {
        let setup = abi::call(
            "setup(address[],uint256,address,bytes,address,address,uint256,address)",
            &[
                DynSolValue::Array(owners.iter().map(|o| abi::address(*o)).collect()),
                abi::uint(threshold),
                abi::address(Address::ZERO),
                DynSolValue::Bytes(Vec::new()),
                abi::address(self.fallback_handler),
                abi::address(Address::ZERO),
                abi::uint(0),
                abi::address(Address::ZERO),
            ],
        );
        let create = abi::call(
            "createProxyWithNonce(address,bytes,uint256)",
            &[
                abi::address(self.singleton),
                DynSolValue::Bytes(setup),
                abi::uint(salt),
            ],
        );
        let out = call(anvil, self.factory, &create).await?;
        if out.len() < 32 {
            bail!("createProxyWithNonce returned {} bytes", out.len());
        }
        let safe = Address::from_slice(&out[12..32]);
        let mut request = anvil.tx_request(self.factory, &create);
        request["gas"] = json!("0x989680");
        let receipt = anvil.send_tx_and_mine(request).await?;
        if !receipt.status {
            bail!("createProxyWithNonce reverted");
        }
        Ok(safe)
    }
}

/// `eth_call` of `data` on `to` at the latest block.
pub async fn call(anvil: &Anvil, to: Address, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let v = anvil
        .rpc(
            "eth_call",
            json!([{ "to": format!("{to:#x}"), "data": hex_bytes(data) }, "latest"]),
        )
        .await?;
    let s = v.as_str().context("eth_call result is not a string")?;
    Ok(alloy::primitives::hex::decode(s)?)
}

/// A `uint256`/`bytes32` return value.
pub async fn call_word(anvil: &Anvil, to: Address, data: &[u8]) -> anyhow::Result<B256> {
    let out = call(anvil, to, data).await?;
    if out.len() < 32 {
        bail!("call returned {} bytes", out.len());
    }
    Ok(B256::from_slice(&out[..32]))
}

/// The Safe's `nonce()`.
pub async fn nonce(anvil: &Anvil, safe: Address) -> anyhow::Result<U256> {
    Ok(call_word(anvil, safe, &abi::call("nonce()", &[]))
        .await?
        .into())
}
