//! Harness of the watchdog's end-to-end tests: anvil with the `Treasury` and `DemoToken`
//! contracts, a fresh Postgres database, Kafka (librdkafka's mock, or `KAFKA_BROKERS`), a real
//! Alertmanager, the indexer's ingest as a child process (it fills the topic the watchdog reads;
//! with its sink it also stores the rows a back-test reads), and `tripwire-watchdog` as a child
//! process that tests can kill and restart.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testkit::config::{
    Alertmanager as AlertmanagerConfig, Chain, Contract, Detector, Safe, SafeTarget, Server, Sink,
    TestConfig, Watchdog, Webhook,
};
use testkit::{
    abi, alertmanager::Alertmanager, anvil::Anvil, kafka::TestKafka, postgres::TestDb,
    process::Proc, Address, DynSolValue, U256,
};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tripwire-watchdog");

/// Everything one test runs against.
pub(crate) struct Env {
    pub anvil: Anvil,
    pub db: TestDb,
    pub kafka: TestKafka,
    pub am: Alertmanager,
    pub dir: tempfile::TempDir,
    pub treasury: Address,
    pub token: Address,
    pub topic: String,
    /// `[[watchdog.detectors]]`
    pub detectors: Vec<Detector>,
    /// `[watchdog.safe]`
    pub safe: Option<Safe>,
    /// `[watchdog.webhook]`
    pub webhook: Option<Webhook>,
    /// `[watchdog.alertmanager]` but its `urls` (see `am_url`, `am_urls_before`).
    pub alertmanager: AlertmanagerConfig,
    pub max_reorg_depth: u64,
    /// Alertmanager URL given to the watchdog instead of the real one's (e.g. a proxy in front).
    pub am_url: Option<String>,
    /// More Alertmanager URLs, listed before that one (e.g. a member that never answers).
    pub am_urls_before: Vec<String>,
    /// `[server]` of the indexer (its /metrics; any free port by default) and the HTTP server's
    /// limits of both processes.
    pub server: Server,
    /// More RPC providers of the chain, after anvil (e.g. failing ones).
    pub rpc_urls_extra: Vec<String>,
    /// More addresses of the `treasury` contract (several pause targets).
    pub extra_treasuries: Vec<Address>,
    /// Whether the treasury's transactions are indexed (`transactions = true`).
    pub treasury_transactions: bool,
    ingest: Option<Proc>,
    /// This test's turn: shared with the other tests, or alone (see [`Env::new_alone`]). Last
    /// field, so it is let go after the processes above are stopped.
    _turn: Turn,
}

/// Tests of this binary run two at a time. A test that measures latency (a finding at the live
/// Alertmanager within a second) runs alone, as it did when each file was a binary of its own:
/// every `Env` holds a shared turn, such a test the exclusive one (waiting for the running tests
/// to end; the others wait for it).
static TURNS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

impl Env {
    pub(crate) async fn new(detectors: Vec<Detector>) -> Result<Env> {
        Self::with_turn(detectors, Turn::Shared(TURNS.read().await)).await
    }

    /// [`Env::new`] for a test that must not share the machine with another of this binary.
    pub(crate) async fn new_alone(detectors: Vec<Detector>) -> Result<Env> {
        Self::with_turn(detectors, Turn::Alone(TURNS.write().await)).await
    }

    async fn with_turn(detectors: Vec<Detector>, turn: Turn) -> Result<Env> {
        let anvil = Anvil::spawn().await?;
        let db = TestDb::create().await?;
        let kafka = TestKafka::start()?;
        let topic = kafka.unique_topic("tripwire-wd");
        kafka.create_topic(&topic, 1).await?;
        let am = Alertmanager::spawn().await?;
        let treasury = anvil.deploy("Treasury", &[]).await?;
        let token = anvil.deploy("DemoToken", &[]).await?;
        Ok(Env {
            anvil,
            db,
            kafka,
            am,
            dir: tempfile::tempdir()?,
            treasury,
            token,
            topic,
            detectors,
            safe: None,
            webhook: None,
            alertmanager: AlertmanagerConfig {
                resend_interval_s: Some(5),
                explorer_tx_url: Some("https://explorer.invalid/tx/{tx_hash}".into()),
                ..AlertmanagerConfig::default()
            },
            max_reorg_depth: 64,
            am_url: None,
            am_urls_before: Vec::new(),
            server: Server::any_port(),
            rpc_urls_extra: Vec::new(),
            extra_treasuries: Vec::new(),
            treasury_transactions: false,
            ingest: None,
            _turn: turn,
        })
    }

