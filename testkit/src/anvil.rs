//! A local anvil node per test, driven over plain JSON-RPC.
//!
//! Tests talk raw JSON-RPC on purpose: the indexer under test uses alloy's
//! provider, so ground truth obtained through a different path cannot share
//! its bugs. [`Anvil::connect`] attaches the same helpers to a node someone
//! else started (the devnet binary uses that).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// Upper bound for a single transaction's gas, equal to anvil's default block
/// gas limit so one transaction can still fill a whole block.
pub const MAX_TX_GAS: u64 = 30_000_000;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// Output lines kept for error messages when anvil fails to start.
const OUTPUT_TAIL: usize = 40;

/// A JSON-RPC error response, kept typed so tests can assert on the code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method}: JSON-RPC error {code}: {message}{}", data.as_ref().map(|d| format!(" (data: {d})")).unwrap_or_default())]
pub struct RpcError {
    pub method: String,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

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

/// Options for starting anvil; obtain with [`Anvil::builder`].
#[derive(Debug, Clone)]
pub struct AnvilBuilder {
    block_time: Option<u64>,
    no_mining: bool,
    chain_id: Option<u64>,
    block_gas_limit: Option<u64>,
    extra_args: Vec<String>,
}

impl AnvilBuilder {
    /// Interval mining every `secs` seconds instead of one block per transaction.
    pub fn block_time(mut self, secs: Option<u64>) -> Self {
        self.block_time = secs;
        self
    }

    /// Start with automine off and no interval mining: blocks appear only via
    /// [`Anvil::mine`] or `evm_mine`, which gives tests full control.
    pub fn no_mining(mut self, no_mining: bool) -> Self {
        self.no_mining = no_mining;
        self
    }

    pub fn chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// Block gas limit; the default (30M) caps logs per block, benchmarks may want more.
    pub fn block_gas_limit(mut self, gas: Option<u64>) -> Self {
        self.block_gas_limit = gas;
        self
    }

    /// Any other anvil command-line argument, passed through verbatim.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub async fn spawn(self) -> anyhow::Result<Anvil> {
        let bin = anvil_bin()?;
        let mut cmd = Command::new(&bin);
        // Port 0 lets the kernel choose and anvil reports the result, which avoids
        // the race of probing for a free port and then handing it over.
        cmd.args(["--host", "127.0.0.1", "--port", "0"]);
        if let Some(secs) = self.block_time {
            cmd.args(["--block-time", &secs.to_string()]);
        }
        if self.no_mining {
            cmd.arg("--no-mining");
        }
        if let Some(id) = self.chain_id {
            cmd.args(["--chain-id", &id.to_string()]);
        }
        if let Some(gas) = self.block_gas_limit {
            cmd.args(["--gas-limit", &gas.to_string()]);
        }
        // Anvil writes the states it evicts from memory under `~/.foundry/anvil/tmp` and removes
        // them only on a clean exit; a killed node left gigabytes there per long chain (enough to
        // fill a shared disk over a test run). Each node gets its own directory, removed with it.
        let cache = tempfile::Builder::new()
            .prefix("anvil-cache-")
            .tempdir()
            .context("creating anvil's state cache directory")?;
        cmd.arg("--cache-path").arg(cache.path());
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start anvil at {}", bin.display()))?;
        // Owned by the guard from here on so every early return below kills it.
        let mut guard = ChildGuard(Some(child));
        let child = guard.0.as_mut().expect("just set");

        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(OUTPUT_TAIL)));
        let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
        // Plain threads rather than tokio tasks: anvil logs every request, and
        // if the pipe stopped being drained (say, because the test runtime that
        // spawned a reader task shut down) anvil would block or die on EPIPE.
        let stdout = child.stdout.take().expect("stdout piped");
        spawn_reader("stdout", stdout, Arc::clone(&tail), Some(port_tx));
        let stderr = child.stderr.take().expect("stderr piped");
        spawn_reader("stderr", stderr, Arc::clone(&tail), None);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let port = loop {
            if let Ok(port) = port_rx.try_recv() {
                break port;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "anvil exited during startup with {status}; output:\n{}",
                    tail_text(&tail)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "anvil did not report its port within {STARTUP_TIMEOUT:?}; output:\n{}",
                    tail_text(&tail)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        let url = format!("http://127.0.0.1:{port}");
        let client = RpcClient::new(url.clone());
        loop {
            match client.call("eth_chainId", json!([])).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "anvil at {url} did not answer eth_chainId within {STARTUP_TIMEOUT:?}; output:\n{}",
                        tail_text(&tail)
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }

        let accounts = fetch_accounts(&client).await?;
        tracing::debug!(%url, "anvil started");
        Ok(Anvil {
            client,
            port,
            accounts,
            child: guard,
            _cache: Some(cache),
        })
    }
}

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
    /// Starts anvil with default settings (automine on, chain id 31337).
    pub async fn spawn() -> anyhow::Result<Anvil> {
        Self::builder().spawn().await
    }

    pub fn builder() -> AnvilBuilder {
        AnvilBuilder {
            block_time: None,
            no_mining: false,
            chain_id: None,
            block_gas_limit: None,
            extra_args: Vec::new(),
        }
    }

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

/// Kills the child on drop. A synchronous kill-and-wait (rather than tokio's
/// kill_on_drop) also reaps it when the dropping thread has no runtime.
#[derive(Debug)]
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
struct RpcClient {
    url: String,
    http: reqwest::Client,
    next_id: Arc<AtomicU64>,
}

impl RpcClient {
    fn new(url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .build()
            .expect("reqwest client with static settings");
        Self {
            url,
            http,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method}: request to {} failed", self.url))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method}: reading response from {} failed", self.url))?;
        let mut reply: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{method}: HTTP {status}, non-JSON response: {}",
                truncate(&text, 500)
            )
        })?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError {
                method: method.to_owned(),
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
                data: err.get("data").cloned(),
            }
            .into());
        }
        match reply.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(anyhow!(
                "{method}: response has neither result nor error: {}",
                truncate(&text, 500)
            )),
        }
    }
}

async fn fetch_accounts(client: &RpcClient) -> anyhow::Result<Vec<Address>> {
    let accounts = client.call("eth_accounts", json!([])).await?;
    serde_json::from_value(accounts).context("eth_accounts returned something other than addresses")
}

fn anvil_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ANVIL_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let bin = crate::repo_root().join("tools/node_modules/.bin/anvil");
    if !bin.exists() {
        bail!(
            "anvil not found at {} (set ANVIL_BIN, or run scripts/install-tools)",
            bin.display()
        );
    }
    Ok(bin)
}

fn spawn_reader(
    stream: &'static str,
    pipe: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    port_tx: Option<std::sync::mpsc::Sender<u16>>,
) {
    let spawned = std::thread::Builder::new()
        .name(format!("anvil-{stream}"))
        .spawn(move || {
            let mut port_tx = port_tx;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                tracing::trace!(target: "tripwire_testkit::anvil::output", stream, "{line}");
                if let Some(tx) = &port_tx {
                    if let Some(port) = line
                        .trim()
                        .strip_prefix("Listening on ")
                        .and_then(|addr| addr.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok())
                    {
                        let _ = tx.send(port);
                        port_tx = None;
                    }
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == OUTPUT_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start anvil output reader");
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

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
