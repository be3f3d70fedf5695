//! Detectors on transactions through the watchdog process: a privileged function called by an
//! unknown account alerts although the call reverted, and its detector's `pause` action prepares
//! the Safe proposal as a log-based one does; a call using more than 2,000,000 gas raises the
//! threshold alert. The records are published to the chain topic as the ingest writes them.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, FixedBytes, B256, U256};
use anyhow::{bail, Result};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use testkit::config::Detector;
use tripwire_schema::{BlockMarker, DecodedCall, StreamRecord, TransactionRecord, TxStatus};

use crate::common::Env;

async fn publish(env: &Env, records: &[StreamRecord]) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.kafka.brokers())
        .create()?;
    for r in records {
        let payload = r.to_json();
        let key = b"31337".to_vec();
        let record = FutureRecord::to(&env.topic).key(&key).payload(&payload);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn call(
    env: &Env,
    block: u64,
    ts: u64,
    index: u64,
    from: Address,
    signature: &str,
    status: TxStatus,
    gas_used: u64,
) -> TransactionRecord {
    TransactionRecord {
        chain_id: 31337,
        block_number: block,
        block_hash: B256::from(U256::from(block)),
        block_timestamp: ts,
        tx_hash: B256::from(U256::from(block << 16 | index)),
        tx_index: index,
        from,
        to: env.treasury,
        value: U256::ZERO,
        selector: Some(FixedBytes::repeat_byte(0x84)),
        function: Some(DecodedCall {
            name: signature.split('(').next().unwrap_or(signature).to_owned(),
            signature: signature.to_owned(),
            params: serde_json::Map::new(),
        }),
        status,
        gas_used,
        gas_limit: 3_000_000,
        effective_gas_price: U256::from(1_000_000_000u64),
        contract: Some("treasury".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reverted_privileged_call_alerts_and_prepares_the_pause_and_a_gas_spike_alerts(
) -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    env.treasury_transactions = true;
    let setup = env.setup_safe().await?;
    let team = format!("{:#x}", env.anvil.accounts()[0]);
    env.detectors = vec![
        Detector::new("privileged-calls", "event")
            .contract("treasury")
            .severity("critical")
            .actions(["pause"])
            .param("source", "transactions")
            .param("functions", vec!["pause()", "grantRole"])
            .param("allowed_actors", vec![team, format!("{:#x}", setup.safe)]),
        Detector::new("gas-spike", "threshold")
            .contract("treasury")
            .param("source", "transactions")
            .param("field", "gas_used")
            .param("op", ">")
            .param("value", 2_000_000),
    ];
    env.safe = Some(env.safe(&setup));
    let wd = env.spawn_watchdog().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !wd.output().contains("Safe pause proposals ready") {
        if Instant::now() > deadline {
            bail!("watchdog did not pass its Safe checks:\n{}", wd.output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stranger = env.anvil.accounts()[6];
    let team = env.anvil.accounts()[0];
    let ts = chrono::Utc::now().timestamp() as u64;
    let (block, quiet_block) = (100, 101);
    let marker = |n: u64, ts: u64| {
        StreamRecord::Block(BlockMarker {
            chain_id: 31337,
            number: n,
            hash: B256::from(U256::from(n)),
            parent_hash: B256::from(U256::from(n - 1)),
            timestamp: ts,
            log_count: 0,
        })
    };
    publish(
        &env,
        &[
            // The team's own pause is quiet; the stranger's reverted one is not.
            StreamRecord::Transaction(call(
                &env,
                block,
                ts,
                0,
                team,
                "pause()",
                TxStatus::Success,
                40_000,
            )),
            StreamRecord::Transaction(call(
                &env,
                block,
                ts,
                1,
                stranger,
                "pause()",
                TxStatus::Reverted,
                30_000,
            )),
            marker(block, ts),
            // Heavy whoever sends it.
            StreamRecord::Transaction(call(
                &env,
                quiet_block,
                ts + 12,
                0,
                team,
                "withdraw(uint256)",
                TxStatus::Success,
                2_500_000,
            )),
            marker(quiet_block, ts + 12),
        ],
    )
    .await?;
    let alerts = env
        .wait_alerts(Duration::from_secs(30), "both alerts", |a| {
            ["privileged-calls", "gas-spike"]
                .iter()
                .all(|d| a.iter().any(|x| x["labels"]["detector"] == *d))
        })
        .await?;
    let privileged: Vec<_> = alerts
        .iter()
        .filter(|x| x["labels"]["detector"] == "privileged-calls")
        .collect();
    assert_eq!(privileged.len(), 1, "{alerts:?}");
    assert_eq!(privileged[0]["labels"]["alertname"], "TripwireEvent");
    let summary = privileged[0]["annotations"]["summary"]
        .as_str()
        .unwrap_or("");
    assert!(
        summary.contains("reverted") && summary.contains(&stranger.to_string()),
        "{summary}"
    );
    assert_eq!(
        privileged[0]["annotations"]["tx_hash"],
        B256::from(U256::from(block << 16 | 1)).to_string()
    );
    let gas: Vec<_> = alerts
        .iter()
        .filter(|x| x["labels"]["detector"] == "gas-spike")
        .collect();
    assert_eq!(gas.len(), 1, "{alerts:?}");
    assert_eq!(gas[0]["labels"]["alertname"], "TripwireThreshold");
    assert_eq!(gas[0]["annotations"]["block"], quiet_block.to_string());

    // The proposal, exactly as for a log-based detector with the pause action.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let p = env.proposals().await?;
        if let Some(first) = p.first() {
            assert_eq!(p.len(), 1, "one incident, one proposal: {p:?}");
            assert_eq!(first.to_address.parse::<Address>()?, env.treasury);
            break;
        }
        if Instant::now() > deadline {
            bail!("no proposal; watchdog log:\n{}", wd.output());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
