//! Harness of the indexer's end-to-end tests: a chain (anvil) with the demo contracts, a fresh
//! Postgres database, a Kafka broker (librdkafka's mock, or `KAFKA_BROKERS`), a config file for
//! them, `tripwire-indexer` child processes, and the ground-truth comparison against `eth_getLogs`
//! (`rows`).
#![allow(dead_code)]

mod rows;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use testkit::config::{Chain, Contract, Provider, Server, Sink, TestConfig};
use testkit::{abi, anvil::Anvil, kafka::TestKafka, postgres::TestDb, Address, B256};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tripwire-indexer");

/// Everything one test runs against.
pub(crate) struct Env {
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
    /// `[[chains.providers]]` of the chain (see [`providers`]).
    pub providers: Vec<Provider>,
    /// `verify_ranges` of the chain, when not the default.
    pub verify_ranges: Option<bool>,
    /// `max_provider_lag_blocks` of the chain, when not the default.
    pub max_provider_lag_blocks: Option<u64>,
}

impl Env {
    pub(crate) async fn new() -> Result<Env> {
        Self::with_anvil(Anvil::spawn().await?).await
    }

    pub(crate) async fn with_anvil(anvil: Anvil) -> Result<Env> {
        Self::with(anvil, TestKafka::start()?).await
    }

    /// On librdkafka's mock broker whatever `KAFKA_BROKERS` says: for tests that need its fault
    /// hooks.
    pub(crate) async fn on_mock() -> Result<Env> {
        Self::with(Anvil::spawn().await?, TestKafka::start_mock()?).await
    }

    /// On a real Apache Kafka broker (`KAFKA_BROKERS`, or one started for the test).
    pub(crate) async fn on_real_broker() -> Result<Env> {
        Self::with(Anvil::spawn().await?, TestKafka::real()?).await
    }

    pub(crate) async fn with(anvil: Anvil, kafka: TestKafka) -> Result<Env> {
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
            providers: Vec::new(),
            verify_ranges: None,
            max_provider_lag_blocks: None,
        })
    }

    pub(crate) fn addresses(&self) -> Vec<Address> {
        vec![self.token, self.vault, self.registry]
    }

    /// The config of this environment.
    pub(crate) fn test_config(&self) -> TestConfig {
        let rpc_urls = self
            .rpc_urls
            .clone()
            .unwrap_or_else(|| vec![self.anvil.url()]);
        let mut config = TestConfig::new(
            self.pg_url.as_deref().unwrap_or(self.db.url()),
            self.brokers.clone().unwrap_or_else(|| self.kafka.brokers()),
        );
        config.postgres.max_connections = Some(4);
        config.kafka.topic = Some(self.topic.clone());
        config.kafka.max_lead_records = Some(self.max_lead_records);
        let mut config = config
            .server(Server {
                lag_threshold_blocks: Some(1000),
                ..Server::any_port()
            })
            .sink(Sink {
                consumer: Some(self.consumer.clone()),
                // At most half of the lead limit, as the config requires.
                batch_records: Some(match self.max_lead_records {
                    0 => 5000,
                    lead => (lead / 2).min(5000) as usize,
                }),
                batch_wait_ms: Some(50),
                ..Sink::default()
            })
            .chain(Chain {
                name: "devnet".into(),
                chain_id: 31337,
                rpc_urls,
                providers: self.providers.clone(),
                max_provider_lag_blocks: self.max_provider_lag_blocks,
                verify_ranges: self.verify_ranges,
                max_reorg_depth: Some(self.max_reorg_depth),
                poll_interval_ms: Some(100),
                range_blocks: Some(self.range_blocks),
                rpc_timeout_s: Some(self.rpc_timeout_s),
                ..Chain::default()
            });
        if !self.no_contracts {
            config = config
                .contract(Contract::new("token", "devnet", [self.token]).artifact("DemoToken"))
                .contract(Contract::new("vault", "devnet", [self.vault]).events([
                    "event Deposit(address indexed user, uint256 amount)",
                    "event Withdraw(address indexed user, uint256 amount)",
                ]))
                .contract(Contract::new("registry", "devnet", [self.registry]));
        }
        config
    }

    /// Writes the config file (checked, and atomically: tests restart processes while others
    /// run) and returns its path.
    pub(crate) fn config(&self) -> PathBuf {
        self.test_config()
            .write(self.dir.path().join("tripwire.toml"))
            .expect("write config")
    }

    /// Starts `tripwire-indexer <role>` with this environment's config.
    pub(crate) fn spawn(&self, role: &str) -> Result<Proc> {
        self.spawn_with_env(role, &[])
    }

    /// [`Env::spawn`] with extra environment variables (e.g. `FAILPOINTS`).
    pub(crate) fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Result<Proc> {
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
    pub(crate) async fn traffic(&self, n: usize, per_tx: u64) -> Result<()> {
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
    pub(crate) async fn wait_synced_with(&self, timeout: Duration, procs: &[&Proc]) -> Result<u64> {
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
    pub(crate) async fn wait_synced(&self, timeout: Duration) -> Result<u64> {
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
    pub(crate) async fn wait_matches_chain(
        &self,
        timeout: Duration,
        procs: &[&Proc],
    ) -> Result<usize> {
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
    pub(crate) async fn topic_records(&self) -> Result<Vec<tripwire_schema::StreamRecord>> {
        self.kafka
            .read_all(&self.topic)
            .await?
            .into_iter()
            .map(|(_, payload)| Ok(tripwire_schema::StreamRecord::from_json(&payload)?))
            .collect()
    }
}

/// `[[chains.providers]]` entries, for [`Env::providers`]: each proxy with its name and weight.
pub(crate) fn providers(list: &[(&str, &testkit::rpc_proxy::FaultProxy, u32)]) -> Vec<Provider> {
    list.iter()
        .map(|(name, p, weight)| Provider {
            url: p.url(),
            name: Some((*name).to_owned()),
            weight: Some(*weight),
            ..Provider::default()
        })
        .collect()
}

/// A `tripwire-indexer` child process.
pub(crate) use testkit::process::Proc;

/// Hash helper for tests that build reorg replacement transactions.
pub(crate) fn zero_hash() -> B256 {
    B256::ZERO
}
