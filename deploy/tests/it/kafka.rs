//! Tripwire on a real Apache Kafka broker (the pinned version, `scripts/kafka`):
//!
//! - the broker process SIGKILLed and restarted with its data while blocks stream: the ingest, the
//!   sink and the watchdog recover by themselves, Postgres equals the chain and the attack planted
//!   after the restart is raised once;
//! - scale-out: 4 chains, 2 sinks and 2 watchdogs sharing the topics through their consumer
//!   groups; one sink and one watchdog SIGKILLed mid-stream: the survivors take over every topic
//!   within the group's session timeout, Postgres equals every chain with no duplicate, and each
//!   chain's attack is raised once (before and after the kill).
//!
//! The first always starts a broker of its own (it kills it); the second uses `KAFKA_BROKERS` or
//! one of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testkit::config as cfg;
use testkit::{
    abi, alertmanager::Alertmanager, anvil::Anvil, broker::KafkaBroker, kafka::TestKafka,
    postgres::TestDb, process::Proc, Address,
};

/// The session timeout the tests give the groups (Kafka's smallest by default).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

struct Chain {
    anvil: Anvil,
    treasury: Address,
    token: Address,
}

impl Chain {
    async fn start(chain_id: u64) -> Result<Chain> {
        let anvil = Anvil::builder().chain_id(chain_id).spawn().await?;
        let treasury = anvil.deploy("Treasury", &[]).await?;
        let token = anvil.deploy("DemoToken", &[]).await?;
        Ok(Chain {
            anvil,
            treasury,
            token,
        })
    }

    /// `n` blocks of the token's `burst(5)`.
    async fn traffic(&self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.anvil
                .send_and_mine(self.token, abi::call("burst(uint256)", &[abi::uint(5)]))
                .await?;
        }
        Ok(())
    }

    /// A leaked admin key grants the pauser role to an unknown account.
    async fn attack(&self) -> Result<()> {
        let role = abi::event_topic("PAUSER_ROLE");
        let attacker = self.anvil.accounts()[6];
        self.anvil
            .send_and_mine(
                self.treasury,
                abi::call(
                    "grantRole(bytes32,address)",
                    &[abi::bytes32(role), abi::address(attacker)],
                ),
            )
            .await?;
        Ok(())
    }
}

