//! The documented defaults on a dense contract, as a new user runs them: `tripwire-indexer run`
//! with the embedded broker and nothing tuned, on a chain of 2,000 logs per block. The embedded
//! broker keeps only the newest 5 MiB of each partition; before the lead was counted in broker
//! bytes, these defaults stopped with "the sink's stored position is no longer in the topic".
//!
//! While the indexer runs, the test watches the broker from outside every few milliseconds: the
//! oldest record it still keeps must never be past the sink's stored position (nothing the sink
//! still needs was deleted), and the ingest's own peak lead must stay within the default limit.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use testkit::config::{Chain, Contract, Server, TestConfig};
use testkit::{
    abi,
    anvil::{quantity, Anvil},
    postgres::TestDb,
    process::Proc,
};

const BIN: &str = env!("CARGO_BIN_EXE_tripwire-indexer");
const PING: &str = "event Ping(uint256 indexed i, uint256 value)";
/// 200,000 records, about twice what the broker keeps (records of this chain compress to ~30
/// bytes): it deletes the oldest while the test runs, so a lead past its limit would lose some.
const BLOCKS: u64 = 100;
const LOGS_PER_BLOCK: u64 = 2_000;
/// `kafka.max_lead_bytes`' default with the embedded broker (4 MiB).
const DEFAULT_LEAD_BYTES: f64 = 4_194_304.0;

/// A chain of `BLOCKS` blocks of `LOGS_PER_BLOCK` Spammer logs each.
async fn dense_chain() -> Result<(Anvil, testkit::Address)> {
    let anvil = Anvil::builder()
        .no_mining(true)
        .block_gas_limit(Some(60_000_000))
        .spawn()
        .await?;
    let (spammer, _) = anvil.deploy_with_receipt("Spammer", &[]).await?;
    let from = format!("{:#x}", anvil.accounts()[0]);
    let data = testkit::anvil::hex_bytes(&abi::call(
        "emitMany(uint256)",
        &[abi::uint(LOGS_PER_BLOCK)],
    ));
    for _ in 0..BLOCKS {
        anvil
            .send_tx(json!({"from": from, "to": format!("{spammer:#x}"), "data": data, "gas": quantity(4_000_000)}))
            .await?;
        anvil.rpc("evm_mine", json!([])).await?;
    }
    Ok((anvil, spammer))
}

/// The embedded broker's address, from the line `run` prints when it starts it.
async fn embedded_brokers(proc: &Proc) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(addr) = proc
            .output()
            .lines()
            .find_map(|l| l.split("embedded Kafka broker listening on ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            return Ok(addr.to_owned());
        }
        ensure!(
            Instant::now() < deadline,
            "no broker address in: {}",
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_blocks_at_the_defaults_with_the_embedded_broker() -> Result<()> {
    let (anvil, spammer) = dense_chain().await?;
    let head = anvil.block_number().await?;
    let db = TestDb::create().await?;
    let dir = tempfile::tempdir()?;
    // Only what has no default.
    let config: PathBuf = TestConfig::new(db.url(), "embedded")
        .server(Server::any_port())
        .chain(Chain::new("devnet", 31337, anvil.url()))
        .contract(Contract::new("spammer", "devnet", [format!("{spammer:#x}")]).events([PING]))
        .write(dir.path().join("tripwire.toml"))?;
    let mut run = Proc::spawn(BIN.as_ref(), &config, "run", dir.path(), "info")?;
    let brokers = embedded_brokers(&run).await?;
    let topic = "tripwire.devnet.events".to_owned();
    let watcher: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "defaults-test-watcher")
        .create()?;

    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut samples, mut peak_lead_bytes, mut deleted) = (0u64, 0f64, 0i64);
    let mut next_scrape = Instant::now();
    loop {
        ensure!(
            run.is_running(),
            "`run` stopped at the defaults:\n{}",
            run.output()
        );
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM sink_offsets WHERE topic = $1 AND partition = 0",
        )
        .bind(&topic)
        .fetch_optional(db.pool())
        .await
        .unwrap_or(None);
        let marks = tokio::task::block_in_place(|| {
            watcher.fetch_watermarks(&topic, 0, Duration::from_secs(5))
        });
        if let Ok((low, _high)) = marks {
            let stored = stored.unwrap_or(0);
            ensure!(
                low <= stored,
                "the embedded broker deleted records the sink had not stored: oldest kept {low}, \
                 sink position {stored}"
            );
            deleted = deleted.max(low);
            samples += 1;
        }
        if Instant::now() >= next_scrape {
            next_scrape = Instant::now() + Duration::from_millis(200);
            if let Ok(v) = run.metric("tripwire_ingest_lead_bytes{").await {
                peak_lead_bytes = peak_lead_bytes.max(v);
            }
            let overruns = run
                .metric("tripwire_ingest_lead_overruns_total{")
                .await
                .unwrap_or(0.0);
            ensure!(
                overruns == 0.0,
                "the ingest's lead went past its limit {overruns} times"
            );
        }
        let synced: Option<i64> = sqlx::query_scalar(
            "SELECT last_synced_block FROM indexer_state WHERE chain_id = 31337",
        )
        .fetch_optional(db.pool())
        .await
        .ok()
        .flatten()
        .flatten();
        if synced.is_some_and(|s| s >= head as i64) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not synced in time:\n{}",
            run.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(
        deleted > 0,
        "the broker never deleted a record: the chain is too small to test its retention"
    );
    ensure!(
        peak_lead_bytes <= DEFAULT_LEAD_BYTES,
        "the ingest's lead reached {peak_lead_bytes} bytes, past the default 4 MiB"
    );
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
        .fetch_one(db.pool())
        .await?;
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT (block_number, log_index)) FROM logs")
            .fetch_one(db.pool())
            .await?;
    ensure!(
        logs == (BLOCKS * LOGS_PER_BLOCK) as i64 && distinct == logs,
        "{logs} log rows ({distinct} distinct), expected {}",
        BLOCKS * LOGS_PER_BLOCK
    );
    let status = tokio::task::block_in_place(|| run.terminate(Duration::from_secs(30)))
        .context("stopping run")?;
    ensure!(status.success(), "run exited with {status}");
    println!(
        "{} logs in {BLOCKS} blocks at the defaults; {samples} broker samples, the broker deleted \
         the first {deleted} records meanwhile (none the sink still needed); peak lead {:.0} bytes \
         of 4 MiB",
        logs, peak_lead_bytes
    );
    Ok(())
}
