//! The broker probe behind `/health`: a metadata request every few seconds, so a process that is
//! idle still reports a broker it cannot reach.

use std::{sync::Arc, time::Duration};

use rdkafka::{client::ClientContext, consumer::Consumer, producer::Producer};
use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::{Health, Status};
use tripwire_runtime::probes::INTERVAL;

/// Something that can ask a broker for metadata.
pub trait MetadataSource: Send + Sync + 'static {
    /// Fetches `topic`'s metadata from the broker; `Err` carries the client's error text.
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
                Ok(Ok(())) => health.healthy(tripwire_runtime::Component::Kafka),
                Ok(Err(e)) => health.set(
                    tripwire_runtime::Component::Kafka,
                    Status::Unhealthy,
                    format!("broker unreachable: {e}"),
                ),
                Err(e) => health.set(
                    tripwire_runtime::Component::Kafka,
                    Status::Unhealthy,
                    e.to_string(),
                ),
            }
            tokio::select! { _ = shutdown.cancelled() => {}, _ = tokio::time::sleep(INTERVAL) => {} }
        }
    });
}
