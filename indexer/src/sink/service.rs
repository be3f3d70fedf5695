//! The sink process: joins the `[sink] consumer` group for the chain topics and reads the
//! partitions Kafka gives it from the offsets stored in Postgres (Kafka's own group offsets are
//! only informational), collects and prepares batches, and writes each batch until it succeeds;
//! the next batch is gathered while the current one is written. While Postgres is down the same
//! batch is retried with capped backoff, and the consumer reads no further than the one batch
//! prepared behind it. A batch is dropped unwritten only when its partitions moved to another
//! instance (a rebalance, or a write fenced by the position another instance stored): the owner
//! reads those records again from the stored position.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Message as _,
    Offset, TopicPartitionList,
};
use sqlx::PgPool;
use tokio::sync::{mpsc, Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::metrics::{kafka_errors, postgres_errors};
use tripwire_config::{Flow, KafkaConfig, SinkConfig};
use tripwire_kafka::{
    self as kafka,
    group::{self, GroupConsumer, Partition},
};
use tripwire_runtime::health::{Health, Status};
use tripwire_runtime::metrics::Lazy;
use tripwire_store::write::{self, Batch, WriteError};

/// Why the sink could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
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
    consumer: Arc<GroupConsumer>,
    pool: PgPool,
    health: Health,
    config: SinkConfig,
    flow: Flow,
    /// Signalled after every stored batch (an ingest in the same process waits on it).
    progress: Option<Arc<Notify>>,
    metrics: crate::metrics::Sink,
}

