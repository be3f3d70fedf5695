//! F1, F2, F4 and the cursor reset, against anvil, Kafka (librdkafka's mock or `KAFKA_BROKERS`)
//! and Postgres, with the indexer (ingest and sink) and the live watchdog as child processes, as in production.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use testkit::{
    abi, anvil::Anvil, kafka::TestKafka, postgres::TestDb, process::Proc, Address, DynSolValue,
    U256,
};

const BIN: &str = env!("CARGO_BIN_EXE_tripwire-replay");

struct Env {
    anvil: Anvil,
    db: TestDb,
    kafka: TestKafka,
    topic: String,
    treasury: Address,
    dir: tempfile::TempDir,
    indexer: Option<Proc>,
}

impl Env {
    async fn new() -> Result<Env> {
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

    /// The config file; `extra` adds `[[contracts]]` tables.
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let text = format!(
            r#"
[postgres]
url = "{pg}"
max_connections = 4
[kafka]
brokers = "{brokers}"
topic = "{topic}"
[server]
listen = "127.0.0.1:0"
[sink]
consumer = "sink-replay-test"
batch_wait_ms = 50
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["{rpc}"]
poll_interval_ms = 100
range_blocks = 20
[[contracts]]
name = "treasury"
chain = "devnet"
addresses = ["{treasury}"]
abi = "{abi}"
{extra}
"#,
            pg = self.db.url(),
            brokers = self.kafka.brokers(),
            topic = self.topic,
            rpc = self.anvil.url(),
            treasury = self.treasury,
            abi = testkit::contracts::artifact_path("Treasury").display(),
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Starts ingest and sink (`tripwire-indexer run`, a child process as in production) and
    /// waits until it serves HTTP.
    async fn start_indexer(&mut self) -> Result<()> {
        let p = Proc::spawn(
            &testkit::workspace_bin("tripwire-indexer")?,
            &self.config("indexer.toml", ""),
            "run",
            self.dir.path(),
            "info",
        )?;
        p.http_addr().await?;
        self.indexer = Some(p);
        Ok(())
    }

    /// Stops the indexer with SIGTERM (it drains and exits).
    fn stop_indexer(&mut self) {
        if let Some(mut p) = self.indexer.take() {
            let _ = p.terminate(Duration::from_secs(20));
        }
    }

    /// `n` blocks of treasury traffic, 8 logs each.
    async fn traffic(&self, rng: &mut StdRng, n: usize) -> Result<()> {
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

    async fn stored(&self, addresses: &[Address]) -> Result<BTreeSet<(i64, Vec<u8>, i64)>> {
        let bytes: Vec<Vec<u8>> = addresses.iter().map(|a| a.to_vec()).collect();
        let rows: Vec<(i64, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT block_number, block_hash, log_index FROM logs WHERE address = ANY($1)",
        )
        .bind(&bytes)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().map(|(n, h, i)| (n, h, i as i64)).collect())
    }

    async fn wait_equal(&self, addresses: &[Address], timeout: Duration) -> Result<usize> {
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

    fn replay(&self, config: &Path, args: &[&str]) -> Result<(i32, String)> {
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

    async fn count(&self, sql: &str) -> Result<i64> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f1_deleted_rows_and_a_whole_range_come_back_while_the_indexer_runs() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(1);
    env.traffic(&mut rng, 60).await?;
    env.start_indexer().await?;
    let n = env
        .wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    // A random 10 % of the rows and every row of blocks 20..=30.
    let deleted_random = sqlx::query(
        "DELETE FROM logs WHERE ctid IN (SELECT ctid FROM logs ORDER BY random() LIMIT (SELECT count(*) / 10 FROM logs))",
    )
    .execute(env.db.pool())
    .await?
    .rows_affected();
    let deleted_range = sqlx::query("DELETE FROM logs WHERE block_number BETWEEN 20 AND 30")
        .execute(env.db.pool())
        .await?
        .rows_affected();
    // A row under a hash that is not the chain's (left by a reorg the store missed): stale.
    let stale = sqlx::query(
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index,
             log_index, address, topic0, topic1, topic2, topic3, data, contract, event_name, params)
         SELECT chain_id, block_number, decode(repeat('ee', 32), 'hex'), block_timestamp, tx_hash,
             tx_index, log_index, address, topic0, topic1, topic2, topic3, data, contract, event_name, params
         FROM logs WHERE block_number = 40",
    )
    .execute(env.db.pool())
    .await?
    .rows_affected();
    assert!(stale > 0);
    let cursor_before: i64 = env.count("SELECT block_number FROM ingest_cursors").await?;
    let sink_before: i64 = env.count("SELECT block_number FROM sink_cursors").await?;
    assert!(env.stored(&[env.treasury]).await?.len() < n);

    // Live traffic goes on during the replay.
    let live = {
        let anvil = Anvil::connect(&env.anvil.url()).await?;
        let treasury = env.treasury;
        tokio::spawn(async move {
            for i in 0..10u64 {
                let data = abi::call(
                    "withdrawMany(uint256,uint256)",
                    &[abi::uint(3), abi::uint(i + 1)],
                );
                anvil.send_and_mine(treasury, data).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(())
        })
    };
    let config = env.config("replay.toml", "");
    let (code, out) = env.replay(&config, &["--chain", "devnet", "--from-block", "1"])?;
    assert_eq!(code, 0, "{out}");
    println!("{out}");
    live.await??;
    let total = env
        .wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    println!("F1: {deleted_random} random rows and {deleted_range} rows of blocks 20-30 deleted; Postgres equals the chain again ({total} logs)");
    assert!(
        out.contains(&format!("{stale} stale rows removed")),
        "{out}"
    );
    let cursor_after: i64 = env.count("SELECT block_number FROM ingest_cursors").await?;
    let sink_after: i64 = env.count("SELECT block_number FROM sink_cursors").await?;
    assert!(cursor_after >= cursor_before, "ingest cursor moved back");
    assert!(sink_after >= sink_before, "sink cursor moved back");
    // The run is recorded as done; running it again has nothing to continue.
    assert_eq!(
        env.count("SELECT count(*) FROM replay_runs WHERE state = 'done'")
            .await?,
        1
    );

    // An interrupted run (as Ctrl-C leaves it) continues where it stopped.
    sqlx::query(
        "INSERT INTO replay_runs (chain_id, mode, from_block, to_block, contracts, next_block, state)
         VALUES (31337, 'reindex', 1, 20, '', 11, 'interrupted')",
    )
    .execute(env.db.pool())
    .await?;
    let (code, out) = env.replay(
        &config,
        &["--chain", "devnet", "--from-block", "1", "--to-block", "20"],
    )?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("continued an interrupted run from block 11")
            && out.contains("10 blocks replayed"),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f2_a_new_contract_gets_its_history_and_f4_bad_ranges_change_nothing() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(2);
    env.traffic(&mut rng, 5).await?;
    // A second treasury the indexer does not know yet, with history.
    let (newer, receipt) = env.anvil.deploy_with_receipt("Treasury", &[]).await?;
    let deployed = receipt.block_number;
    for i in 0..20u64 {
        let data = abi::call(
            "withdrawMany(uint256,uint256)",
            &[abi::uint(2), abi::uint(i + 1)],
        );
        env.anvil.send_and_mine(newer, data).await?;
    }
    env.start_indexer().await?;
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    assert!(env.stored(&[newer]).await?.is_empty());
    let with_newer = env.config(
        "with-newer.toml",
        &format!(
            "[[contracts]]\nname = \"treasury2\"\nchain = \"devnet\"\naddresses = [\"{newer}\"]\nabi = \"{}\"\n",
            testkit::contracts::artifact_path("Treasury").display()
        ),
    );

    // F4 first: every bad range is refused, names its problem, and changes nothing.
    let head = env.anvil.block_number().await?;
    let rows_before = env.count("SELECT count(*) FROM logs").await?;
    let deployed_s = deployed.to_string();
    let before_deploy = (deployed - 1).to_string();
    let beyond = (head + 100).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--chain", "mainnet", "--from-block", "1"],
            "--chain `mainnet`: no such chain",
        ),
        (
            vec![
                "--chain",
                "devnet",
                "--contracts",
                "vault",
                "--from-block",
                "1",
            ],
            "--contracts `vault`: not a contract of chain devnet",
        ),
        (
            vec!["--chain", "devnet", "--from-block", "9", "--to-block", "3"],
            "--from-block 9 is after --to-block 3",
        ),
        (
            vec![
                "--chain",
                "devnet",
                "--from-block",
                "1",
                "--to-block",
                &beyond,
            ],
            "is beyond the head",
        ),
        (
            vec![
                "--chain",
                "devnet",
                "--contracts",
                "treasury2",
                "--from-block",
                &before_deploy,
            ],
            "before contract `treasury2` was deployed",
        ),
    ];
    for (args, expect) in cases {
        let (code, out) = env.replay(&with_newer, &args)?;
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(
            out.contains(expect),
            "{args:?}: expected `{expect}` in {out}"
        );
        println!("F4 {args:?}: {}", out.lines().last().unwrap_or(""));
    }
    assert_eq!(env.count("SELECT count(*) FROM logs").await?, rows_before);
    assert_eq!(env.count("SELECT count(*) FROM replay_runs").await?, 0);

    // F2: replay the new contract from its deployment block.
    let (code, out) = env.replay(
        &with_newer,
        &[
            "--chain",
            "devnet",
            "--contracts",
            "treasury2",
            "--from-block",
            &deployed_s,
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    let n = env.wait_equal(&[newer], Duration::from_secs(30)).await?;
    // Its constructor's OwnershipTransferred and RoleGranted, then 20 blocks of 2 withdrawals.
    assert_eq!(n, 42);
    println!("F2: treasury2's {n} logs since block {deployed} are in Postgres");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_cursor_needs_confirmation_audits_and_the_ingest_resyncs_from_there() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(3);
    env.traffic(&mut rng, 30).await?;
    env.start_indexer().await?;
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    env.stop_indexer();
    let config = env.config("replay.toml", "");
    let before: i64 = env.count("SELECT block_number FROM ingest_cursors").await?;
    // Not on a terminal and no --yes: refused, nothing changed.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
        ],
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--yes"), "{out}");
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        before
    );
    // A dry run checks the block against the chain and says what it would do, changing nothing.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
            "--dry-run",
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("would move from {before} to block 10")),
        "{out}"
    );
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        before
    );
    assert_eq!(env.count("SELECT count(*) FROM cursor_resets").await?, 0);
    // Confirmed: cursor at 10 with an audit row.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
            "--yes",
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        10
    );
    assert_eq!(
        env.count("SELECT count(*) FROM cursor_resets WHERE new_block = 10")
            .await?,
        1
    );
    // Rows above 10 lost meanwhile come back when the ingest resumes from the safe block.
    sqlx::query("DELETE FROM logs WHERE block_number > 10")
        .execute(env.db.pool())
        .await?;
    env.start_indexer().await?;
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    Ok(())
}

