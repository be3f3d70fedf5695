//! Lost history is loud: a watchdog started after the embedded broker dropped the oldest records
//! (it keeps 5 MiB per partition) says how many it missed and which blocks to back-test, in
//! `/health`, a metric and its log; so does one restarted after its stored position left the
//! broker.

use std::time::{Duration, Instant};
use testkit::config::Detector;

use crate::common::Env;
use alloy::primitives::B256;
use anyhow::{bail, Result};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use testkit::kafka::TestKafka;
use tripwire_schema::{BlockMarker, StreamRecord};

/// Publishes block markers `from..=to` of chain 31337 (each ~300 bytes).
async fn publish_markers(env: &Env, from: u64, to: u64) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.kafka.brokers())
        .set("linger.ms", "5")
        .create()?;
    let mut pending = Vec::new();
    for n in from..=to {
        let marker = StreamRecord::Block(BlockMarker {
            chain_id: 31337,
            number: n,
            hash: B256::from(alloy::primitives::U256::from(n)),
            parent_hash: B256::from(alloy::primitives::U256::from(n - 1)),
            timestamp: 1_700_000_000 + n * 12,
            log_count: 0,
        });
        let payload = marker.to_json();
        let key = b"31337".to_vec();
        let record = FutureRecord::to(&env.topic).key(&key).payload(&payload);
        pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
        if pending.len() >= 5_000 {
            for p in pending.drain(..) {
                p.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for p in pending {
        p.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Waits until `/health` names the topic's lost history; returns the body.
async fn wait_health_history(wd: &testkit::process::Proc, what: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = wd.get("/health").await?;
        if body.contains(what) {
            return Ok(body);
        }
        if Instant::now() > deadline {
            bail!("/health never said {what:?}: {body}\nlog:\n{}", wd.output());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_that_left_the_broker_are_counted_shown_and_named_for_a_back_test() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    // The embedded broker's retention (librdkafka's mock), whatever KAFKA_BROKERS says.
    env.kafka = TestKafka::start_mock()?;
    env.topic = env.kafka.unique_topic("tripwire-wd-history");
    env.kafka.create_topic(&env.topic, 1).await?;
    env.detectors = vec![Detector::new("role-change", "event")
        .contract("treasury")
        .param("events", vec!["RoleGranted"])];

    // The indexer ran long before the watchdog: 40,000 markers (~12 MB) in a 5 MiB partition.
    publish_markers(&env, 1, 40_000).await?;
    let (low, high) = env.kafka.watermarks(&env.topic, 0).await?;
    assert!(low > 0 && high == 40_000, "low {low}, high {high}");

    let mut wd = env.spawn_watchdog().await?;
    let body = wait_health_history(&wd, &format!("history:{}", env.topic)).await?;
    assert!(
        body.contains(&format!("{low} records of {}/0", env.topic)) && body.contains("degraded"),
        "{body}"
    );
    // The first record held is block low + 1: the back-test ends there.
    let to = format!("--to-block {}", low + 1);
    let body = wait_health_history(&wd, &to).await?;
    assert!(
        body.contains(
            "tripwire-replay --chain devnet --mode detect --from-block <the chain's start_block>"
        ),
        "{body}"
    );
    assert_eq!(
        wd.metric("tripwire_watchdog_records_missed_total").await?,
        low as f64
    );
    assert!(
        wd.output()
            .contains("records left the broker before the watchdog read them"),
        "{}",
        wd.output()
    );
    // Everything still held is read.
    let deadline = Instant::now() + Duration::from_secs(60);
    while wd
        .metric("tripwire_watchdog_records_consumed_total")
        .await?
        < (high - low) as f64
    {
        assert!(Instant::now() < deadline, "{}", wd.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its position saved, it stops; meanwhile the broker drops what it would read next.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = wd.terminate(Duration::from_secs(15))?;
    assert!(status.success(), "{}", wd.output());
    publish_markers(&env, 40_001, 80_000).await?;
    let (low2, _) = env.kafka.watermarks(&env.topic, 0).await?;
    assert!(low2 > high, "low {low2}");

    let wd = env.spawn_watchdog().await?;
    let missed = low2 - high;
    let body = wait_health_history(&wd, &format!("{missed} records of {}/0", env.topic)).await?;
    // The saved state remembers block 40,000: the back-test starts after it.
    assert!(
        body.contains("--from-block 40001"),
        "the back-test starts after the last block read: {body}"
    );
    wait_health_history(&wd, &format!("--to-block {}", low2 + 1)).await?;
    assert_eq!(
        wd.metric("tripwire_watchdog_records_missed_total").await?,
        missed as f64
    );
    Ok(())
}
