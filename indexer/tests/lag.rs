//! `/health` turns `degraded`, naming the chain and the lag, when Postgres is further behind the
//! head than `server.lag_threshold_blocks`, and healthy again once it is not.

mod common;

use std::time::{Duration, Instant};

use common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_over_threshold_degrades_health() -> anyhow::Result<()> {
    let env = Env::new().await?;
    env.traffic(3, 1).await?;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;

    // What the ingest would store if the head ran 5000 blocks ahead (the threshold is 1000).
    let report = |stored_head: i64| {
        sqlx::query("UPDATE ingest_cursors SET head_block = $1")
            .bind(stored_head)
            .execute(env.db.pool())
    };
    let synced: i64 = sqlx::query_scalar("SELECT last_synced_block FROM indexer_state")
        .fetch_one(env.db.pool())
        .await?;
    // The running ingest rewrites the real head at every poll, so keep writing the far one until
    // the sink's lag probe has seen it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        report(synced + 5000).await?;
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

    // The ingest stores the real head again at its next poll: healthy.
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
