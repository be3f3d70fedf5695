//! `tripwire-bench-backfill`: what users get at the defaults. For each chain shape (logs per block)
//! it generates a chain of a million logs on a local anvil, measures how fast anvil itself serves
//! them over `eth_getLogs` (the ceiling), then backfills them with `tripwire-indexer` at its
//! defaults, as one `run` process with the embedded broker and as separate `ingest` and `sink`
//! processes, and prints the end-to-end rate, the peak RSS and the CPU-seconds per 1M logs of each
//! process.
//!
//! Run it as documented in `benches/README.md`:
//! `cargo run --release -p tripwire-benches --bin tripwire-bench-backfill`.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use testkit::{
    abi,
    anvil::{parse_quantity, quantity, Anvil},
    kafka::TestKafka,
    postgres::TestDb,
    Address,
};
use tripwire_benches::{procfs, rpc};

/// Targets of acceptance point A6 on the reference 2-core machine.
const TARGET_LOGS_PER_S: f64 = 125_000.0;
const TARGET_CEILING_RATIO: f64 = 0.80;
const TARGET_RSS_MB: f64 = 300.0;

/// Logs per `emitMany` transaction at most: ~1,450 gas per log keeps a transaction well below the
/// per-transaction gas cap of recent hardforks (2^24).
const MAX_LOGS_PER_TX: u64 = 8_000;
const CHAIN_ID: u64 = 31337;
const PING: &str = "event Ping(uint256 indexed i, uint256 value)";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tripwire-bench-backfill",
    about = "Backfill 1M logs per chain shape from anvil through Kafka into Postgres at the \
             indexer's defaults; print logs/s, the eth_getLogs ceiling, and the peak RSS and \
             CPU-seconds per 1M logs of each process"
)]
struct Args {
    /// Logs on the generated chain (of each shape).
    #[arg(long, default_value_t = 1_000_000)]
    logs: u64,
    /// Logs per block, as a comma-separated list of chain shapes: one chain per shape (one or
    /// more `emitMany` transactions per block), each indexed in every `--mode`. E.g. `10,200,1000`.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    logs_per_block: Vec<u64>,
    /// How the indexer runs, as a comma-separated list: `run` is one `tripwire-indexer run`
    /// process with the embedded Kafka broker (what the README's first command does); `split` is
    /// `tripwire-indexer ingest` and `tripwire-indexer sink` as two processes with the Kafka of
    /// `KAFKA_BROKERS` (librdkafka's mock broker inside this benchmark when unset).
    #[arg(long, value_delimiter = ',', default_value = "run,split")]
    mode: Vec<Mode>,
    /// `chains.range_blocks` (the upper bound of blocks per `eth_getLogs`). Unset: the indexer's
    /// default. Everything below is written into the indexer's config only when given, so that
    /// the benchmark measures the documented defaults unless told otherwise.
    #[arg(long)]
    range_blocks: Option<u64>,
    /// `chains.ranges_in_flight` of the ingest.
    #[arg(long)]
    ranges_in_flight: Option<usize>,
    /// `kafka.max_lead_records` of the ingest (`--staged` sets 0: no limit).
    #[arg(long)]
    max_lead_records: Option<u64>,
    /// `kafka.max_lead_bytes` of the ingest (`--staged` sets 0: no limit).
    #[arg(long)]
    max_lead_bytes: Option<u64>,
    /// `sink.batch_records`.
    #[arg(long)]
    batch_records: Option<usize>,
    /// `sink.batch_wait_ms`.
    #[arg(long)]
    batch_wait_ms: Option<u64>,
    /// Blocks per request of the ceiling measurement. Unset: as many as hold about 5,000 logs
    /// (`chains.range_target_logs`' default), at least one.
    #[arg(long)]
    ceiling_range_blocks: Option<u64>,
    /// Concurrent fetchers of the second ceiling measurement.
    #[arg(long, default_value_t = 2)]
    fetchers: usize,
    /// Run the ingest to completion first, then the sink alone, and report each stage's rate
    /// (instead of running both at once).
    #[arg(long)]
    staged: bool,
    /// Skip the ceiling measurements (only the indexer is run).
    #[arg(long)]
    skip_ceiling: bool,
    /// Measure the ceiling only (no indexer run), e.g. to compare range sizes.
    #[arg(long, conflicts_with = "skip_ceiling")]
    ceiling_only: bool,
    /// Profile both indexer processes with `perf record` (written to the run folder). Perturbs the
    /// measurement; for finding bottlenecks only.
    #[arg(long)]
    perf: bool,
    /// Extra librdkafka property for both indexer processes, `KEY=VALUE` (repeatable); goes to
    /// `[kafka.properties]`, e.g. `--kafka-prop linger.ms=50`.
    #[arg(long = "kafka-prop", value_name = "KEY=VALUE")]
    kafka_props: Vec<String>,
    /// `tripwire-indexer` binary to run. Default: build it with `cargo build --release` when run
    /// through `cargo run`, then use `<target>/release/tripwire-indexer`.
    #[arg(long, env = "TRIPWIRE_BENCH_INDEXER")]
    indexer_bin: Option<PathBuf>,
    /// Healthy RPC providers the indexer is given, as a comma-separated list of counts: one
    /// indexer run per count on the same chain (e.g. `1,3`). Every provider is the same anvil
    /// under its own name, so the difference is the provider pool's own cost.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    providers: Vec<usize>,
    /// The ingest's logsBloom check of log answers (`chains.check_logs_bloom`), as a
    /// comma-separated list: one indexer run per value and provider count on the same chain
    /// (`off,on` measures what the check costs).
    #[arg(long, value_delimiter = ',', default_value = "on")]
    bloom_check: Vec<BloomCheck>,
    /// Give up on the indexer after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_s: u64,
    /// `RUST_LOG` of the indexer processes (their logs go to files in the run folder).
    #[arg(long, env = "TRIPWIRE_BENCH_RUST_LOG", default_value = "info")]
    indexer_log: String,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `tripwire-indexer run`: ingest and sink in one process, embedded broker.
    Run,
    /// `tripwire-indexer ingest` + `tripwire-indexer sink`, Kafka outside them.
    Split,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Split => "split",
        }
    }
}

/// `--bloom-check` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BloomCheck {
    On,
    Off,
}

