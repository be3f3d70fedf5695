//! Harness of the indexer's end-to-end tests: a chain (anvil) with the demo contracts, a fresh
//! Postgres database, a Kafka broker (librdkafka's mock, or `KAFKA_BROKERS`), a config file for
//! them, `tripwire-indexer` child processes, and the ground-truth comparison against `eth_getLogs`.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use testkit::{abi, anvil::Anvil, kafka::TestKafka, postgres::TestDb, Address, B256, U256};

pub const BIN: &str = env!("CARGO_BIN_EXE_tripwire-indexer");

/// Everything one test runs against.
pub struct Env {
    pub anvil: Anvil,
    pub db: TestDb,
    pub kafka: TestKafka,
    pub dir: tempfile::TempDir,
    pub token: Address,
    pub vault: Address,
    pub registry: Address,
    pub topic: String,
    pub consumer: String,
    pub max_reorg_depth: u64,
    pub range_blocks: u64,
    /// Overrides the Postgres URL written into the config (e.g. through a proxy).
    pub pg_url: Option<String>,
    /// Overrides the brokers written into the config.
    pub brokers: Option<String>,
    /// `kafka.max_lead_records` (0 = unlimited).
    pub max_lead_records: u64,
    /// Leave out every `[[contracts]]` (blocks only).
    pub no_contracts: bool,
    /// Replaces anvil's URL as the chain's `rpc_urls` (e.g. fault-injecting proxies).
    pub rpc_urls: Option<Vec<String>>,
    /// `rpc_timeout_s` of the chain.
    pub rpc_timeout_s: u64,
    /// Extra lines for the `[[chains]]` table (e.g. `verify_ranges = false`).
    pub chain_extra: String,
}

impl Env {
    pub async fn new() -> Result<Env> {
        Self::with_anvil(Anvil::spawn().await?).await
    }

    pub async fn with_anvil(anvil: Anvil) -> Result<Env> {
        Self::with(anvil, TestKafka::start()?).await
    }

    /// On librdkafka's mock broker whatever `KAFKA_BROKERS` says: for tests that need its fault
    /// hooks.
    pub async fn on_mock() -> Result<Env> {
        Self::with(Anvil::spawn().await?, TestKafka::start_mock()?).await
    }

    /// On a real Apache Kafka broker (`KAFKA_BROKERS`, or one started for the test).
    pub async fn on_real_broker() -> Result<Env> {
        Self::with(Anvil::spawn().await?, TestKafka::real()?).await
    }

    pub async fn with(anvil: Anvil, kafka: TestKafka) -> Result<Env> {
        let db = TestDb::create().await?;
        let topic = kafka.unique_topic("tripwire-test");
        kafka.create_topic(&topic, 1).await?;
        let token = anvil.deploy("DemoToken", &[]).await?;
        let vault = anvil.deploy("Vault", &[]).await?;
        let registry = anvil.deploy("Registry", &[]).await?;
        Ok(Env {
            anvil,
            db,
            kafka,
            dir: tempfile::tempdir()?,
            token,
            vault,
            registry,
            consumer: format!("sink-{}", &topic[topic.len() - 8..]),
            topic,
            max_reorg_depth: 64,
            range_blocks: 200,
            pg_url: None,
            brokers: None,
            max_lead_records: 0,
            no_contracts: false,
            rpc_urls: None,
            rpc_timeout_s: 10,
            chain_extra: String::new(),
        })
    }

    pub fn addresses(&self) -> Vec<Address> {
        vec![self.token, self.vault, self.registry]
    }

