//! A local anvil node per test, driven over plain JSON-RPC.
//!
//! Tests talk raw JSON-RPC on purpose: the indexer under test uses alloy's
//! provider, so ground truth obtained through a different path cannot share
//! its bugs. [`Anvil::connect`] attaches the same helpers to a node someone
//! else started (the devnet binary uses that).
//!
//! The handle, [`Anvil`], and its chain queries live here; the rest is split by concern:
//! `launch` starts and supervises the node process ([`Anvil::spawn`], [`AnvilBuilder`]), `rpc`
//! is the JSON-RPC client underneath ([`RpcError`]), `transactions` deploys contracts, sends
//! transactions and waits for their [`Receipt`]s, and `encoding` converts between numbers, bytes
//! and their JSON-RPC hex form. Only the re-exports below are public, so every path stays
//! `anvil::X`.

mod encoding;
mod launch;
mod rpc;
mod transactions;

use std::process::Child;

use alloy::primitives::{Address, B256};
use anyhow::{bail, Context};
use serde_json::{json, Value};

pub use encoding::{hex_bytes, parse_b256, parse_quantity, quantity};
pub use launch::AnvilBuilder;
pub use rpc::RpcError;
pub use transactions::{Receipt, MAX_TX_GAS};

use launch::ChildGuard;
use rpc::{fetch_accounts, RpcClient};

/// A running anvil node (or one attached with [`Anvil::connect`]). The child
/// process is killed when this is dropped.
#[derive(Debug)]
pub struct Anvil {
    client: RpcClient,
    port: u16,
    accounts: Vec<Address>,
    child: ChildGuard,
    /// Anvil's evicted states; declared after `child` so the node is gone before it is removed.
    _cache: Option<tempfile::TempDir>,
}

impl Anvil {
    /// Attaches to an already running node; nothing is killed on drop. The node
    /// must have unlocked accounts (anvil's default ones) for the send helpers.
    pub async fn connect(url: &str) -> anyhow::Result<Anvil> {
        let url = url.trim_end_matches('/').to_owned();
        let client = RpcClient::new(url.clone());
        client
            .call("eth_chainId", json!([]))
            .await
            .with_context(|| format!("no JSON-RPC node answering at {url}"))?;
        let accounts = fetch_accounts(&client).await?;
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(0);
        Ok(Anvil {
            client,
            port,
            accounts,
            child: ChildGuard(None),
            _cache: None,
        })
    }

    /// HTTP JSON-RPC endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.client.url.clone()
    }

    /// WebSocket endpoint on the same port (anvil serves both).
    pub fn ws_url(&self) -> String {
        self.client.url.replacen("http://", "ws://", 1)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// OS process id of the spawned node, for tests that pause or kill it.
    pub fn pid(&self) -> Option<u32> {
        self.child.0.as_ref().map(Child::id)
    }

    /// Anvil's funded, unlocked dev accounts; transactions are sent from the first.
    pub fn accounts(&self) -> &[Address] {
        &self.accounts
    }

    /// Raw JSON-RPC call. A JSON-RPC error comes back as an [`RpcError`] inside
    /// the `anyhow::Error`, with the node's message in the text.
    pub async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client.call(method, params).await
    }

    pub async fn chain_id(&self) -> anyhow::Result<u64> {
        parse_quantity(&self.rpc("eth_chainId", json!([])).await?)
    }

    pub async fn block_number(&self) -> anyhow::Result<u64> {
        parse_quantity(&self.rpc("eth_blockNumber", json!([])).await?)
    }

    /// `eth_getBlockByNumber` without transaction bodies; `Value::Null` if absent.
    pub async fn block(&self, number: u64) -> anyhow::Result<Value> {
        self.rpc("eth_getBlockByNumber", json!([quantity(number), false]))
            .await
    }

    /// Hash of canonical block `number`, for checking what a reorg replaced.
    pub async fn block_hash(&self, number: u64) -> anyhow::Result<B256> {
        let block = self.block(number).await?;
        if block.is_null() {
            bail!("block {number} does not exist");
        }
        parse_b256(&block["hash"])
    }

    /// `eth_getLogs` with a raw filter object, e.g.
    /// `json!({"fromBlock": "0x0", "toBlock": "latest", "address": addr})`.
    pub async fn get_logs(&self, filter: Value) -> anyhow::Result<Vec<Value>> {
        match self.rpc("eth_getLogs", json!([filter])).await? {
            Value::Array(logs) => Ok(logs),
            other => bail!("eth_getLogs returned a non-array: {other}"),
        }
    }

    /// Mines `n` blocks (`anvil_mine`), at most 500 per request: one request for thousands of
    /// blocks can take anvil longer than the RPC timeout on a loaded machine.
    pub async fn mine(&self, n: u64) -> anyhow::Result<()> {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(500);
            self.rpc("anvil_mine", json!([quantity(chunk)])).await?;
            left -= chunk;
        }
        Ok(())
    }

    /// Turns automine on or off (`evm_setAutomine`).
    pub async fn set_automine(&self, on: bool) -> anyhow::Result<()> {
        self.rpc("evm_setAutomine", json!([on])).await?;
        Ok(())
    }

    pub async fn automine(&self) -> anyhow::Result<bool> {
        self.rpc("anvil_getAutomine", json!([]))
            .await?
            .as_bool()
            .context("anvil_getAutomine returned a non-boolean")
    }

    /// Replaces the last `depth` blocks with `depth` new ones (`anvil_reorg`);
    /// the chain height stays the same. Each `(tx, offset)` puts the
    /// transaction request `tx` into the new block `offset` (0 = the first
    /// replaced block, at height `head - depth + 1`). A request without
    /// `from` is sent from account 0; see [`Anvil::tx_request`].
    pub async fn reorg(&self, depth: u64, txs: Vec<(Value, u64)>) -> anyhow::Result<()> {
        let pairs: Vec<Value> = txs
            .into_iter()
            .map(|(mut tx, offset)| {
                if let Value::Object(map) = &mut tx {
                    map.entry("from")
                        .or_insert_with(|| json!(self.accounts.first()));
                }
                json!([tx, offset])
            })
            .collect();
        self.rpc("anvil_reorg", json!([depth, pairs])).await?;
        Ok(())
    }
}
