//! A3: the ingest and sink processes are killed with SIGKILL at random moments during a backfill and
//! restarted; the final content equals the chain with no duplicate row, although the topic itself
//! holds re-sent records (at-least-once delivery, idempotent writes).

use std::time::Duration;

use crate::common::Env;
use rand::Rng;
use tripwire_schema::StreamRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    // Small ranges: many cursor commits, so kills land between and inside them.
    env.range_blocks = 10;
    env.traffic(1200, 25).await?;
    let truth = env.ground_truth().await?;
    assert!(truth.len() >= 30_000);

    // The processes migrate at start; the loop below may query before either got that far.
    tripwire_store::migrate(env.db.pool()).await?;
    let mut ingest = env.spawn("ingest")?;
    let mut sink = env.spawn("sink")?;
    let mut rng = rand::rng();
    let mut kills = 0;
    let mut kills_mid_backfill = 0;
    // Kill until 10 kills have landed during the backfill; the history is large enough and the
    // kills frequent enough that the backfill cannot finish first on this hardware.
    while kills_mid_backfill < 10 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        let synced: Option<i64> = sqlx::query_scalar(
            "SELECT last_synced_block FROM indexer_state WHERE chain_id = 31337",
        )
        .fetch_optional(env.db.pool())
        .await?
        .flatten();
        let head = env.anvil.block_number().await? as i64;
        if synced.unwrap_or(-1) >= head {
            // Caught up before enough kills landed: the assertion below reports it.
            break;
        }
        kills_mid_backfill += 1;
        // Kill one or both, at a random moment each.
        match rng.random_range(0..3) {
            0 => {
                ingest.kill9();
                ingest = env.spawn("ingest")?;
            }
            1 => {
                sink.kill9();
                sink = env.spawn("sink")?;
            }
            _ => {
                ingest.kill9();
                sink.kill9();
                ingest = env.spawn("ingest")?;
                sink = env.spawn("sink")?;
            }
        }
        kills += 1;
    }
    assert!(
        kills_mid_backfill >= 10,
        "only {kills_mid_backfill} kills landed during the backfill"
    );

    env.wait_synced_with(Duration::from_secs(180), &[&ingest, &sink])
        .await?;
    let rows = env.assert_matches_chain().await?;
    assert_eq!(rows, truth.len());

    // Every block is there exactly once.
    let (blocks, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT number) FROM blocks WHERE chain_id = 31337",
    )
    .fetch_one(env.db.pool())
    .await?;
    assert_eq!(blocks, distinct);
    assert_eq!(blocks as u64, env.anvil.block_number().await? + 1);

    // The topic shows the at-least-once side: no record missing, some sent more than once.
    let logs_in_topic = env
        .topic_records()
        .await?
        .into_iter()
        .filter(|r| matches!(r, StreamRecord::Log(_)))
        .count();
    assert!(
        logs_in_topic >= rows,
        "{logs_in_topic} log records in the topic < {rows} rows"
    );
    println!(
        "{kills} kills ({kills_mid_backfill} during the backfill); {rows} rows; {logs_in_topic} log records in the topic ({} re-sent)",
        logs_in_topic - rows
    );
    Ok(())
}
