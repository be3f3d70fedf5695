//! `tripwire-bench-backfill`: what users get at the defaults. For each chain shape (logs per block)
//! it generates a chain of a million logs on a local anvil, measures how fast anvil itself serves
//! them over `eth_getLogs` (the ceiling), then backfills them with `tripwire-indexer` at its
//! defaults, as one `run` process with the embedded broker and as separate `ingest` and `sink`
//! processes, and prints the end-to-end rate, the peak RSS and the CPU-seconds per 1M logs of each
//! process.
//!
//! Run it as documented in `benches/README.md`:
//! `cargo run --release -p tripwire-benches --bin tripwire-bench-backfill`.
//!
//! The binary is split along the steps it runs: `cli` is the command line; `setup` finds the
//! indexer binary and creates the run folder; `chain` generates the chain on anvil (step 1);
//! `ceiling` measures what anvil serves over `eth_getLogs` (step 2); `indexer` runs the indexer
//! against it (step 3), with its configuration in `config`, its child processes in `process` and
//! the CPU accounting in `cpu`; `report` prints the per-run summary and the final table.

mod ceiling;
mod chain;
mod cli;
mod config;
mod cpu;
mod indexer;
mod process;
mod report;
mod setup;

use anyhow::{bail, Result};
use clap::Parser;
use tripwire_benches::procfs;

use crate::ceiling::measure_ceiling;
use crate::chain::generate;
use crate::cli::{Args, Mode};
use crate::indexer::run_indexer;
use crate::report::{print_table, summary, Row};
use crate::setup::{indexer_binary, run_dir};

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
