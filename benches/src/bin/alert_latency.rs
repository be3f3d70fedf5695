//! C5, second half: latency from a block being available over RPC to the watchdog's POST of the
//! alert it shows, on anvil with 1 s blocks.
//!
//! `cargo run --release -p tripwire-benches --bin tripwire-bench-alert-latency`
//!
//! Anvil mines a block every second; the benchmark polls `eth_blockNumber` every 5 ms and notes
//! when each block first appears, and after each new block sends a privileged call (the pauser
//! role granted, then revoked, alternately) that lands in the next one. The release
//! `tripwire-indexer ingest` follows the chain into Kafka (librdkafka's mock broker in this
//! process, or `KAFKA_BROKERS`), the release `tripwire-watchdog run` consumes it with an `event`
//! detector and posts to two Alertmanager URLs: the real Alertmanager and a recorder in this
//! process that notes when each POST arrives. Latency = POST arrival - first RPC sight of the
//! block named in the alert's `block` annotation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::{extract::State, routing::post, Json, Router};
use clap::Parser;
use serde_json::{json, Value};
use testkit::config::{Chain, Contract, Detector, Server, TestConfig, Watchdog};
use testkit::{
    abi, alertmanager::Alertmanager, anvil::Anvil, kafka::TestKafka, postgres::TestDb,
    process::Proc,
};

#[derive(Parser)]
#[command(about = "Latency from a block on RPC to the Alertmanager POST of its alert")]
struct Args {
    /// Attacks measured (one per block).
    #[arg(long, default_value_t = 120)]
    samples: usize,
    /// `chains.poll_interval_ms` of the ingest.
    #[arg(long, default_value_t = 100)]
    poll_interval_ms: u64,
}

type Posts = Arc<Mutex<BTreeMap<u64, Instant>>>;

async fn record(State(posts): State<Posts>, Json(body): Json<Value>) -> &'static str {
    let now = Instant::now();
    let mut p = posts.lock().expect("recorder lock");
    for a in body.as_array().into_iter().flatten() {
        if let Some(b) = a["annotations"]["block"]
            .as_str()
            .and_then(|b| b.parse().ok())
        {
            p.entry(b).or_insert(now);
        }
    }
    "ok"
}

/// The release binaries, built first when run through `cargo run`.
fn binaries() -> Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("executable is not inside a target folder")?
        .to_owned();
    if let Some(cargo) = std::env::var_os("CARGO") {
        println!("building the release tripwire-indexer and tripwire-watchdog");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "tripwire-indexer",
                "-p",
                "tripwire-watchdog",
            ])
            .current_dir(testkit::repo_root())
            .env("CARGO_TARGET_DIR", &target)
            .status()?;
        if !status.success() {
            bail!("cargo build --release failed ({status})");
        }
    }
    let (i, w) = (
        target.join("release/tripwire-indexer"),
        target.join("release/tripwire-watchdog"),
    );
    for b in [&i, &w] {
        if !b.is_file() {
            bail!(
                "{} not found: run this benchmark through `cargo run --release`",
                b.display()
            );
        }
    }
    Ok((i, w))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (indexer_bin, watchdog_bin) = binaries()?;
    let anvil = Anvil::builder().block_time(Some(1)).spawn().await?;
    let treasury = anvil.deploy("Treasury", &[]).await?;
    let db = TestDb::create().await?;
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("tripwire-latency");
    kafka.create_topic(&topic, 1).await?;
    let am = Alertmanager::spawn().await?;

    let posts: Posts = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let recorder = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/api/v2/alerts", post(record))
        .with_state(posts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let mut config = TestConfig::new(db.url(), kafka.brokers());
    config.postgres.max_connections = Some(4);
    config.kafka.topic = Some(topic.clone());
    let config = config
        .server(Server::any_port())
        .chain(Chain {
            poll_interval_ms: Some(args.poll_interval_ms),
            ..Chain::new("devnet", 31337, anvil.url())
        })
        .contract(Contract::new("treasury", "devnet", [treasury]).artifact("Treasury"))
        .watchdog(Watchdog {
            listen: Some("127.0.0.1:0".into()),
            ..Watchdog::new([am.url(), recorder.clone()]).detector(
                Detector::new("privileged", "event")
                    .contract("treasury")
                    .severity("critical"),
            )
        })
        .write(dir.path().join("tripwire.toml"))?;
    let mut ingest = Proc::spawn(&indexer_bin, &config, "ingest", dir.path(), "warn")?;
    ingest.http_addr().await.ok();
    let mut watchdog = Proc::spawn(&watchdog_bin, &config, "run", dir.path(), "info")?;
    watchdog.http_addr().await?;
    // The constructor's privileged events reach the recorder once the pipeline is up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while posts.lock().expect("lock").is_empty() {
        if Instant::now() > deadline {
            bail!(
                "no alert reached the recorder; watchdog log:\n{}",
                watchdog.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "pipeline up: anvil 1 s blocks, ingest poll {} ms, {} samples",
        args.poll_interval_ms, args.samples
    );

    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let attacker = anvil.accounts()[5];
    let http = reqwest::Client::new();
    let mut first_seen: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut attacked: Vec<u64> = Vec::new();
    let mut last = anvil.block_number().await?;
    let mut grant = true;
    while attacked.len() < args.samples {
        let r: Value = http
            .post(anvil.url())
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}))
            .send()
            .await?
            .json()
            .await?;
        let n = testkit::anvil::parse_quantity(&r["result"])?;
        let now = Instant::now();
        if n > last {
            for b in last + 1..=n {
                first_seen.entry(b).or_insert(now);
            }
            last = n;
            let sig = if grant {
                "grantRole(bytes32,address)"
            } else {
                "revokeRole(bytes32,address)"
            };
            grant = !grant;
            anvil
                .send(
                    treasury,
                    abi::call(sig, &[abi::bytes32(role), abi::address(attacker)]),
                )
                .await?;
            attacked.push(n + 1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Until the last attack's block is out, then time for its alert.
    let target = attacked.last().copied().unwrap_or(last);
    while last < target {
        let n = anvil.block_number().await?;
        let now = Instant::now();
        for b in last + 1..=n {
            first_seen.entry(b).or_insert(now);
        }
        last = last.max(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let posts = posts.lock().expect("lock").clone();
    let mut lat: Vec<f64> = Vec::new();
    let mut missing = Vec::new();
    for b in &attacked {
        match (first_seen.get(b), posts.get(b)) {
            (Some(seen), Some(posted)) => {
                lat.push(posted.saturating_duration_since(*seen).as_secs_f64() * 1000.0)
            }
            _ => missing.push(*b),
        }
    }
    let fired = watchdog
        .metric("tripwire_watchdog_findings_total")
        .await
        .unwrap_or(0.0);
    let _ = watchdog.terminate(Duration::from_secs(10));
    let _ = ingest.terminate(Duration::from_secs(10));
    if lat.is_empty() {
        bail!(
            "no attack was alerted; watchdog log:\n{}",
            watchdog.output()
        );
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "\nC5 latency, block first seen over RPC -> Alertmanager POST ({} attacks, {} findings):",
        lat.len(),
        fired
    );
    println!(
        "  p50 {:.0} ms   p90 {:.0} ms   p99 {:.0} ms   max {:.0} ms   min {:.0} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
        lat[0]
    );
    println!(
        "  target p99 < 500 ms: {}",
        if percentile(&lat, 0.99) < 500.0 {
            "PASS"
        } else {
            "FAIL"
        }
    );
    if !missing.is_empty() {
        println!("  blocks without an alert (attack not mined or not alerted): {missing:?}");
    }
    Ok(())
}
