//! A1 (backfill then live following equals `eth_getLogs`, row by row), the raw landing of an
//! undecodable log (A5), block markers for empty blocks, `status`, `/health` and SIGTERM.

use std::time::Duration;

use crate::common::{Env, BIN};
use testkit::abi;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_follow_matches_chain_row_by_row() -> anyhow::Result<()> {
    let env = Env::new().await?;
    // History before the indexer starts: 510 blocks of 20 logs from three contracts, 40 empty
    // blocks, and one log the token's ABI cannot decode.
    env.traffic(510, 20).await?;
    env.anvil.mine(40).await?;
    env.anvil
        .send_and_mine(env.token, abi::call("emitMalformed()", &[]))
        .await?;

    let mut p = env.spawn("run")?;
    let head = env
        .wait_synced_with(Duration::from_secs(180), &[&p])
        .await?;
    let rows = env.assert_matches_chain().await?;
    assert!(rows >= 10_000, "only {rows} logs in the history");
    assert!(head >= 550, "only {head} blocks");

    // Live following: new blocks arrive while the indexer runs.
    env.traffic(30, 7).await?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    let rows_after = env.assert_matches_chain().await?;
    assert_eq!(rows_after, rows + 30 * 7);

    // Every block has its marker, also the empty ones, and the stored hashes are the chain's.
    let head = env.anvil.block_number().await?;
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks WHERE chain_id = 31337")
        .fetch_one(env.db.pool())
        .await?;
    assert_eq!(blocks as u64, head + 1, "one block row per height 0..=head");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM blocks WHERE chain_id = 31337 AND number = $1")
            .bind(head as i64 - 1)
            .fetch_one(env.db.pool())
            .await?;
    assert_eq!(stored, env.anvil.block_hash(head - 1).await?.to_vec());

    // The malformed log is stored raw (no event), counted, not dropped.
    let raw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM logs WHERE contract = 'token' AND event_name IS NULL",
    )
    .fetch_one(env.db.pool())
    .await?;
    assert_eq!(raw, 1);
    assert_eq!(p.metric("tripwire_logs_undecoded_total").await?, 1.0);
    assert!(p.metric("tripwire_logs_produced_total").await? >= rows_after as f64);

    // Health and status.
    let (code, body) = p.get("/health").await?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"healthy\""), "{body}");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(env.config())
        .arg("status")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("devnet") && text.contains(&head.to_string()),
        "{text}"
    );
    // The provider table: anvil's URL, in rotation.
    assert!(
        text.contains("PROVIDER") && text.contains("in rotation"),
        "{text}"
    );

    // SIGTERM drains and exits 0.
    let status = p.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "exit {status:?}; log:\n{}", p.output());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_without_contracts_stores_blocks_and_no_logs() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    env.no_contracts = true;
    env.traffic(10, 5).await?;
    let p = env.spawn("run")?;
    let head = env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    let (blocks, logs): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM blocks), (SELECT count(*) FROM logs)")
            .fetch_one(env.db.pool())
            .await?;
    assert_eq!(blocks as u64, head + 1);
    assert_eq!(
        logs, 0,
        "an unfiltered eth_getLogs would have stored every log of the chain"
    );
    Ok(())
}