struct Deployment {
    chains: Vec<Chain>,
    db: TestDb,
    am: Alertmanager,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Deployment {
    async fn new(chains: usize, brokers: &str) -> Result<Deployment> {
        let mut list = Vec::new();
        for i in 0..chains {
            list.push(Chain::start(41_000 + i as u64).await?);
        }
        let db = TestDb::create().await?;
        let am = Alertmanager::spawn().await?;
        let dir = tempfile::tempdir()?;
        let prefix = format!("tw-{}", &db.url()[db.url().len() - 8..]);
        let mut config = cfg::TestConfig::new(db.url(), brokers);
        config.postgres.max_connections = Some(4);
        config.kafka.topic = Some(format!("{prefix}-{{chain}}"));
        config.kafka.properties.insert(
            "session.timeout.ms".into(),
            SESSION_TIMEOUT.as_millis().to_string(),
        );
        let mut watchdog = cfg::Watchdog {
            consumer: Some(format!("watchdog-{prefix}")),
            listen: Some("127.0.0.1:0".into()),
            checkpoint_interval_s: Some(1),
            ..cfg::Watchdog::new([am.url()])
        };
        watchdog.alertmanager.resend_interval_s = Some(5);
        let mut config = config.server(cfg::Server::any_port()).sink(cfg::Sink {
            consumer: Some(format!("sink-{prefix}")),
            batch_records: Some(5000),
            batch_wait_ms: Some(50),
            ..cfg::Sink::default()
        });
        for (i, c) in list.iter().enumerate() {
            config = config
                .chain(cfg::Chain {
                    max_reorg_depth: Some(64),
                    poll_interval_ms: Some(100),
                    range_blocks: Some(200),
                    ..cfg::Chain::new(format!("c{i}"), 41_000 + i as u64, c.anvil.url())
                })
                .contract(
                    cfg::Contract::new(format!("treasury{i}"), format!("c{i}"), [c.treasury])
                        .artifact("Treasury"),
                )
                .contract(
                    cfg::Contract::new(format!("token{i}"), format!("c{i}"), [c.token])
                        .artifact("DemoToken"),
                );
            watchdog = watchdog.detector(
                cfg::Detector::new(format!("privileged{i}"), "event")
                    .contract(format!("treasury{i}"))
                    .severity("critical")
                    .param(
                        "allowed_actors",
                        vec![format!("{:#x}", c.anvil.accounts()[0])],
                    ),
            );
        }
        let config = config
            .watchdog(watchdog)
            .write(dir.path().join("tripwire.toml"))?;
        Ok(Deployment {
            chains: list,
            db,
            am,
            dir,
            config,
        })
    }

    fn spawn(&self, program: &str, role: &str) -> Result<Proc> {
        let bin = testkit::workspace_bin(program)?;
        Proc::spawn(
            &bin,
            &self.config,
            role,
            self.dir.path(),
            "info,tripwire_indexer=debug,tripwire_watchdog=debug,tripwire_kafka=debug,tripwire_store=debug,tripwire_rpc=debug",
        )
    }

    async fn migrate(&self) -> Result<()> {
        self.spawn("tripwire-indexer", "migrate")?.wait_ok().await?;
        Ok(())
    }

    /// Waits until the sink's cursor of every chain is at its head.
    async fn wait_synced(&self, timeout: Duration, procs: &[&Proc]) -> Result<()> {
        let deadline = Instant::now() + timeout;
        'outer: loop {
            for (i, c) in self.chains.iter().enumerate() {
                let head = c.anvil.block_number().await?;
                let synced: Option<i64> =
                    sqlx::query_scalar("SELECT block_number FROM sink_cursors WHERE chain_id = $1")
                        .bind(41_000 + i as i64)
                        .fetch_optional(self.db.pool())
                        .await?;
                if synced != Some(head as i64) {
                    if Instant::now() > deadline {
                        bail!(
                            "chain {i} not synced (head {head}, sink at {synced:?}){}",
                            logs(procs)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue 'outer;
                }
            }
            return Ok(());
        }
    }

    /// Postgres holds exactly the chains' logs, each once. Returns the row count.
    async fn assert_matches_chains(&self) -> Result<usize> {
        let mut total = 0;
        for (i, c) in self.chains.iter().enumerate() {
            let head = c.anvil.block_number().await?;
            let logs = c
                .anvil
                .get_logs(serde_json::json!({
                    "fromBlock": "0x0",
                    "toBlock": testkit::anvil::quantity(head),
                    "address": [c.treasury, c.token],
                }))
                .await?;
            let mut expected: Vec<(Vec<u8>, i64)> = logs
                .iter()
                .map(|l| {
                    let hash = testkit::anvil::parse_b256(&l["blockHash"]).expect("block hash");
                    let index = testkit::anvil::parse_quantity(&l["logIndex"]).expect("log index");
                    (hash.to_vec(), index as i64)
                })
                .collect();
            expected.sort();
            let stored: Vec<(Vec<u8>, i64)> = sqlx::query_as(
                "SELECT block_hash, log_index::bigint FROM logs WHERE chain_id = $1
                 ORDER BY block_hash, log_index",
            )
            .bind(41_000 + i as i64)
            .fetch_all(self.db.pool())
            .await?;
            assert_eq!(
                stored.len(),
                expected.len(),
                "chain {i}: {} rows in Postgres, {} logs on the chain",
                stored.len(),
                expected.len()
            );
            assert_eq!(
                stored, expected,
                "chain {i}: Postgres differs from the chain"
            );
            total += stored.len();
        }
        Ok(total)
    }

    /// Incidents per detector in Postgres.
    async fn incidents(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT detector, count(*) FROM watchdog_incidents GROUP BY detector ORDER BY detector",
        )
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Waits until Alertmanager holds an alert of each of `detectors`; returns the count of
    /// distinct alerts (fingerprints) per detector.
    async fn wait_alerts(&self, detectors: &[String], timeout: Duration) -> Result<Vec<usize>> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.am.alerts().await?;
            let counts: Vec<usize> = detectors
                .iter()
                .map(|d| {
                    let mut fps: Vec<&str> = alerts
                        .iter()
                        .filter(|a| a["labels"]["detector"] == d.as_str())
                        .filter_map(|a| a["fingerprint"].as_str())
                        .collect();
                    fps.sort();
                    fps.dedup();
                    fps.len()
                })
                .collect();
            if counts.iter().all(|c| *c > 0) {
                return Ok(counts);
            }
            if Instant::now() > deadline {
                bail!("no alert of every one of {detectors:?} within {timeout:?}: {alerts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn logs(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| {
            let out = p.output();
            let tail: Vec<&str> = out.lines().rev().take(30).collect();
            format!(
                "\n--- {} ---\n{}",
                p.role,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect()
}

/// How many partitions `p` reads now (its `tripwire_kafka_partitions_owned` gauge).
async fn owned(p: &Proc) -> f64 {
    p.metric("tripwire_kafka_partitions_owned")
        .await
        .unwrap_or(-1.0)
}

/// Waits until the instances own `want` partitions each; returns the time it took.
async fn wait_owned(procs: &[&Proc], want: &[f64], timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let mut now = Vec::new();
        for p in procs {
            now.push(owned(p).await);
        }
        if now == want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!(
                "partitions owned {now:?}, expected {want:?} within {timeout:?}{}",
                logs(procs)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_with_its_data_loses_nothing() -> Result<()> {
    let broker = KafkaBroker::start()?;
    let d = Deployment::new(1, &broker.brokers()).await?;
    d.migrate().await?;
    let ingest = d.spawn("tripwire-indexer", "ingest")?;
    let sink = d.spawn("tripwire-indexer", "sink")?;
    let watchdog = d.spawn("tripwire-watchdog", "run")?;
    let procs = [&ingest, &sink, &watchdog];
    let chain = &d.chains[0];
    chain.traffic(10).await?;
    d.wait_synced(Duration::from_secs(60), &procs).await?;

    let streaming = async {
        for _ in 0..60 {
            chain.traffic(1).await?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::Ok(())
    };
    let outage = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.kill9()?;
        let killed = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        broker
            .restart()
            .with_context(|| format!("restarting the broker; its log:\n{}", broker.log()))?;
        anyhow::Ok(killed.elapsed())
    };
    let (streamed, down) = tokio::join!(streaming, outage);
    streamed?;
    println!(
        "broker down for {:.1} s (SIGKILL to serving again)",
        down?.as_secs_f64()
    );
    chain.attack().await?;
    chain.traffic(5).await?;
    d.wait_synced(Duration::from_secs(120), &procs).await?;
    let rows = d.assert_matches_chains().await?;
    // Besides the constructors' logs: 5 per traffic block, the attack's grant.
    assert!(rows > 5 * (10 + 60 + 5), "{rows} rows");
    let counts = d
        .wait_alerts(&["privileged0".to_owned()], Duration::from_secs(60))
        .await
        .with_context(|| logs(&procs))?;
    assert_eq!(counts, [1], "one alert for the attack");
    assert_eq!(d.incidents().await?, [("privileged0".to_owned(), 1)]);
    for p in procs {
        let (code, body) = p.get("/health").await?;
        assert_eq!(
            code, 200,
            "{} unhealthy after the broker came back: {body}",
            p.role
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_and_watchdogs_share_four_chains_and_survive_a_kill() -> Result<()> {
    let kafka = TestKafka::real()?;
    let d = Deployment::new(4, &kafka.brokers()).await?;
    d.migrate().await?;
    let ingest = d.spawn("tripwire-indexer", "ingest")?;
    // The ingest creates the topics; the others wait for them.
    ingest.http_addr().await?;
    let mut sink_a = d.spawn("tripwire-indexer", "sink")?;
    let sink_b = d.spawn("tripwire-indexer", "sink")?;
    let mut wd_a = d.spawn("tripwire-watchdog", "run")?;
    let wd_b = d.spawn("tripwire-watchdog", "run")?;
    let all = [&ingest, &sink_a, &sink_b, &wd_a, &wd_b];
    // Round-robin: two topics each.
    wait_owned(&[&sink_a, &sink_b], &[2.0, 2.0], Duration::from_secs(60)).await?;
    wait_owned(&[&wd_a, &wd_b], &[2.0, 2.0], Duration::from_secs(60)).await?;

    for c in &d.chains {
        c.traffic(5).await?;
    }
    d.chains[0].attack().await?;
    d.chains[1].attack().await?;
    let first: Vec<String> = vec!["privileged0".into(), "privileged1".into()];
    d.wait_alerts(&first, Duration::from_secs(60))
        .await
        .with_context(|| logs(&all))?;

    // Blocks keep coming on every chain while one sink and one watchdog are killed.
    let streaming = async {
        for _ in 0..30 {
            for c in &d.chains {
                c.traffic(1).await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    };
    let takeover = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sink_a.kill9();
        wd_a.kill9();
        // Both measured from the kill.
        let (sinks, watchdogs) = ([&sink_b], [&wd_b]);
        let (sink, wd) = tokio::join!(
            wait_owned(&sinks, &[4.0], Duration::from_secs(60)),
            wait_owned(&watchdogs, &[4.0], Duration::from_secs(60)),
        );
        anyhow::Ok((sink?, wd?))
    };
    let (streamed, took) = tokio::join!(streaming, takeover);
    streamed?;
    let (sink_took, wd_took) = took?;
    println!(
        "after SIGKILL the surviving sink owned every topic in {:.1} s, the watchdog in {:.1} s \
         (session timeout {:?})",
        sink_took.as_secs_f64(),
        wd_took.as_secs_f64(),
        SESSION_TIMEOUT
    );
    // The broker notices a dead member after the session timeout; the rebalance that follows
    // takes a moment more.
    let bound = SESSION_TIMEOUT + Duration::from_secs(5);
    assert!(sink_took <= bound, "sink takeover took {sink_took:?}");
    assert!(
        wd_took <= bound + Duration::from_secs(1),
        "watchdog takeover took {wd_took:?}"
    );

    d.chains[2].attack().await?;
    d.chains[3].attack().await?;
    for c in &d.chains {
        c.traffic(3).await?;
    }
    let survivors = [&ingest, &sink_b, &wd_b];
    d.wait_synced(Duration::from_secs(120), &survivors).await?;
    let rows = d.assert_matches_chains().await?;
    assert!(rows > 4 * 5 * (5 + 30 + 3), "{rows} rows");
    let detectors: Vec<String> = (0..4).map(|i| format!("privileged{i}")).collect();
    let counts = d
        .wait_alerts(&detectors, Duration::from_secs(60))
        .await
        .with_context(|| logs(&survivors))?;
    assert_eq!(counts, [1, 1, 1, 1], "one alert per chain's attack");
    // Give the survivor time to re-read what the killed watchdog had not checkpointed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incidents = d.incidents().await?;
    assert_eq!(
        incidents,
        detectors.iter().map(|d| (d.clone(), 1)).collect::<Vec<_>>(),
        "each attack raised once"
    );
    Ok(())
}
