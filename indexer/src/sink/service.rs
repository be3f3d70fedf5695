//! The sink process: assigns itself every partition of the chain topics at the offsets stored in
//! Postgres (Kafka's own group offsets are only informational), collects batches, and writes each
//! batch until it succeeds. A batch is never dropped: while Postgres is down the same batch is
//! retried with capped backoff and the consumer reads no further.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use metrics::{counter, gauge, histogram};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Message as _,
    Offset, TopicPartitionList,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::write::{self, Item, Message};
use crate::{
    config::{KafkaConfig, SinkConfig},
    health::{Health, Status},
    kafka, metrics as m,
};

/// Why the sink could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("kafka: topic {topic} does not exist (yet) on {brokers}")]
    MissingTopic { topic: String, brokers: String },
    #[error(
        "kafka: the sink's stored position is no longer in the topic ({reason}). Records were \
         removed by retention before the sink wrote them; re-index the affected blocks with \
         tripwire-replay, then reset the position. Stopping instead of skipping them"
    )]
    PositionLost { reason: String },
}

/// The sink of a set of chain topics.
pub struct Sink {
    consumer: Arc<StreamConsumer>,
    pool: PgPool,
    health: Health,
    config: SinkConfig,
}

impl Sink {
    /// Connects and assigns the partitions of `topics` at the stored offsets.
    pub async fn new(
        kafka_cfg: &KafkaConfig,
        brokers: &str,
        config: SinkConfig,
        topics: &[String],
        pool: PgPool,
        health: Health,
    ) -> Result<Sink, SinkError> {
        let mut c = kafka::client_config(kafka_cfg, brokers);
        for (k, v) in [
            ("group.id", config.consumer.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // A stored position that retention removed must stop the sink, never skip ahead.
            ("auto.offset.reset", "error"),
            ("enable.partition.eof", "false"),
            // Bounds the prefetch buffer (and so the memory) per partition.
            ("queued.max.messages.kbytes", "65536"),
            ("fetch.wait.max.ms", "50"),
        ] {
            if !kafka_cfg.properties.contains_key(k) {
                c.set(k, v);
            }
        }
        let consumer: StreamConsumer = c.create()?;
        let stored = write::load_offsets(&pool, &config.consumer).await?;
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let partitions = partitions_of(&consumer, topic, brokers).await?;
            for p in 0..partitions {
                let offset = match stored.get(&(topic.clone(), p)) {
                    Some(o) => Offset::Offset(*o),
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(topic, p, offset)?;
                tracing::info!(topic, partition = p, ?offset, "sink assigned");
            }
        }
        consumer.assign(&tpl)?;
        Ok(Sink {
            consumer: Arc::new(consumer),
            pool,
            health,
            config,
        })
    }

    /// Runs until `shutdown`; the batch in hand is finished first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SinkError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times();
        let wait = Duration::from_millis(self.config.batch_wait_ms);
        while !shutdown.is_cancelled() {
            let batch = self.collect(wait, &shutdown).await?;
            if batch.is_empty() {
                continue;
            }
            let mut delays = backoff.build();
            loop {
                let started = std::time::Instant::now();
                match write::write_batch(&self.pool, &self.config.consumer, &batch).await {
                    Ok(stats) => {
                        self.health.healthy("postgres");
                        counter!(m::RECORDS_CONSUMED).increment(batch.len() as u64);
                        counter!(m::LOGS_WRITTEN).increment(stats.logs_inserted);
                        counter!(m::DEAD_LETTERS).increment(stats.dead_letters);
                        if stats.retractions > 0 {
                            counter!(m::RETRACTIONS_APPLIED).increment(stats.retractions);
                        }
                        for (chain, at) in &stats.cursors {
                            gauge!(m::INDEXED_BLOCK, "chain_id" => chain.to_string())
                                .set(at.number as f64);
                        }
                        histogram!(m::BATCH_SECONDS, "stage" => "sink")
                            .record(started.elapsed().as_secs_f64());
                        self.commit_informational(&batch);
                        break;
                    }
                    Err(e) => {
                        counter!(m::POSTGRES_ERRORS, "op" => "write_batch").increment(1);
                        self.health.set(
                            "postgres",
                            Status::Unhealthy,
                            format!("batch write failed: {e}"),
                        );
                        let delay = delays.next().unwrap_or(Duration::from_secs(10));
                        tracing::warn!(error = %e, retry_in = ?delay, records = batch.len(), "sink write failed, retrying the same batch");
                        tokio::select! {
                            _ = shutdown.cancelled() => {
                                // Nothing of this batch is stored; a restart reads it again.
                                return Ok(());
                            }
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        }
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Gathers up to `batch_records` messages, waiting at most `wait` after the first one.
    async fn collect(
        &self,
        wait: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Message>, SinkError> {
        let mut batch = Vec::new();
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(batch),
            m = self.consumer.recv() => m,
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Ok(msg)) => {
                    self.health.healthy("kafka");
                    batch.push(Message {
                        topic: msg.topic().to_owned(),
                        partition: msg.partition(),
                        offset: msg.offset(),
                        item: Item::parse(msg.key(), msg.payload()),
                    });
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    counter!(m::KAFKA_ERRORS, "op" => "position_lost").increment(1);
                    // Nothing of this batch is stored yet, so dropping it loses nothing.
                    return Err(SinkError::PositionLost {
                        reason: "offset out of range".into(),
                    });
                }
                Some(Err(e)) => {
                    counter!(m::KAFKA_ERRORS, "op" => "consume").increment(1);
                    self.health.set("kafka", Status::Unhealthy, e.to_string());
                    tracing::warn!(error = %e, "kafka consume error");
                    break;
                }
                None => {}
            }
            if batch.len() >= self.config.batch_records {
                break;
            }
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(m) => next = Some(m),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Also commits to Kafka's group offsets so that standard lag tooling sees the sink's progress.
    /// Postgres stays the authority; a failure here changes nothing.
    fn commit_informational(&self, batch: &[Message]) {
        let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in batch {
            last.insert((m.topic.as_str(), m.partition), m.offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in last {
            let _ = tpl.add_partition_offset(t, p, Offset::Offset(o));
        }
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
    }

    /// A handle for the Kafka health probe.
    pub fn consumer(&self) -> Arc<StreamConsumer> {
        self.consumer.clone()
    }
}

/// Partition count of `topic`, waiting up to 30 s for it to appear (the ingest creates it).
async fn partitions_of(
    consumer: &StreamConsumer,
    topic: &str,
    brokers: &str,
) -> Result<i32, SinkError> {
    for _ in 0..30 {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && !t.partitions().is_empty() {
                return Ok(t.partitions().len() as i32);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(SinkError::MissingTopic {
        topic: topic.to_owned(),
        brokers: brokers.to_owned(),
    })
}
