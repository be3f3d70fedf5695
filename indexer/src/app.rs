//! Assembles a process from the config: the ingest of every chain, the sink, or both, with the
//! shared HTTP endpoint, probes and SIGTERM handling. `main.rs` only parses the command line.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    ingest::{Backpressure, ChainIngest, IngestError},
    probes,
    sink::{Sink, SinkError},
};
use tripwire_config::{redact_url, Settings};
use tripwire_kafka::{self as kafka, EmbeddedKafka};
use tripwire_rpc::{ChainRpc, RpcError};
use tripwire_runtime::{health::Health, server};

/// Why a process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Connect(#[from] tripwire_store::ConnectError),
    #[error("postgres {url}")]
    Postgres {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Which parts a process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub ingest: bool,
    pub sink: bool,
}

/// Runs the given roles until `shutdown` or a fatal error.
pub async fn run(
    settings: Settings,
    roles: Roles,
    listen: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let prometheus = server::install_recorder(crate::metrics::BUCKETS, crate::metrics::describe);
    let health = Health::new();
    let cfg = &settings.config;

    // Fail fast on RPC misconfiguration before touching Kafka or Postgres.
    let mut rpcs = Vec::new();
    if roles.ingest {
        for chain in &cfg.chains {
            let rpc = ChainRpc::new(chain)?;
            rpc.verify_chain_id(chain.chain_id).await?;
            rpcs.push(rpc);
        }
    }

    // The embedded broker lives as long as this function: keep it on this stack.
    let embedded = if cfg.kafka.is_embedded() {
        let e = EmbeddedKafka::start()?;
        tracing::info!(brokers = %e.bootstrap_servers(), "embedded Kafka broker started (in memory, for development only)");
        println!(
            "embedded Kafka broker listening on {} (in memory, development only); other processes can use kafka.brokers = \"{}\"",
            e.bootstrap_servers(),
            e.bootstrap_servers()
        );
        Some(e)
    } else {
        None
    };
    let brokers = embedded
        .as_ref()
        .map(EmbeddedKafka::bootstrap_servers)
        .unwrap_or_else(|| cfg.kafka.brokers.to_string());

    let pool = tripwire_store::connect(&settings, Duration::from_secs(30)).await?;
    tripwire_store::migrate(&pool).await?;

    let topics: Vec<String> = cfg.chains.iter().map(|c| settings.topic(c)).collect();
    for t in &topics {
        match &embedded {
            Some(e) => e.create_topic(t, cfg.kafka.partitions)?,
            None if roles.ingest => kafka::ensure_topic(&cfg.kafka, &brokers, t).await?,
            None => {}
        }
    }

    let addr = listen.unwrap_or(cfg.server.listen);
    let (bound, http) = server::serve(
        addr,
        (&cfg.server).into(),
        prometheus,
        health.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|source| AppError::Listen { addr, source })?;
    tracing::info!(%bound, "serving /metrics and /health");

    tripwire_runtime::probes::postgres(pool.clone(), health.clone(), shutdown.clone());
    // In `run`, the sink tells the ingest at once when it stored a batch.
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut tasks: Vec<tokio::task::JoinHandle<Result<(), AppError>>> = Vec::new();

    if roles.ingest {
        let flow = settings.flow();
        let (producer, sent) = kafka::producer(&cfg.kafka, &brokers, flow.lead.bytes.is_some())?;
        let producer = Arc::new(producer);
        tripwire_kafka::probe::kafka(
            producer.clone(),
            topics[0].clone(),
            health.clone(),
            shutdown.clone(),
        );
        for (chain, rpc) in cfg.chains.iter().zip(rpcs) {
            let contracts = settings.contracts_of(&chain.name).cloned().collect();
            let ingest = ChainIngest::new(
                chain.clone(),
                contracts,
                rpc,
                (*producer).clone(),
                sent.clone(),
                settings.topic(chain),
                pool.clone(),
                health.clone(),
            )
            .await?
            .with_backpressure((!flow.lead.is_unlimited()).then(|| Backpressure {
                limit: flow.lead,
                consumer: cfg.sink.consumer.clone(),
                progress: roles.sink.then(|| progress.clone()),
            }));
            let token = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                ingest.run(token).await.map_err(AppError::from)
            }));
        }
    }
    if roles.sink {
        for chain in &cfg.chains {
            tripwire_store::cursor::register_chain(&pool, chain.chain_id, &chain.name)
                .await
                .map_err(|source| AppError::Postgres {
                    url: redact_url(&cfg.postgres.url),
                    source,
                })?;
        }
        let sink = Sink::new(
            &cfg.kafka,
            &brokers,
            cfg.sink.clone(),
            settings.flow(),
            &topics,
            pool.clone(),
            health.clone(),
        )
        .await?
        .with_progress(progress.clone());
        if !roles.ingest {
            // In `run` the producer's probe already covers the broker.
            tripwire_kafka::probe::kafka(
                sink.consumer(),
                topics[0].clone(),
                health.clone(),
                shutdown.clone(),
            );
        }
        probes::lag(
            pool.clone(),
            health.clone(),
            cfg.server.lag_threshold_blocks,
            shutdown.clone(),
        );
        let token = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            sink.run(token).await.map_err(AppError::from)
        }));
    }

    // The first task to fail stops the others: a half-running indexer would hide the problem.
    let mut result = Ok(());
    let mut pending = tasks;
    while !pending.is_empty() {
        let (r, _, rest) = futures::future::select_all(pending).await;
        pending = rest;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %tripwire_runtime::report(&e), "stopping");
                shutdown.cancel();
                result = result.and(Err(e));
            }
            Err(join) => {
                tracing::error!(error = %join, "task panicked");
                shutdown.cancel();
            }
        }
    }
    shutdown.cancel();
    let _ = http.await;
    pool.close().await;
    drop(embedded);
    result
}
