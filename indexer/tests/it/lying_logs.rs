//! A provider whose log index lags its headers: correct headers, `[]` from `eth_getLogs` for
//! blocks that hold logs (`testkit::rpc_proxy::Mode::EmptyLogs`). The headers' `logsBloom`
//! exposes the lie; a second source (the honest provider, or the block's receipts) settles it.
//! Beside an honest provider nothing is lost and the liar is counted and named; alone, it never
//! gets a block stored without its logs.

use std::time::Duration;

use crate::common::{providers, Env, BIN};
use anyhow::{ensure, Result};
use testkit::rpc_proxy::{FaultProxy, Mode, Outcome};

/// Backfill and live blocks with the preferred provider lying `per_mille / 1000` of the time:
/// Postgres must equal the chain, and the liar must be counted and named in health and status.
async fn liar_beside_an_honest_provider(per_mille: u32) -> Result<()> {
    let mut env = Env::new().await?;
    let liar = FaultProxy::start(&env.anvil.url()).await?;
    liar.set_mode(Mode::EmptyLogs { per_mille });
    let honest = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 2;
    env.range_blocks = 20;
    env.providers = providers(&[("liar", &liar, 5), ("honest", &honest, 1)]);
    // A backfill of 2,400 logs over 240 blocks, then live blocks.
    env.traffic(240, 10).await?;
    let p = env.spawn("run")?;
    for _ in 0..20 {
        env.traffic(1, 10).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let rows = env
        .wait_matches_chain(Duration::from_secs(120), &[&p])
        .await?;
    let lies = liar
        .events()
        .iter()
        .filter(|e| e.outcome == Outcome::Faulted("lying_logs"))
        .count();
    let caught = p
        .metric("tripwire_rpc_inconsistent_answers_total{chain=\"devnet\",provider=\"liar\"}")
        .await?;
    let honest_caught = p
        .metric("tripwire_rpc_inconsistent_answers_total{chain=\"devnet\",provider=\"honest\"}")
        .await?;
    println!(
        "liar at {per_mille}/1000: {rows} rows equal to the chain; {lies} lies told, {caught} caught"
    );
    ensure!(rows >= 2_600, "only {rows} rows");
    ensure!(lies > 0, "the liar never lied: the test exercises nothing");
    ensure!(caught >= 1.0, "the liar was never counted");
    ensure!(honest_caught == 0.0, "the honest provider was blamed");
    let (_, health) = p.get("/health").await?;
    ensure!(
        health.contains("liar") && health.contains("inconsistent"),
        "health does not name the liar: {health}"
    );
    // `status` (another process) names it too, from rpc_providers (written every 2 s).
    let mut text = String::new();
    for _ in 0..30 {
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(env.config())
            .arg("status")
            .output()?;
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text
            .lines()
            .any(|l| l.contains("liar") && l.contains("INCONSISTENT ANSWERS"))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("status does not name the liar:\n{text}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_always_answers_no_logs_loses_no_row() -> Result<()> {
    liar_beside_an_honest_provider(1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_lies_at_random_loses_no_row() -> Result<()> {
    liar_beside_an_honest_provider(250).await
}

/// Negative control: with the range proofs (and with them the bloom check) off, the same liar
/// costs rows, which shows that the check is what keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_check_the_liar_costs_rows() -> Result<()> {
    let mut env = Env::new().await?;
    let liar = FaultProxy::start(&env.anvil.url()).await?;
    liar.set_mode(Mode::EmptyLogs { per_mille: 1000 });
    let honest = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![]);
    env.range_blocks = 20;
    env.providers = providers(&[("liar", &liar, 5), ("honest", &honest, 1)]);
    env.verify_ranges = Some(false);
    env.traffic(60, 5).await?;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    let truth = env.ground_truth().await?;
    let stored = env.db_rows().await?;
    let missing = truth.iter().filter(|r| !stored.contains(r)).count();
    println!(
        "negative control: {missing} of {} rows lost without the check",
        truth.len()
    );
    ensure!(
        missing > 0,
        "no row lost: the scenario does not exercise the check"
    );
    Ok(())
}

/// The only provider lies: no block is ever stored without its logs, and the ingest stops with an
/// error naming the block and the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_lying_provider_stops_the_ingest_rather_than_store_empty_blocks() -> Result<()> {
    let mut env = Env::new().await?;
    // Blocks with logs from the start (the deployments hold none of the configured kind).
    env.traffic(30, 3).await?;
    let liar = FaultProxy::start(&env.anvil.url()).await?;
    liar.set_mode(Mode::EmptyLogs { per_mille: 1000 });
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 2;
    env.providers = providers(&[("liar", &liar, 1)]);
    let mut p = env.spawn("run")?;
    let status = tokio::task::block_in_place(|| p.wait(Duration::from_secs(120)))?;
    let log = p.output();
    ensure!(!status.success(), "the ingest kept running:\n{log}");
    ensure!(
        log.contains("liar, the only provider, answered block") && log.contains("Stopping rather"),
        "the stop does not name the provider and the block:\n{log}"
    );
    // The evidence was the block's receipts, which hashed to the header's receiptsRoot (a
    // mismatch would have been no evidence, and said so).
    ensure!(
        log.contains("but the block's receipts (from liar) hold"),
        "the receipts did not serve as verified evidence:\n{log}"
    );
    // Whatever was stored holds all of its blocks' logs.
    let truth = env.ground_truth().await?;
    let stored = env.db_rows().await?;
    let blocks: Vec<i64> = sqlx::query_scalar("SELECT number FROM blocks WHERE chain_id = 31337")
        .fetch_all(env.db.pool())
        .await?;
    for b in &blocks {
        let want = truth.iter().filter(|r| r.block_number == *b as u64).count();
        let have = stored
            .iter()
            .filter(|r| r.block_number == *b as u64)
            .count();
        ensure!(
            want == have,
            "block {b} stored with {have} of its {want} logs"
        );
    }
    ensure!(
        stored.len() < truth.len(),
        "nothing was held back: the liar did not exercise the check"
    );
    Ok(())
}