impl BloomCheck {
    fn label(self) -> &'static str {
        match self {
            BloomCheck::On => "on",
            BloomCheck::Off => "off",
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIPWIRE_BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.logs == 0
        || args.logs_per_block.contains(&0)
        || args.range_blocks == Some(0)
        || args.ceiling_range_blocks == Some(0)
    {
        bail!("--logs, --logs-per-block, --range-blocks and --ceiling-range-blocks must be at least 1");
    }
    if args.staged && args.mode.contains(&Mode::Run) {
        bail!("--staged runs ingest and sink one after the other: use it with --mode split");
    }
    if cfg!(debug_assertions) {
        println!(
            "WARNING: this benchmark was built without --release; its own RPC client (the \
             ceiling measurement) is slower than it should be. Use `cargo run --release ...`."
        );
    }
    let given = |name: &str, v: Option<String>| v.map(|v| format!("{name} {v}"));
    let overrides: Vec<String> = [
        given("range_blocks", args.range_blocks.map(|v| v.to_string())),
        given(
            "ranges_in_flight",
            args.ranges_in_flight.map(|v| v.to_string()),
        ),
        given(
            "max_lead_records",
            args.max_lead_records.map(|v| v.to_string()),
        ),
        given("max_lead_bytes", args.max_lead_bytes.map(|v| v.to_string())),
        given("batch_records", args.batch_records.map(|v| v.to_string())),
        given("batch_wait_ms", args.batch_wait_ms.map(|v| v.to_string())),
    ]
    .into_iter()
    .flatten()
    .chain(
        args.kafka_props
            .iter()
            .map(|p| format!("kafka property {p}")),
    )
    .collect();
    println!(
        "tripwire-bench-backfill: {} logs per chain, shapes (logs/block) {:?}, modes {:?}, {}; \
         settings: {}",
        args.logs,
        args.logs_per_block,
        args.mode.iter().map(|m| m.label()).collect::<Vec<_>>(),
        if args.staged { "staged" } else { "pipelined" },
        if overrides.is_empty() {
            "the indexer's defaults".to_owned()
        } else {
            format!("defaults except {}", overrides.join(", "))
        }
    );
    println!(
        "machine: {} cores, load average (1 min) {:.2} at start",
        procfs::cores(),
        procfs::loadavg().unwrap_or(f64::NAN)
    );

    let indexer = indexer_binary(args.indexer_bin.as_deref())?;
    println!("indexer binary: {}", indexer.display());
    let run_dir = run_dir(&indexer)?;
    println!("run folder (config, process logs): {}", run_dir.display());

    let mut table = Vec::new();
    for &shape in &args.logs_per_block {
        println!("\n################ shape: {shape} logs per block ################");
        println!("\n== 1. generating the chain");
        let chain = generate(&args, shape).await?;

        let mut ceiling = None;
        if !args.skip_ceiling {
            println!("\n== 2. ceiling: eth_getLogs served by anvil on the same chain");
            ceiling = Some(measure_ceiling(&args, &chain).await?);
        }
        if args.ceiling_only {
            continue;
        }
        for &mode in &args.mode {
            for &providers in &args.providers {
                for &bloom in &args.bloom_check {
                    println!(
                        "\n== 3. indexer, {} mode ({}), {providers} healthy RPC provider(s), \
                         bloom check {}",
                        mode.label(),
                        match mode {
                            Mode::Run => "tripwire-indexer run, embedded Kafka broker",
                            Mode::Split =>
                                "tripwire-indexer ingest -> Kafka -> tripwire-indexer sink",
                        },
                        bloom.label()
                    );
                    let dir = run_dir.join(format!(
                        "lpb-{shape}-{}-providers-{providers}-bloom-{}",
                        mode.label(),
                        bloom.label()
                    ));
                    std::fs::create_dir_all(&dir)?;
                    let run =
                        match run_indexer(&args, &chain, &indexer, &dir, mode, providers, bloom)
                            .await
                        {
                            Ok(run) => run,
                            Err(e) => {
                                println!("FAIL  the indexer run did not complete: {e:#}");
                                table.push(Row::failed(shape, mode, providers, bloom, &e));
                                continue;
                            }
                        };
                    summary(&args, &chain, ceiling.as_ref(), &run);
                    table.push(Row::of(&chain, mode, providers, bloom, &run));
                }
            }
        }
    }
    print_table(&table);
    Ok(())
}

/// One line of the final table: one shape, mode, provider count and bloom setting.
struct Row {
    shape: u64,
    mode: Mode,
    providers: usize,
    bloom: BloomCheck,
    /// logs/s end to end (None: failed or staged).
    rate: Option<f64>,
    /// (process, peak RSS MB, CPU-s per 1M logs).
    procs: Vec<(&'static str, Option<f64>, Option<f64>)>,
    /// CPU-s per 1M logs of anvil and of Postgres (all backends).
    anvil_cpu: Option<f64>,
    postgres_cpu: Option<f64>,
    complete: bool,
    failure: Option<String>,
}

impl Row {
    fn of(chain: &Chain, mode: Mode, providers: usize, bloom: BloomCheck, run: &IndexerRun) -> Row {
        let per_m = |s: f64| s * 1e6 / chain.logs as f64;
        Row {
            shape: chain.logs_per_block,
            mode,
            providers,
            bloom,
            rate: run.end_to_end.map(|s| chain.logs as f64 / s),
            procs: run
                .procs
                .iter()
                .map(|(role, hwm, cpu)| (*role, *hwm, cpu.map(per_m)))
                .collect(),
            anvil_cpu: run.anvil_cpu_s.map(per_m),
            postgres_cpu: run.postgres_cpu_s.map(per_m),
            complete: run.rows as u64 == chain.logs && run.offset_resets == 0,
            failure: None,
        }
    }

    fn failed(
        shape: u64,
        mode: Mode,
        providers: usize,
        bloom: BloomCheck,
        e: &anyhow::Error,
    ) -> Row {
        let first = format!("{e:#}");
        Row {
            shape,
            mode,
            providers,
            bloom,
            rate: None,
            procs: Vec::new(),
            anvil_cpu: None,
            postgres_cpu: None,
            complete: false,
            failure: Some(
                first
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect(),
            ),
        }
    }
}

fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let f = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.0}{unit}"));
    let f1 = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
    println!("\n======================= backfill benchmark: all runs =======================");
    println!(
        "{:>9} {:<6} {:>4} {:>5} {:>13}  {:<58} {:>7} {:>9}",
        "logs/blk",
        "mode",
        "prov",
        "bloom",
        "end to end",
        "process: peak RSS, CPU-s per 1M logs",
        "anvil",
        "postgres"
    );
    for r in rows {
        let procs: Vec<String> = r
            .procs
            .iter()
            .map(|(role, hwm, cpu)| format!("{role}: {}, {} s", f(*hwm, " MB"), f1(*cpu)))
            .collect();
        let rate = match (&r.failure, r.complete) {
            (Some(_), _) => "FAILED".to_owned(),
            (None, false) => format!("{} (rows lost)", f(r.rate, "/s")),
            (None, true) => f(r.rate, " logs/s"),
        };
        println!(
            "{:>9} {:<6} {:>4} {:>5} {:>13}  {:<58} {:>7} {:>9}",
            r.shape,
            r.mode.label(),
            r.providers,
            r.bloom.label(),
            rate,
            procs.join("; "),
            f1(r.anvil_cpu),
            f1(r.postgres_cpu)
        );
        if let Some(why) = &r.failure {
            println!("{:>9} {why}", "");
        }
    }
    println!(
        "(CPU-s per 1M logs: CPU seconds the process used over the run, per million logs indexed)"
    );
    println!("============================================================================");
}