impl Sink {
    /// Connects and joins the consumer group `[sink] consumer` for `topics`: every sink
    /// instance of that name shares their partitions, each reading from the positions stored in
    /// Postgres (see [`group`]).
    pub async fn new(
        kafka_cfg: &KafkaConfig,
        brokers: &str,
        config: SinkConfig,
        flow: Flow,
        topics: &[String],
        pool: PgPool,
        health: Health,
    ) -> Result<Sink, SinkError> {
        let consumer = kafka::group_consumer(
            kafka_cfg,
            brokers,
            &config.consumer,
            &[
                // A stored position that retention removed must stop the sink, never skip ahead.
                ("auto.offset.reset", "error"),
                ("enable.partition.eof", "false"),
                // Bounds the prefetch buffer (and so the memory) per partition: 16 MiB, a full
                // default batch ahead.
                ("queued.max.messages.kbytes", "16384"),
                // Once that buffer is full, librdkafka checks again for room only after this
                // delay (default 1 s): the sink drains a batch in well under a second and would
                // then wait for records the broker has had all along.
                ("fetch.queue.backoff.ms", "10"),
                ("fetch.wait.max.ms", "50"),
            ],
        )?;
        for topic in topics {
            if !group::wait_for_topic(&consumer, topic).await? {
                return Err(SinkError::MissingTopic {
                    topic: topic.clone(),
                    brokers: brokers.to_owned(),
                });
            }
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        tracing::info!(group = %config.consumer, ?topics, "sink joined its consumer group");
        Ok(Sink {
            consumer: Arc::new(consumer),
            pool,
            health,
            config,
            flow,
            progress: None,
            metrics: crate::metrics::Sink::new(),
        })
    }

    /// Signals `progress` after every stored batch.
    pub fn with_progress(mut self, progress: Arc<Notify>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Runs until `shutdown`; the batch in hand is finished first.
    ///
    /// Two tasks: a reader gathers and prepares the next batch (parsing and encoding its rows)
    /// while this one writes the current one, so that Kafka, parsing and Postgres overlap. The
    /// reader starts a batch only once the previous one was taken for writing, so at most two
    /// batches exist at a time. The offsets still commit inside the batch's transaction, and a
    /// failing batch is retried until it is stored: the reader waits meanwhile.
    ///
    /// While this task waits for a batch, the reader hands over what it has as soon as that is a
    /// sixteenth of `batch_records`: Postgres does not sit idle while a full batch is gathered
    /// (at start, or when the topic is read faster than it is written), and batches grow back to
    /// `batch_records` as soon as writing is the slower part.
    ///
    /// A rebalance (or a write fenced by another instance) starts a new epoch: the batches of
    /// the old one are dropped unwritten, the write in progress ends (stored, or dropped at its
    /// next retry), and the reader continues every owned partition from its stored position.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SinkError> {
        let (batches, mut next) = mpsc::channel::<(u64, Batch)>(1);
        let shared = Arc::new(Shared::default());
        let reader = Reader {
            consumer: self.consumer.clone(),
            pool: self.pool.clone(),
            consumer_name: self.config.consumer.clone(),
            health: self.health.clone(),
            batch_records: self.flow.batch_records,
            batch_bytes: self.flow.batch_bytes,
            early_records: (self.flow.batch_records / 16).max(1),
            early_bytes: (self.flow.batch_bytes / 16).max(1),
            shared: shared.clone(),
            wait: Duration::from_millis(self.config.batch_wait_ms),
            partitions: tripwire_kafka::metrics::Partitions::lazy(),
        };
        let reading = tokio::spawn(reader.run(batches, shutdown.clone()));
        loop {
            let idle_since = std::time::Instant::now();
            shared.writer_idle.store(true, Ordering::Relaxed);
            shared.writer_idle_notify.notify_one();
            let (epoch, batch) = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                batch = next.recv() => match batch {
                    Some(batch) => batch,
                    // The reader stopped: shutdown, or an error it reports below.
                    None => break,
                },
            };
            shared.writer_idle.store(false, Ordering::Relaxed);
            let _writing = shared.writing.lock().await;
            if epoch != shared.epoch.load(Ordering::SeqCst) {
                tracing::debug!(
                    records = batch.len(),
                    "batch of an earlier assignment dropped"
                );
                continue;
            }
            tracing::debug!(records = batch.len(), waited = ?idle_since.elapsed(), "sink writing a batch");
            match self
                .write_until_stored(&batch, epoch, &shared, &shutdown)
                .await
            {
                Written::Stored | Written::Dropped => {}
                Written::Fenced => shared.request_resync(),
                Written::Shutdown => break,
            }
        }
        // A batch the reader still has is not stored; its offsets are not either, so a restart
        // reads it again. Closing the channel releases a reader waiting to hand one over.
        drop(next);
        let read = match reading.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                tracing::warn!(error = %tripwire_runtime::report(&e), "sink reader task ended unexpectedly");
                Ok(())
            }
        };
        read?;
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Writes `batch`, retrying with capped backoff until it is stored, fenced, or its epoch is
    /// over (a rebalance while Postgres was away).
    async fn write_until_stored(
        &self,
        batch: &Batch,
        epoch: u64,
        shared: &Shared,
        shutdown: &CancellationToken,
    ) -> Written {
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
                    self.health.healthy(tripwire_runtime::Component::Postgres);
                    let took = started.elapsed().as_secs_f64();
                    self.metrics.stored(batch.len() as u64, &stats, took);
                    self.commit_informational(batch);
                    if let Some(p) = &self.progress {
                        p.notify_one();
                    }
                    return Written::Stored;
                }
                Err(e @ WriteError::Fenced { .. }) => {
                    self.metrics.counters.sink_batches_fenced_total.increment(1);
                    tracing::warn!(error = %tripwire_runtime::report(&e), "sink batch fenced: reading again from the stored positions");
                    return Written::Fenced;
                }
                Err(WriteError::Stopped(e)) => {
                    tracing::warn!(error = %tripwire_runtime::report(&e), "sink stopped inside a batch");
                    return Written::Shutdown;
                }
                Err(WriteError::Postgres(e)) => {
                    postgres_errors("write_batch").increment(1);
                    self.health.set(
                        tripwire_runtime::Component::Postgres,
                        Status::Unhealthy,
                        format!("batch write failed: {e}"),
                    );
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %tripwire_runtime::report(&e), retry_in = ?delay, records = batch.len(), "sink write failed, retrying the same batch");
                    tokio::select! {
                        // Nothing of this batch is stored; a restart reads it again.
                        _ = shutdown.cancelled() => return Written::Shutdown,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    if epoch != shared.epoch.load(Ordering::SeqCst) {
                        tracing::info!(
                            records = batch.len(),
                            "partitions reassigned while retrying: batch dropped"
                        );
                        return Written::Dropped;
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
    pub fn consumer(&self) -> Arc<GroupConsumer> {
        self.consumer.clone()
    }
}

/// How a write ended.
enum Written {
    Stored,
    /// Another instance stored a later position: the reader must read from the stored ones.
    Fenced,
    /// Its epoch ended while it was retried.
    Dropped,
    Shutdown,
}

/// State the reader and the writer share.
#[derive(Default)]
struct Shared {
    /// Set while the writer waits for a batch.
    writer_idle: AtomicBool,
    /// Signalled when the writer starts waiting.
    writer_idle_notify: Notify,
    /// Counts assignments: a batch gathered in an earlier one is not written.
    epoch: AtomicU64,
    /// Held while a batch is written, so that positions are loaded between writes.
    writing: Mutex<()>,
    /// Set by the writer when a batch was fenced.
    resync: AtomicBool,
    resync_notify: Notify,
}

impl Shared {
    fn request_resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
        self.resync_notify.notify_one();
    }
}

