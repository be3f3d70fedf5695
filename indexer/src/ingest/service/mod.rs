//! The per-chain ingest loop. One step = one group of block ranges: fetch headers and logs from one
//! provider per range, check the segment links to the cursor (else: reorg), record the blocks as
//! pending, publish, wait for Kafka's acknowledgements, then store the cursor (which clears the
//! pending record). A crash anywhere re-sends at most the unacknowledged ranges (at least once; the
//! sink's writes are idempotent), and blocks left pending that the chain replaced meanwhile are
//! retracted at the next start (`pending.rs`). With a lead limit a group holds only the blocks
//! that keep the topic within it (`lead.rs`); the next group is fetched while this one is
//! published (`fetch.rs`); reorganisations are unwound in `reorg.rs`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_schema::{BlockRef, StreamRecord};

mod error;
mod fetch;
mod lead;
mod pending;
mod publish;
mod reorg;

pub use error::IngestError;
pub use publish::{Acked, KafkaAck, RecordPublisher};

use fetch::plan;

use tripwire_config::{ChainConfig, ContractSpec};
use tripwire_kafka::{self as kafka, IngestProducer};
use tripwire_rpc::records::{self, AddressBook};
use tripwire_rpc::{ChainRpc, ChainSource, RpcError};
use tripwire_runtime::{
    faults,
    health::{Component, Health, Status},
};
use tripwire_store::cursor::{self, Cursor};

/// Encoded records of a group of blocks, in stream order.
#[derive(Default)]
struct Group {
    payloads: Vec<Vec<u8>>,
    /// Key and payload bytes.
    bytes: u64,
    logs: u64,
}

impl Group {
    fn push(&mut self, payload: Vec<u8>, key_len: usize, is_log: bool) {
        self.bytes += (payload.len() + key_len) as u64;
        self.logs += u64::from(is_log);
        self.payloads.push(payload);
    }

    fn append(&mut self, other: &mut Group) {
        self.bytes += std::mem::take(&mut other.bytes);
        self.logs += std::mem::take(&mut other.logs);
        self.payloads.append(&mut other.payloads);
    }

    fn average_bytes(&self) -> Option<f64> {
        (!self.payloads.is_empty()).then(|| self.bytes as f64 / self.payloads.len() as f64)
    }
}

enum Step {
    /// Published a range; more may be waiting.
    Progressed,
    /// At the head: wait for the next poll.
    Idle,
    /// Too far ahead of the sink: wait for it.
    Backpressure,
}

