//! F1, F2 and F4: `tripwire-replay --mode reindex` brings back deleted rows and a whole block range
//! while the indexer runs, gives a new contract its history, refuses every bad range without
//! changing anything, and continues an interrupted run (Ctrl-C) where it stopped.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use testkit::config::Contract;
use testkit::{abi, anvil::Anvil};

use crate::env::{Env, BIN};

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
    // Transactions of the treasury at block 40: one under the canonical hash (it stays), one under
    // a stale hash (it goes with the stale logs).
    let tx_row = |hash_sql: &str| {
        format!(
            "INSERT INTO transactions (chain_id, block_number, block_hash, block_timestamp, tx_hash,
                 tx_index, from_address, to_address, value, selector, status, gas_used, gas_limit,
                 effective_gas_price)
             SELECT 31337, 40, {hash_sql}, now(), decode(repeat('ab', 32), 'hex'), 0,
                 decode(repeat('11', 20), 'hex'), $1, 0, NULL, 'reverted', 30000, 50000, 1"
        )
    };
    let treasury = env.treasury.to_vec();
    sqlx::query(sqlx::AssertSqlSafe(tx_row(
        "(SELECT hash FROM blocks WHERE chain_id = 31337 AND number = 40)",
    )))
    .bind(&treasury)
    .execute(env.db.pool())
    .await?;
    let stale_txs = sqlx::query(sqlx::AssertSqlSafe(tx_row(
        "decode(repeat('ee', 32), 'hex')",
    )))
    .bind(&treasury)
    .execute(env.db.pool())
    .await?
    .rows_affected();
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
    let config = env.config("replay.toml");
    let (code, out) = env.replay(&config, &["--chain", "devnet", "--from-block", "1"])?;
    assert_eq!(code, 0, "{out}");
    println!("{out}");
    live.await??;
    let total = env
        .wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    println!("F1: {deleted_random} random rows and {deleted_range} rows of blocks 20-30 deleted; Postgres equals the chain again ({total} logs)");
    // Every stale row counted: the logs and the transaction.
    assert!(
        out.contains(&format!("{} stale rows removed", stale + stale_txs)),
        "{out}"
    );
    let txs: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT block_hash FROM transactions WHERE block_number = 40")
            .fetch_all(env.db.pool())
            .await?;
    assert_eq!(
        txs.len(),
        1,
        "the stale transaction is gone, the canonical one stays"
    );
    assert_ne!(txs[0], vec![0xee; 32]);
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
    let with_newer = env.write_config(
        "with-newer.toml",
        env.test_config()
            .contract(Contract::new("treasury2", "devnet", [newer]).artifact("Treasury")),
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

/// Ctrl-C stops after the range in hand (exit 130) and the same command continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_stops_cleanly_and_the_same_command_continues() -> Result<()> {
    let env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(5);
    env.traffic(&mut rng, 3).await?;
    env.anvil.mine(3_000).await?;
    env.traffic(&mut rng, 3).await?;
    let config = env.config("replay.toml");
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