// ---------------------------------------------------------------------------------------------
// The indexer binary and the run folder
// ---------------------------------------------------------------------------------------------

/// The release `tripwire-indexer`: `explicit` if given; else, under `cargo run` (which sets
/// `CARGO`), built with `cargo build --release -p tripwire-indexer` first (a no-op when up to
/// date), then found in the `release` folder of the target directory this binary runs from.
fn indexer_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--indexer-bin {} does not exist", p.display());
        }
        return Ok(p.to_owned());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let profile_dir = exe.parent().context("executable has no folder")?;
    let target_dir = profile_dir
        .parent()
        .context("executable is not inside a target folder")?;
    let candidate = target_dir.join("release").join("tripwire-indexer");
    if let Some(cargo) = std::env::var_os("CARGO") {
        println!(
            "building the release tripwire-indexer (cargo build --release -p tripwire-indexer)"
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "tripwire-indexer"])
            .current_dir(testkit::repo_root())
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p tripwire-indexer failed ({status})");
        }
    }
    if std::env::var_os("CARGO").is_none() && candidate.is_file() {
        let built = std::fs::metadata(&candidate)
            .and_then(|m| m.modified())
            .ok();
        let root = testkit::repo_root();
        let newest = ["indexer/src", "schema/src", "schema/migrations"]
            .iter()
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max();
        if let (Some(built), Some(newest)) = (built, newest) {
            if newest > built {
                println!(
                    "WARNING: {} is older than the indexer sources; rebuild it with `cargo build \
                     --release -p tripwire-indexer` (or run this benchmark through `cargo run`)",
                    candidate.display()
                );
            }
        }
    }
    if !candidate.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p tripwire-indexer`, run this \
             benchmark through `cargo run --release -p tripwire-benches --bin \
             tripwire-bench-backfill`, or pass --indexer-bin",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// Latest modification time of any file below `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// `<target>/bench-backfill/<unix time>-<pid>`, next to the binaries.