/// Limits how far the ingest runs ahead of the sink's stored Kafka position, for brokers whose
/// retention could drop records the sink has not written yet (the embedded one keeps 5 MiB).
#[derive(Debug, Clone)]
pub struct Backpressure {
    pub limit: tripwire_config::LeadLimit,
    /// The sink's name in `sink_offsets`.
    pub consumer: String,
    /// Signalled by a sink in the same process after every stored batch, so that a waiting
    /// ingest goes on at once instead of at its next poll.
    pub progress: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// How long a held-back ingest waits before it looks at the sink's position again (unless a
/// sink in the same process signals first).
const BACKPRESSURE_POLL: Duration = Duration::from_millis(20);

/// The ingest of one chain, reading it from `S` (the provider pool; tests give a fake) and
/// publishing to `P` (the Kafka producer).
pub struct ChainIngest<S = ChainRpc, P = IngestProducer> {
    chain: ChainConfig,
    contracts: Vec<ContractSpec>,
    book: AddressBook,
    rpc: S,
    producer: P,
    /// What the producer has sent (for the byte lead).
    sent: std::sync::Arc<kafka::SentBytes>,
    topic: String,
    pool: PgPool,
    health: Health,
    cursor: Cursor,
    head: u64,
    backpressure: Option<Backpressure>,
    /// When the providers' state was last written to `rpc_providers`.
    providers_saved: Option<std::time::Instant>,
    /// Offsets and sizes of the records in the topic the sink may not have stored yet.
    produced: lead::Produced,
    /// Average bytes of a record published by this process (for sizing ranges to the lead).
    record_bytes: Option<f64>,
    /// The next group, fetched while the last one was published.
    prefetched: Option<fetch::Prefetched>,
    /// The fault of the last failed step, until a later step stored something.
    recovering: Option<String>,
    metrics: crate::metrics::Ingest,
}

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// Loads the cursor; no network traffic besides Postgres.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        chain: ChainConfig,
        contracts: Vec<ContractSpec>,
        rpc: S,
        producer: P,
        sent: std::sync::Arc<kafka::SentBytes>,
        topic: String,
        pool: PgPool,
        health: Health,
    ) -> Result<Self, IngestError> {
        cursor::register_chain(&pool, chain.chain_id, &chain.name).await?;
        let cursor = cursor::load(&pool, chain.chain_id).await?;
        if let Some(tip) = cursor.tip() {
            tracing::info!(chain = %chain.name, block = tip.number, "resuming from cursor");
        } else {
            tracing::info!(chain = %chain.name, block = chain.start_block, "starting from start_block");
        }
        let book = records::address_book(&contracts);
        let metrics = crate::metrics::Ingest::new(&chain.name);
        Ok(ChainIngest {
            chain,
            contracts,
            book,
            rpc,
            producer,
            sent,
            topic,
            pool,
            health,
            cursor,
            head: 0,
            backpressure: None,
            providers_saved: None,
            produced: Default::default(),
            record_bytes: None,
            prefetched: None,
            recovering: None,
            metrics,
        })
    }

    /// Waits for the sink when the topic holds more than `limit` beyond its stored position.
    pub fn with_backpressure(mut self, limit: Option<Backpressure>) -> Self {
        self.backpressure = limit;
        self
    }

    fn label(&self) -> String {
        self.chain.name.clone()
    }

    /// Runs until `shutdown` or a fatal error. Transient errors are retried with capped, jittered
    /// exponential backoff; health reports the failing component meanwhile.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let poll = Duration::from_millis(self.chain.poll_interval_ms);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times();
        let mut delays = backoff.build();
        while !shutdown.is_cancelled() {
            let result = self.step().await;
            match &result {
                // Health is good again only once work is: a range stored, or the head checked.
                Ok(Step::Progressed | Step::Idle) => self.recovering = None,
                Ok(Step::Backpressure) => {}
                Err(e) => self.recovering = Some(e.fault()),
            }
            self.report_providers(result.is_ok()).await;
            let wait = match result {
                Ok(step) => {
                    delays = backoff.build();
                    self.health.healthy(tripwire_runtime::Component::Kafka);
                    self.health.healthy(tripwire_runtime::Component::Postgres);
                    match step {
                        Step::Progressed => continue,
                        Step::Idle => poll,
                        Step::Backpressure => {
                            let progress =
                                self.backpressure.as_ref().and_then(|b| b.progress.clone());
                            if let Some(progress) = progress {
                                tokio::select! {
                                    _ = shutdown.cancelled() => {}
                                    _ = progress.notified() => {}
                                    _ = tokio::time::sleep(BACKPRESSURE_POLL) => {}
                                }
                                continue;
                            }
                            BACKPRESSURE_POLL
                        }
                    }
                }
                Err(e) if e.is_fatal() => {
                    self.health.set(
                        Component::Ingest(self.chain.name.clone()),
                        Status::Unhealthy,
                        tripwire_runtime::report(&e),
                    );
                    return Err(e);
                }
                Err(e) => {
                    self.health.set(
                        e.component(&self.chain.name),
                        Status::Unhealthy,
                        tripwire_runtime::report(&e),
                    );
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(chain = %self.chain.name, error = %tripwire_runtime::report(&e), retry_in = ?delay, "ingest step failed");
                    delay
                }
            };
            // The head age keeps counting while the ingest waits out a backoff: an alert on it
            // must not see a frozen value during an outage.
            let until = tokio::time::Instant::now() + wait;
            loop {
                let tick = until.min(tokio::time::Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(tick) => {}
                }
                if let Some(age) = self.rpc.head_age() {
                    self.metrics
                        .head_age
                        .get()
                        .chain_head_age_seconds
                        .set(age.as_secs_f64());
                }
                if tick >= until {
                    break;
                }
            }
        }
        tracing::info!(chain = %self.chain.name, "ingest stopped");
        Ok(())
    }

    /// Provider health: degraded while some provider is out of rotation, and the provider table
    /// for `status` (written at most every 2 s). `step_ok` is false when the step failed, which
    /// keeps the RPC component's failure set by `run`.
    async fn report_providers(&mut self, step_ok: bool) {
        let component = Component::Rpc(self.chain.name.clone());
        if let Some(age) = self.rpc.head_age() {
            self.metrics
                .head_age
                .get()
                .chain_head_age_seconds
                .set(age.as_secs_f64());
        }
        let snapshot = self.rpc.snapshot();
        let out: Vec<String> = snapshot
            .iter()
            .filter(|p| !p.in_rotation)
            .map(|p| {
                format!(
                    "{} out of rotation ({})",
                    p.provider,
                    p.reason.as_deref().unwrap_or("-")
                )
            })
            .collect();
        let mut notes: Vec<String> = snapshot
            .iter()
            .filter_map(|p| {
                let (ago, what) = p.recent_inconsistency.as_ref()?;
                Some(format!(
                    "{} gave {} inconsistent answers (last {:.0}s ago: {what})",
                    p.provider,
                    p.inconsistent_answers,
                    ago.as_secs_f64()
                ))
            })
            .collect();
        if let Some(fault) = &self.recovering {
            notes.push(format!("recovering after {fault}: nothing stored since"));
        }
        if step_ok {
            let all: Vec<String> = out.iter().chain(&notes).cloned().collect();
            if all.is_empty() {
                self.health.healthy(component.clone());
            } else if out.len() == snapshot.len() {
                self.health
                    .set(component.clone(), Status::Unhealthy, all.join("; "));
            } else {
                self.health
                    .set(component.clone(), Status::Degraded, all.join("; "));
            }
        }
        if self
            .providers_saved
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.providers_saved = Some(std::time::Instant::now());
        if let Err(e) = cursor::save_providers(&self.pool, self.chain.chain_id, &snapshot).await {
            tracing::debug!(chain = %self.chain.name, error = %tripwire_runtime::report(&e), "could not store provider state");
        }
    }

    /// The contracts deployed by block `to` (a contract with a later `start_block` is not asked
    /// for yet).
    fn interest_for(&self, to: u64) -> tripwire_rpc::Interest {
        records::interest(
            self.contracts
                .iter()
                .filter(|c| c.start_block.is_none_or(|s| s <= to)),
        )
    }

    async fn step(&mut self) -> Result<Step, IngestError> {
        if !self.cursor.pending.is_empty() {
            self.resolve_pending().await?;
        }
        let heads = self.rpc.heads().await?;
        let head = heads.best;
        self.head = head;
        self.metrics.head.get().chain_head_block.set(head as f64);
        // Only as far as a provider that can be asked has reached.
        let target = heads.serving.saturating_sub(self.chain.confirmations);
        let next = match self.cursor.tip() {
            Some(t) => t.number + 1,
            None => self.chain.start_block,
        };
        if next > target {
            // Caught up. The tip itself may have been replaced at the same height.
            if let Some(tip) = self.cursor.tip() {
                match self.rpc.header(tip.number).await? {
                    (Some(h), provider) if h.hash != tip.hash => {
                        self.reorg_question(tip, provider, h.hash).await?;
                        return Ok(Step::Progressed);
                    }
                    (Some(_), _) => {}
                    // A provider behind us is not evidence of a reorg.
                    (None, provider) => {
                        return Err(RpcError::MissingBlock {
                            provider: self.rpc.label(provider).to_owned(),
                            block: tip.number,
                        }
                        .into())
                    }
                }
            }
            self.report_lag();
            cursor::save_head(&self.pool, self.chain.chain_id, head).await?;
            return Ok(Step::Idle);
        }
        let component = Component::Backpressure(self.chain.name.clone());
        let lead = self.sink_lead().await?;
        if let Some(l) = lead.filter(lead::Lead::is_full) {
            self.health
                .set(component.clone(), Status::Degraded, l.describe());
            return Ok(Step::Backpressure);
        }
        self.health.healthy(component.clone());
        // During backfill several consecutive ranges are fetched at once; they are checked,
        // published and committed strictly in order. With a lead limit, each range is sized to
        // its share of the room left, so that the group is usually published whole.
        let started = std::time::Instant::now();
        let in_flight = self.chain.ranges_in_flight;
        let share = lead
            .and_then(|l| self.room_in_logs(&l))
            .map(|logs| (logs / in_flight as u64).max(1));
        let span = self.rpc.range_blocks_within(share);
        let (ranges, fetched) = match self.take_prefetched(next, target).await {
            Some(p) => p,
            None => {
                let ranges = plan(next, target, span, in_flight);
                let fetched = self.fetch(&ranges).await;
                (ranges, fetched)
            }
        };
        let window = self.chain.max_reorg_depth as usize + 1;
        let key = self.chain.chain_id.to_string();
        let mut tip = self.cursor.tip();
        let mut group = Group::default();
        let mut headers = Vec::new();
        let mut cut = false;
        for ((from, to), data) in ranges.into_iter().zip(fetched) {
            let data = match data {
                Ok(d) => d,
                // Keep what precedes a failed range; the error surfaces at the next step.
                Err(e) if !headers.is_empty() => {
                    tracing::debug!(chain = %self.chain.name, error = %tripwire_runtime::report(&e), "range fetch failed");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if let (Some(t), Some(first)) = (tip, data.headers.first()) {
                if first.parent_hash != t.hash {
                    if headers.is_empty() {
                        tracing::warn!(chain = %self.chain.name, block = first.number, provider = self.rpc.label(data.provider), "parent hash mismatch");
                        self.reorg_question(t, data.provider, first.parent_hash)
                            .await?;
                        return Ok(Step::Progressed);
                    }
                    // The chain moved between two fetches: publish the linked part only.
                    break;
                }
            }
            let built = records::build(
                self.chain.chain_id,
                &self.chain.name,
                &data.headers,
                data.logs,
                &data.transactions,
                &self.contracts,
                &self.book,
            )
            .map_err(|source| IngestError::Inconsistent {
                chain: self.label(),
                from,
                to,
                source,
            })?;
            // Block by block (a block's transactions and logs, then its marker): the group ends
            // with the last block that keeps the topic within the lead limit.
            let mut block = Group::default();
            let mut taken = 0;
            for rec in built {
                let is_marker = matches!(rec, StreamRecord::Block(_));
                block.push(
                    rec.to_json(),
                    key.len(),
                    matches!(rec, StreamRecord::Log(_)),
                );
                if !is_marker {
                    continue;
                }
                let total = (group.payloads.len() + block.payloads.len()) as u64;
                if lead.is_some_and(|l| !l.admits(total, group.bytes + block.bytes))
                    && !(group.payloads.is_empty() && lead.is_some_and(|l| l.records == 0))
                {
                    cut = true;
                    break;
                }
                group.append(&mut block);
                taken += 1;
            }
            let mut range_headers = data.headers;
            range_headers.truncate(taken);
            if let Some(h) = range_headers.last() {
                tip = Some(BlockRef {
                    number: h.number,
                    hash: h.hash,
                });
            }
            headers.extend(range_headers);
            if cut {
                break;
            }
        }
        if headers.is_empty() {
            // Not even the first block fits the room the sink left: wait for it.
            if let Some(l) = lead {
                self.health
                    .set(component.clone(), Status::Degraded, l.describe());
            }
            return Ok(Step::Backpressure);
        }
        if let Some(avg) = group.average_bytes() {
            self.record_bytes = Some(self.record_bytes.map_or(avg, |b| 0.75 * b + 0.25 * avg));
        }
        // While this group is published and acknowledged, the next one is fetched, sized to the
        // room this group leaves (used only if it still starts at the cursor then, and checked
        // like any other).
        if !cut {
            let room = share.map(|s| (s * in_flight as u64).saturating_sub(group.logs));
            if room != Some(0) {
                let span = self
                    .rpc
                    .range_blocks_within(room.map(|r| (r / in_flight as u64).max(1)));
                let after = tip.map_or(next, |t| t.number + 1);
                self.prefetch(plan(after, target, span, in_flight));
            }
        }
        if let Some(l) = lead {
            let records = l.records + group.payloads.len() as u64;
            let gauges = self.metrics.lead.get();
            gauges.lead_records.set(records as f64);
            let bytes = l
                .bytes
                .map_or(-1.0, |b| b as f64 + (group.bytes as f64 * l.factor).ceil());
            gauges.lead_bytes.set(bytes);
            if !l.admits(group.payloads.len() as u64, group.bytes) {
                self.metrics
                    .counters
                    .ingest_lead_overruns_total
                    .increment(1);
                tracing::warn!(chain = %self.chain.name, block = headers[0].number, records = group.payloads.len(), bytes = group.bytes, "a single block is larger than the lead limit: published alone");
            }
        }
        cursor::save_pending(&self.pool, self.chain.chain_id, &headers).await?;
        self.publish(&group.payloads).await?;
        faults::point(faults::points::INGEST_AFTER_ACK)?;
        for h in &headers {
            self.cursor.push(
                BlockRef {
                    number: h.number,
                    hash: h.hash,
                },
                window,
            );
        }
        cursor::save(&self.pool, self.chain.chain_id, &self.cursor, head).await?;
        let to = tip.map_or(0, |t| t.number);
        let counters = &self.metrics.counters;
        counters.logs_produced_total.increment(group.logs);
        counters
            .blocks_produced_total
            .increment(headers.len() as u64);
        self.metrics.ingested.get().ingested_block.set(to as f64);
        self.metrics
            .batch
            .batch_duration_seconds
            .record(started.elapsed().as_secs_f64());
        self.report_lag();
        tracing::debug!(chain = %self.chain.name, from = next, to, logs = group.logs, records = group.payloads.len(), bytes = group.bytes, cut, "ranges published");
        Ok(Step::Progressed)
    }
}