/// How long a gathering batch waits for more messages once the writer is idle.
const QUIET: Duration = Duration::from_millis(5);

/// Messages handled between two yields of the reader, which otherwise holds its worker thread for
/// a whole batch while librdkafka has messages queued.
const YIELD_EVERY: usize = 1024;

/// The reading half of the sink: gathers and prepares batches for the writer.
struct Reader {
    consumer: Arc<GroupConsumer>,
    pool: PgPool,
    consumer_name: String,
    health: Health,
    /// Most messages per batch.
    batch_records: usize,
    /// Most payload bytes per batch (a batch ends with the message that reaches it).
    batch_bytes: u64,
    /// Messages (or bytes) after which a batch is handed over early when the writer is idle.
    early_records: usize,
    early_bytes: u64,
    shared: Arc<Shared>,
    /// Longest wait for a batch to fill after its first message.
    wait: Duration,
    partitions: Lazy<tripwire_kafka::metrics::Partitions>,
}

/// What gathering a batch ended with.
enum Gathered {
    /// Boxed: a batch is many times the size of the other variants.
    Batch(Box<Batch>),
    /// A rebalance or a fence came first: the partial batch is dropped.
    Interrupted,
    Shutdown,
}

impl Reader {
    /// Hands batches to the writer until `shutdown` or until the writer stops taking them. A lost
    /// position ends it with [`SinkError::PositionLost`] (the batches handed over before are
    /// still written; the one being gathered is dropped, nothing of it is stored).
    async fn run(
        self,
        batches: mpsc::Sender<(u64, Batch)>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let mut owned = BTreeSet::new();
        loop {
            let context = self.consumer.context();
            // Wait until the writer took the previous batch before gathering the next one.
            let slot = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = context.changed() => {
                    if !self.reposition(&mut owned, &shutdown).await? {
                        return Ok(());
                    }
                    continue;
                }
                _ = self.shared.resync_notify.notified() => {
                    if !self.reposition(&mut owned, &shutdown).await? {
                        return Ok(());
                    }
                    continue;
                }
                slot = batches.reserve() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()),
                },
            };
            let epoch = self.shared.epoch.load(Ordering::SeqCst);
            let started = std::time::Instant::now();
            match self.collect(&shutdown).await? {
                Gathered::Shutdown => return Ok(()),
                Gathered::Interrupted => {
                    drop(slot);
                    if !self.reposition(&mut owned, &shutdown).await? {
                        return Ok(());
                    }
                }
                Gathered::Batch(batch) => {
                    tracing::debug!(records = batch.len(), took = ?started.elapsed(), "sink batch gathered");
                    if !batch.is_empty() {
                        slot.send((epoch, *batch));
                    }
                }
            }
        }
    }

    /// After a rebalance or a fence: ends the epoch (batches gathered so far are void), waits
    /// for the write in progress, and continues every owned partition from its stored
    /// position. `false` on shutdown.
    async fn reposition(
        &self,
        owned: &mut BTreeSet<Partition>,
        shutdown: &CancellationToken,
    ) -> Result<bool, SinkError> {
        let changes = self.consumer.context().take();
        group::apply(owned, &changes);
        self.shared.resync.store(false, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        let _writing = tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            guard = self.shared.writing.lock() => guard,
        };
        let mut wait = Duration::from_millis(200);
        let stored = loop {
            match tripwire_store::positions::of_consumer(&self.pool, &self.consumer_name).await {
                Ok(stored) => break stored,
                Err(e) => {
                    postgres_errors("load_offsets").increment(1);
                    self.health.set(
                        tripwire_runtime::Component::Postgres,
                        Status::Unhealthy,
                        format!("loading the stored positions failed: {e}"),
                    );
                    tracing::warn!(error = %tripwire_runtime::report(&e), retry_in = ?wait, "loading the sink's positions failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        };
        let parts: Vec<Partition> = owned.iter().cloned().collect();
        self.check_still_kept(&parts, &stored)?;
        if let Err(e) = group::resume_at(&self.consumer, &parts, &stored).await {
            // E.g. a rebalance began meanwhile: it is served by the next poll, and the partitions
            // are positioned again after it.
            kafka_errors("reposition").increment(1);
            tracing::warn!(error = %tripwire_runtime::report(&e), "positioning the partitions failed; trying again");
            self.shared.request_resync();
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(true);
        }
        let owned = parts.len() as f64;
        self.partitions.get().partitions_owned.set(owned);
        tracing::info!(
            partitions = parts.len(),
            "sink owns {} partitions",
            parts.len()
        );
        Ok(true)
    }

    /// Stops with [`SinkError::PositionLost`] when a stored position is below what the broker
    /// still keeps. librdkafka's `auto.offset.reset = error` alone does not always say so: a
    /// real broker whose retention emptied the partition answered nothing at all.
    fn check_still_kept(
        &self,
        parts: &[Partition],
        stored: &std::collections::BTreeMap<Partition, i64>,
    ) -> Result<(), SinkError> {
        for part in parts {
            let Some(&next) = stored.get(part) else {
                continue;
            };
            let watermarks = tokio::task::block_in_place(|| {
                self.consumer
                    .fetch_watermarks(&part.0, part.1, Duration::from_secs(10))
            });
            match watermarks {
                Ok((low, _)) if next < low => {
                    kafka_errors("position_lost").increment(1);
                    return Err(SinkError::PositionLost {
                        reason: format!(
                            "{}/{}: stored offset {next}, the oldest record kept is {low}",
                            part.0, part.1
                        ),
                    });
                }
                Ok(_) => {}
                // Unknown now: the fetch itself reports a lost position.
                Err(e) => {
                    tracing::warn!(topic = %part.0, partition = part.1, error = %tripwire_runtime::report(&e), "watermarks unavailable")
                }
            }
        }
        Ok(())
    }

    /// Gathers up to `batch_records` messages or `batch_bytes` bytes, waiting at most `wait` after the first one, or
    /// `early_records` when the writer is idle. A partly gathered batch is dropped on shutdown,
    /// on a rebalance and on a fence: nothing of it is stored.
    async fn collect(&self, shutdown: &CancellationToken) -> Result<Gathered, SinkError> {
        let context = self.consumer.context();
        let mut batch = Batch::new();
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(Gathered::Shutdown),
            _ = context.changed() => return Ok(Gathered::Interrupted),
            _ = self.shared.resync_notify.notified() => return Ok(Gathered::Interrupted),
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
                        self.health.healthy(tripwire_runtime::Component::Kafka);
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
                    kafka_errors("position_lost").increment(1);
                    // Nothing of this batch is stored yet, so dropping it loses nothing.
                    return Err(SinkError::PositionLost {
                        reason: "offset out of range".into(),
                    });
                }
                Some(Err(e)) => {
                    kafka_errors("consume").increment(1);
                    self.health.set(
                        tripwire_runtime::Component::Kafka,
                        Status::Unhealthy,
                        tripwire_runtime::report(&e),
                    );
                    tracing::warn!(error = %tripwire_runtime::report(&e), "kafka consume error");
                    break;
                }
                None => {}
            }
            if batch.len() >= self.batch_records
                || batch.bytes() >= self.batch_bytes
                || ((batch.len() >= self.early_records || batch.bytes() >= self.early_bytes)
                    && self.shared.writer_idle.load(Ordering::Relaxed))
            {
                break;
            }
            since_yield += 1;
            if since_yield == YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            if self.shared.resync.load(Ordering::SeqCst) {
                return Ok(Gathered::Interrupted);
            }
            // An idle writer takes what there is once the topic goes quiet: the ingest may be
            // waiting for this very batch (its lead limit), and nothing more comes until it is
            // stored.
            let idle = self.shared.writer_idle.load(Ordering::Relaxed);
            let until = if idle {
                deadline.min(tokio::time::Instant::now() + QUIET)
            } else {
                deadline
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Gathered::Shutdown),
                _ = context.changed() => return Ok(Gathered::Interrupted),
                _ = self.shared.writer_idle_notify.notified(), if !idle => {}
                m = tokio::time::timeout_at(until, self.consumer.recv()) => match m {
                    Ok(m) => next = Some(m),
                    Err(_) => break,
                },
            }
        }
        Ok(Gathered::Batch(Box::new(batch)))
    }
}
