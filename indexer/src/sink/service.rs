//! The sink process: assigns itself every partition of the chain topics at the offsets stored in
//! Postgres (Kafka's own group offsets are only informational), collects and prepares batches, and
//! writes each batch until it succeeds; the next batch is gathered while the current one is
//! written. A batch is never dropped: while Postgres is down the same batch is retried with capped
//! backoff, and the consumer reads no further than the one batch prepared behind it.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use metrics::{counter, histogram};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Message as _,
    Offset, TopicPartitionList,
};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::write::{self, Batch};
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
         removed by retention before the sink wrote them. Stopping instead of skipping them: move \
         the position with `tripwire-indexer offsets reset --consumer <[sink] consumer> --to \
         earliest`, start the sink, and re-index the blocks in between with tripwire-replay"
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
            // Once that buffer is full, librdkafka checks again for room only after this delay
            // (default 1 s): the sink drains a batch in well under a second and would then wait
            // for records the broker has had all along.
            ("fetch.queue.backoff.ms", "10"),
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
    ///
    /// Two tasks: a reader gathers and prepares the next batch (parsing and encoding its rows)
    /// while this one writes the current batch, so that Kafka, parsing and Postgres overlap. The
    /// reader starts a batch only once the previous one was taken for writing, so at most two
    /// batches exist at a time. The offsets still commit inside the batch's transaction, and a
    /// failing batch is retried until it is stored: the reader waits meanwhile.
    ///
    /// While this task waits for a batch, the reader hands over what it has as soon as that is a
    /// sixteenth of `batch_records`: Postgres does not sit idle while a full batch is gathered
    /// (at start, or when the topic is read faster than it is written), and batches grow back to
    /// `batch_records` as soon as writing is the slower part.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SinkError> {
        let (batches, mut next) = mpsc::channel::<Batch>(1);
        let writer_idle = Arc::new(AtomicBool::new(true));
        let reader = Reader {
            consumer: self.consumer.clone(),
            health: self.health.clone(),
            batch_records: self.config.batch_records,
            early_records: (self.config.batch_records / 16).max(1),
            writer_idle: writer_idle.clone(),
            wait: Duration::from_millis(self.config.batch_wait_ms),
        };
        let reading = tokio::spawn(reader.run(batches, shutdown.clone()));
        loop {
            let idle_since = std::time::Instant::now();
            writer_idle.store(true, Ordering::Relaxed);
            let batch = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                batch = next.recv() => match batch {
                    Some(batch) => batch,
                    // The reader stopped: shutdown, or an error it reports below.
                    None => break,
                },
            };
            writer_idle.store(false, Ordering::Relaxed);
            tracing::debug!(records = batch.len(), waited = ?idle_since.elapsed(), "sink writing a batch");
            if !self.write_until_stored(&batch, &shutdown).await {
                break;
            }
        }
        // A batch the reader still has is not stored; its offsets are not either, so a restart
        // reads it again. Closing the channel releases a reader waiting to hand one over.
        drop(next);
        let read = match reading.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                tracing::warn!(error = %e, "sink reader task ended unexpectedly");
                Ok(())
            }
        };
        read?;
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Writes `batch`, retrying with capped backoff until it is stored. `false` when `shutdown`
    /// came while waiting to retry: nothing of the batch is stored then.
    async fn write_until_stored(&self, batch: &Batch, shutdown: &CancellationToken) -> bool {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let started = std::time::Instant::now();
            match write::write_batch(&self.pool, &self.config.consumer, batch).await {
                Ok(stats) => {
                    tracing::debug!(records = batch.len(), took = ?started.elapsed(), "sink batch stored");
                    self.health.healthy("postgres");
                    counter!(m::RECORDS_CONSUMED).increment(batch.len() as u64);
                    counter!(m::LOGS_WRITTEN).increment(stats.logs_inserted);
                    counter!(m::DEAD_LETTERS).increment(stats.dead_letters);
                    if stats.retractions > 0 {
                        counter!(m::RETRACTIONS_APPLIED).increment(stats.retractions);
                    }
                    histogram!(m::BATCH_SECONDS, "stage" => "sink")
                        .record(started.elapsed().as_secs_f64());
                    self.commit_informational(batch);
                    return true;
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
                            return false;
                        }
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Also commits to Kafka's group offsets so that standard lag tooling sees the sink's progress.
    /// Postgres stays the authority; a failure here changes nothing.
    fn commit_informational(&self, batch: &Batch) {
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in batch.next_offsets() {
            let _ = tpl.add_partition_offset(t, p, Offset::Offset(o));
        }
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
    }

    /// A handle for the Kafka health probe.
    pub fn consumer(&self) -> Arc<StreamConsumer> {
        self.consumer.clone()
    }
}

/// Messages handled between two yields of the reader, which otherwise holds its worker thread for
/// a whole batch while librdkafka has messages queued.
const YIELD_EVERY: usize = 1024;

/// The reading half of the sink: gathers and prepares batches for the writer.
struct Reader {
    consumer: Arc<StreamConsumer>,
    health: Health,
    /// Most messages per batch.
    batch_records: usize,
    /// Messages after which a batch is handed over early when the writer is idle.
    early_records: usize,
    /// Set while the writer waits for a batch.
    writer_idle: Arc<AtomicBool>,
    /// Longest wait for a batch to fill after its first message.
    wait: Duration,
}

impl Reader {
    /// Hands batches to the writer until `shutdown` or until the writer stops taking them. A lost
    /// position ends it with [`SinkError::PositionLost`] (the batches handed over before are
    /// still written; the one being gathered is dropped, nothing of it is stored).
    async fn run(
        self,
        batches: mpsc::Sender<Batch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        loop {
            // Wait until the writer took the previous batch before gathering the next one.
            let slot = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                slot = batches.reserve() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()),
                },
            };
            let started = std::time::Instant::now();
            let Some(batch) = self.collect(&shutdown).await? else {
                return Ok(());
            };
            tracing::debug!(records = batch.len(), took = ?started.elapsed(), "sink batch gathered");
            if !batch.is_empty() {
                slot.send(batch);
            }
        }
    }

    /// Gathers up to `batch_records` messages, waiting at most `wait` after the first one, or
    /// `early_records` when the writer is idle. `None` on `shutdown` (a partly gathered batch is
    /// dropped: nothing of it is stored).
    async fn collect(&self, shutdown: &CancellationToken) -> Result<Option<Batch>, SinkError> {
        let mut batch = Batch::new();
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            m = self.consumer.recv() => m,
        };
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut next = Some(first);
        let mut since_yield = 0;
        loop {
            match next.take() {
                Some(Ok(msg)) => {
                    if batch.is_empty() {
                        // Once per batch: it takes a lock.
                        self.health.healthy("kafka");
                    }
                    batch.push(
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.payload(),
                    );
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
            if batch.len() >= self.batch_records
                || (batch.len() >= self.early_records && self.writer_idle.load(Ordering::Relaxed))
            {
                break;
            }
            since_yield += 1;
            if since_yield == YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                m = tokio::time::timeout_at(deadline, self.consumer.recv()) => match m {
                    Ok(m) => next = Some(m),
                    Err(_) => break,
                },
            }
        }
        Ok(Some(batch))
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
