//! `kafka.max_lead_records`: the ingest stops running ahead of a sink that is behind (the embedded
//! broker keeps only the last ~5 MiB per partition), says so in `/health`, and resumes when the
//! sink catches up.

mod common;

use std::time::{Duration, Instant};

use common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_for_a_sink_that_is_behind() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    env.max_lead_records = 300;
    env.range_blocks = 5;
    env.traffic(200, 10).await?;
    let ingest = env.spawn("ingest")?;

    // Without a sink the ingest stops a little past the limit (one group of ranges at most).
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (_, body) = ingest.get("/health").await?;
        if body.contains("waiting for the sink") {
            break body;
        }
        anyhow::ensure!(Instant::now() < deadline, "never waited: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body.contains("degraded") && body.contains("max_lead_records = 300"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let published = env.topic_records().await?.len();
    let one_group = 3 * 5 * (10 + 1);
    assert!(
        published <= 300 + one_group,
        "{published} records published past a limit of 300"
    );

    let sink = env.spawn("sink")?;
    env.wait_synced_with(Duration::from_secs(120), &[&ingest, &sink])
        .await?;
    env.assert_matches_chain().await?;
    Ok(())
}
