//! `tripwire-replay`: the command line of the replay modes. In detect mode stdout carries only the
//! report (a table, JSON or CSV) unless `--output` takes it; the lines about the run go to stderr,
//! so `--format json | jq` works.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tokio_util::sync::CancellationToken;
use tripwire_config::Settings;
use tripwire_replay::plan::DeploymentCheck;
use tripwire_replay::report::{self, Format};
use tripwire_replay::{detect, plan, reindex, reset, ReplayError};
use tripwire_rpc::ChainRpc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Fetch [from, to] again, publish it to Kafka for the sink, remove non-canonical rows.
    Reindex,
    /// Back-test: what the configured detectors would have fired in [from, to]; no side effect.
    Detect,
    /// Move the ingest cursor to --from-block (the ingest must be stopped).
    ResetCursor,
}

#[derive(Parser)]
#[command(
    name = "tripwire-replay",
    version,
    about = "Re-index a chain from a given block, or reset the ingest cursor to a safe block"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, env = "TRIPWIRE_CONFIG", default_value = "tripwire.toml")]
    config: PathBuf,
    /// Chain name (`[[chains]] name`).
    #[arg(long)]
    chain: String,
    /// First block.
    #[arg(long)]
    from_block: u64,
    /// Last block (default: the head).
    #[arg(long)]
    to_block: Option<u64>,
    /// Only these contracts (`[[contracts]] name`, comma-separated); default all of the chain.
    #[arg(long, value_delimiter = ',')]
    contracts: Vec<String>,
    /// What to do.
    #[arg(long, value_enum, default_value = "reindex")]
    mode: Mode,
    /// Change nothing: reindex prints what is missing or stale, reset-cursor the cursor it would set.
    #[arg(long)]
    dry_run: bool,
    /// Do not wait for the sink to write the published records.
    #[arg(long)]
    no_wait: bool,
    /// Answer yes to the confirmation of reset-cursor.
    #[arg(long)]
    yes: bool,
    /// detect: the report's format [default: table on stdout; with --output, JSON for a `.json`
    /// file, otherwise CSV].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// detect: write the report to this file instead of stdout (--format chooses the format).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// detect: first block the detectors learn from (default: the first block stored).
    #[arg(long)]
    warmup_from: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tripwire_runtime::init_tracing(
        tripwire_runtime::LogFormat::Text,
        "info,tripwire_rpc=warn,tripwire_kafka=warn,tripwire_store=warn,sqlx=warn",
    );
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<ReplayError>() {
                Some(ReplayError::Interrupted { .. }) => ExitCode::from(130),
                Some(ReplayError::Invalid(_)) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Refused before anything runs: a misplaced report option is a wrong request, not a no-op.
    if cli.mode != Mode::Detect && (cli.format.is_some() || cli.output.is_some()) {
        return Err(ReplayError::Invalid(
            "--format and --output apply to --mode detect only".into(),
        )
        .into());
    }
    if let Some(path) = &cli.output {
        report::check_output(path).map_err(ReplayError::Invalid)?;
    }
    let settings = Settings::load(&cli.config)?;
    let rpc = ChainRpc::new(&plan::find_chain(&settings, &cli.chain)?)?;
    // The back-test reads stored rows, so it must work against a node without archive state.
    let check = match cli.mode {
        Mode::Detect => DeploymentCheck::Skip,
        Mode::Reindex | Mode::ResetCursor => DeploymentCheck::AtFromBlock,
    };
    let plan = plan::plan(
        &settings,
        &cli.chain,
        &cli.contracts,
        cli.from_block,
        cli.to_block,
        &rpc,
        check,
    )
    .await?;
    let pool = tripwire_store::connect(&settings, Duration::from_secs(10)).await?;
    if cli.mode == Mode::Detect {
        return run_detect(&cli, &plan, &rpc, &pool).await;
    }
    tripwire_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    let shutdown = CancellationToken::new();
    tripwire_runtime::signals::cancel_on_signal(shutdown.clone());
    match cli.mode {
        Mode::Detect => unreachable!("handled above"),
        Mode::Reindex => {
            println!(
                "reindex {} blocks {}..={} ({}), head {}{}",
                plan.chain.name,
                plan.from,
                plan.to,
                if plan.contracts_key.is_empty() {
                    "all contracts".to_string()
                } else {
                    plan.contracts_key.clone()
                },
                plan.head,
                if cli.dry_run { ", dry run" } else { "" }
            );
            let opts = reindex::Options {
                dry_run: cli.dry_run,
                wait_for_sink: !cli.no_wait,
            };
            let r = reindex::run(&settings, &plan, &rpc, &pool, &opts, &shutdown).await?;
            if let Some(from) = r.resumed_from {
                println!("continued an interrupted run from block {from}");
            }
            if cli.dry_run {
                println!(
                    "{} blocks checked: {} logs missing from Postgres; nothing changed",
                    r.blocks, r.logs_missing
                );
            } else {
                println!(
                    "{} blocks replayed: {} logs published ({} were missing), {} stale rows removed{}",
                    r.blocks,
                    r.logs_published,
                    r.logs_missing,
                    r.stale_rows_deleted,
                    if cli.no_wait { "" } else { "; the sink has written them" }
                );
            }
        }
        Mode::ResetCursor => {
            let old = reset::current(&pool, plan.chain.chain_id).await?;
            let old = old.map_or("(none)".to_string(), |o| o.to_string());
            let recent = reset::window(&plan, &rpc).await?;
            if cli.dry_run {
                let hash = recent.last().map(|b| b.hash).unwrap_or_default();
                println!(
                    "dry run: the ingest cursor of {} would move from {old} to block {} ({hash}); nothing changed",
                    plan.chain.name, plan.from
                );
                return Ok(());
            }
            tripwire_runtime::prompt::confirm(
                cli.yes,
                "reset-cursor",
                &format!(
                    "Reset the ingest cursor of {} from {old} to block {}? The ingest must be stopped first.",
                    plan.chain.name, plan.from
                ),
                &plan.chain.name,
            )?;
            let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let hash = reset::reset(&pool, &plan, &recent, &who).await?;
            println!(
                "ingest cursor of {} reset from {old} to block {} ({hash}); restart the ingest",
                plan.chain.name, plan.from
            );
        }
    }
    Ok(())
}