/// F3: a back-test over history with two planted attacks lists exactly those two, the incidents
/// the live watchdog opened for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f3_back_test_lists_the_two_planted_attacks_the_live_watchdog_fired() -> Result<()> {
    let mut env = Env::new().await?;
    let am = testkit::alertmanager::Alertmanager::spawn().await?;
    let watchdog = format!(
        r#"
[watchdog]
consumer = "wd-f3"
listen = "127.0.0.1:0"
checkpoint_interval_s = 1
[watchdog.alertmanager]
urls = ["{am}"]
[[watchdog.detectors]]
name = "privileged"
kind = "event"
contract = "treasury"
severity = "critical"
allowed_actors = ["{deployer:#x}"]
[[watchdog.detectors]]
name = "big-withdrawal"
kind = "value"
contract = "treasury"
event = "Withdraw"
field = "amount"
warmup = 20
history = 100
"#,
        am = am.url(),
        deployer = env.anvil.accounts()[0],
    );
    let config = env.config("with-watchdog.toml", &watchdog);
    env.start_indexer().await?;
    // The live watchdog, a child process as in production.
    let mut live = Proc::spawn(
        &testkit::workspace_bin("tripwire-watchdog")?,
        &config,
        "run",
        env.dir.path(),
        "info",
    )?;
    live.http_addr().await?;

    let mut rng = StdRng::seed_from_u64(4);
    let withdraw = |amount: u64| abi::call("withdraw(uint256)", &[abi::uint(amount)]);
    for _ in 0..30 {
        env.anvil
            .send_and_mine(env.treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let from = env.anvil.block_number().await? + 1;
    for _ in 0..5 {
        env.anvil
            .send_and_mine(env.treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let grant = env
        .anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(env.anvil.accounts()[6])],
            ),
        )
        .await?;
    for _ in 0..10 {
        env.anvil
            .send_and_mine(env.treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let drain = env
        .anvil
        .send_and_mine(env.treasury, withdraw(1_000_000_000_000))
        .await?;
    for _ in 0..5 {
        env.anvil
            .send_and_mine(env.treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let live_fired: Vec<(String, i64)> = loop {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT detector, block_number FROM watchdog_incidents ORDER BY block_number",
        )
        .fetch_all(env.db.pool())
        .await?;
        if rows.len() >= 2 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    live.terminate(Duration::from_secs(20))?;
    assert_eq!(
        live_fired,
        vec![
            ("privileged".to_string(), grant.block_number as i64),
            ("big-withdrawal".to_string(), drain.block_number as i64)
        ]
    );

    // The back-test reads Postgres: wait until the sink wrote every log the watchdog saw (the
    // watchdog reads the stream, so it can fire before the sink has stored the history).
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    // Postgres lacks the blocks around the grant: the back-test reads them over RPC.
    for table in ["logs", "blocks"] {
        let col = if table == "logs" {
            "block_number"
        } else {
            "number"
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {col} BETWEEN $1 AND $2"
        )))
        .bind(grant.block_number as i64 - 2)
        .bind(grant.block_number as i64 + 2)
        .execute(env.db.pool())
        .await?;
    }
    let out_file = env.dir.path().join("fired.json");
    let from_s = from.to_string();
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--mode",
            "detect",
            "--from-block",
            &from_s,
            "--output",
            out_file.to_str().unwrap_or_default(),
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    println!("{out}");
    let fired: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&out_file)?)?;
    let got: Vec<(String, i64)> = fired
        .iter()
        .map(|f| {
            (
                f["detector"].as_str().unwrap_or("").to_string(),
                f["block"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, live_fired, "back-test and live watchdog differ");
    assert!(out.contains("2 would have fired"), "{out}");
    // No side effect: nothing written by the back-test.
    assert_eq!(env.count("SELECT count(*) FROM replay_runs").await?, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM watchdog_incidents").await?,
        2
    );
    Ok(())
}

/// Ctrl-C stops after the range in hand (exit 130) and the same command continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_stops_cleanly_and_the_same_command_continues() -> Result<()> {
    let env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(5);
    env.traffic(&mut rng, 3).await?;
    env.anvil.mine(3_000).await?;
    env.traffic(&mut rng, 3).await?;
    let config = env.config("replay.toml", "");
    let args = ["--chain", "devnet", "--from-block", "1", "--no-wait"];
    let mut child = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    // Interrupt once it is under way.
    loop {
        let running = env
            .count("SELECT count(*) FROM replay_runs WHERE next_block > 100")
            .await
            .unwrap_or(0);
        if running > 0 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            bail!(
                "the replay ended ({status}) before it could be interrupted: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the replay did not get going");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("run the same command again"), "{text}");
    let (state, next): (String, i64) = sqlx::query_as("SELECT state, next_block FROM replay_runs")
        .fetch_one(env.db.pool())
        .await?;
    assert_eq!(state, "interrupted");
    let head = env.anvil.block_number().await? as i64;
    assert!(next > 1 && next <= head, "next {next} of {head}");
    let (code, out) = env.replay(&config, &args)?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("continued an interrupted run from block {next}")),
        "{out}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM replay_runs WHERE state = 'done'")
            .await?,
        1
    );
    Ok(())
}