fn run_dir(indexer: &Path) -> Result<PathBuf> {
    let base = indexer
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("bench-backfill"))
        .unwrap_or_else(|| std::env::temp_dir().join("tripwire-bench-backfill"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = base.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// 1. The chain
// ---------------------------------------------------------------------------------------------

struct Chain {
    anvil: Anvil,
    spammer: Address,
    /// Head block number: the last block the indexer has to reach.
    head: u64,
    /// Blocks carrying Spammer logs.
    log_blocks: u64,
    logs: u64,
    logs_per_block: u64,
}

async fn generate(args: &Args, logs_per_block: u64) -> Result<Chain> {
    let started = Instant::now();
    let txs_per_block = logs_per_block.div_ceil(MAX_LOGS_PER_TX);
    let per_tx = logs_per_block.div_ceil(txs_per_block);
    // A generous upper bound of a transaction's gas: ~1,450 gas per log plus the base cost.
    let tx_gas_bound = per_tx * 2_000 + 100_000;
    let block_gas = (txs_per_block * tx_gas_bound + 1_000_000).max(30_000_000);
    let anvil = Anvil::builder()
        .no_mining(true)
        .block_gas_limit(Some(block_gas))
        // Logs and headers are all the indexer reads; without old states kept (and written to
        // disk, several GB per chain) anvil generates the chain faster.
        .arg("--prune-history")
        .spawn()
        .await
        .context("starting anvil")?;
    let (spammer, deployed) = anvil
        .deploy_with_receipt("Spammer", &[])
        .await
        .context("deploying Spammer")?;
    let from = format!("{:#x}", anvil.accounts()[0]);
    let to = format!("{spammer:#x}");
    let calldata =
        |n: u64| testkit::anvil::hex_bytes(&abi::call("emitMany(uint256)", &[abi::uint(n)]));
    // Estimated once (against the latest block, which is all emitMany depends on), with headroom.
    let est = parse_quantity(
        &anvil
            .rpc(
                "eth_estimateGas",
                json!([{"from": from, "to": to, "data": calldata(per_tx)}]),
            )
            .await
            .context("eth_estimateGas of emitMany")?,
    )?;
    let tx_gas = (est + est / 5 + 10_000).min(tx_gas_bound);
    println!(
        "anvil {} (block gas limit {block_gas}); Spammer at {to} (block {}); emitMany({per_tx}) \
         estimated at {est} gas ({:.0} gas/log), {txs_per_block} tx(s) per block",
        anvil.url(),
        deployed.block_number,
        est as f64 / per_tx as f64
    );

    let mut remaining = args.logs;
    let mut log_blocks = 0u64;
    let total_blocks = args.logs.div_ceil(logs_per_block);
    let mut next_report = Instant::now() + Duration::from_secs(5);
    while remaining > 0 {
        let in_block = remaining.min(logs_per_block);
        let mut left = in_block;
        while left > 0 {
            let n = left.min(per_tx);
            anvil
                .send_tx(
                    json!({"from": from, "to": to, "data": calldata(n), "gas": quantity(tx_gas)}),
                )
                .await
                .context("sending emitMany")?;
            left -= n;
        }
        // Mined with a separate call: in one batch anvil may mine before the pool has the tx.
        anvil.rpc("evm_mine", json!([])).await.context("evm_mine")?;
        remaining -= in_block;
        log_blocks += 1;
        if Instant::now() >= next_report {
            println!(
                "  {log_blocks}/{total_blocks} blocks, {} logs, {:.0} s",
                args.logs - remaining,
                started.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(5);
        }
    }
    let head = anvil.block_number().await?;
    // Spot check: the last block holds the expected number of logs (all transactions made it).
    let last = anvil
        .get_logs(json!({"fromBlock": quantity(head), "toBlock": quantity(head), "address": to}))
        .await?;
    let expected_last = match args.logs % logs_per_block {
        0 => logs_per_block,
        r => r,
    };
    if last.len() as u64 != expected_last {
        bail!(
            "block {head} has {} logs, expected {expected_last} (did a transaction revert or not fit?)",
            last.len()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} logs in {log_blocks} blocks (head {head}) in {secs:.1} s ({:.0} logs/s; not part of the measurement)",
        args.logs,
        args.logs as f64 / secs
    );
    Ok(Chain {
        anvil,
        spammer,
        head,
        log_blocks,
        logs: args.logs,
        logs_per_block,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. The ceiling
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Rate {
    logs: u64,
    secs: f64,
    bytes: u64,
}

impl Rate {
    fn per_s(&self) -> f64 {
        self.logs as f64 / self.secs
    }
}

struct Ceiling {
    /// Plain `eth_getLogs`, one request at a time, the indexer's range size: THE ceiling.
    sequential: Rate,
    /// Plain `eth_getLogs` with several concurrent fetchers.
    concurrent: Rate,
    /// The indexer's request shape: `range_blocks` headers plus the logs in one JSON-RPC batch.
    batch_shaped: Rate,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Logs,
    HeadersAndLogs,
}

async fn measure_ceiling(args: &Args, chain: &Chain) -> Result<Ceiling> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let span = ceiling_span(args, chain);
    let ranges: Vec<(u64, u64)> = (0..=chain.head)
        .step_by(span as usize)
        .map(|from| (from, (from + span - 1).min(chain.head)))
        .collect();
    let runs = [
        ("sequential eth_getLogs", 1, Shape::Logs),
        ("concurrent eth_getLogs", args.fetchers.max(1), Shape::Logs),
        ("sequential headers+logs batch", 1, Shape::HeadersAndLogs),
    ];
    let mut out = Vec::new();
    for (label, fetchers, shape) in runs {
        let rate = fetch_all(&client, chain, &ranges, fetchers, shape).await?;
        if rate.logs != chain.logs {
            bail!(
                "{label}: counted {} logs, the chain has {}",
                rate.logs,
                chain.logs
            );
        }
        println!(
            "  {label:<32} {fetchers} fetcher(s), {} requests of {} blocks: {:>9.0} logs/s ({:.2} s, {:.0} MB/s, {:.2} MB per request)",
            ranges.len(),
            span,
            rate.per_s(),
            rate.secs,
            rate.bytes as f64 / 1e6 / rate.secs,
            rate.bytes as f64 / 1e6 / ranges.len() as f64
        );
        out.push(rate);
    }
    Ok(Ceiling {
        sequential: out[0],
        concurrent: out[1],
        batch_shaped: out[2],
    })
}

/// Blocks per request of the ceiling: `--ceiling-range-blocks`, else about 5,000 logs' worth.
fn ceiling_span(args: &Args, chain: &Chain) -> u64 {
    args.ceiling_range_blocks
        .unwrap_or_else(|| (5_000 / chain.logs_per_block).max(1))
}

/// Fetches every range with `fetchers` concurrent clients and counts the logs.
async fn fetch_all(
    client: &reqwest::Client,
    chain: &Chain,
    ranges: &[(u64, u64)],
    fetchers: usize,
    shape: Shape,
) -> Result<Rate> {
    let ranges = Arc::new(ranges.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let logs = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let url = chain.anvil.url();
    let address = format!("{:#x}", chain.spammer);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..fetchers {
        let (client, ranges, next, logs, bytes, url, address) = (
            client.clone(),
            ranges.clone(),
            next.clone(),
            logs.clone(),
            bytes.clone(),
            url.clone(),
            address.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(from, to)) = ranges.get(i) else {
                    return anyhow::Ok(());
                };
                let get_logs = json!({
                    "jsonrpc": "2.0", "id": 0, "method": "eth_getLogs",
                    "params": [{"fromBlock": quantity(from), "toBlock": quantity(to), "address": [address]}],
                });
                let body = match shape {
                    Shape::Logs => get_logs,
                    Shape::HeadersAndLogs => {
                        let mut batch: Vec<Value> = (from..=to)
                            .map(|n| {
                                json!({"jsonrpc": "2.0", "id": n + 1, "method": "eth_getBlockByNumber",
                                       "params": [quantity(n), false]})
                            })
                            .collect();
                        batch.push(get_logs);
                        Value::Array(batch)
                    }
                };
                let response = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("eth_getLogs {from}..={to}"))?;
                let status = response.status();
                let body = response.bytes().await?;
                if !status.is_success() {
                    bail!("eth_getLogs {from}..={to}: HTTP {status}");
                }
                let n = rpc::count_logs(&body)
                    .with_context(|| format!("eth_getLogs {from}..={to}"))?;
                logs.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.context("fetcher panicked")??;
    }
    Ok(Rate {
        logs: logs.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
        bytes: bytes.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------------
// 3. The indexer
// ---------------------------------------------------------------------------------------------

/// A `tripwire-indexer` child process writing its output to a file.
struct Proc {
    child: Child,
    role: &'static str,
    log: PathBuf,
    /// Peak RSS read just before it was stopped (`VmHWM`), in KiB.
    hwm_kb: Option<u64>,
    /// CPU time used, read just before it was stopped, in ticks.
    cpu_ticks: Option<u64>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(bin: &Path, config: &Path, role: &'static str, dir: &Path, log: &str) -> Result<Proc> {
        let path = dir.join(format!("{role}.log"));
        let file = std::fs::File::create(&path)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawning {} {role}", bin.display()))?;
        Ok(Proc {
            child,
            role,
            log: path,
            hwm_kb: None,
            cpu_ticks: None,
            status: None,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.status = Some(status);
            bail!(
                "{} exited early with {status}; last lines of {}:\n{}",
                self.role,
                self.log.display(),
                self.tail(30)
            );
        }
        Ok(())
    }

    /// Reads peak RSS and CPU time (they vanish with the process), then SIGTERM and wait.
    fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.hwm_kb = procfs::mem(self.pid()).map(|m| m.hwm_kb);
        self.cpu_ticks = procfs::cpu_ticks(self.pid());
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait()?;
                self.status = Some(status);
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; killed",
                    self.role
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrapes `/metrics` (the address is in the process's log), saves it beside the log and
    /// prints where the process spent its time according to its own histograms.
    async fn report_metrics(&self, wall: f64) {
        let text = match self.scrape().await {
            Ok(t) => t,
            Err(e) => {
                println!("  ({} /metrics not available: {e:#})", self.role);
                return;
            }
        };
        let _ = std::fs::write(self.log.with_extension("metrics.txt"), &text);
        let metric_of = |stage: &str| format!("stage=\"{stage}\"");
        if self.role == "ingest" || self.role == "run" {
            let stage = metric_of("ingest");
            let steps = metric_sum(&text, "tripwire_batch_duration_seconds_count", &stage);
            let step_s = metric_sum(&text, "tripwire_batch_duration_seconds_sum", &stage);
            let batch = "method=\"batch:eth_getLogs\"";
            let rpc_s = metric_sum(&text, "tripwire_rpc_latency_seconds_sum", batch);
            let rpc_n = metric_sum(&text, "tripwire_rpc_latency_seconds_count", batch);
            // The ranges of one step are fetched concurrently: the fetch phase of a step lasts
            // about one request's latency, and the rest of the step is local work.
            let per_rpc = rpc_s / rpc_n.max(1.0);
            let fetch_s = (per_rpc * steps).min(step_s);
            println!(
                "  ingest metrics: {steps:.0} steps of {:.1} ranges ({:.1} ms per step); \
                 {rpc_n:.0} range requests of {:.1} ms mean latency incl. decoding. Wall time: \
                 fetch phase ~{fetch_s:.2} s ({:.0}%), build + publish + Kafka acks + cursor save \
                 ~{:.2} s ({:.0}%), outside steps (startup, polling, waiting for the sink) {:.2} s",
                rpc_n / steps.max(1.0),
                1e3 * step_s / steps.max(1.0),
                1e3 * per_rpc,
                100.0 * fetch_s / step_s.max(1e-9),
                step_s - fetch_s,
                100.0 * (step_s - fetch_s) / step_s.max(1e-9),
                (wall - step_s).max(0.0)
            );
            let range = metric_sum(&text, "tripwire_rpc_range_blocks", "");
            let density = metric_sum(&text, "tripwire_rpc_range_logs_per_block", "");
            let lead = metric_sum(&text, "tripwire_ingest_lead_bytes", "");
            println!(
                "  ingest ranges: {range:.0} blocks per eth_getLogs at the end, {density:.0} logs \
                 per block estimated; lead after the last publish {lead:.0} bytes"
            );
        }
        if self.role == "sink" || self.role == "run" {
            let stage = metric_of("sink");
            let steps = metric_sum(&text, "tripwire_batch_duration_seconds_count", &stage);
            let step_s = metric_sum(&text, "tripwire_batch_duration_seconds_sum", &stage);
            let records = metric_sum(&text, "tripwire_records_consumed_total", "");
            println!(
                "  sink metrics: {steps:.0} batches of {:.0} records on average; write_batch \
                 (Postgres) {step_s:.2} s ({:.0}% of {wall:.1} s); the rest, {:.2} s, is startup, \
                 consuming and parsing",
                records / steps.max(1.0),
                100.0 * step_s / wall,
                (wall - step_s).max(0.0)
            );
        }
    }

    async fn scrape(&self) -> Result<String> {
        let log = std::fs::read_to_string(&self.log)?;
        let addr = log
            .lines()
            .find_map(|l| l.split("bound=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .context("no `bound=` address in the log")?;
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await?
            .text()
            .await?;
        Ok(text)
    }

    fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `perf record` attached to a process until [`PerfRecord::stop`].
struct PerfRecord {
    child: Child,
    out: PathBuf,
}

impl PerfRecord {
    fn attach(pid: u32, out: PathBuf) -> Result<PerfRecord> {
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "250",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record (is perf installed?)")?;
        Ok(PerfRecord { child, out })
    }

    fn stop(mut self) {
        // SAFETY: plain kill(2) on our own child's pid; perf writes its file on SIGINT.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        println!(
            "  perf profile: {} (perf report -i <file> --no-children)",
            self.out.display()
        );
    }
}

/// Low and high watermark of partition 0 of `topic`: a low watermark above 0 means the broker
/// dropped the oldest records (the mock broker keeps only about 5 MiB per partition).
async fn watermarks(brokers: &str, topic: &str) -> Result<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "tripwire-bench-watermarks")
            .create()?;
        Ok(consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10))?)
    })
    .await?
}

/// Lines of the sink's log reporting that librdkafka jumped over records it could not fetch.
fn offset_resets(sink: &Proc) -> usize {
    std::fs::read_to_string(&sink.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("offset reset") || l.contains("Offset out of range"))
        .count()
}

/// CPU time of the processes involved over one measured window, against the machine's capacity.
struct CpuMeter {
    started: Instant,
    system: Option<(u64, u64)>,
    anvil_pid: Option<u32>,
    anvil: u64,
    this: u64,
    postgres: HashMap<u32, u64>,
}

struct CpuReport {
    wall: f64,
    /// (name, CPU seconds).
    parts: Vec<(String, f64)>,
    /// Busy CPU seconds of the whole machine in the window.
    system_busy: Option<f64>,
}

impl CpuMeter {
    fn start(anvil_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            system: procfs::system_ticks(),
            anvil_pid,
            anvil: anvil_pid.and_then(procfs::cpu_ticks).unwrap_or(0),
            this: procfs::cpu_ticks(std::process::id()).unwrap_or(0),
            postgres: procfs::cpu_ticks_by_name("postgres"),
        }
    }

    /// `children`: (label, CPU ticks since they started, all inside the window).
    fn finish(&self, children: &[(&str, u64)]) -> CpuReport {
        let tps = procfs::ticks_per_second() as f64;
        let secs = |t: u64| t as f64 / tps;
        let mut parts: Vec<(String, f64)> = children
            .iter()
            .map(|(l, t)| (format!("indexer {l}"), secs(*t)))
            .collect();
        if let Some(pid) = self.anvil_pid {
            let now = procfs::cpu_ticks(pid).unwrap_or(self.anvil);
            parts.push(("anvil".into(), secs(now.saturating_sub(self.anvil))));
        }
        let pg = procfs::ticks_between(&self.postgres, &procfs::cpu_ticks_by_name("postgres"));
        parts.push(("postgres (all backends)".into(), secs(pg)));
        let this = procfs::cpu_ticks(std::process::id()).unwrap_or(self.this);
        parts.push((
            "this benchmark (Kafka mock broker, polling)".into(),
            secs(this.saturating_sub(self.this)),
        ));
        let system_busy = match (self.system, procfs::system_ticks()) {
            (Some((b0, _)), Some((b1, _))) => Some(secs(b1.saturating_sub(b0))),
            _ => None,
        };
        CpuReport {
            wall: self.started.elapsed().as_secs_f64(),
            parts,
            system_busy,
        }
    }
}

impl CpuReport {
    /// CPU seconds of the first part whose name starts with `prefix`.
    fn part(&self, prefix: &str) -> Option<f64> {
        self.parts
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| *s)
    }

    fn print(&self, title: &str) {
        let cores = procfs::cores() as f64;
        println!(
            "  CPU during {title} ({:.1} s wall x {cores:.0} cores = {:.1} core-s):",
            self.wall,
            self.wall * cores
        );
        let mut ours = 0.0;
        for (name, s) in &self.parts {
            ours += s;
            println!(
                "    {name:<44} {s:>7.1} core-s  ({:>5.1}% of one core)",
                100.0 * s / self.wall
            );
        }
        if let Some(busy) = self.system_busy {
            println!(
                "    {:<44} {:>7.1} core-s  (machine busy {:.0}% of capacity)",
                "anything else on the machine",
                (busy - ours).max(0.0),
                100.0 * busy / (self.wall * cores)
            );
        }
    }
}

/// What the indexer run measured.
#[derive(Default)]
struct IndexerRun {
    /// Pipelined: from spawning both processes until Postgres holds the head.
    end_to_end: Option<f64>,
    /// Until the ingest cursor reached the head (pipelined: with the sink running alongside).
    ingest: Option<f64>,
    /// Staged only: the sink alone, from its start until Postgres holds the head.
    sink: Option<f64>,
    /// Per indexer process: (role, peak RSS in MB, CPU seconds over the run).
    procs: Vec<(&'static str, Option<f64>, Option<f64>)>,
    /// CPU seconds over the pipelined run of anvil and of every Postgres backend.
    anvil_cpu_s: Option<f64>,
    postgres_cpu_s: Option<f64>,
    anvil_hwm_mb: Option<f64>,
    this_hwm_mb: Option<f64>,
    exit_ok: Vec<(&'static str, Option<ExitStatus>)>,
    rows: i64,
    block_rows: i64,
    /// Records in the topic at the end (high watermark) and the first one still held.
    kafka_high: i64,
    kafka_low: i64,
    /// Staged: records the broker had already dropped when the sink started.
    dropped_before_sink: i64,
    /// Times the sink's consumer skipped records the broker no longer had.
    offset_resets: usize,
    mock: bool,
}

#[allow(clippy::too_many_arguments)]
fn config_text(
    args: &Args,
    chain: &Chain,
    db: &TestDb,
    brokers: &str,
    topic: &str,
    providers: usize,
    bloom: BloomCheck,
    mock_broker: bool,
) -> Result<String> {
    let mut props = String::new();
    for p in &args.kafka_props {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--kafka-prop {p:?} is not KEY=VALUE"))?;
        writeln!(props, "{k:?} = {v:?}")?;
    }
    if !props.is_empty() {
        props.insert_str(0, "[kafka.properties]\n");
    }
    // Only what the benchmark must set, and what the command line gave: the rest is the
    // indexer's defaults.
    let line = |key: &str, v: Option<String>| v.map_or(String::new(), |v| format!("{key} = {v}\n"));
    let lead = if args.staged {
        "max_lead_records = 0\nmax_lead_bytes = 0\n".to_owned()
    } else {
        // The indexer takes any broker but `embedded` for a real cluster (no lead limit by
        // default); the mock broker of this process keeps 5 MiB per partition like the embedded
        // one, so it gets the embedded broker's default limit.
        let bytes = args.max_lead_bytes.or(mock_broker.then_some(4 << 20));
        line(
            "max_lead_records",
            args.max_lead_records.map(|v| v.to_string()),
        ) + &line("max_lead_bytes", bytes.map(|v: u64| v.to_string()))
    };
    let sink = line("batch_records", args.batch_records.map(|v| v.to_string()))
        + &line("batch_wait_ms", args.batch_wait_ms.map(|v| v.to_string()));
    let chain_opts = line("range_blocks", args.range_blocks.map(|v| v.to_string()))
        + &line(
            "ranges_in_flight",
            args.ranges_in_flight.map(|v| v.to_string()),
        );
    Ok(format!(
        r#"# Written by tripwire-bench-backfill.
[postgres]
url = "{pg}"

[kafka]
brokers = "{brokers}"
topic = "{topic}"
{lead}{props}
[server]
listen = "127.0.0.1:0"
lag_threshold_blocks = 100000000

[sink]
consumer = "bench-sink"
{sink}
[[chains]]
name = "bench"
chain_id = {chain_id}
rpc_urls = ["{rpc}"]
{providers}
start_block = 0
poll_interval_ms = 100
check_logs_bloom = {bloom}
{chain_opts}
[[contracts]]
name = "spammer"
chain = "bench"
addresses = ["{spammer:#x}"]
events = ["{PING}"]
"#,
        pg = db.url(),
        bloom = bloom == BloomCheck::On,
        chain_id = CHAIN_ID,
        rpc = chain.anvil.url(),
        providers = if providers > 1 {
            let more: Vec<String> = (2..=providers)
                .map(|i| {
                    format!(
                        "{{ url = \"{}\", name = \"anvil-{i}\" }}",
                        chain.anvil.url()
                    )
                })
                .collect();
            format!("providers = [{}]", more.join(", "))
        } else {
            String::new()
        },
        spammer = chain.spammer,
    ))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Until {
    Ingested,
    Synced,
}

/// Polls `indexer_state` until the ingest cursor (or the sink's) reaches the head. Returns the
/// seconds since `t0` at which the ingest cursor, and then the sink cursor, reached it.
async fn wait_for(
    db: &TestDb,
    head: u64,
    procs: &mut [&mut Proc],
    until: Until,
    t0: Instant,
    timeout: Duration,
) -> Result<(Option<f64>, Option<f64>)> {
    let mut ingested_at = None;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    loop {
        for p in procs.iter_mut() {
            p.ensure_running()?;
        }
        let row: Option<(Option<i64>, Option<i64>)> = match sqlx::query_as(
            "SELECT last_ingested_block, last_synced_block FROM indexer_state WHERE chain_id = $1",
        )
        .bind(CHAIN_ID as i64)
        .fetch_optional(db.pool())
        .await
        {
            Ok(row) => row,
            // The processes apply the migrations when they start: no view yet.
            Err(_) if t0.elapsed() < Duration::from_secs(60) => None,
            Err(e) => return Err(e).context("polling indexer_state"),
        };
        let (ingested, synced) = row.map_or((-1, -1), |(i, s)| (i.unwrap_or(-1), s.unwrap_or(-1)));
        let now = t0.elapsed().as_secs_f64();
        if ingested_at.is_none() && ingested >= head as i64 {
            ingested_at = Some(now);
            println!("  {now:>6.1} s  ingest cursor reached the head (block {head})");
        }
        match until {
            Until::Ingested if ingested_at.is_some() => return Ok((ingested_at, None)),
            Until::Synced if synced >= head as i64 => {
                println!("  {now:>6.1} s  Postgres synced to the head (block {head})");
                return Ok((ingested_at, Some(now)));
            }
            _ => {}
        }
        if Instant::now() >= next_report {
            let rss: Vec<String> = procs
                .iter()
                .map(|p| {
                    let m = procfs::mem(p.pid()).unwrap_or_default();
                    format!("{} RSS {:.0} MB", p.role, m.rss_kb as f64 / 1024.0)
                })
                .collect();
            println!(
                "  {now:>6.1} s  ingested block {ingested}, synced block {synced} of {head}; {}",
                rss.join(", ")
            );
            next_report += Duration::from_secs(5);
        }
        if t0.elapsed() > timeout {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {} ({})\n{}", p.role, p.log.display(), p.tail(20)))
                .collect();
            bail!(
                "not done within {timeout:?}: ingested {ingested}, synced {synced}, head {head}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process that did not stop cleanly is a FAIL line in the summary, not an abort.
fn warn_on(r: Result<ExitStatus>) {
    if let Err(e) = r {
        println!("  WARNING: {e:#}");
    }
}

/// Sum of the samples of `name` whose labels contain `label` (Prometheus text format).
fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|k| k as f64 / 1024.0)
}

async fn run_indexer(
    args: &Args,
    chain: &Chain,
    bin: &Path,
    dir: &Path,
    mode: Mode,
    providers: usize,
    bloom: BloomCheck,
) -> Result<IndexerRun> {
    let db = TestDb::create()
        .await
        .context("creating the Postgres database")?;
    // Run mode: the indexer starts its own embedded broker.
    let kafka = match mode {
        Mode::Split => Some(TestKafka::start().context("starting Kafka")?),
        Mode::Run => None,
    };
    let topic = match &kafka {
        Some(k) => k.unique_topic("tripwire-bench"),
        None => "tripwire-bench".to_owned(),
    };
    if let Some(k) = &kafka {
        k.create_topic(&topic, 1).await?;
    }
    let brokers = kafka
        .as_ref()
        .map_or("embedded".to_owned(), |k| k.brokers());
    println!(
        "Postgres database {}; Kafka {} ({}), topic {topic}",
        db.name(),
        brokers,
        match &kafka {
            None => "the embedded broker inside tripwire-indexer run",
            Some(k) if k.is_mock() => {
                "librdkafka mock broker inside this process; it keeps only ~5 MiB per partition"
            }
            Some(_) => "KAFKA_BROKERS",
        }
    );
    let config = dir.join("tripwire.toml");
    std::fs::write(
        &config,
        config_text(
            args,
            chain,
            &db,
            &brokers,
            &topic,
            providers,
            bloom,
            kafka.as_ref().is_some_and(TestKafka::is_mock),
        )?,
    )?;
    let timeout = Duration::from_secs(args.timeout_s);
    let head = chain.head;
    let mut run = IndexerRun {
        mock: kafka.as_ref().is_none_or(TestKafka::is_mock),
        ..IndexerRun::default()
    };
    let log = args.indexer_log.as_str();
    let perf = |p: &Proc| -> Result<Option<PerfRecord>> {
        if !args.perf {
            return Ok(None);
        }
        PerfRecord::attach(p.pid(), dir.join(format!("{}.perf.data", p.role))).map(Some)
    };
    let secs = |ticks: u64| ticks as f64 / procfs::ticks_per_second() as f64;

    if args.staged {
        // Stage 1: ingest alone until its cursor reaches the head.
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let mut ingest = Proc::spawn(bin, &config, "ingest", dir, log)?;
        let prof = perf(&ingest)?;
        let (ingested, _) =
            wait_for(&db, head, &mut [&mut ingest], Until::Ingested, t0, timeout).await?;
        run.ingest = ingested;
        let ingest_cpu = procfs::cpu_ticks(ingest.pid()).unwrap_or(0);
        cpu.finish(&[("ingest", ingest_cpu)])
            .print("stage 1, ingest alone");
        ingest
            .report_metrics(ingested.unwrap_or_else(|| t0.elapsed().as_secs_f64()))
            .await;
        if let Some(p) = prof {
            p.stop();
        }
        let stopped = ingest.stop(Duration::from_secs(60));
        run.procs
            .push(("ingest", mb(ingest.hwm_kb), Some(secs(ingest_cpu))));
        run.exit_ok.push(("ingest", ingest.status));
        warn_on(stopped);
        let (low, high) = watermarks(&brokers, &topic).await?;
        println!("  topic holds offsets {low}..{high}");
        run.dropped_before_sink = low;
        if low > 0 {
            println!(
                "  WARNING: the broker already dropped the first {low} of {high} records (mock \
                 retention): the sink stage only sees the rest"
            );
        }

        // Stage 2: the sink alone drains the topic into Postgres.
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let mut sink = Proc::spawn(bin, &config, "sink", dir, log)?;
        let prof = perf(&sink)?;
        let (_, synced) = wait_for(&db, head, &mut [&mut sink], Until::Synced, t0, timeout).await?;
        run.sink = synced;
        let sink_cpu = procfs::cpu_ticks(sink.pid()).unwrap_or(0);
        cpu.finish(&[("sink", sink_cpu)])
            .print("stage 2, sink alone");
        sink.report_metrics(t0.elapsed().as_secs_f64()).await;
        if let Some(p) = prof {
            p.stop();
        }
        let stopped = sink.stop(Duration::from_secs(60));
        run.procs
            .push(("sink", mb(sink.hwm_kb), Some(secs(sink_cpu))));
        run.exit_ok.push(("sink", sink.status));
        run.offset_resets = offset_resets(&sink);
        warn_on(stopped);
    } else {
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let mut procs = match mode {
            Mode::Run => vec![Proc::spawn(bin, &config, "run", dir, log)?],
            Mode::Split => vec![
                Proc::spawn(bin, &config, "ingest", dir, log)?,
                Proc::spawn(bin, &config, "sink", dir, log)?,
            ],
        };
        let mut profs = Vec::new();
        for p in &procs {
            profs.push(perf(p)?);
        }
        let mut refs: Vec<&mut Proc> = procs.iter_mut().collect();
        let waited = wait_for(&db, head, &mut refs, Until::Synced, t0, timeout).await;
        let (ingested, synced) = match waited {
            Ok(w) => w,
            Err(e) => {
                for p in &mut procs {
                    let _ = p.stop(Duration::from_secs(10));
                }
                return Err(e);
            }
        };
        run.ingest = ingested;
        run.end_to_end = synced;
        // All read before any is stopped.
        let ticks: Vec<u64> = procs
            .iter()
            .map(|p| procfs::cpu_ticks(p.pid()).unwrap_or(0))
            .collect();
        let labelled: Vec<(&str, u64)> = procs
            .iter()
            .map(|p| p.role)
            .zip(ticks.iter().copied())
            .collect();
        let report = cpu.finish(&labelled);
        report.print("the pipelined run");
        run.anvil_cpu_s = report.part("anvil");
        run.postgres_cpu_s = report.part("postgres");
        let wall = t0.elapsed().as_secs_f64();
        for p in &procs {
            let until = if p.role == "ingest" {
                ingested.unwrap_or(wall)
            } else {
                wall
            };
            p.report_metrics(until).await;
        }
        for p in profs.into_iter().flatten() {
            p.stop();
        }
        for (p, t) in procs.iter_mut().zip(ticks) {
            let stopped = p.stop(Duration::from_secs(60));
            run.procs.push((p.role, mb(p.hwm_kb), Some(secs(t))));
            run.exit_ok.push((p.role, p.status));
            if p.role != "ingest" {
                run.offset_resets = offset_resets(p);
            }
            warn_on(stopped);
        }
    }
    if kafka.is_some() {
        (run.kafka_low, run.kafka_high) = watermarks(&brokers, &topic).await?;
    }
    run.anvil_hwm_mb = chain
        .anvil
        .pid()
        .and_then(procfs::mem)
        .map(|m| m.hwm_kb as f64 / 1024.0);
    run.this_hwm_mb = procfs::mem(std::process::id()).map(|m| m.hwm_kb as f64 / 1024.0);
    run.rows = sqlx::query_scalar("SELECT count(*) FROM logs")
        .fetch_one(db.pool())
        .await?;
    run.block_rows = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(db.pool())
        .await?;
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn summary(args: &Args, chain: &Chain, ceiling: Option<&Ceiling>, run: &IndexerRun) {
    let logs = chain.logs as f64;
    let rate = |secs: Option<f64>| secs.map(|s| logs / s);
    let fmt_rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.0} logs/s"));
    let fmt_mb = |m: Option<f64>| m.map_or("n/a".to_owned(), |m| format!("{m:.0} MB"));
    let e2e = rate(run.end_to_end);
    let ceil = ceiling.map(|c| c.sequential.per_s());

    println!("\n================ A6 backfill benchmark: summary ================");
    println!("logs                      {}", chain.logs);
    println!(
        "blocks                    {} (head {}; {} with logs, {} logs/block; range_blocks {})",
        chain.head + 1,
        chain.head,
        chain.log_blocks,
        chain.logs_per_block,
        args.range_blocks
            .map_or("at the indexer's default".to_owned(), |r| r.to_string()),
    );
    if let Some(c) = ceiling {
        println!(
            "ceiling                   {} (sequential eth_getLogs, {} blocks per request)",
            fmt_rate(Some(c.sequential.per_s())),
            ceiling_span(args, chain)
        );
        println!(
            "  {} concurrent fetchers   {} (informational)",
            args.fetchers,
            fmt_rate(Some(c.concurrent.per_s()))
        );
        println!(
            "  headers+logs batch      {} (informational: the indexer's request shape)",
            fmt_rate(Some(c.batch_shaped.per_s()))
        );
    }
    if args.staged {
        println!(
            "ingest alone              {} ({:.1} s, until the ingest cursor reached the head)",
            fmt_rate(rate(run.ingest)),
            run.ingest.unwrap_or(f64::NAN)
        );
        println!(
            "sink alone                {} ({:.1} s, logs written / time to drain the topic)",
            fmt_rate(run.sink.map(|s| run.rows as f64 / s)),
            run.sink.unwrap_or(f64::NAN)
        );
        if let (Some(i), Some(s), true) = (run.ingest, run.sink, run.rows as u64 == chain.logs) {
            println!(
                "staged total              {} ({:.1} s, ingest then sink)",
                fmt_rate(Some(logs / (i + s))),
                i + s
            );
        }
    } else {
        println!(
            "end to end                {} ({:.1} s from spawning both processes until Postgres had the head)",
            fmt_rate(e2e),
            run.end_to_end.unwrap_or(f64::NAN)
        );
        println!(
            "ingest, sink alongside    {} ({:.1} s until the ingest cursor reached the head)",
            fmt_rate(rate(run.ingest)),
            run.ingest.unwrap_or(f64::NAN)
        );
    }
    if let (Some(e), Some(c)) = (e2e, ceil) {
        println!("end to end / ceiling      {:.1}%", 100.0 * e / c);
    }
    for (role, hwm, cpu) in &run.procs {
        println!(
            "{:<25} peak RSS {}, {} CPU-s per 1M logs",
            format!("process {role}"),
            fmt_mb(*hwm),
            cpu.map_or("n/a".to_owned(), |c| format!("{:.2}", c * 1e6 / logs))
        );
    }
    println!(
        "peak RSS (informational)  anvil {}, this benchmark incl. Kafka mock broker {}",
        fmt_mb(run.anvil_hwm_mb),
        fmt_mb(run.this_hwm_mb)
    );
    println!(
        "rows in Postgres          logs {}, blocks {}",
        run.rows, run.block_rows
    );
    println!(
        "Kafka topic               {} records, offsets {}..{} still held{}; sink offset resets: {}",
        run.kafka_high,
        run.kafka_low,
        run.kafka_high,
        if run.mock { " (mock broker)" } else { "" },
        run.offset_resets
    );
    let lost = run.offset_resets > 0 || run.rows as u64 != chain.logs;
    if args.staged && run.dropped_before_sink > 0 && run.offset_resets == 0 {
        println!(
            "NOTE: the broker dropped the first {} records before the sink started (mock \
             retention). The ingest rate is valid; the sink rate is measured over the {} logs it \
             could still read; nothing else is comparable.",
            run.dropped_before_sink, run.rows
        );
    } else if lost {
        println!(
            "WARNING: records were lost between Kafka and Postgres, so the rates above are not \
             valid.{}",
            if run.mock && run.offset_resets > 0 {
                " The librdkafka mock broker keeps only ~5 MiB (compressed) per partition and \
                 drops older records; the sink fell further behind than that and its consumer \
                 (auto.offset.reset = earliest) skipped ahead. Use a real broker (KAFKA_BROKERS) \
                 or a sink that keeps up with the ingest."
            } else {
                ""
            }
        );
    }
    println!("----------------------------------------------------------------");
    let mut checks: Vec<(String, Option<bool>)> = Vec::new();
    checks.push((
        format!(
            "all {} logs in Postgres, one block row per height",
            chain.logs
        ),
        Some(run.rows as u64 == chain.logs && run.block_rows as u64 == chain.head + 1),
    ));
    for (role, status) in &run.exit_ok {
        checks.push((
            format!(
                "{role} exited 0 on SIGTERM ({})",
                status.map_or("no status".into(), |s| s.to_string())
            ),
            Some(status.is_some_and(|s| s.success())),
        ));
    }
    checks.push((
        format!(
            "no record skipped by the sink ({} Kafka offset resets)",
            run.offset_resets
        ),
        Some(run.offset_resets == 0),
    ));
    let valid = if lost { " (invalid: records lost)" } else { "" };
    checks.push((
        format!("end to end >= {TARGET_LOGS_PER_S:.0} logs/s{valid}"),
        e2e.map(|e| !lost && e >= TARGET_LOGS_PER_S),
    ));
    checks.push((
        format!(
            "end to end >= {:.0}% of the ceiling{valid}",
            TARGET_CEILING_RATIO * 100.0
        ),
        e2e.zip(ceil)
            .map(|(e, c)| !lost && e >= TARGET_CEILING_RATIO * c),
    ));
    for (role, hwm, _) in &run.procs {
        checks.push((
            format!("peak RSS {role} < {TARGET_RSS_MB:.0} MB"),
            hwm.map(|m| m < TARGET_RSS_MB),
        ));
    }
    for (what, ok) in checks {
        match ok {
            Some(ok) => println!("{}  {what}", verdict(ok)),
            None => println!(
                "n/a   {what} (not measured in this mode{})",
                if args.staged { ": staged run" } else { "" }
            ),
        }
    }
    println!("================================================================");
}