    /// The config of this environment.
    pub(crate) fn test_config(&self) -> TestConfig {
        let mut config = TestConfig::new(self.db.url(), self.kafka.brokers());
        config.postgres.max_connections = Some(4);
        config.kafka.topic = Some(self.topic.clone());
        let treasuries =
            std::iter::once(self.treasury).chain(self.extra_treasuries.iter().copied());
        let urls = self
            .am_urls_before
            .iter()
            .cloned()
            .chain([self.am_url.clone().unwrap_or_else(|| self.am.url())])
            .collect();
        config
            .server(self.server.clone())
            .sink(Sink {
                consumer: Some(format!("{}-sink", self.topic)),
                batch_wait_ms: Some(50),
                ..Sink::default()
            })
            .chain(Chain {
                name: "devnet".into(),
                chain_id: 31337,
                rpc_urls: std::iter::once(self.anvil.url())
                    .chain(self.rpc_urls_extra.iter().cloned())
                    .collect(),
                max_reorg_depth: Some(self.max_reorg_depth),
                poll_interval_ms: Some(100),
                range_blocks: Some(200),
                rpc_timeout_s: Some(10),
                ..Chain::default()
            })
            .contract({
                let treasury = Contract::new("treasury", "devnet", treasuries).artifact("Treasury");
                if self.treasury_transactions {
                    treasury.transactions()
                } else {
                    treasury
                }
            })
            .contract(Contract::new("token", "devnet", [self.token]).artifact("DemoToken"))
            .watchdog(Watchdog {
                consumer: Some("watchdog-test".into()),
                listen: Some("127.0.0.1:0".into()),
                checkpoint_interval_s: Some(1),
                alertmanager: AlertmanagerConfig {
                    urls,
                    ..self.alertmanager.clone()
                },
                detectors: self.detectors.clone(),
                safe: self.safe.clone(),
                webhook: self.webhook.clone(),
            })
    }

    /// Writes the config file (checked, and atomically) and returns its path.
    pub(crate) fn config(&self) -> PathBuf {
        self.test_config()
            .write(self.dir.path().join("tripwire.toml"))
            .expect("write config")
    }

    /// Starts the indexer's ingest (it publishes the chain to the topic).
    pub(crate) async fn start_ingest(&mut self) -> Result<()> {
        self.start_indexer(false).await
    }

    /// Starts the indexer (`tripwire-indexer ingest`, or `run` with `sink`, which also stores
    /// the topic's records in Postgres: the rows a back-test reads) and waits until it serves
    /// HTTP. A child process, as in production; stopped with SIGTERM when the test ends.
    pub(crate) async fn start_indexer(&mut self, sink: bool) -> Result<()> {
        let p = Proc::spawn(
            &testkit::workspace_bin("tripwire-indexer")?,
            &self.config(),
            if sink { "run" } else { "ingest" },
            self.dir.path(),
            "info",
        )?;
        p.http_addr().await?;
        self.ingest = Some(p);
        Ok(())
    }

    /// Starts `tripwire-watchdog run` and waits until it serves HTTP.
    pub(crate) async fn spawn_watchdog(&self) -> Result<Proc> {
        self.spawn_watchdog_with_env(&[]).await
    }

    /// [`Env::spawn_watchdog`] with extra environment variables for the child only (the test
    /// binary's own environment is shared by every test and is not changed).
    pub(crate) async fn spawn_watchdog_with_env(&self, vars: &[(&str, &str)]) -> Result<Proc> {
        let p = Proc::spawn_with_env(
            Path::new(BIN),
            &self.config(),
            "run",
            self.dir.path(),
            "info,tripwire_watchdog=debug",
            vars,
        )?;
        p.http_addr().await?;
        Ok(p)
    }

