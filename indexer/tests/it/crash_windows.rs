//! Every boundary between two durable effects of the ingest and the sink, hit exactly by a fault
//! point (`tripwire_runtime::faults`), for SIGKILL and for SIGTERM, each followed by a reorg of
//! depth 1 and of depth 3 before the process is started again: Postgres must equal the canonical
//! chain, with no orphaned row (`logs` or `blocks`) and no missing one.
//!
//! The sink's windows are hit once more with `transaction` records in the batch (synthetic ones,
//! written straight into Kafka): `transactions` must hold each canonical transaction once.
//!
//! The ingest's windows are the dangerous ones: records of the blocks about to be replaced may be
//! in Kafka (and in Postgres, through the running sink) while the ingest's cursor does not know
//! them, so its usual reorg check cannot see that they need retracting.

use std::time::Duration;

use crate::common::Env;
use crate::sink_batch::{hash, log, marker, CHAIN};
use crate::sink_transactions::{call, stored_txs};
use anyhow::{ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::abi;
use tripwire_runtime::faults::points;
use tripwire_schema::{BlockRef, Retraction, StreamRecord};

/// The processes' view after the run, for the failure message.
fn logs(procs: &[&testkit::process::Proc]) -> String {
    procs
        .iter()
        .map(|p| format!("--- {}\n{}", p.role, p.output()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every stored block is the chain's block at its height.
async fn assert_blocks_canonical(env: &Env) -> Result<usize> {
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT number, hash FROM blocks WHERE chain_id = 31337 ORDER BY number")
            .fetch_all(env.db.pool())
            .await?;
    for (number, hash) in &rows {
        let canonical = env.anvil.block_hash(*number as u64).await?;
        ensure!(
            canonical.as_slice() == hash.as_slice(),
            "blocks row {number} holds an orphaned block"
        );
    }
    Ok(rows.len())
}

/// One cell of the matrix: `point` armed to fire once with `action` (`kill` or `term`) in the
/// role it belongs to, the other role running normally; then a reorg of `depth` and a restart.
async fn crash_then_reorg(point: &str, action: &str, depth: u64) -> Result<()> {
    let env = Env::new().await?;
    env.traffic(12, 3).await?;
    let (faulty_role, other_role) = if point.starts_with("ingest") {
        ("ingest", "sink")
    } else {
        ("sink", "ingest")
    };
    let other = env.spawn(other_role)?;
    let armed = format!("{point}=1*return({action})");
    let mut faulty = env.spawn_with_env(faulty_role, &[("FAILPOINTS", &armed)])?;
    let status = tokio::task::block_in_place(|| faulty.wait(Duration::from_secs(60)))
        .with_context(|| format!("{point}/{action}: the fault point never fired"))?;
    let out = faulty.output();
    match action {
        // Killed by its own SIGKILL: no exit code.
        "kill" => ensure!(
            status.code().is_none(),
            "{point}/kill: exited with {status}:\n{out}"
        ),
        _ => ensure!(
            out.contains("fault point: SIGTERM"),
            "{point}/term: the fault point did not stop the process:\n{out}"
        ),
    }
    // Whatever reached Kafka reaches Postgres before the chain changes: the orphaned rows are
    // there to be removed.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let head = env.anvil.block_number().await?;
    let replacements = (0..depth)
        .map(|offset| {
            let call = abi::call("deposit(uint256)", &[abi::uint(555_000 + offset)]);
            (env.anvil.tx_request(env.vault, &call), offset)
        })
        .collect();
    env.anvil.reorg(depth, replacements).await?;
    ensure!(env.anvil.block_number().await? == head);

    let again = env.spawn(faulty_role)?;
    let rows = env
        .wait_matches_chain(Duration::from_secs(60), &[&other, &again])
        .await
        .with_context(|| format!("{point}/{action}/depth {depth}"))?;
    let blocks = assert_blocks_canonical(&env).await.with_context(|| {
        format!(
            "{point}/{action}/depth {depth}\n{}",
            logs(&[&other, &again])
        )
    })?;
    ensure!(
        blocks as u64 > head,
        "only {blocks} blocks stored up to {head}"
    );
    println!(
        "{point:<22} {action:<5} depth {depth}: {rows} rows and {blocks} blocks equal to the chain"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_boundary_survives_sigkill_and_sigterm_with_a_reorg_before_the_restart() -> Result<()>
{
    let mut failed = Vec::new();
    for point in points::ALL {
        for action in ["kill", "term"] {
            for depth in [1, 3] {
                if let Err(e) = crash_then_reorg(point, action, depth).await {
                    println!("FAILED {point} {action} depth {depth}: {e:#}");
                    failed.push(format!("{point}/{action}/depth {depth}"));
                }
            }
        }
    }
    ensure!(failed.is_empty(), "unsafe boundaries: {failed:?}");
    Ok(())
}

/// Block `n` of the synthetic stream: three transactions (one reverted), one log, the marker.
fn synthetic_block(n: u64, fork: u8) -> Vec<StreamRecord> {
    vec![
        call(n, fork, 0),
        call(n, fork, 1),
        call(n, fork, 2),
        log(n, fork, 0),
        marker(n, fork, 1),
    ]
}

/// A sink fault point hit with `transaction` records in the batch (written straight into Kafka,
/// as the ingest publishes them: a block's transactions, its logs, its marker; a reorg of the
/// last block with its retraction), then a restart: every transaction of the canonical blocks is
/// stored once, none of the orphaned block.
async fn sink_crash_with_transactions(point: &str, action: &str) -> Result<()> {
    let env = Env::new().await?;
    let blocks = 40u64;
    let mut records: Vec<StreamRecord> = (1..=blocks).flat_map(|n| synthetic_block(n, 0)).collect();
    records.push(StreamRecord::Retraction(Retraction {
        chain_id: CHAIN,
        common_ancestor: BlockRef {
            number: blocks - 1,
            hash: hash(blocks - 1, 0),
        },
        orphaned: vec![BlockRef {
            number: blocks,
            hash: hash(blocks, 0),
        }],
    }));
    records.extend(synthetic_block(blocks, 1));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.kafka.brokers())
        .create()?;
    for r in &records {
        let payload = r.to_json();
        producer
            .send(
                FutureRecord::to(&env.topic).key("31337").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    let armed = format!("{point}=1*return({action})");
    let mut faulty = env.spawn_with_env("sink", &[("FAILPOINTS", &armed)])?;
    let status = tokio::task::block_in_place(|| faulty.wait(Duration::from_secs(60)))
        .with_context(|| format!("{point}/{action}: the fault point never fired"))?;
    let out = faulty.output();
    match action {
        "kill" => ensure!(
            status.code().is_none(),
            "{point}/kill: exited with {status}:\n{out}"
        ),
        _ => ensure!(
            out.contains("fault point: SIGTERM"),
            "{point}/term: the fault point did not stop the process:\n{out}"
        ),
    }
    let again = env.spawn("sink")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2 AND partition = 0",
        )
        .bind(&env.consumer)
        .bind(&env.topic)
        .fetch_optional(env.db.pool())
        .await
        .unwrap_or(None);
        if next == Some(records.len() as i64) {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{point}/{action}: the sink stored offset {next:?} of {}\n{}",
            records.len(),
            logs(&[&again])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut expected: Vec<(i64, u8, i32)> = (1..blocks)
        .flat_map(|n| (0..3).map(move |i| (n as i64, 0u8, i)))
        .collect();
    expected.extend((0..3).map(|i| (blocks as i64, 1u8, i)));
    let stored = stored_txs(&env.db).await?;
    ensure!(
        stored == expected,
        "{point}/{action}: {} transactions stored, {} expected (lost or orphaned rows)",
        stored.len(),
        expected.len()
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT tx_hash || block_hash) FROM transactions")
            .fetch_one(env.db.pool())
            .await?;
    ensure!(
        rows == distinct,
        "{point}/{action}: duplicated transaction rows"
    );
    println!("{point:<22} {action:<5}: {rows} transactions stored once, none orphaned");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sinks_boundaries_keep_transaction_rows_exact() -> Result<()> {
    let mut failed = Vec::new();
    for point in points::ALL.iter().filter(|p| p.starts_with("sink")) {
        for action in ["kill", "term"] {
            if let Err(e) = sink_crash_with_transactions(point, action).await {
                println!("FAILED {point} {action}: {e:#}");
                failed.push(format!("{point}/{action}"));
            }
        }
    }
    ensure!(failed.is_empty(), "unsafe boundaries: {failed:?}");
    Ok(())
}
