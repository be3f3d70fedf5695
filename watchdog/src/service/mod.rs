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
use metrics::{counter, gauge, histogram};
use rdkafka::{consumer::Consumer, message::Message};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_indexer::health::{Health, Status};
use tripwire_indexer::kafka::{
    self,
    group::{self, GroupConsumer, Partition},
};
use tripwire_schema::StreamRecord;

use crate::alerts::{self, Changes, Incident, IncidentBook, Render, State};
use crate::config::WatchdogSettings;
use crate::detect::DetectorSet;
use crate::metrics as m;
use crate::safe::Proposer;
use crate::store;

mod scope;
use scope::Scope;

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic} not found on {brokers} after 30 s (has the indexer created it?)")]
    MissingTopic { topic: String, brokers: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("detectors: {0}")]
    Detect(#[from] crate::detect::DetectError),
    #[error("alertmanager client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One running watchdog.
pub struct Watchdog {
    consumer_name: String,
    pool: PgPool,
    consumer: Arc<GroupConsumer>,
    /// The detectors' configs, for the detector sets of the scopes.
    detector_configs: Vec<crate::detect::DetectorConfig>,
    /// Chains per topic, from the config.
    topics: BTreeMap<String, Vec<u64>>,
    /// The topics this instance owns now.
    scopes: BTreeMap<String, Scope>,
    /// Owned partitions, as the group gave them.
    owned: std::collections::BTreeSet<Partition>,
    /// Actions per detector name (e.g. `pause`), carried by its incidents.
    actions: BTreeMap<String, Vec<String>>,
    book: IncidentBook,
    render: Render,
    client: alerts::Client,
    health: Health,
    /// Incidents whose latest state has not reached every Alertmanager yet.
    undelivered: BTreeMap<String, Incident>,
    resend_every: Duration,
    checkpoint_every: Duration,
    /// Safe pause proposals, when `[watchdog.safe]` is configured.
    proposer: Option<Arc<Proposer>>,
    /// Incidents (id, summary) that asked for a pause and have no proposal yet.
    to_propose: BTreeMap<i64, String>,
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
        let w = &ws.watchdog;
        // Checks the detectors' configs once, before anything is consumed.
        DetectorSet::new(&w.detectors)?;
        let am = &w.alertmanager;
        let mut book = IncidentBook::new(alerts::Policy {
            hold: Duration::from_secs(am.resolve_after_s),
            cooldown: Duration::from_secs(am.cooldown_s),
            max_per_minute: am.max_alerts_per_minute,
        });
        book.forget_old(Utc::now());
        let render = Render {
            chains: ws
                .settings
                .config
                .chains
                .iter()
                .map(|c| (c.chain_id, c.name.clone()))
                .collect(),
            explorer_tx_url: am.explorer_tx_url.clone(),
            generator_url: am.generator_url.clone(),
            firing_ttl: am.resend_interval() * 3,
        };
        let client = alerts::Client::new(
            am.urls.clone(),
            Duration::from_secs(am.timeout_s.max(1)),
            am.bearer_token.clone(),
        )?;

        let consumer = kafka::group_consumer(
            &ws.settings.config.kafka,
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
        for chain in &ws.settings.config.chains {
            topics
                .entry(ws.settings.topic(chain))
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
        gauge!(m::ALERTS_FIRING).set(0.0);
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
            render,
            client,
            health,
            undelivered: BTreeMap::new(),
            resend_every: am.resend_interval(),
            checkpoint_every: Duration::from_secs(w.checkpoint_interval_s.max(1)),
            proposer,
            to_propose: BTreeMap::new(),
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
        self.deliver().await;
        if let Some(p) = &self.proposer {
            if let Err(e) = p.retry_pending().await {
                tracing::warn!(error = %e, "re-submitting pending proposals failed");
            }
        }
        self.propose().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = context.changed() => self.rebalance(&shutdown).await?,
                msg = consumer.recv() => match msg {
                    Ok(msg) => {
                        let changes = self.handle(msg.topic(), msg.partition(), msg.offset(), msg.payload());
                        if !changes.changed.is_empty() {
                            self.apply(changes, &shutdown).await;
                            self.deliver().await;
                            self.propose().await;
                        }
                        self.health.healthy("kafka");
                    }
                    Err(e) => {
                        self.health.set("kafka", Status::Unhealthy, e.to_string());
                        tracing::warn!(error = %e, "kafka consume failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = tick.tick() => {
                    let changes = self.book.tick(Utc::now());
                    if !changes.changed.is_empty() {
                        self.apply(changes, &shutdown).await;
                    }
                    if last_resend.elapsed() >= self.resend_every {
                        for i in self.book.firing() {
                            self.undelivered.insert(i.key.clone(), i.clone());
                        }
                        last_resend = Instant::now();
                        self.book.forget_old(Utc::now());
                    }
                    self.deliver().await;
                    self.propose().await;
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
        self.deliver().await;
        self.checkpoint().await;
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
        let Some(scope) = self.scopes.get_mut(topic) else {
            // A record of a topic this instance no longer owns (fetched before the rebalance).
            return Changes::default();
        };
        scope.offsets.insert(partition, offset + 1);
        let record = match payload.map(StreamRecord::from_json) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::warn!(topic, partition, offset, error = %e, "unreadable stream record skipped");
                counter!(m::RECORDS_CONSUMED, "type" => "invalid").increment(1);
                return Changes::default();
            }
            None => return Changes::default(),
        };
        let now = Utc::now();
        let seen = &mut scope.seen;
        let findings = match &record {
            StreamRecord::Log(log) => {
                counter!(m::RECORDS_CONSUMED, "type" => "log").increment(1);
                if seen.is_history(log.block_number)
                    && !seen.has_block(log.block_number, log.block_hash)
                {
                    counter!(m::HISTORY).increment(1);
                    return Changes::default();
                }
                if !seen.first_log(log.block_number, log.block_hash, log.log_index) {
                    counter!(m::DUPLICATES).increment(1);
                    return Changes::default();
                }
                counter!(m::EVALUATIONS).increment(1);
                scope.detectors.observe_log(log)
            }
            StreamRecord::Block(b) => {
                counter!(m::RECORDS_CONSUMED, "type" => "block").increment(1);
                if seen.is_history(b.number) && !seen.has_block(b.number, b.hash) {
                    counter!(m::HISTORY).increment(1);
                    return Changes::default();
                }
                if !seen.first_block(b.number, b.hash) {
                    counter!(m::DUPLICATES).increment(1);
                    return Changes::default();
                }
                scope.detectors.observe_block(b)
            }
            StreamRecord::Retraction(r) => {
                counter!(m::RECORDS_CONSUMED, "type" => "retraction").increment(1);
                let orphaned: Vec<_> = r.orphaned.iter().map(|b| (b.number, b.hash)).collect();
                seen.retract(&orphaned);
                return self.book.on_retraction(r.chain_id, &orphaned, now);
            }
        };
        let mut all = Changes::default();
        for f in findings {
            counter!(m::FINDINGS, "detector" => f.detector.clone(), "severity" => f.severity.to_string())
                .increment(1);
            gauge!(m::SCORE, "detector" => f.detector.clone()).set(f.score);
            tracing::info!(detector = %f.detector, block = f.block_number, summary = %f.summary, "finding");
            let actions = self.actions.get(&f.detector).cloned().unwrap_or_default();
            let c = self.book.on_finding(&f, &actions, now);
            if c.suppressed > 0 {
                counter!(m::ALERTS_SUPPRESSED, "detector" => f.detector.clone())
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
                        self.health.healthy("postgres");
                        if i.id.is_none() {
                            if self.proposer.as_ref().is_some_and(|p| wants_pause(&i, p)) {
                                self.to_propose.insert(id, i.summary.clone());
                            }
                            counter!(m::ALERTS_FIRED, "detector" => i.detector.clone(), "severity" => i.severity.to_string())
                                .increment(1);
                            tracing::warn!(incident = id, key = %i.key, summary = %i.summary, "incident opened");
                        }
                        i.id = Some(id);
                        self.book.set_id(&i.key, id);
                        break;
                    }
                    Err(e) => {
                        self.health
                            .set("postgres", Status::Unhealthy, e.to_string());
                        tracing::warn!(error = %e, retry_in = ?wait, "storing an incident failed");
                        if shutdown.is_cancelled() {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if i.state == State::Resolved && i.resolved_at.is_some() {
                counter!(m::ALERTS_RESOLVED, "detector" => i.detector.clone(), "severity" => i.severity.to_string())
                    .increment(1);
            }
            self.undelivered.insert(i.key.clone(), i);
        }
        gauge!(m::ALERTS_FIRING).set(self.book.firing().count() as f64);
    }

    /// Posts every undelivered incident; keeps them for the next tick if any Alertmanager failed.
    async fn deliver(&mut self) {
        if self.undelivered.is_empty() {
            return;
        }
        let now = Utc::now();
        let batch: Vec<alerts::Alert> = self
            .undelivered
            .values()
            .map(|i| self.render.alert(i, now))
            .collect();
        let started = Instant::now();
        let errors = self.client.post(&batch).await;
        histogram!(m::DELIVERY_SECONDS).record(started.elapsed().as_secs_f64());
        if errors.is_empty() {
            self.undelivered.clear();
            self.health.healthy("alertmanager");
            return;
        }
        for e in &errors {
            let url = match e {
                alerts::DeliveryError::Transport { url, .. }
                | alerts::DeliveryError::Rejected { url, .. } => url.clone(),
            };
            counter!(m::DELIVERY_ERRORS, "url" => url).increment(1);
            tracing::warn!(error = %e, "alert delivery failed");
        }
        let all_failed = errors.len() == self.client.urls().len();
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        self.health.set(
            "alertmanager",
            if all_failed {
                Status::Unhealthy
            } else {
                Status::Degraded
            },
            text,
        );
        if errors.iter().all(|e| !e.is_retryable()) {
            // Alertmanager refuses these alerts as they are: sending them again cannot help.
            self.undelivered.clear();
        }
    }

    /// Prepares the pause proposals incidents asked for; failures stay queued for the next tick.
    async fn propose(&mut self) {
        let Some(p) = &self.proposer else { return };
        let queued: Vec<(i64, String)> = self
            .to_propose
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (id, summary) in queued {
            let key = format!("incident:{}:{id}", self.consumer_name);
            match p.propose(&key, &summary).await {
                Ok(prop) => {
                    counter!(m::PROPOSALS, "state" => prop.state.clone()).increment(1);
                    self.health.healthy("safe");
                    self.to_propose.remove(&id);
                }
                Err(e) => {
                    counter!(m::PROPOSAL_ERRORS).increment(1);
                    self.health.set("safe", Status::Degraded, e.to_string());
                    tracing::error!(incident = id, error = %e, "preparing the pause proposal failed; retrying");
                }
            }
        }
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
            gauge!(m::CONSUMER_LAG, "topic" => t, "partition" => p.to_string()).set(lag as f64);
        }
    }
}

/// An incident of a detector with the `pause` action, severe enough for the Safe's threshold.
fn wants_pause(i: &Incident, p: &Proposer) -> bool {
    i.actions.iter().any(|a| a == "pause") && i.severity >= p.min_severity()
}
