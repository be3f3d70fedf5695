//! Background checks that keep `/health` true while a process is idle: Kafka answers, and (for
//! the sink) how far Postgres is behind the chain head. The Postgres probe is the runtime's.

use std::{sync::Arc, time::Duration};

use metrics::gauge;
use rdkafka::{client::ClientContext, consumer::Consumer, producer::Producer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::{Health, Status};

use crate::metrics as m;

/// Between two probes.
const INTERVAL: Duration = Duration::from_secs(3);

/// Something that can ask a broker for metadata.
pub trait MetadataSource: Send + Sync + 'static {
    fn probe(&self, topic: &str) -> Result<(), String>;
}

impl<C: ClientContext + 'static> MetadataSource for rdkafka::producer::FutureProducer<C> {
    fn probe(&self, topic: &str) -> Result<(), String> {
        self.client()
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl<C: rdkafka::consumer::ConsumerContext + 'static> MetadataSource
    for rdkafka::consumer::StreamConsumer<C>
{
    fn probe(&self, topic: &str) -> Result<(), String> {
        self.fetch_metadata(Some(topic), Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Broker metadata request every few seconds.
pub fn kafka<S: MetadataSource>(
    client: Arc<S>,
    topic: String,
    health: Health,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let c = client.clone();
            let t = topic.clone();
            match tokio::task::spawn_blocking(move || c.probe(&t)).await {
                Ok(Ok(())) => health.healthy("kafka"),
                Ok(Err(e)) => health.set(
                    "kafka",
                    Status::Unhealthy,
                    format!("broker unreachable: {e}"),
                ),
                Err(e) => health.set("kafka", Status::Unhealthy, e.to_string()),
            }
            tokio::select! { _ = shutdown.cancelled() => {}, _ = tokio::time::sleep(INTERVAL) => {} }
        }
    });
}

/// Lag of Postgres behind the head, and the last synced block, per chain, from the
/// `indexer_state` view.
pub fn lag(pool: PgPool, health: Health, threshold: u64, shutdown: CancellationToken) {
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let rows = crate::status::read(&pool).await;
            if let Ok(rows) = rows {
                for row in rows {
                    let chain = row.chain;
                    let Some(head) = row.head_block else { continue };
                    let synced = row.last_synced_block.unwrap_or(0);
                    if let Some(indexed) = row.last_synced_block {
                        gauge!(m::INDEXED_BLOCK, "chain" => chain.clone()).set(indexed as f64);
                    }
                    let lag = (head - synced).max(0) as u64;
                    gauge!(m::LAG_BLOCKS, "chain" => chain.clone(), "stage" => "sink")
                        .set(lag as f64);
                    let component = format!("lag:{chain}");
                    if lag > threshold {
                        health.set(
                            &component,
                            Status::Degraded,
                            format!("{lag} blocks behind the head (threshold {threshold})"),
                        );
                    } else {
                        health.healthy(&component);
                    }
                }
            }
            tokio::select! { _ = shutdown.cancelled() => {}, _ = tokio::time::sleep(INTERVAL) => {} }
        }
    });
}
