//! F3: `tripwire-replay --mode detect` back-tests the detectors over history with two planted
//! attacks and lists exactly the incidents the live watchdog (a child process, as in production)
//! opened for them, reading blocks missing from Postgres over RPC and writing nothing.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use testkit::config::{Detector, Watchdog};
use testkit::{abi, process::Proc};

use crate::env::Env;

/// F3: a back-test over history with two planted attacks lists exactly those two, the incidents
/// the live watchdog opened for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f3_back_test_lists_the_two_planted_attacks_the_live_watchdog_fired() -> Result<()> {
    let mut env = Env::new().await?;
    let am = testkit::alertmanager::Alertmanager::spawn().await?;
    let watchdog = Watchdog {
        consumer: Some("wd-f3".into()),
        listen: Some("127.0.0.1:0".into()),
        checkpoint_interval_s: Some(1),
        ..Watchdog::new([am.url()])
    }
    .detector(
        Detector::new("privileged", "event")
            .contract("treasury")
            .severity("critical")
            .param(
                "allowed_actors",
                vec![format!("{:#x}", env.anvil.accounts()[0])],
            ),
    )
    .detector(
        Detector::new("big-withdrawal", "value")
            .contract("treasury")
            .event("Withdraw")
            .param("field", "amount")
            .param("warmup", 20)
            .param("history", 100),
    );
    let config = env.write_config("with-watchdog.toml", env.test_config().watchdog(watchdog));
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
