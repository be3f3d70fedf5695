//! The watchdog process: joins the `[watchdog] consumer` group for the chain topics, reads the
//! topics Kafka gives it at their stored positions, feeds each log and block marker once to the
//! detectors, turns findings into incidents, stores them and posts them to Alertmanager at once
//! (re-sent while firing), and checkpoints detector state with the stream position so a restart
//! neither re-learns nor counts twice.
//!
//! State is kept per topic (a [`Scope`]): several watchdog instances share the topics, and the one
//! a rebalance gives a topic loads its detectors, seen records, position and incidents from
//! Postgres. A revoked topic is checkpointed and let go before another instance reads it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::{consumer::Consumer, message::Message};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_kafka::{
    self as kafka,
    group::{self, GroupConsumer, Partition},
};
use tripwire_runtime::health::{Component, Health, Status};
use tripwire_schema::StreamRecord;

use crate::alerts::{self, Changes, Deliveries, IncidentBook, Render, State};
use crate::config::WatchdogSettings;
use crate::safe::Proposer;
use crate::store;
use tripwire_detect::DetectorSet;

pub mod action;
mod history;
mod propose;
mod scope;
use action::IncidentAction;
use propose::Proposals;
use scope::Scope;

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic} not found on {brokers} after 30 s (has the indexer created it?)")]
    MissingTopic { topic: String, brokers: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Detect(#[from] tripwire_detect::DetectError),
    #[error(transparent)]
    Client(#[from] reqwest::Error),
}

/// One running watchdog.
pub struct Watchdog {
    consumer_name: String,
    pool: PgPool,
    consumer: Arc<GroupConsumer>,
    /// The detectors' configs, for the detector sets of the scopes.
    detector_configs: Vec<tripwire_detect::DetectorConfig>,
    /// Chains per topic, from the config.
    topics: BTreeMap<String, Vec<u64>>,
    /// The topics this instance owns now.
    scopes: BTreeMap<String, Scope>,
    /// Owned partitions, as the group gave them.
    owned: std::collections::BTreeSet<Partition>,
    /// Actions per detector name (e.g. `pause`), carried by its incidents.
    actions: BTreeMap<String, Vec<tripwire_detect::Action>>,
    book: IncidentBook,
    health: Health,
    /// A queue and task per Alertmanager: incidents are handed over, never waited for.
    deliveries: Deliveries,
    /// How long the delivery tasks may take for their last attempt at shutdown.
    delivery_timeout: Duration,
    /// Stops the delivery and proposal tasks (after the consumption loop ended).
    stop_tasks: CancellationToken,
    resend_every: Duration,
    checkpoint_every: Duration,
    /// Safe pause proposals, when `[watchdog.safe]` is configured.
    proposer: Option<Arc<Proposer>>,
    /// The queue of the task that prepares them.
    proposals: Option<Proposals>,
    /// Chain names by id, for the back-test commands of lost history.
    chain_names: BTreeMap<u64, String>,
    /// Topics with records lost recently (their `history:` health component is degraded).
    alarms: history::Alarms,
    metrics: crate::metrics::Service,
}

impl Watchdog {
    /// Connects and joins the consumer group; the topics' state is loaded as Kafka assigns them.
    pub async fn new(
        ws: &WatchdogSettings,
        brokers: &str,
        pool: PgPool,
        health: Health,
        proposer: Option<Arc<Proposer>>,
    ) -> Result<Watchdog, WatchdogError> {
        let w = ws.watchdog();
        // Checks the detectors' configs once, before anything is consumed.
        DetectorSet::new(&w.detectors)?;
        let am = &w.alertmanager;
        let book = IncidentBook::new(alerts::Policy {
            hold: Duration::from_secs(am.resolve_after_s),
            cooldown: Duration::from_secs(am.cooldown_s),
            max_per_minute: am.max_alerts_per_minute,
        });
        let render = Render {
            chains: ws
                .settings()
                .config
                .chains
                .iter()
                .map(|c| (c.chain_id, c.name.clone()))
                .collect(),
            explorer_tx_url: am.explorer_tx_url.clone(),
            generator_url: am.generator_url.clone(),
            firing_ttl: am.resend_interval() * 3,
        };
        let delivery_timeout = Duration::from_secs(am.timeout_s.max(1));
        let client =
            alerts::Client::new(am.urls.clone(), delivery_timeout, am.bearer_token.clone())?;
        let stop_tasks = CancellationToken::new();
        let deliveries = Deliveries::spawn(client, render, health.clone(), stop_tasks.clone());
        let proposals = proposer.as_ref().map(|p| {
            Proposals::spawn(
                p.clone(),
                w.consumer.clone(),
                health.clone(),
                stop_tasks.clone(),
            )
        });

        let consumer = kafka::group_consumer(
            &ws.settings().config.kafka,
            brokers,
            &w.consumer,
            &[
                // A position retention removed: continue from the oldest record still held.
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("fetch.wait.max.ms", "20"),
            ],
        )?;
        let mut topics: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for chain in &ws.settings().config.chains {
            topics
                .entry(ws.settings().topic(chain))
                .or_default()
                .push(chain.chain_id);
        }
        for topic in topics.keys() {
            if !group::wait_for_topic(&consumer, topic).await? {
                return Err(WatchdogError::MissingTopic {
                    topic: topic.clone(),
                    brokers: brokers.to_owned(),
                });
            }
        }
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        tracing::info!(group = %w.consumer, topics = ?names, "watchdog joined its consumer group");
        let actions = w
            .detectors
            .iter()
            .map(|d| (d.name.clone(), d.actions.clone()))
            .collect();
        let metrics = crate::metrics::Service::new();
        metrics.firing.alerts_firing.set(0.0);
        Ok(Watchdog {
            consumer_name: w.consumer.clone(),
            pool,
            consumer: Arc::new(consumer),
            detector_configs: w.detectors.clone(),
            topics,
            scopes: BTreeMap::new(),
            owned: Default::default(),
            actions,
            book,
            health,
            deliveries,
            delivery_timeout,
            stop_tasks,
            resend_every: am.resend_interval(),
            checkpoint_every: Duration::from_secs(w.checkpoint_interval_s.max(1)),
            proposer,
            proposals,
            chain_names: ws
                .settings()
                .config
                .chains
                .iter()
                .map(|c| (c.chain_id, c.name.clone()))
                .collect(),
            alarms: history::Alarms::default(),
            metrics,
        })
    }

    /// Runs until `shutdown`; saves a last checkpoint on the way out.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), WatchdogError> {
        let consumer = self.consumer.clone();
        let context = consumer.context().clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_checkpoint = Instant::now();
        let mut last_resend = Instant::now();
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = context.changed() => self.rebalance(&shutdown).await?,
                msg = consumer.recv() => match msg {
                    Ok(msg) => {
                        let changes = self.handle(msg.topic(), msg.partition(), msg.offset(), msg.payload());
                        if !changes.changed.is_empty() {
                            self.apply(changes, &shutdown).await;
                        }
                        self.health.healthy(tripwire_runtime::Component::Kafka);
                    }
                    Err(e) => {
                        self.health.set(tripwire_runtime::Component::Kafka, Status::Unhealthy, tripwire_runtime::report(&e));
                        tracing::warn!(error = %tripwire_runtime::report(&e), "kafka consume failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = tick.tick() => {
                    // Incidents resolve by block time, as records arrive (see `handle`); wall
                    // time only paces re-sending what fires.
                    for topic in self.alarms.expired() {
                        self.health.healthy(Component::History(topic));
                    }
                    if last_resend.elapsed() >= self.resend_every {
                        self.deliveries.enqueue(self.book.firing());
                        last_resend = Instant::now();
                        self.book.forget_old();
                    }
                    if last_checkpoint.elapsed() >= self.checkpoint_every && self.checkpoint().await {
                        last_checkpoint = Instant::now();
                    }
                    if last_lag.elapsed() >= self.checkpoint_every.min(Duration::from_secs(10)) {
                        self.report_lag().await;
                        last_lag = Instant::now();
                    }
                }
            }
        }
        self.checkpoint().await;
        // The delivery tasks make a last attempt at what they hold, each within its timeout.
        self.stop_tasks.cancel();
        self.deliveries
            .finish(self.delivery_timeout + Duration::from_secs(1))
            .await;
        tracing::info!("watchdog stopped");
        Ok(())
    }

    /// Feeds one record to the detectors of its topic's scope (once) and returns what changed
    /// in the incidents.
    fn handle(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Changes {
        let parsed = payload.map(StreamRecord::from_json);
        let block = match &parsed {
            Some(Ok(StreamRecord::Log(l))) => Some(l.block_number),
            Some(Ok(StreamRecord::Block(b))) => Some(b.number),
            _ => None,
        };
        let Some(scope) = self.scopes.get_mut(topic) else {
            // A record of a topic this instance no longer owns (fetched before the rebalance).
            return Changes::default();
        };
        if let Some((gap, new)) = scope.history.read(partition, offset, block) {
            self.report_gap(topic, &gap, new);
        }
        let Some(scope) = self.scopes.get_mut(topic) else {
            return Changes::default();
        };
        scope.offsets.insert(partition, offset + 1);
        let record = match parsed {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::warn!(topic, partition, offset, error = %tripwire_runtime::report(&e), "unreadable stream record skipped");
                self.metrics.invalid.records_consumed_total.increment(1);
                return Changes::default();
            }
            None => return Changes::default(),
        };
        let seen = &mut scope.seen;
        // Block time: the incident book's clock for the record's chain (see `alerts::incidents`).
        let block_time = |ts: u64| {
            chrono::DateTime::<Utc>::from_timestamp(ts as i64, 0).unwrap_or_else(Utc::now)
        };
        let (findings, now, mut all) = match &record {
            StreamRecord::Log(log) => {
                self.metrics.logs.records_consumed_total.increment(1);
                if seen.is_history(log.block_number)
                    && !seen.has_block(log.block_number, log.block_hash)
                {
                    self.metrics.counters.history_skipped_total.increment(1);
                    return Changes::default();
                }
                if !seen.first_log(log.block_number, log.block_hash, log.log_index) {
                    self.metrics.counters.duplicates_total.increment(1);
                    return Changes::default();
                }
                self.metrics.counters.evaluations_total.increment(1);
                let now = block_time(log.block_timestamp);
                let resolved = self.book.advance(log.chain_id, now);
                (scope.detectors.observe_log(log), now, resolved)
            }
            StreamRecord::Block(b) => {
                self.metrics.blocks.records_consumed_total.increment(1);
                if seen.is_history(b.number) && !seen.has_block(b.number, b.hash) {
                    self.metrics.counters.history_skipped_total.increment(1);
                    return Changes::default();
                }
                if !seen.first_block(b.number, b.hash) {
                    self.metrics.counters.duplicates_total.increment(1);
                    return Changes::default();
                }
                let now = block_time(b.timestamp);
                let resolved = self.book.advance(b.chain_id, now);
                (scope.detectors.observe_block(b), now, resolved)
            }
            StreamRecord::Retraction(r) => {
                self.metrics.retractions.records_consumed_total.increment(1);
                let orphaned: Vec<_> = r.orphaned.iter().map(|b| (b.number, b.hash)).collect();
                seen.retract(&orphaned);
                let now = self.book.clock(r.chain_id).unwrap_or_else(Utc::now);
                return self.book.on_retraction(r.chain_id, &orphaned, now);
            }
            StreamRecord::Transaction(tx) => {
                self.metrics
                    .transactions
                    .records_consumed_total
                    .increment(1);
                if seen.is_history(tx.block_number)
                    && !seen.has_block(tx.block_number, tx.block_hash)
                {
                    self.metrics.counters.history_skipped_total.increment(1);
                    return Changes::default();
                }
                if !seen.first_transaction(tx.block_number, tx.block_hash, tx.tx_index) {
                    self.metrics.counters.duplicates_total.increment(1);
                    return Changes::default();
                }
                self.metrics.counters.evaluations_total.increment(1);
                let now = block_time(tx.block_timestamp);
                let resolved = self.book.advance(tx.chain_id, now);
                (scope.detectors.observe_transaction(tx), now, resolved)
            }
        };
        for f in findings {
            let key = (f.detector.clone(), f.severity.to_string());
            self.metrics.detectors.get(&key).findings_total.increment(1);
            let score = self.metrics.scores.get(&f.detector);
            score.last_finding_score.set(f.score);
            tracing::info!(detector = %f.detector, block = f.block_number, summary = %f.summary, "finding");
            let actions = self.actions.get(&f.detector).cloned().unwrap_or_default();
            let c = self.book.on_finding(&f, &actions, now);
            if c.suppressed > 0 {
                self.metrics
                    .suppressed
                    .get(&f.detector)
                    .alerts_suppressed_total
                    .increment(c.suppressed);
            }
            all.changed.extend(c.changed);
            all.suppressed += c.suppressed;
        }
        all
    }

    /// Stores changed incidents (retrying while Postgres is away) and queues them for delivery.
    async fn apply(&mut self, changes: Changes, shutdown: &CancellationToken) {
        for mut i in changes.changed {
            let mut wait = Duration::from_millis(200);
            loop {
                match store::save_incident(&self.pool, &self.consumer_name, &i).await {
                    Ok(id) => {
                        self.health.healthy(tripwire_runtime::Component::Postgres);
                        if i.id.is_none() {
                            if self.proposer.as_ref().is_some_and(|p| p.wants(&i)) {
                                if let Some(q) = &self.proposals {
                                    q.enqueue(id, i.summary.clone());
                                }
                            }
                            let key = (i.detector.clone(), i.severity.to_string());
                            let counters = self.metrics.detectors.get(&key);
                            counters.alerts_fired_total.increment(1);
                            tracing::warn!(incident = id, key = %i.key, summary = %i.summary, "incident opened");
                        }
                        i.id = Some(id);
                        self.book.set_id(&i.key, id);
                        break;
                    }
                    Err(e) => {
                        self.health.set(
                            tripwire_runtime::Component::Postgres,
                            Status::Unhealthy,
                            tripwire_runtime::report(&e),
                        );
                        tracing::warn!(error = %tripwire_runtime::report(&e), retry_in = ?wait, "storing an incident failed");
                        if shutdown.is_cancelled() {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if i.state == State::Resolved && i.resolved_at.is_some() {
                let key = (i.detector.clone(), i.severity.to_string());
                let counters = self.metrics.detectors.get(&key);
                counters.alerts_resolved_total.increment(1);
            }
            self.deliveries.enqueue([&i]);
        }
        let firing = self.book.firing().count() as f64;
        self.metrics.firing.alerts_firing.set(firing);
    }

    /// Records of `topic` that were never read: counted (when `new`), logged, and shown in
    /// `/health` with the back-test that covers them.
    fn report_gap(&mut self, topic: &str, gap: &history::Gap, new: bool) {
        let chain = self
            .topics
            .get(topic)
            .and_then(|chains| chains.first())
            .and_then(|id| self.chain_names.get(id))
            .cloned()
            .unwrap_or_else(|| topic.to_owned());
        if new {
            let key = (topic.to_owned(), gap.partition);
            self.metrics
                .missed
                .get(&key)
                .records_missed_total
                .increment(gap.missed().max(0) as u64);
        }
        let backtest = gap.backtest(&chain);
        tracing::warn!(
            topic,
            partition = gap.partition,
            missed = gap.missed(),
            offsets = %format!("{}..{}", gap.from, gap.to),
            %backtest,
            "records left the broker before the watchdog read them: the detectors did not see their blocks"
        );
        self.health.set(
            Component::History(topic.to_string()),
            Status::Degraded,
            format!(
                "{} records of {topic}/{} (offsets {}..{}) left the broker before they were read; back-test them: {backtest}",
                gap.missed(),
                gap.partition,
                gap.from,
                gap.to
            ),
        );
        self.alarms.raised(topic);
    }

    async fn report_lag(&self) {
        let consumer = self.consumer.clone();
        let positions: Vec<((String, i32), i64)> = self
            .scopes
            .iter()
            .flat_map(|(t, s)| s.offsets.iter().map(move |(p, o)| ((t.clone(), *p), *o)))
            .collect();
        let lags = tokio::task::spawn_blocking(move || {
            positions
                .into_iter()
                .filter_map(|((t, p), next)| {
                    let (_, high) = consumer
                        .fetch_watermarks(&t, p, Duration::from_secs(2))
                        .ok()?;
                    Some((t, p, (high - next).max(0)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (t, p, lag) in lags {
            let gauge = self.metrics.lag.get(&(t, p));
            gauge.consumer_lag_records.set(lag as f64);
        }
    }
}
