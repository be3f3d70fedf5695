//! `tripwire-indexer`: the command line of the indexer processes.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tripwire_config::Settings;
use tripwire_indexer::{app, offsets, status};

/// mimalloc instead of glibc's malloc: decoding, encoding and writing a log allocates a dozen
/// small strings and vectors, and glibc spent ~17% of the process's CPU on them (and on
/// consolidating freed chunks) in the backfill benchmark's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tripwire-indexer",
    version,
    about = "Index EVM contract logs through Kafka into Postgres"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        env = "TRIPWIRE_CONFIG",
        global = true,
        default_value = "tripwire.toml"
    )]
    config: PathBuf,
    /// Log format.
    #[arg(
        long,
        env = "TRIPWIRE_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t
    )]
    log_format: tripwire_runtime::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the chains over RPC and publish to Kafka.
    Ingest(ServeArgs),
    /// Write the Kafka stream into Postgres.
    Sink(ServeArgs),
    /// Ingest and sink in one process.
    Run(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Print per chain the head, the indexed block and the lag.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration file and exit.
    CheckConfig,
    /// The stream positions the sink and the watchdog store, against what Kafka still holds.
    Offsets {
        #[command(subcommand)]
        command: OffsetsCommand,
    },
}

#[derive(Subcommand)]
enum OffsetsCommand {
    /// Each consumer's position per partition, the earliest record kept, the end and the lag.
    List {
        /// Only this consumer (`[sink] consumer`, `[watchdog] consumer`); default all.
        #[arg(long)]
        consumer: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a stopped consumer to the earliest record kept (its position was lost to retention;
    /// re-index the gap with tripwire-replay) or to the end (a restored database already holds
    /// what the stream has since).
    Reset {
        /// The consumer to move (`[sink] consumer` or `[watchdog] consumer`).
        #[arg(long)]
        consumer: String,
        /// Where to.
        #[arg(long, value_enum)]
        to: offsets::Target,
        /// Answer yes to the confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of /metrics and /health (overrides server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Worker threads per core. Decoding a range's answer, building its records and preparing a sink
/// batch each keep a worker busy for milliseconds; with one worker per core the sink's Postgres
/// round trips waited behind them (a COPY of ten block markers took 43 ms). More workers than
/// cores let the kernel share the cores between them instead.
const WORKERS_PER_CORE: usize = 2;

fn main() -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores * WORKERS_PER_CORE)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    tripwire_runtime::init_tracing(cli.log_format, "info");
    if let Err(e) = tripwire_runtime::faults::setup() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(&cli.config)?;
    let roles = match &cli.command {
        Command::Ingest(_) => app::Roles {
            ingest: true,
            sink: false,
        },
        Command::Sink(_) => app::Roles {
            ingest: false,
            sink: true,
        },
        Command::Run(_) => app::Roles {
            ingest: true,
            sink: true,
        },
        Command::Migrate => {
            let pool = tripwire_store::connect(&settings, Duration::from_secs(30)).await?;
            tripwire_store::migrate(&pool)
                .await
                .context("applying migrations")?;
            println!("migrations applied");
            return Ok(());
        }
        Command::Status { json } => {
            let pool = tripwire_store::connect(&settings, Duration::from_secs(5)).await?;
            let rows = status::read(&pool).await.context("reading indexer_state")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                // Provider reasons are peers' words, stored: shown with control characters escaped.
                let text = status::render(&rows, settings.config.server.lag_threshold_blocks);
                print!("{}", tripwire_runtime::text::printable(&text));
            }
            return Ok(());
        }
        Command::Offsets { command } => {
            let pool = tripwire_store::connect(&settings, Duration::from_secs(5)).await?;
            let topics: Vec<String> = settings
                .config
                .chains
                .iter()
                .map(|c| settings.topic(c))
                .collect();
            return offsets_command(&pool, &settings, &topics, command).await;
        }
        Command::CheckConfig => {
            println!(
                "{}: ok ({} chains, {} contracts)",
                cli.config.display(),
                settings.config.chains.len(),
                settings.contracts.len()
            );
            return Ok(());
        }
    };
    let listen = match &cli.command {
        Command::Ingest(a) | Command::Sink(a) | Command::Run(a) => a.listen,
        _ => None,
    };
    let shutdown = CancellationToken::new();
    tripwire_runtime::signals::cancel_on_signal(shutdown.clone());
    app::run(settings, roles, listen, shutdown).await?;
    Ok(())
}

async fn offsets_command(
    pool: &sqlx::PgPool,
    settings: &Settings,
    topics: &[String],
    command: &OffsetsCommand,
) -> anyhow::Result<()> {
    let kafka = &settings.config.kafka;
    match command {
        OffsetsCommand::List { consumer, json } => {
            let names: Vec<String> = consumer.iter().cloned().collect();
            let positions = offsets::read(pool, kafka, topics, &names).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&positions)?);
            } else {
                print!("{}", offsets::render(&positions));
            }
        }
        OffsetsCommand::Reset { consumer, to, yes } => {
            let positions =
                offsets::read(pool, kafka, topics, std::slice::from_ref(consumer)).await?;
            print!("{}", offsets::render(&positions));
            tripwire_runtime::prompt::confirm(
                *yes,
                "offsets reset",
                &format!(
                    "Move {consumer} to the {} of every partition above? It must be stopped first.",
                    match to {
                        offsets::Target::Earliest => "earliest record kept",
                        offsets::Target::Latest => "end",
                    }
                ),
                consumer,
            )?;
            let moved = offsets::reset(pool, consumer, &positions, *to).await?;
            println!("moved {consumer}; start it again:");
            print!("{}", offsets::render(&moved));
        }
    }
    Ok(())
}
