//! `kafka.max_lead_records`: the ingest never has more records in the topic beyond the sink's
//! stored position than the limit (the embedded broker keeps only the last 5 MiB per partition),
//! says so in `/health` while it waits, and resumes when the sink catches up; a restarted ingest
//! is held back from its first step on.

use std::time::{Duration, Instant};

use crate::common::Env;

async fn wait_for_backpressure(ingest: &testkit::process::Proc) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = ingest.get("/health").await?;
        if body.contains("waiting for the sink") {
            return Ok(body);
        }
        anyhow::ensure!(Instant::now() < deadline, "never waited: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A crash-looping ingest with the sink down: every start is held back by what is already in
/// the topic, so the lead stays within the limit however often it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loop_with_the_sink_down_stays_within_the_limit() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    env.max_lead_records = 300;
    env.range_blocks = 5;
    env.traffic(200, 10).await?;
    let mut leads = Vec::new();
    for round in 0..6 {
        let mut ingest = env.spawn("ingest")?;
        wait_for_backpressure(&ingest).await?;
        // Two more polls: a step that skipped the check would publish now.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (low, high) = env.kafka.watermarks(&env.topic, 0).await?;
        let lead = (high - low) as usize;
        leads.push(lead);
        anyhow::ensure!(
            lead <= 300,
            "round {round}: {lead} records ahead of a sink that never ran (limit 300); leads so \
             far {leads:?}"
        );
        if round % 2 == 0 {
            ingest.kill9();
        } else {
            tokio::task::block_in_place(|| ingest.terminate(Duration::from_secs(20)))?;
        }
    }
    println!("lead after each of 6 starts (SIGKILL and SIGTERM in turn): {leads:?}");
    let ingest = env.spawn("ingest")?;
    let sink = env.spawn("sink")?;
    env.wait_synced_with(Duration::from_secs(120), &[&ingest, &sink])
        .await?;
    env.assert_matches_chain().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_waits_for_a_sink_that_is_behind() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    env.max_lead_records = 300;
    env.range_blocks = 5;
    env.traffic(200, 10).await?;
    let ingest = env.spawn("ingest")?;

    // Without a sink the ingest stops at the limit.
    let body = wait_for_backpressure(&ingest).await?;
    assert!(
        body.contains("degraded") && body.contains("max_lead_records = 300"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let published = env.topic_records().await?.len();
    assert!(
        published <= 300,
        "{published} records published past a limit of 300"
    );

    let sink = env.spawn("sink")?;
    env.wait_synced_with(Duration::from_secs(120), &[&ingest, &sink])
        .await?;
    env.assert_matches_chain().await?;
    Ok(())
}
