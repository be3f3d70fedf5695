//! A4: Postgres, then the Kafka broker, unreachable for 10 s while blocks keep coming: both
//! processes report unhealthy, retry with capped exponential backoff, recover by themselves, and
//! Postgres ends equal to the chain. The broker outage uses the mock's `broker_down` hook, so
//! this test always runs on the mock; the real broker's process is killed in
//! `deploy/tests/kafka.rs`.

use std::time::{Duration, Instant};

use crate::common::{Env, Proc};
use testkit::{abi, proxy::TcpProxy};

/// Polls `/health` of every process for `window`; returns, per process, whether it answered 503
/// with `component` named in the reason.
async fn watch_health(procs: &[&Proc], component: &str, window: Duration) -> Vec<bool> {
    let mut seen = vec![false; procs.len()];
    let end = Instant::now() + window;
    while Instant::now() < end {
        for (i, p) in procs.iter().enumerate() {
            if let Ok((code, body)) = p.get("/health").await {
                if code == 503 && body.contains("unhealthy") && body.contains(component) {
                    seen[i] = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

async fn all_healthy(procs: &[&Proc], timeout: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + timeout;
    loop {
        let mut ok = true;
        for p in procs {
            let (code, body) = p.get("/health").await?;
            ok &= code == 200 && body.contains("\"status\":\"healthy\"");
        }
        if ok {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < end,
            "processes did not become healthy again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_then_broker_outage_recovers_without_loss() -> anyhow::Result<()> {
    let mut env = Env::on_mock().await?;
    let proxy = TcpProxy::start(env.db.server_addr()).await?;
    env.pg_url = Some(env.db.url_via(proxy.addr()));
    env.traffic(20, 5).await?;
    let ingest = env.spawn("ingest")?;
    let sink = env.spawn("sink")?;
    let procs = [&ingest, &sink];
    env.wait_synced_with(Duration::from_secs(60), &procs)
        .await?;
    all_healthy(&procs, Duration::from_secs(20)).await?;

    // Blocks keep coming during both outages.
    let streaming = async {
        for i in 0..120u64 {
            let call = abi::call("deposit(uint256)", &[abi::uint(i + 1)]);
            env.anvil.send_and_mine(env.vault, call).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::Ok(())
    };
    let scenario = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        let pg_seen = watch_health(&procs, "postgres", Duration::from_secs(10)).await;
        proxy.restore();
        all_healthy(&procs, Duration::from_secs(30)).await?;

        env.kafka.broker_down().await?;
        let kafka_seen = watch_health(&procs, "kafka", Duration::from_secs(10)).await;
        env.kafka.broker_up().await?;
        all_healthy(&procs, Duration::from_secs(60)).await?;
        anyhow::Ok((pg_seen, kafka_seen))
    };
    let (streamed, outcome) = tokio::join!(streaming, scenario);
    streamed?;
    let (pg_seen, kafka_seen) = outcome?;
    assert_eq!(
        pg_seen,
        vec![true, true],
        "ingest and sink report Postgres unhealthy"
    );
    assert_eq!(
        kafka_seen,
        vec![true, true],
        "ingest and sink report Kafka unhealthy"
    );

    env.wait_synced_with(Duration::from_secs(120), &procs)
        .await?;
    let rows = env.assert_matches_chain().await?;
    assert_eq!(rows, 20 * 5 + 120);

    // Retries backed off exponentially instead of hammering: within a 10 s outage the ingest
    // (which records the blocks it is about to publish in Postgres first, so it publishes nothing
    // meanwhile) tried a handful of times, with growing delays, and the sink, which gets a batch
    // to write only if records were in flight when Postgres went away, no more often.
    let log = ingest.output();
    let failures = log.matches("ingest step failed").count();
    assert!(
        (1..=30).contains(&failures),
        "{failures} failed ingest steps over both outages:\n{log}"
    );
    let log = sink.output();
    let retries = log
        .matches("sink write failed, retrying the same batch")
        .count();
    assert!(retries <= 15, "{retries} write retries in 10 s:\n{log}");
    Ok(())
}
