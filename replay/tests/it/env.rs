//! The harness the reindex, back-test and cursor-reset tests share: anvil with the `Treasury`
//! contract, a fresh Postgres database, Kafka (librdkafka's mock or `KAFKA_BROKERS`), the indexer
//! (ingest and sink) as a child process, as in production, and `tripwire-replay` run against them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use testkit::config::{Chain, Contract, Server, Sink, TestConfig};
use testkit::{
    abi, anvil::Anvil, kafka::TestKafka, postgres::TestDb, process::Proc, Address, DynSolValue,
    U256,
};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tripwire-replay");

pub(crate) struct Env {
    pub(crate) anvil: Anvil,
    pub(crate) db: TestDb,
    kafka: TestKafka,
    topic: String,
    pub(crate) treasury: Address,
    pub(crate) dir: tempfile::TempDir,
    indexer: Option<Proc>,
}

impl Env {
    pub(crate) async fn new() -> Result<Env> {
        let anvil = Anvil::spawn().await?;
        let db = TestDb::create().await?;
        tripwire_store::migrate(db.pool()).await?;
        let kafka = TestKafka::start()?;
        let topic = kafka.unique_topic("tripwire-replay");
        kafka.create_topic(&topic, 1).await?;
        let treasury = anvil.deploy("Treasury", &[]).await?;
        Ok(Env {
            anvil,
            db,
            kafka,
            topic,
            treasury,
            dir: tempfile::tempdir()?,
            indexer: None,
        })
    }

    /// The config of this environment: its database, topic, chain and `treasury`.
    pub(crate) fn test_config(&self) -> TestConfig {
        let mut config = TestConfig::new(self.db.url(), self.kafka.brokers());
        config.postgres.max_connections = Some(4);
        config.kafka.topic = Some(self.topic.clone());
        config
            .server(Server::any_port())
            .sink(Sink {
                consumer: Some("sink-replay-test".into()),
                batch_wait_ms: Some(50),
                ..Sink::default()
            })
            .chain(Chain {
                poll_interval_ms: Some(100),
                range_blocks: Some(20),
                ..Chain::new("devnet", 31337, self.anvil.url())
            })
            .contract(Contract::new("treasury", "devnet", [self.treasury]).artifact("Treasury"))
    }

    /// Writes `config` as the file `name` of this environment's folder.
    pub(crate) fn write_config(&self, name: &str, config: TestConfig) -> PathBuf {
        config
            .write(self.dir.path().join(name))
            .expect("write config")
    }

    /// The config file `name` of [`Env::test_config`].
    pub(crate) fn config(&self, name: &str) -> PathBuf {
        self.write_config(name, self.test_config())
    }

    /// Starts ingest and sink (`tripwire-indexer run`, a child process as in production) and
    /// waits until it serves HTTP.
    pub(crate) async fn start_indexer(&mut self) -> Result<()> {
        let p = Proc::spawn(
            &testkit::workspace_bin("tripwire-indexer")?,
            &self.config("indexer.toml"),
            "run",
            self.dir.path(),
            "info",
        )?;
        p.http_addr().await?;
        self.indexer = Some(p);
        Ok(())
    }

    /// Stops the indexer with SIGTERM (it drains and exits).
    pub(crate) fn stop_indexer(&mut self) {
        if let Some(mut p) = self.indexer.take() {
            let _ = p.terminate(Duration::from_secs(20));
        }
    }

    /// `n` blocks of treasury traffic, 8 logs each.
    pub(crate) async fn traffic(&self, rng: &mut StdRng, n: usize) -> Result<()> {
        for _ in 0..n {
            let amounts = |rng: &mut StdRng| {
                DynSolValue::Array(
                    (0..4)
                        .map(|_| abi::uint256(U256::from(rng.random_range(1..1_000_000u64))))
                        .collect(),
                )
            };
            let data = abi::call("flows(uint256[],uint256[])", &[amounts(rng), amounts(rng)]);
            self.anvil.send_and_mine(self.treasury, data).await?;
        }
        Ok(())
    }

    /// (block number, block hash, log index) of every log of `addresses` on the chain.
    async fn truth(&self, addresses: &[Address]) -> Result<BTreeSet<(i64, Vec<u8>, i64)>> {
        let logs = self
            .anvil
            .get_logs(json!({"fromBlock": "0x0", "toBlock": "latest", "address": addresses}))
            .await?;
        let mut out = BTreeSet::new();
        for l in logs {
            out.insert((
                testkit::anvil::parse_quantity(&l["blockNumber"])? as i64,
                testkit::anvil::parse_b256(&l["blockHash"])?.to_vec(),
                testkit::anvil::parse_quantity(&l["logIndex"])? as i64,
            ));
        }
        Ok(out)
    }

    pub(crate) async fn stored(
        &self,
        addresses: &[Address],
    ) -> Result<BTreeSet<(i64, Vec<u8>, i64)>> {
        let bytes: Vec<Vec<u8>> = addresses.iter().map(|a| a.to_vec()).collect();
        let rows: Vec<(i64, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT block_number, block_hash, log_index FROM logs WHERE address = ANY($1)",
        )
        .bind(&bytes)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().map(|(n, h, i)| (n, h, i as i64)).collect())
    }

    pub(crate) async fn wait_equal(
        &self,
        addresses: &[Address],
        timeout: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let (t, s) = (self.truth(addresses).await?, self.stored(addresses).await?);
            if t == s {
                return Ok(t.len());
            }
            if Instant::now() > deadline {
                bail!(
                    "Postgres differs from the chain: {} missing, {} extra (of {})",
                    t.difference(&s).count(),
                    s.difference(&t).count(),
                    t.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) fn replay(&self, config: &Path, args: &[&str]) -> Result<(i32, String)> {
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    pub(crate) async fn count(&self, sql: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.db.pool())
            .await?)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_indexer();
    }
}