    /// Runs `tripwire-watchdog <args>` to completion: (success, output).
    pub(crate) fn watchdog_command(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .context("run tripwire-watchdog")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// Sends a call to the treasury and mines it in its own block.
    pub(crate) async fn treasury(
        &self,
        signature: &str,
        args: &[testkit::DynSolValue],
    ) -> Result<()> {
        self.anvil
            .send_and_mine(self.treasury, abi::call(signature, args))
            .await?;
        Ok(())
    }

    pub(crate) async fn token_transfer(&self, amount: testkit::U256) -> Result<()> {
        let to = self.anvil.accounts()[1];
        self.anvil
            .send_and_mine(
                self.token,
                abi::call(
                    "mint(address,uint256)",
                    &[abi::address(to), abi::uint256(amount)],
                ),
            )
            .await?;
        Ok(())
    }

    /// Alerts Alertmanager holds whose `detector` label is `detector`.
    pub(crate) async fn alerts_of(&self, detector: &str) -> Result<Vec<Value>> {
        Ok(self
            .am
            .alerts()
            .await?
            .into_iter()
            .filter(|a| a["labels"]["detector"] == detector)
            .collect())
    }

    /// Waits until `cond` holds for the alerts, or fails with what Alertmanager holds.
    pub(crate) async fn wait_alerts(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.am.alerts().await?;
            if cond(&alerts) {
                return Ok(alerts);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}; Alertmanager holds {alerts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the watchdog's stored position covers the whole topic and its state is saved.
    pub(crate) async fn wait_watchdog_caught_up(&self, wd: &Proc, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        // The lag gauge is refreshed every checkpoint interval (1 s here): only a reading taken
        // well after the ingest stored the head covers every record it published.
        let mut ingested_at: Option<Instant> = None;
        let mut caught_up_at: Option<f64> = None;
        loop {
            let lag = wd.metric("tripwire_watchdog_consumer_lag_records").await?;
            let consumed = wd
                .metric("tripwire_watchdog_records_consumed_total")
                .await?;
            let head = self.anvil.block_number().await?;
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT max(block_number) FROM ingest_cursors WHERE chain_id = 31337",
            )
            .fetch_one(self.db.pool())
            .await?;
            if stored == Some(head as i64) {
                let since = *ingested_at.get_or_insert_with(Instant::now);
                if consumed > 0.0 && lag == 0.0 && since.elapsed() >= Duration::from_millis(2500) {
                    // Caught up; and a checkpoint after that saved it (the partition may have
                    // been assigned only moments ago).
                    let checkpoints = wd.metric("tripwire_watchdog_checkpoints_total").await?;
                    match caught_up_at {
                        None => caught_up_at = Some(checkpoints),
                        Some(at) if checkpoints > at => return Ok(()),
                        Some(_) => {}
                    }
                }
            } else {
                ingested_at = None;
                caught_up_at = None;
            }
            if Instant::now() > deadline {
                bail!(
                    "watchdog not caught up (lag {lag}, consumed {consumed}, ingested {stored:?} of {head}); log:\n{}",
                    wd.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A withdrawal-burst `rate` detector and a huge-mint `value` detector, tuned for the tests'
/// compressed time (10 s windows, short warm-ups).
pub(crate) fn rate_and_value() -> Vec<Detector> {
    vec![
        Detector::new("withdraw-burst", "rate")
            .contract("treasury")
            .event("Withdraw")
            .severity("critical")
            .param("window_s", 10)
            .param("warmup_windows", 20),
        Detector::new("huge-mint", "value")
            .contract("token")
            .event("Transfer")
            .param("field", "value")
            .param("warmup", 40)
            .param("history", 200)
            .param("floor", 1e18),
    ]
}

/// A 2-of-3 Safe (owners: anvil accounts 1-3) holding the pauser role of every treasury, and
/// the proposer key (owner 1) in a file.
pub(crate) struct SafeSetup {
    pub singletons: testkit::safe::SafeSingletons,
    pub safe: Address,
    pub key_file: PathBuf,
}

impl Env {
    pub(crate) async fn setup_safe(&self) -> Result<SafeSetup> {
        let singletons = testkit::safe::SafeSingletons::deploy(&self.anvil).await?;
        let owners = &self.anvil.accounts()[1..4];
        let safe = singletons.create_safe(&self.anvil, owners, 2, 1).await?;
        let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
        for t in std::iter::once(self.treasury).chain(self.extra_treasuries.iter().copied()) {
            self.anvil
                .send_and_mine(
                    t,
                    abi::call(
                        "grantRole(bytes32,address)",
                        &[abi::bytes32(role), abi::address(safe)],
                    ),
                )
                .await?;
        }
        let key_file = self.dir.path().join("proposer.key");
        std::fs::write(&key_file, testkit::safe::OWNER_KEYS[0])?;
        Ok(SafeSetup {
            singletons,
            safe,
            key_file,
        })
    }

    /// `[watchdog.safe]` for `setup`, pausing every `treasury` address.
    pub(crate) fn safe(&self, setup: &SafeSetup) -> Safe {
        Safe {
            proposer_key_file: Some(setup.key_file.clone()),
            multisend: Some(setup.singletons.multisend_call_only.to_string()),
            targets: vec![SafeTarget::contract("treasury")],
            ..Safe::new("devnet", setup.safe)
        }
    }

    /// An `event` detector on the treasury with the `pause` action; the deployer and the Safe
    /// are expected actors.
    pub(crate) fn pause_detector(&self, safe: Address) -> Detector {
        Detector::new("privileged", "event")
            .contract("treasury")
            .severity("critical")
            .actions(["pause"])
            .param(
                "allowed_actors",
                vec![
                    format!("{:#x}", self.anvil.accounts()[0]),
                    format!("{safe:#x}"),
                ],
            )
    }

    /// Stored proposals: (id, state, safe_tx_hash, signature, nonce, to, data, operation).
    pub(crate) async fn proposals(&self) -> Result<Vec<StoredProposal>> {
        Ok(sqlx::query_as(
            "SELECT id, state, safe_tx_hash, signature, nonce, to_address, data, operation, error
             FROM safe_proposals ORDER BY id",
        )
        .fetch_all(self.db.pool())
        .await?)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredProposal {
    pub id: i64,
    pub state: String,
    pub safe_tx_hash: String,
    pub signature: String,
    pub nonce: String,
    pub to_address: String,
    pub data: String,
    pub operation: i16,
    pub error: Option<String>,
}

/// Blocks with chosen timestamps (automine off): several transactions, then `evm_mine [ts]`, so
/// hours of block time pass in seconds and windows hold what the test put in them.
pub(crate) struct Clock {
    pub ts: u64,
    pub spacing: u64,
}

impl Clock {
    /// Turns automining off and starts at the next multiple of `align` after the head's time.
    pub(crate) async fn start(env: &Env, spacing: u64, align: u64) -> Result<Clock> {
        env.anvil.set_automine(false).await?;
        let head = env.anvil.block(env.anvil.block_number().await?).await?;
        let ts = testkit::anvil::parse_quantity(&head["timestamp"])?;
        Ok(Clock {
            ts: (ts / align + 1) * align,
            spacing,
        })
    }

    /// Mines the pending transactions into one block at the current time, and moves time on.
    pub(crate) async fn mine(&mut self, env: &Env) -> Result<u64> {
        env.anvil
            .rpc("evm_mine", serde_json::json!([self.ts]))
            .await?;
        self.ts += self.spacing;
        env.anvil.block_number().await
    }
}

/// One ordinary block: two deposits and two withdrawals of about 100 each (plus `drain` on every
/// withdrawal), and one token mint of a log-normal amount.
pub(crate) async fn benign_block(
    env: &Env,
    clock: &mut Clock,
    rng: &mut impl rand::Rng,
    drain: f64,
) -> Result<u64> {
    let ins = [
        ether(100.0 + 20.0 * normal(rng)),
        ether(100.0 + 20.0 * normal(rng)),
    ];
    let outs = [
        ether(100.0 + 20.0 * normal(rng) + drain),
        ether(100.0 + 20.0 * normal(rng) + drain),
    ];
    env.anvil
        .send(env.treasury, flows_call(&ins, &outs))
        .await?;
    mint(env, ether((3.0 + 0.8 * normal(rng)).exp())).await?;
    clock.mine(env).await
}

/// Sends (does not mine) a token mint of `amount` to account 1.
pub(crate) async fn mint(env: &Env, amount: U256) -> Result<()> {
    env.anvil
        .send(
            env.token,
            abi::call(
                "mint(address,uint256)",
                &[abi::address(env.anvil.accounts()[1]), abi::uint256(amount)],
            ),
        )
        .await?;
    Ok(())
}

/// `Treasury.flows(ins, outs)` calldata.
pub(crate) fn flows_call(ins: &[U256], outs: &[U256]) -> Vec<u8> {
    let arr = |v: &[U256]| DynSolValue::Array(v.iter().map(|x| abi::uint256(*x)).collect());
    abi::call("flows(uint256[],uint256[])", &[arr(ins), arr(outs)])
}

/// `amount * 10^18`, rounded to whole wei.
pub(crate) fn ether(amount: f64) -> U256 {
    U256::from((amount.max(0.0) * 1e6).round() as u128) * U256::from(1_000_000_000_000u64)
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson draw (Knuth; small means).
pub(crate) fn poisson(rng: &mut impl rand::Rng, mean: f64) -> usize {
    let l = (-mean).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Incidents stored for `detector`: (state, findings, note).
pub(crate) async fn incidents(
    env: &Env,
    detector: &str,
) -> Result<Vec<(String, i64, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT state, findings, note FROM watchdog_incidents WHERE detector = $1 ORDER BY id",
    )
    .bind(detector)
    .fetch_all(env.db.pool())
    .await?)
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut p) = self.ingest.take() {
            let _ = p.terminate(Duration::from_secs(20));
        }
    }
}
