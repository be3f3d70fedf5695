//! The setting of the emergency-pause drill: the demo's contracts on anvil, the compose services
//! the runbook reaches as local processes, and the planted attack the watchdog proposes a pause
//! for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use testkit::alertmanager::Alertmanager;
use testkit::anvil::Anvil;
use testkit::config as cfg;
use testkit::kafka::TestKafka;
use testkit::postgres::TestDb;
use testkit::process::Proc;
use testkit::safe::OWNER_KEYS;
use tripwire_deploy::runbook::Command;

use super::{Book, ADMIN_KEY};
use crate::drills::{drill_chain, drill_config, eventually, fill, run, run_ok};

/// What the demo deployment put on the chain, and who acts on it.
pub(super) struct Chain {
    pub(super) rpc: String,
    /// `tripwire-devnet deploy`'s output, which `tripwire-devnet attack` reads.
    pub(super) contracts: PathBuf,
    pub(super) treasury: String,
    pub(super) safe: String,
    pub(super) multisend: String,
    pub(super) deployer: String,
    /// The Safe's owners, lower case.
    pub(super) owners: Vec<String>,
    /// The account of [`ADMIN_KEY`].
    pub(super) admin: String,
}

/// The demo deployment (the treasury, the Safe v1.4.1 contracts, a 2-of-3 Safe of anvil accounts
/// 1-3 holding the treasury's pauser role), and the admin role handed to [`ADMIN_KEY`].
pub(super) async fn deploy(anvil: &Anvil, dir: &Path, book: &Book) -> Result<Chain> {
    let rpc = anvil.url();
    let contracts = dir.join("contracts.json");
    let out = run(
        "tripwire-devnet",
        &[
            "deploy".into(),
            "--rpc".into(),
            rpc.clone(),
            "--out".into(),
            contracts.display().to_string(),
        ],
        &[],
        None,
    )?;
    ensure!(
        out.ok,
        "tripwire-devnet deploy: {}{}",
        out.stdout,
        out.stderr
    );
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&contracts)?)?;
    let field = |k: &str| {
        d[k].as_str()
            .map(str::to_owned)
            .with_context(|| format!("{k} in {d}"))
    };
    let accounts = anvil.accounts();
    let owners: Vec<String> = accounts[1..4].iter().map(|a| format!("{a:#x}")).collect();
    let admin = book.address_of(ADMIN_KEY)?;
    ensure!(
        admin.eq_ignore_ascii_case(&format!("{:#x}", accounts[4])),
        "ADMIN_KEY is not anvil's account 4 ({admin})"
    );
    ensure!(
        !owners.iter().any(|o| o.eq_ignore_ascii_case(&admin)),
        "the admin {admin} is a Safe owner"
    );
    let treasury = field("treasury")?;
    // From the deployer, who holds the role; anvil's accounts are funded from the start.
    anvil
        .send_and_mine(
            treasury.parse()?,
            testkit::abi::call(
                "grantRole(bytes32,address)",
                &[
                    testkit::abi::bytes32(testkit::B256::ZERO),
                    testkit::abi::address(admin.parse()?),
                ],
            ),
        )
        .await?;
    Ok(Chain {
        rpc,
        contracts,
        treasury,
        safe: field("safe")?,
        multisend: field("multisend")?,
        deployer: format!("{:#x}", accounts[0]),
        owners,
        admin,
    })
}

/// The compose services the runbook reaches, as local processes, and their configuration.
pub(super) struct Stack {
    pub(super) config: String,
    /// Held, not read: dropping a `Proc` kills the process.
    pub(super) _ingest: Proc,
    pub(super) _sink: Proc,
    pub(super) watchdog: Proc,
    pub(super) ingest_addr: String,
    pub(super) sink_addr: String,
    pub(super) watchdog_addr: String,
}

