//! A2: reorgs at depths 1, 3 and 10 while following the tip, with replacement transactions that
//! emit different events: Postgres ends equal to the canonical chain, the retractions are in the
//! topic, the metrics counted them; a reorg deeper than the maximum stops the process clearly.

use std::time::Duration;

use crate::common::Env;
use testkit::abi;
use tripwire_schema::StreamRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_at_depth_1_3_10_leave_the_canonical_chain() -> anyhow::Result<()> {
    let env = Env::new().await?;
    env.traffic(30, 4).await?;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;

    for (round, depth) in [1u64, 3, 10].into_iter().enumerate() {
        // The orphaned blocks held token/vault/registry bursts; the replacements emit Deposits
        // and registrations with amounts no original block had.
        let replacements = (0..depth)
            .map(|offset| {
                let amount = 777_000 + round as u64 * 100 + offset;
                let call = abi::call("deposit(uint256)", &[abi::uint(amount)]);
                (env.anvil.tx_request(env.vault, &call), offset)
            })
            .collect();
        let orphaned_tip = env
            .anvil
            .block_hash(env.anvil.block_number().await?)
            .await?;
        env.anvil.reorg(depth, replacements).await?;
        assert_ne!(
            env.anvil
                .block_hash(env.anvil.block_number().await?)
                .await?,
            orphaned_tip,
            "anvil_reorg replaced the tip"
        );
        env.wait_matches_chain(Duration::from_secs(60), &[&p])
            .await?;
        // A few normal blocks on the new fork before the next reorg.
        env.traffic(12, 3).await?;
        env.wait_matches_chain(Duration::from_secs(60), &[&p])
            .await?;
    }

    // The replacement events are stored, the orphaned rows are gone.
    let deposits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM logs WHERE event_name = 'Deposit'
           AND (params->>'amount')::numeric BETWEEN 777000 AND 777999",
    )
    .fetch_one(env.db.pool())
    .await?;
    assert_eq!(deposits, 1 + 3 + 10);

    let retractions: Vec<usize> = env
        .topic_records()
        .await?
        .into_iter()
        .filter_map(|r| match r {
            StreamRecord::Retraction(r) => Some(r.depth()),
            _ => None,
        })
        .collect();
    assert_eq!(retractions, vec![1, 3, 10], "retractions in the topic");

    assert_eq!(
        p.metric("tripwire_reorgs_total{").await?,
        3.0,
        "reorgs detected"
    );
    assert_eq!(p.metric("tripwire_retractions_applied_total").await?, 3.0);
    assert_eq!(p.metric("tripwire_reorg_depth_blocks_sum").await?, 14.0);
    // Buckets in blocks: depths 1 and 3 at or below 8, the 10-block one above.
    let (_, text) = p.get("/metrics").await?;
    let bucket = |le: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("tripwire_reorg_depth_blocks_bucket{")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        (bucket("8"), bucket("12")),
        (Some(2.0), Some(3.0)),
        "{text}"
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM reorgs")
        .fetch_one(env.db.pool())
        .await?;
    assert_eq!(applied, 3);

    // Replaying the topic changes nothing: from the very beginning (orphaned rows are re-inserted
    // and then retracted again, in order) and from the middle.
    let mut p = p;
    assert!(p.terminate(Duration::from_secs(20))?.success());
    let before = env.db_rows().await?;
    let end: i64 = sqlx::query_scalar("SELECT next_offset FROM sink_offsets")
        .fetch_one(env.db.pool())
        .await?;
    for from in [0, end / 2] {
        sqlx::query("UPDATE sink_offsets SET next_offset = $1")
            .bind(from)
            .execute(env.db.pool())
            .await?;
        let mut sink = env.spawn("sink")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let at: i64 = sqlx::query_scalar("SELECT next_offset FROM sink_offsets")
                .fetch_one(env.db.pool())
                .await?;
            if at == end {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "replay stuck at {at}/{end}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sink.terminate(Duration::from_secs(20))?.success());
        assert_eq!(
            env.db_rows().await?,
            before,
            "replay from offset {from} changed the rows"
        );
        env.assert_matches_chain().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_deeper_than_the_maximum_stops_with_a_clear_error() -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    env.max_reorg_depth = 5;
    env.traffic(20, 2).await?;
    let mut p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    let before = env.db_rows().await?;

    let call = abi::call("deposit(uint256)", &[abi::uint(42)]);
    env.anvil
        .reorg(10, vec![(env.anvil.tx_request(env.vault, &call), 0)])
        .await?;
    let status = p.wait(Duration::from_secs(30))?;
    assert!(!status.success(), "the process must stop with an error");
    let out = p.output();
    assert!(
        out.contains("reorg deeper than max_reorg_depth = 5"),
        "no clear message in:\n{out}"
    );
    // Nothing was written from the unknown fork, nothing stored was lost.
    assert_eq!(env.db_rows().await?, before);
    Ok(())
}