/// `--mode detect`: the back-test, its report on stdout or in `--output`, the lines about the run
/// on stderr. No side effect: not even migrations.
async fn run_detect(
    cli: &Cli,
    plan: &plan::Plan,
    rpc: &ChainRpc,
    pool: &sqlx::PgPool,
) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config)?;
    let watchdog = settings.watchdog()?;
    let format = cli
        .format
        .unwrap_or_else(|| Format::default_for(cli.output.as_deref()));
    eprintln!(
        "detect on {} blocks {}..={} ({} detectors)",
        plan.chain.name,
        plan.from,
        plan.to,
        watchdog.detectors.len()
    );
    let (fired, evaluated) =
        detect::run(&settings, watchdog, plan, rpc, pool, cli.warmup_from).await?;
    let output_error = |source| ReplayError::Output {
        path: cli.output.clone(),
        source,
    };
    match &cli.output {
        Some(path) => {
            let mut text = Vec::new();
            report::write(&fired, format, &mut text).map_err(output_error)?;
            std::fs::write(path, text).map_err(|e| output_error(e.into()))?;
        }
        None => {
            report::write(&fired, format, &mut std::io::stdout().lock()).map_err(output_error)?;
        }
    }
    eprintln!(
        "{} would have fired ({evaluated} logs evaluated)",
        fired.len()
    );
    if let Some(path) = &cli.output {
        eprintln!("written to {} ({format})", path.display());
    }
    Ok(())
}