impl Stack {
    /// The ingest and the sink as separate processes, as the compose file runs them, so that each
    /// runbook command reaches the process its port names; the watchdog with the pause action on
    /// the treasury, once its Safe checks passed.
    pub(super) async fn start(
        dir: &Path,
        chain: &Chain,
        db: &TestDb,
        kafka: &TestKafka,
        am: &Alertmanager,
    ) -> Result<Stack> {
        let topic = kafka.unique_topic("tripwire-drill");
        kafka.create_topic(&topic, 1).await?;
        let key_file = dir.join("proposer.key");
        std::fs::write(&key_file, OWNER_KEYS[0])?;
        let mut watchdog = cfg::Watchdog {
            consumer: Some("tripwire-watchdog".into()),
            listen: Some("127.0.0.1:0".into()),
            checkpoint_interval_s: Some(1),
            safe: Some(cfg::Safe {
                proposer_key_file: Some(key_file.clone()),
                multisend: Some(chain.multisend.clone()),
                targets: vec![cfg::SafeTarget::contract("treasury")],
                ..cfg::Safe::new("devnet", &chain.safe)
            }),
            ..cfg::Watchdog::new([am.url()])
        }
        .detector(
            cfg::Detector::new("treasury-privileged", "event")
                .contract("treasury")
                .severity("critical")
                .actions(["pause"])
                .param(
                    "allowed_actors",
                    vec![
                        chain.deployer.clone(),
                        chain.admin.clone(),
                        chain.safe.clone(),
                    ],
                ),
        );
        watchdog.alertmanager.resend_interval_s = Some(5);
        let config = drill_config(db, kafka, &topic)
            .chain(cfg::Chain {
                range_blocks: Some(200),
                ..drill_chain(&chain.rpc)
            })
            .contract(
                cfg::Contract::new("treasury", "devnet", [&chain.treasury]).artifact("Treasury"),
            )
            .watchdog(watchdog)
            .write(dir.join("tripwire.toml"))?;
        let indexer = testkit::program("tripwire-indexer")?;
        let ingest = Proc::spawn(&indexer, &config, "ingest", dir, "info")?;
        let ingest_addr = ingest.http_addr().await?;
        let sink = Proc::spawn(&indexer, &config, "sink", dir, "info")?;
        let sink_addr = sink.http_addr().await?;
        let watchdog = Proc::spawn(
            &testkit::program("tripwire-watchdog")?,
            &config,
            "run",
            dir,
            "info",
        )?;
        let watchdog_addr = watchdog.http_addr().await?;
        eventually(
            "the watchdog's Safe checks",
            Duration::from_secs(30),
            || {
                Ok(watchdog
                    .output()
                    .contains("Safe pause proposals ready")
                    .then_some(()))
            },
        )
        .await
        .with_context(|| watchdog.output())?;
        // The runbooks read the watchdog's lag: it exists once the group gave it its topic.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let metrics = watchdog
                .get("/metrics")
                .await
                .map(|r| r.1)
                .unwrap_or_default();
            if metrics
                .lines()
                .any(|l| l.starts_with("tripwire_watchdog_consumer_lag_records"))
            {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the watchdog reported no consumer lag within 60 s:\n{}",
                watchdog.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Stack {
            config: config.display().to_string(),
            _ingest: ingest,
            _sink: sink,
            watchdog,
            ingest_addr,
            sink_addr,
            watchdog_addr,
        })
    }

    /// What the containers set: the runbook's commands pass no --config.
    pub(super) fn env(&self) -> [(&str, &str); 1] {
        [("TRIPWIRE_CONFIG", self.config.as_str())]
    }

    /// Runs a `tripwire-*` command of the runbook with `values` filled in; it must succeed.
    pub(super) fn tripwire(&self, c: &Command, values: &[(&str, &str)]) -> Result<String> {
        run_ok(c, &fill(c, values)?, &self.env(), None)
    }
}

/// The planted attack (the pauser role granted to an unknown account), and the id of the
/// proposal the watchdog records for it.
pub(super) async fn attack_until_proposed(
    chain: &Chain,
    db: &TestDb,
    stack: &Stack,
) -> Result<i64> {
    let out = run(
        "tripwire-devnet",
        &[
            "attack".into(),
            "--rpc".into(),
            chain.rpc.clone(),
            "--contracts".into(),
            chain.contracts.display().to_string(),
        ],
        &[],
        None,
    )?;
    ensure!(
        out.ok,
        "tripwire-devnet attack: {}{}",
        out.stdout,
        out.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row: Option<i64> =
            sqlx::query_scalar("SELECT id FROM safe_proposals ORDER BY id LIMIT 1")
                .fetch_optional(db.pool())
                .await?;
        if let Some(id) = row {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("no proposal; watchdog log:\n{}", stack.watchdog.output());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
