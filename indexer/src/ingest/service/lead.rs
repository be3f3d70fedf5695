//! How far the ingest is ahead of the sink: what the chain's topic holds beyond the sink's
//! stored position. Before this process's first acknowledgement the topic's end offsets stand in
//! for what it produced, so that a restarted ingest is held back from its first step.

use std::time::Duration;

use rdkafka::{error::KafkaError, producer::Producer};

use super::{ChainIngest, IngestError};
use crate::kafka;

impl ChainIngest {
    /// Records between what is in the topic and what the sink stored (`None`: no limit set).
    /// Before the first acknowledgement of this process the topic's end offsets stand in for
    /// what it produced, so a restarted ingest is held back exactly like a running one.
    pub(super) async fn sink_lead(&mut self) -> Result<Option<(u64, u64)>, IngestError> {
        let Some(bp) = self.backpressure.clone() else {
            return Ok(None);
        };
        if self.produced.is_empty() {
            self.produced = self.topic_ends().await?;
        }
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2",
        )
        .bind(&bp.consumer)
        .bind(&self.topic)
        .fetch_all(&self.pool)
        .await?;
        let lead: i64 = self
            .produced
            .iter()
            .map(|(p, next)| {
                let sunk = rows.iter().find(|(rp, _)| rp == p).map_or(0, |(_, o)| *o);
                (next - sunk).max(0)
            })
            .sum();
        Ok(Some((lead as u64, bp.max_lead_records)))
    }

    /// The end offset of every partition of the chain's topic, as the broker reports it.
    async fn topic_ends(&self) -> Result<std::collections::BTreeMap<i32, i64>, IngestError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let ends = tokio::task::spawn_blocking(move || {
            let marks = kafka::watermarks(producer.client(), &topic, Duration::from_secs(10))?;
            Ok::<_, KafkaError>(marks.into_iter().map(|(p, _, high)| (p, high)).collect())
        })
        .await
        .map_err(|_| IngestError::Kafka(KafkaError::Canceled))?;
        Ok(ends?)
    }
}