    /// Writes the config file and returns its path.
    pub fn config(&self) -> PathBuf {
        let abi = testkit::contracts::artifact_path("DemoToken");
        let text = format!(
            r#"
[postgres]
url = "{pg}"
max_connections = 4
[kafka]
brokers = "{brokers}"
topic = "{topic}"
max_lead_records = {lead}
[server]
listen = "127.0.0.1:0"
lag_threshold_blocks = 1000
[sink]
consumer = "{consumer}"
batch_records = {batch}
batch_wait_ms = 50
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = [{rpc}]
max_reorg_depth = {depth}
poll_interval_ms = 100
range_blocks = {range}
rpc_timeout_s = {timeout}
{chain_extra}
[[contracts]]
name = "token"
chain = "devnet"
addresses = ["{token}"]
abi = "{abi}"
[[contracts]]
name = "vault"
chain = "devnet"
addresses = ["{vault}"]
events = ["event Deposit(address indexed user, uint256 amount)", "event Withdraw(address indexed user, uint256 amount)"]
[[contracts]]
name = "registry"
chain = "devnet"
addresses = ["{registry}"]
"#,
            pg = self.pg_url.as_deref().unwrap_or(self.db.url()),
            brokers = self.brokers.clone().unwrap_or_else(|| self.kafka.brokers()),
            topic = self.topic,
            lead = self.max_lead_records,
            // At most half of the lead limit, as the config requires.
            batch = match self.max_lead_records {
                0 => 5000,
                lead => (lead / 2).min(5000),
            },
            consumer = self.consumer,
            rpc = self
                .rpc_urls
                .clone()
                .unwrap_or_else(|| vec![self.anvil.url()])
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", "),
            timeout = self.rpc_timeout_s,
            chain_extra = self.chain_extra,
            depth = self.max_reorg_depth,
            range = self.range_blocks,
            token = self.token,
            vault = self.vault,
            registry = self.registry,
            abi = abi.display(),
        );
        let text = if self.no_contracts {
            text[..text.find("[[contracts]]").expect("contracts section")].to_owned()
        } else {
            text
        };
        // Written to a temporary name and renamed: a process starting meanwhile (tests restart
        // processes while others run) must never read a half-written file.
        let path = self.dir.path().join("tripwire.toml");
        let tmp = self
            .dir
            .path()
            .join(format!("tripwire.toml.{}", rand_suffix()));
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &path).expect("rename config");
        path
    }

    /// Starts `tripwire-indexer <role>` with this environment's config.
    pub fn spawn(&self, role: &str) -> Result<Proc> {
        self.spawn_with_env(role, &[])
    }

    /// [`Env::spawn`] with extra environment variables (e.g. `FAILPOINTS`).
    pub fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Result<Proc> {
        Proc::spawn_with_env(
            std::path::Path::new(BIN),
            &self.config(),
            role,
            self.dir.path(),
            "info,tripwire_indexer=debug,tripwire_rpc=debug,tripwire_kafka=debug,tripwire_store=debug,tripwire_runtime=debug",
            env,
        )
    }

    /// Sends `n` transactions rotating over the three contracts, each emitting `per_tx` logs, one
    /// block each (automine).
    pub async fn traffic(&self, n: usize, per_tx: u64) -> Result<()> {
        for i in 0..n {
            let to = match i % 3 {
                0 => self.token,
                1 => self.vault,
                _ => self.registry,
            };
            self.anvil
                .send_and_mine(to, abi::call("burst(uint256)", &[abi::uint(per_tx)]))
                .await?;
        }
        Ok(())
    }

    /// Waits until Postgres has synced up to the chain head; on failure the error carries the
    /// processes' logs.
    pub async fn wait_synced_with(&self, timeout: Duration, procs: &[&Proc]) -> Result<u64> {
        self.wait_synced(timeout).await.map_err(|e| {
            let logs: String = procs
                .iter()
                .map(|p| {
                    let out = p.output();
                    let lines: Vec<&str> = out.lines().collect();
                    let cut = lines.len().saturating_sub(40);
                    // A chatty component can push the others out of the tail: keep every
                    // warning and every line of the sink from before it as well.
                    let earlier: Vec<&str> = lines[..cut]
                        .iter()
                        .copied()
                        .filter(|l| {
                            l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("::sink")
                        })
                        .collect();
                    let earlier = &earlier[earlier.len().saturating_sub(60)..];
                    format!(
                        "--- {} (earlier warnings and sink lines)\n{}\n--- {} (last 40 lines)\n{}\n",
                        p.role,
                        earlier.join("\n"),
                        p.role,
                        lines[cut..].join("\n")
                    )
                })
                .collect();
            e.context(logs)
        })
    }

    /// Waits until Postgres has synced up to the chain head.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<u64> {
        let head = self.anvil.block_number().await?;
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            let synced: Option<(Option<i64>,)> = match sqlx::query_as(
                "SELECT last_synced_block FROM indexer_state WHERE chain_id = 31337",
            )
            .fetch_optional(self.db.pool())
            .await
            {
                Ok(row) => row,
                // Before the processes ran their migrations the view does not exist yet.
                Err(e) => {
                    last_error = Some(e.to_string());
                    None
                }
            };
            let synced = synced.and_then(|(s,)| s).unwrap_or(-1);
            if synced >= head as i64 {
                return Ok(head);
            }
            if Instant::now() > deadline {
                let why = last_error
                    .map(|e| format!(" (last query error: {e})"))
                    .unwrap_or_default();
                bail!("not synced within {timeout:?}: head {head}, synced {synced}{why}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until Postgres equals the chain (after a reorg the head height may not change).
    pub async fn wait_matches_chain(&self, timeout: Duration, procs: &[&Proc]) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let head = self.anvil.block_number().await?;
            let head_hash = self.anvil.block_hash(head).await?;
            // Before the processes ran their migrations the table does not exist yet.
            let stored: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT hash FROM blocks WHERE chain_id = 31337 AND number = $1",
            )
            .bind(head as i64)
            .fetch_optional(self.db.pool())
            .await
            .ok()
            .flatten();
            if stored.as_deref() == Some(head_hash.as_slice()) {
                match self.assert_matches_chain().await {
                    Ok(n) => return Ok(n),
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = procs.iter().map(|p| p.output()).collect();
                bail!(
                    "Postgres never caught up with head {head}; logs:\n{}",
                    logs.join("\n---\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every record of the test's topic, decoded.
    pub async fn topic_records(&self) -> Result<Vec<tripwire_schema::StreamRecord>> {
        self.kafka
            .read_all(&self.topic)
            .await?
            .into_iter()
            .map(|(_, payload)| Ok(tripwire_schema::StreamRecord::from_json(&payload)?))
            .collect()
    }

    /// `eth_getLogs` of the three contracts over the whole chain, as comparable rows.
    pub async fn ground_truth(&self) -> Result<Vec<Row>> {
        let head = self.anvil.block_number().await?;
        let mut rows = Vec::new();
        let mut from = 0;
        while from <= head {
            let to = (from + 999).min(head);
            let logs = self
                .anvil
                .get_logs(json!({
                    "fromBlock": format!("0x{from:x}"),
                    "toBlock": format!("0x{to:x}"),
                    "address": self.addresses(),
                }))
                .await?;
            for l in logs {
                rows.push(Row::from_rpc(&l, self)?);
            }
            from = to + 1;
        }
        rows.sort();
        Ok(rows)
    }

    /// The `logs` table as comparable rows.
    pub async fn db_rows(&self) -> Result<Vec<Row>> {
        type R = (
            i64,
            Vec<u8>,
            i32,
            Vec<u8>,
            i32,
            Vec<u8>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Vec<u8>,
            Option<String>,
            Option<String>,
            Option<Value>,
        );
        let rows: Vec<R> = sqlx::query_as(
            "SELECT block_number, block_hash, log_index, tx_hash, tx_index, address,
                    topic0, topic1, topic2, topic3, data, contract, event_name, params
             FROM logs WHERE chain_id = 31337",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out: Vec<Row> = rows
            .into_iter()
            .map(|r| Row {
                block_number: r.0 as u64,
                block_hash: hex(&r.1),
                log_index: r.2 as u64,
                tx_hash: hex(&r.3),
                tx_index: r.4 as u64,
                address: hex(&r.5),
                topics: [r.6, r.7, r.8, r.9]
                    .into_iter()
                    .flatten()
                    .map(|t| hex(&t))
                    .collect(),
                data: hex(&r.10),
                contract: r.11,
                event: r.12,
                params: r.13.as_ref().map(canon),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Asserts Postgres equals the chain, row by row, with no duplicate.
    pub async fn assert_matches_chain(&self) -> Result<usize> {
        let truth = self.ground_truth().await?;
        let rows = self.db_rows().await?;
        let dupes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT tx_hash, log_index FROM logs GROUP BY 1, 2 HAVING count(*) > 1) d",
        )
        .fetch_one(self.db.pool())
        .await?;
        if dupes > 0 {
            bail!("{dupes} logs stored twice");
        }
        if truth != rows {
            if let Some(i) = (0..truth.len().min(rows.len())).find(|i| truth[*i] != rows[*i]) {
                bail!(
                    "Postgres differs from the chain at sorted row {i}:\nchain:    {:?}\npostgres: {:?}",
                    truth[i],
                    rows[i]
                );
            }
            let missing: Vec<_> = truth.iter().filter(|r| !rows.contains(r)).take(3).collect();
            let extra: Vec<_> = rows.iter().filter(|r| !truth.contains(r)).take(3).collect();
            bail!(
                "Postgres differs from the chain: {} rows on chain, {} in Postgres\nmissing (first 3): {missing:#?}\nextra (first 3): {extra:#?}",
                truth.len(),
                rows.len()
            );
        }
        Ok(rows.len())
    }
}

/// `[[chains.providers]]` entries as an inline array, for [`Env::chain_extra`]: each proxy with
/// its name and weight.
pub fn providers(list: &[(&str, &testkit::rpc_proxy::FaultProxy, u32)]) -> String {
    let entries: Vec<String> = list
        .iter()
        .map(|(name, p, weight)| {
            format!(
                "{{ url = \"{}\", name = \"{name}\", weight = {weight} }}",
                p.url()
            )
        })
        .collect();
    format!("providers = [{}]", entries.join(", "))
}

/// One log, in a form both sides can produce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub block_number: u64,
    pub log_index: u64,
    pub block_hash: String,
    pub tx_hash: String,
    pub tx_index: u64,
    pub address: String,
    pub topics: Vec<String>,
    pub data: String,
    pub contract: Option<String>,
    pub event: Option<String>,
    /// JSON text of the decoded parameters.
    pub params: Option<String>,
}

fn hex(b: &[u8]) -> String {
    format!(
        "0x{}",
        testkit::anvil::hex_bytes(b).trim_start_matches("0x")
    )
}

fn word_address(t: &str) -> String {
    let a: Address = t[26..].parse().expect("address topic");
    a.to_checksum(None)
}

fn word_uint(w: &str) -> String {
    U256::from_str_radix(w.trim_start_matches("0x"), 16)
        .expect("uint word")
        .to_string()
}

impl Row {
    /// Builds the expected row from an RPC log, decoding the known events independently of the
    /// indexer (by hand, from the ABI layout).
    fn from_rpc(l: &Value, env: &Env) -> Result<Row> {
        let s = |k: &str| l[k].as_str().map(str::to_lowercase).context(k.to_owned());
        let q = |k: &str| testkit::anvil::parse_quantity(&l[k]).context(k.to_owned());
        let address = s("address")?;
        let topics: Vec<String> = l["topics"]
            .as_array()
            .context("topics")?
            .iter()
            .map(|t| t.as_str().unwrap().to_lowercase())
            .collect();
        let data = s("data")?;
        let addr: Address = address.parse()?;
        let transfer = format!(
            "{:#x}",
            abi::event_topic("Transfer(address,address,uint256)")
        );
        let deposit = format!("{:#x}", abi::event_topic("Deposit(address,uint256)"));
        let withdraw = format!("{:#x}", abi::event_topic("Withdraw(address,uint256)"));
        let (contract, event, params) = if addr == env.token {
            if topics.len() == 3 && topics[0] == transfer && data.len() == 66 {
                let (from, to, value) = (
                    word_address(&topics[1]),
                    word_address(&topics[2]),
                    word_uint(&data),
                );
                (
                    Some("token"),
                    Some("Transfer"),
                    Some(ordered(&[("from", &from), ("to", &to), ("value", &value)])),
                )
            } else {
                (Some("token"), None, None)
            }
        } else if addr == env.vault {
            let name = if topics.first() == Some(&deposit) {
                Some("Deposit")
            } else if topics.first() == Some(&withdraw) {
                Some("Withdraw")
            } else {
                None
            };
            match name {
                Some(n) if topics.len() == 2 && data.len() == 66 => (
                    Some("vault"),
                    Some(n),
                    Some(ordered(&[
                        ("user", &word_address(&topics[1])),
                        ("amount", &word_uint(&data)),
                    ])),
                ),
                _ => (Some("vault"), None, None),
            }
        } else {
            (Some("registry"), None, None)
        };
        Ok(Row {
            block_number: q("blockNumber")?,
            log_index: q("logIndex")?,
            block_hash: s("blockHash")?,
            tx_hash: s("transactionHash")?,
            tx_index: q("transactionIndex")?,
            address,
            topics,
            data,
            contract: contract.map(str::to_owned),
            event: event.map(str::to_owned),
            params,
        })
    }
}

/// Canonical text of decoded parameters (keys sorted), whatever map order serde_json uses.
fn ordered(pairs: &[(&str, &str)]) -> String {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn canon(params: &Value) -> String {
    let obj = params.as_object().expect("params is an object");
    let pairs: Vec<(&str, String)> = obj
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ordered(&refs)
}

/// A `tripwire-indexer` child process.
pub use testkit::process::Proc;

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Hash helper for tests that build reorg replacement transactions.
pub fn zero_hash() -> B256 {
    B256::ZERO
}
