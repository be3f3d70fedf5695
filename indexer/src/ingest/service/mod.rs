//! The per-chain ingest loop. One step = one group of block ranges: fetch headers and logs from one
//! provider per range, check the segment links to the cursor (else: reorg), record the blocks as
//! pending, publish, wait for Kafka's acknowledgements, then store the cursor (which clears the
//! pending record). A crash anywhere re-sends at most the unacknowledged ranges (at least once; the
//! sink's writes are idempotent), and blocks left pending that the chain replaced meanwhile are
//! retracted at the next start (`pending.rs`).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use metrics::{counter, gauge, histogram};
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_schema::{BlockRef, Retraction, StreamRecord};

mod lead;
mod pending;

use super::{
    cursor::{self, Cursor, UNKNOWN_HASH},
    records::{self, AddressBook, RangeError},
};
use crate::{
    config::{ChainConfig, ContractSpec},
    faults,
    health::{Health, Status},
    metrics as m,
    rpc::{ChainRpc, ProviderId, RpcError},
};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    /// A test stopped the process at a fault point (see `faults.rs`).
    #[error(transparent)]
    Stopped(#[from] crate::faults::Stopped),
    #[error("chain {chain}: inconsistent RPC answer for blocks {from}..={to}: {source}")]
    Inconsistent {
        chain: String,
        from: u64,
        to: u64,
        source: RangeError,
    },
    #[error(
        "chain {chain}: reorg deeper than max_reorg_depth = {max}: none of the last {checked} \
         indexed blocks (up to block {tip}) is still canonical. Stopping instead of writing \
         inconsistent data; raise max_reorg_depth or reset the cursor with replay"
    )]
    ReorgTooDeep {
        chain: String,
        tip: u64,
        checked: usize,
        max: u64,
    },
}

impl IngestError {
    /// Retrying cannot help: the process must stop.
    pub fn is_fatal(&self) -> bool {
        match self {
            IngestError::ReorgTooDeep { .. } => true,
            IngestError::Rpc(e) => e.is_fatal(),
            _ => false,
        }
    }

    /// The fault in an operator's words (see [`RpcError::fault`]).
    pub fn fault(&self) -> String {
        match self {
            IngestError::Rpc(e) => e.fault(),
            IngestError::Kafka(e) => format!("Kafka error ({e})"),
            IngestError::Postgres(_) => "Postgres error".into(),
            IngestError::Stopped(_) => "stopped".into(),
            IngestError::Inconsistent { .. } => "inconsistent answers".into(),
            IngestError::ReorgTooDeep { .. } => "reorg too deep".into(),
        }
    }

    fn component(&self) -> &'static str {
        match self {
            IngestError::Rpc(_) | IngestError::Inconsistent { .. } => "rpc",
            IngestError::Kafka(_) => "kafka",
            IngestError::Postgres(_) => "postgres",
            IngestError::Stopped(_) => "ingest",
            IngestError::ReorgTooDeep { .. } => "reorg",
        }
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
/// retention could drop records the sink has not written yet (the embedded one keeps ~5 MiB).
#[derive(Debug, Clone)]
pub struct Backpressure {
    pub max_lead_records: u64,
    /// The sink's name in `sink_offsets`.
    pub consumer: String,
}

/// The ingest of one chain.
pub struct ChainIngest {
    chain: ChainConfig,
    contracts: Vec<ContractSpec>,
    book: AddressBook,
    rpc: ChainRpc,
    producer: FutureProducer,
    topic: String,
    pool: PgPool,
    health: Health,
    cursor: Cursor,
    head: u64,
    backpressure: Option<Backpressure>,
    /// When the providers' state was last written to `rpc_providers`.
    providers_saved: Option<std::time::Instant>,
    /// Next offset per partition after the last acknowledged record, as Kafka reported it.
    produced: std::collections::BTreeMap<i32, i64>,
    /// The fault of the last failed step, until a later step stored something.
    recovering: Option<String>,
}

impl ChainIngest {
    /// Loads the cursor; no network traffic besides Postgres.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        chain: ChainConfig,
        contracts: Vec<ContractSpec>,
        rpc: ChainRpc,
        producer: FutureProducer,
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
        Ok(ChainIngest {
            chain,
            contracts,
            book,
            rpc,
            producer,
            topic,
            pool,
            health,
            cursor,
            head: 0,
            backpressure: None,
            providers_saved: None,
            produced: Default::default(),
            recovering: None,
        })
    }

