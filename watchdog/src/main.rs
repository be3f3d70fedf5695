//! `tripwire-watchdog`: the command line of the watchdog process.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tripwire_runtime::{health::Health, server};
use tripwire_watchdog::{
    alerts, config::WatchdogSettings, metrics, safe, service::Watchdog, webhook,
};

mod proposals;

#[derive(Parser)]
#[command(
    name = "tripwire-watchdog",
    version,
    about = "Detect attacks on the Tripwire stream and raise alerts in Alertmanager"
)]
struct Cli {
    /// Configuration file (TOML): the indexer's file with a `[watchdog]` section.
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
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the stream, run the detectors and send alerts (the default).
    Run {
        /// Address of /metrics and /health (overrides watchdog.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Check the configuration file, detectors included, and exit.
    CheckConfig,
    /// Safe pause proposals the watchdog prepared.
    Proposals {
        #[command(subcommand)]
        command: ProposalsCommand,
    },
}

#[derive(Subcommand)]
enum ProposalsCommand {
    /// The most recent proposals, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One proposal (by id or safeTxHash) with the commands an owner runs to sign and execute it.
    Show {
        /// Proposal id or safeTxHash.
        proposal: String,
        /// An owner's signature of the safeTxHash (from `cast wallet sign --no-hash`), added to
        /// the execution command in the order the Safe wants; repeatable.
        #[arg(long = "signature", value_name = "0x…")]
        signatures: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // One-shot commands print their answer; their logs only say what went wrong.
    let level = match cli.command {
        Some(Command::Run { .. }) | None => "info",
        _ => "warn",
    };
    tripwire_runtime::init_tracing(cli.log_format, level);
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
    let ws = WatchdogSettings::load(&cli.config)?;
    let listen = match cli.command {
        Some(Command::CheckConfig) => {
            // Loading checked the detectors against the ABIs; the Safe is checked up to where
            // `run` needs the chain.
            let notes = safe::check_offline(&ws).context("[watchdog.safe]")?;
            println!(
                "{}: ok ({} detectors, {} Alertmanager URL(s){})",
                cli.config.display(),
                ws.watchdog().detectors.len(),
                ws.watchdog().alertmanager.urls.len(),
                if ws.watchdog().safe.is_some() {
                    ", [watchdog.safe] without the chain"
                } else {
                    ""
                }
            );
            for n in notes {
                println!("[watchdog.safe]: {n}");
            }
            return Ok(());
        }
        Some(Command::Run { listen }) => listen,
        Some(Command::Proposals { command }) => {
            let pool = tripwire_store::connect(ws.settings(), Duration::from_secs(5)).await?;
            tripwire_store::migrate(&pool)
                .await
                .context("applying migrations")?;
            return match command {
                ProposalsCommand::List { limit, json } => proposals::list(&pool, limit, json).await,
                ProposalsCommand::Show {
                    proposal,
                    signatures,
                } => proposals::show(&ws, &pool, &proposal, &signatures).await,
            };
        }
        None => None,
    };
    let Some(brokers) = ws
        .settings()
        .config
        .kafka
        .brokers
        .servers()
        .map(str::to_owned)
    else {
        bail!(
            "kafka.brokers = \"embedded\" names a broker inside the indexer process; give the watchdog \
             the address the indexer printed at start-up (e.g. --config with kafka.brokers = \"127.0.0.1:PORT\")"
        );
    };

    let prometheus = server::install_recorder(&[], metrics::describe);
    let health = Health::new();
    let shutdown = CancellationToken::new();
    tripwire_runtime::signals::cancel_on_signal(shutdown.clone());

    let pool = tripwire_store::connect(ws.settings(), Duration::from_secs(30)).await?;
    tripwire_store::migrate(&pool)
        .await
        .context("applying migrations")?;

    // Start-up checks of the Safe, the proposer key and the targets: a pause that could not work
    // is found now, not during an incident.
    let proposer = safe::Proposer::connect(&ws, pool.clone(), None)
        .await
        .context("[watchdog.safe]")?
        .map(std::sync::Arc::new);
    let extra = match &ws.watchdog().webhook {
        Some(cfg) => {
            let am = &ws.watchdog().alertmanager;
            let client = alerts::Client::new(
                am.urls.clone(),
                Duration::from_secs(am.timeout_s.max(1)),
                am.bearer_token.clone(),
            )?;
            let receiver =
                webhook::Receiver::new(cfg, pool.clone(), proposer.clone(), Some(client))
                    .context("[watchdog.webhook]")?;
            tracing::info!(path = %cfg.path, rules = receiver.rules.len(), "Alertmanager webhook receiver enabled");
            receiver.router(&cfg.path)
        }
        None => axum::Router::new(),
    };

    let addr = listen.unwrap_or(ws.watchdog().listen);
    let (bound, http) = server::serve_with(
        addr,
        (&ws.settings().config.server).into(),
        prometheus,
        health.clone(),
        extra,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%bound, "serving /metrics and /health");

    let watchdog = Watchdog::new(&ws, &brokers, pool, health, proposer).await?;
    tracing::info!(
        detectors = ws.watchdog().detectors.len(),
        consumer = %ws.watchdog().consumer,
        "watchdog started"
    );
    let result = watchdog.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = http.await;
    result?;
    Ok(())
}
