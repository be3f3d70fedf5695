//! `/health` turns `degraded`, naming the chain and the lag, when Postgres is further behind the
//! head than `server.lag_threshold_blocks`, and healthy again once it is not.

use std::time::{Duration, Instant};

use crate::common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_over_threshold_degrades_health() -> anyhow::Result<()> {
    let env = Env::new().await?;
    env.traffic(3, 1).await?;
    let mut ingest = env.spawn("ingest")?;
    let sink = env.spawn("sink")?;
    env.wait_synced_with(Duration::from_secs(60), &[&ingest, &sink])
        .await?;

    // What the ingest would store if the head ran 5000 blocks ahead (the threshold is 1000). The
    // ingest is stopped first: it would overwrite the head at its next poll.
    let status = tokio::task::block_in_place(|| ingest.terminate(Duration::from_secs(20)))?;
    anyhow::ensure!(status.success(), "ingest exit: {status}");
    let synced: i64 = sqlx::query_scalar("SELECT last_synced_block FROM indexer_state")
        .fetch_one(env.db.pool())
        .await?;
    sqlx::query("UPDATE ingest_cursors SET head_block = $1")
        .bind(synced + 5000)
        .execute(env.db.pool())
        .await?;
    let p = &sink;
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (code, body) = p.get("/health").await?;
        if body.contains("degraded") {
            assert_eq!(code, 200, "degraded still answers 200");
            break body;
        }
        anyhow::ensure!(Instant::now() < deadline, "never degraded: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body.contains("lag:devnet") && body.contains("threshold 1000"),
        "{body}"
    );
    assert!(
        p.metric("tripwire_lag_blocks{chain=\"devnet\",stage=\"sink\"}")
            .await?
            >= 1000.0
    );

    // A restarted ingest stores the real head again: healthy.
    let _ingest = env.spawn("ingest")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = p.get("/health").await?;
        if code == 200 && body.contains("\"status\":\"healthy\"") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never healthy again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