    /// Waits for the sink when it is more than `limit.max_lead_records` behind.
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
                    self.health.healthy("kafka");
                    self.health.healthy("postgres");
                    match step {
                        Step::Progressed => continue,
                        Step::Idle => poll,
                        Step::Backpressure => Duration::from_millis(100),
                    }
                }
                Err(e) if e.is_fatal() => {
                    self.health.set(
                        &format!("ingest:{}", self.chain.name),
                        Status::Unhealthy,
                        e.to_string(),
                    );
                    return Err(e);
                }
                Err(e) => {
                    let component = match e.component() {
                        "rpc" => format!("rpc:{}", self.chain.name),
                        other => other.to_owned(),
                    };
                    self.health
                        .set(&component, Status::Unhealthy, e.to_string());
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(chain = %self.chain.name, error = %e, retry_in = ?delay, "ingest step failed");
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
                    gauge!(m::HEAD_AGE, "chain" => self.label()).set(age.as_secs_f64());
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
        let component = format!("rpc:{}", self.chain.name);
        if let Some(age) = self.rpc.head_age() {
            gauge!(m::HEAD_AGE, "chain" => self.label()).set(age.as_secs_f64());
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
                self.health.healthy(&component);
            } else if out.len() == snapshot.len() {
                self.health
                    .set(&component, Status::Unhealthy, all.join("; "));
            } else {
                self.health
                    .set(&component, Status::Degraded, all.join("; "));
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
            tracing::debug!(chain = %self.chain.name, error = %e, "could not store provider state");
        }
    }

    /// The contracts deployed by block `to` (a contract with a later `start_block` is not asked
    /// for yet).
    fn interest_for(&self, to: u64) -> crate::rpc::Interest {
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
        gauge!(m::HEAD_BLOCK, "chain" => self.label()).set(head as f64);
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
        let component = format!("backpressure:{}", self.chain.name);
        let lead = self.sink_lead().await?;
        if let Some((lead, max)) = lead.filter(|(lead, max)| lead > max) {
            self.health.set(
                &component,
                Status::Degraded,
                format!(
                    "waiting for the sink: {lead} records ahead (kafka.max_lead_records = {max})"
                ),
            );
            return Ok(Step::Backpressure);
        }
        self.health.healthy(&component);
        // During backfill several consecutive ranges are fetched at once; they are checked,
        // published and committed strictly in order.
        let started = std::time::Instant::now();
        let mut ranges = Vec::new();
        let mut from = next;
        let span = self.rpc.range_blocks();
        while from <= target && ranges.len() < self.chain.ranges_in_flight {
            let to = target.min(from + span - 1);
            ranges.push((from, to));
            from = to + 1;
        }
        let last_to = ranges.last().map_or(next, |r| r.1);
        let interest = self.interest_for(last_to);
        let rpc = &self.rpc;
        let fetched: Vec<_> = futures::stream::iter(ranges.iter().copied())
            .map(|(f, t)| rpc.fetch_range(f, t, &interest))
            .buffered(self.chain.ranges_in_flight)
            .collect()
            .await;

        let window = self.chain.max_reorg_depth as usize + 1;
        let mut tip = self.cursor.tip();
        let mut recs = Vec::new();
        let mut headers = Vec::new();
        for ((from, to), data) in ranges.into_iter().zip(fetched) {
            // With a lead limit, the group ends with the range that reaches it: the limit is
            // overshot by one range at most, and the later ranges are fetched again later.
            if lead.is_some_and(|(lead, max)| lead + recs.len() as u64 > max) {
                break;
            }
            let data = match data {
                Ok(d) => d,
                // Keep what precedes a failed range; the error surfaces at the next step.
                Err(e) if !headers.is_empty() => {
                    tracing::debug!(chain = %self.chain.name, error = %e, "range fetch failed");
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
                &self.contracts,
                &self.book,
            )
            .map_err(|source| IngestError::Inconsistent {
                chain: self.label(),
                from,
                to,
                source,
            })?;
            recs.extend(built);
            tip = data.headers.last().map(|h| BlockRef {
                number: h.number,
                hash: h.hash,
            });
            headers.extend(data.headers);
        }
        let logs = recs
            .iter()
            .filter(|r| matches!(r, StreamRecord::Log(_)))
            .count();
        cursor::save_pending(&self.pool, self.chain.chain_id, &headers).await?;
        self.publish(&recs).await?;
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
        counter!(m::LOGS_PRODUCED, "chain" => self.label()).increment(logs as u64);
        counter!(m::BLOCKS_PRODUCED, "chain" => self.label()).increment(headers.len() as u64);
        gauge!(m::INGESTED_BLOCK, "chain" => self.label()).set(to as f64);
        histogram!(m::BATCH_SECONDS, "stage" => "ingest", "chain" => self.label())
            .record(started.elapsed().as_secs_f64());
        self.report_lag();
        tracing::debug!(chain = %self.chain.name, from = next, to, logs, "ranges published");
        Ok(Step::Progressed)
    }

    fn report_lag(&self) {
        let ingested = self.cursor.tip().map_or(0, |t| t.number);
        let lag = self.head.saturating_sub(ingested);
        gauge!(m::LAG_BLOCKS, "chain" => self.label(), "stage" => "ingest").set(lag as f64);
    }

    /// Publishes records in order and waits until Kafka acknowledged all of them.
    async fn publish(&mut self, recs: &[StreamRecord]) -> Result<(), IngestError> {
        let key = self.chain.chain_id.to_string();
        let mut pending = Vec::with_capacity(recs.len());
        for r in recs {
            let payload = r.to_json();
            let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        // The local queue is full: let librdkafka drain it.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        counter!(m::KAFKA_ERRORS, "op" => "produce").increment(1);
                        return Err(e.into());
                    }
                }
            }
        }
        faults::point(faults::points::INGEST_AFTER_PUBLISH)?;
        let all = futures::future::join_all(pending);
        tokio::pin!(all);
        let results = loop {
            tokio::select! {
                r = &mut all => break r,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {
                    self.health.set("kafka", Status::Unhealthy, "no acknowledgement from Kafka for 5 s");
                }
            }
        };
        for r in results {
            match r {
                Ok(Ok(d)) => {
                    let next = self.produced.entry(d.partition).or_default();
                    *next = (*next).max(d.offset + 1);
                }
                Ok(Err((e, _))) => {
                    counter!(m::KAFKA_ERRORS, "op" => "delivery").increment(1);
                    return Err(e.into());
                }
                Err(_) => return Err(KafkaError::Canceled.into()),
            }
        }
        Ok(())
    }

    /// Provider `reporter` says the block at our tip's height is not `tip` (`theirs` is its
    /// hash there). Two providers disagreeing is a question, not data: a second provider decides.
    /// If it still has our tip, the reporter is on another fork and leaves rotation; otherwise the
    /// chain did reorganise and is unwound using the witness's view.
    async fn reorg_question(
        &mut self,
        tip: BlockRef,
        reporter: ProviderId,
        theirs: alloy::primitives::B256,
    ) -> Result<(), IngestError> {
        match self.rpc.header_elsewhere(tip.number, reporter).await? {
            Some((Some(h), witness)) if h.hash == tip.hash => {
                self.rpc.penalize(
                    reporter,
                    tip.number,
                    &format!(
                        "it says {theirs}, {} and the indexed chain say {}",
                        self.rpc.label(witness),
                        tip.hash
                    ),
                );
                counter!(m::PROVIDER_FORKS, "chain" => self.label()).increment(1);
                Ok(())
            }
            Some((Some(_), witness)) => self.unwind(Some(witness), true).await,
            // Nobody else can tell: believe the reporter, but not as far as a fatal deep reorg.
            _ => self.unwind(Some(reporter), false).await,
        }
    }

    /// Walks back to the common ancestor of the stored blocks and the provider's chain, publishes a
    /// retraction of everything above it, and moves the cursor there. `confirmed`: a second
    /// provider agreed that the tip changed (or there is only one provider).
    async fn unwind(
        &mut self,
        prefer: Option<ProviderId>,
        confirmed: bool,
    ) -> Result<(), IngestError> {
        let recent: Vec<BlockRef> = self.cursor.recent.iter().copied().collect();
        let (Some(lowest), Some(tip)) = (recent.first().copied(), recent.last().copied()) else {
            return Ok(());
        };
        let (current, source) = self.rpc.headers(lowest.number, tip.number, prefer).await?;
        if current.last().is_some_and(Option::is_none) {
            return Err(RpcError::MissingBlock {
                provider: self.rpc.label(source).to_owned(),
                block: tip.number,
            }
            .into());
        }
        let ancestor = recent
            .iter()
            .rev()
            .find(|b| {
                current[(b.number - lowest.number) as usize].is_some_and(|h| h.hash == b.hash)
            })
            .copied();
        let ancestor = match ancestor {
            // Our tip is still canonical for this provider: nothing to retract.
            Some(a) if a == tip => return Ok(()),
            Some(a) if tip.number - a.number <= self.chain.max_reorg_depth => a,
            // The window reaches back to the start block: everything we hold is orphaned.
            None if lowest.number <= self.chain.start_block => BlockRef {
                number: self.chain.start_block.saturating_sub(1),
                hash: UNKNOWN_HASH,
            },
            // One provider alone does not stop the indexer: it may be on another fork.
            _ if !confirmed && self.rpc.provider_count() > 1 => {
                self.rpc.penalize(
                    source,
                    tip.number,
                    "none of the indexed blocks is on its chain, and no other provider confirms",
                );
                return Err(RpcError::Invalid {
                    provider: self.rpc.label(source).to_owned(),
                    method: "eth_getBlockByNumber",
                    message: "reports a reorg deeper than max_reorg_depth that no other provider confirms".into(),
                }
                .into());
            }
            _ => {
                return Err(IngestError::ReorgTooDeep {
                    chain: self.label(),
                    tip: tip.number,
                    checked: recent.len(),
                    max: self.chain.max_reorg_depth,
                })
            }
        };
        let orphaned: Vec<BlockRef> = recent
            .iter()
            .filter(|b| b.number > ancestor.number || ancestor.hash == UNKNOWN_HASH)
            .copied()
            .collect();
        let depth = orphaned.len();
        tracing::warn!(chain = %self.chain.name, ancestor = ancestor.number, depth, "reorg: retracting orphaned blocks");
        let retraction = StreamRecord::Retraction(Retraction {
            chain_id: self.chain.chain_id,
            common_ancestor: ancestor,
            orphaned,
        });
        self.publish(std::slice::from_ref(&retraction)).await?;
        if ancestor.hash == UNKNOWN_HASH {
            self.cursor.recent.clear();
        } else {
            self.cursor.truncate_above(ancestor.number);
        }
        cursor::save(&self.pool, self.chain.chain_id, &self.cursor, self.head).await?;
        counter!(m::REORGS, "chain" => self.label(), "stage" => "ingest").increment(1);
        histogram!(m::REORG_DEPTH, "chain" => self.label()).record(depth as f64);
        Ok(())
    }
}
