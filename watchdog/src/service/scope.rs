//! The topics (scopes) an instance owns: what a rebalance changes, loading a topic's saved state
//! when the group gives it, and the fenced checkpoints of every owned topic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;
use tripwire_kafka::group::{self, Partition, Rebalanced};
use tripwire_runtime::health::Status;

use super::{IncidentAction, Watchdog, WatchdogError};
use crate::alerts::State;
use crate::seen::Seen;
use crate::store;
use tripwire_detect::DetectorSet;

/// One chain topic as this instance follows it.
pub(super) struct Scope {
    /// The chains whose records the topic carries (one with a `{chain}` topic template).
    pub(super) chains: Vec<u64>,
    pub(super) detectors: DetectorSet,
    pub(super) seen: Seen,
    /// Next offset per partition of the topic that this instance owns.
    pub(super) offsets: BTreeMap<i32, i64>,
    /// Records that left the broker before they were read.
    pub(super) history: super::history::History,
}

impl Watchdog {
    /// Applies what the group changed: revoked topics are checkpointed and let go, newly
    /// assigned ones loaded from Postgres (retrying while it is away), then every owned partition
    /// continues from its scope's position.
    pub(super) async fn rebalance(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<(), WatchdogError> {
        let changes = self.consumer.context().take();
        for change in &changes {
            if let Rebalanced::Revoked(parts) = change {
                for (topic, _) in parts {
                    if let Some(scope) = self.scopes.remove(topic) {
                        self.save_scope(topic, &scope).await;
                        self.book.drop_chains(&scope.chains);
                        self.deliveries.forget_chains(&scope.chains);
                        tracing::info!(topic, "watchdog let go of the topic");
                    }
                }
            }
        }
        group::apply(&mut self.owned, &changes);
        let wanted: BTreeSet<String> = self.owned.iter().map(|(t, _)| t.clone()).collect();
        for topic in wanted {
            if self.scopes.contains_key(&topic) {
                continue;
            }
            let chains = self.topics.get(&topic).cloned().unwrap_or_default();
            let mut wait = Duration::from_millis(200);
            let scope = loop {
                match self.open_scope(&topic, &chains).await {
                    Ok(scope) => break scope,
                    Err(WatchdogError::Store(e)) if !shutdown.is_cancelled() => {
                        self.health.set(
                            tripwire_runtime::Component::Postgres,
                            Status::Unhealthy,
                            tripwire_runtime::report(&e),
                        );
                        tracing::warn!(topic, error = %tripwire_runtime::report(&e), retry_in = ?wait, "loading the topic's state failed");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(e),
                }
            };
            self.scopes.insert(topic, scope);
        }
        let parts: Vec<Partition> = self.owned.iter().cloned().collect();
        let stored: BTreeMap<Partition, i64> = self
            .scopes
            .iter()
            .flat_map(|(t, s)| s.offsets.iter().map(move |(p, o)| ((t.clone(), *p), *o)))
            .collect();
        if let Err(e) = group::resume_at(&self.consumer, &parts, &stored).await {
            // E.g. a rebalance began meanwhile: it is served by the next poll, and the partitions
            // are positioned again after it.
            tracing::warn!(error = %tripwire_runtime::report(&e), "positioning the partitions failed; trying again");
            self.consumer.context().poke();
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        self.check_retention(&parts).await;
        let owned = parts.len() as f64;
        self.metrics.partitions.get().partitions_owned.set(owned);
        tracing::info!(
            partitions = parts.len(),
            "watchdog owns {} partitions",
            parts.len()
        );
        let firing = self.book.firing().count() as f64;
        self.metrics.firing.alerts_firing.set(firing);
        Ok(())
    }

    /// Compares each owned partition's next offset with the earliest one the broker still holds
    /// (records below it were lost before this instance read them; see `history`).
    async fn check_retention(&mut self, parts: &[Partition]) {
        let consumer = self.consumer.clone();
        let parts = parts.to_vec();
        let lows = tokio::task::spawn_blocking(move || {
            parts
                .into_iter()
                .filter_map(|(t, p)| {
                    match consumer.fetch_watermarks(&t, p, Duration::from_secs(5)) {
                        Ok((low, _)) => Some((t, p, low)),
                        Err(e) => {
                            tracing::warn!(topic = %t, partition = p, error = %tripwire_runtime::report(&e), "reading the earliest offset held failed; gaps show when records are read");
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (topic, partition, low) in lows {
            let gap = self
                .scopes
                .get_mut(&topic)
                .and_then(|s| s.history.assigned(partition, low));
            if let Some(gap) = gap {
                self.report_gap(&topic, &gap, true);
            }
        }
    }

    /// Loads a topic's saved state and takes back its chains' incidents.
    async fn open_scope(&mut self, topic: &str, chains: &[u64]) -> Result<Scope, WatchdogError> {
        let (saved, legacy) = store::load(&self.pool, &self.consumer_name, topic, chains).await?;
        let mut detectors = DetectorSet::new(&self.detector_configs)?;
        if let Some(state) = saved.detectors {
            let reset = detectors.restore(state)?;
            for name in &reset {
                tracing::warn!(detector = %name, topic, "saved state does not fit the detector's config: it learns again");
            }
            tracing::info!(
                topic,
                restored = detectors.len() - reset.len(),
                reset = reset.len(),
                "detector state restored from the last checkpoint"
            );
        }
        // The row of an earlier version mixed every chain's blocks: only with one chain does its
        // seen set belong to this topic alone.
        let seen = match saved.seen {
            Some(v) if !legacy || self.topics.len() == 1 => serde_json::from_value(v)
                .unwrap_or_else(|e| {
                    tracing::warn!(topic, error = %tripwire_runtime::report(&e), "saved seen-records unreadable: starting empty");
                    Seen::new(crate::seen::DEFAULT_DEPTH)
                }),
            _ => Seen::new(crate::seen::DEFAULT_DEPTH),
        };
        let mut incidents = saved.incidents;
        // Firing incidents are sent again at once: Alertmanager may have expired them while no
        // instance had the topic. A crash between storing an incident and its proposal: the
        // proposal is made now (the store keeps it to one per incident).
        for i in incidents.iter_mut().filter(|i| i.state == State::Firing) {
            self.deliveries.enqueue([&*i]);
            if let (Some(p), Some(q), Some(id)) = (&self.proposer, &self.proposals, i.id) {
                if p.wants(i) {
                    q.enqueue(id, i.summary.clone());
                }
            }
        }
        self.book.load(incidents);
        self.book.forget_old();
        tracing::info!(topic, offsets = ?saved.offsets, "watchdog took the topic");
        let newest = seen.newest();
        Ok(Scope {
            chains: chains.to_vec(),
            detectors,
            seen,
            history: super::history::History::at(&saved.offsets, newest),
            offsets: saved.offsets,
        })
    }

    /// Saves every owned scope's detector state, seen records and position; false if one failed.
    pub(super) async fn checkpoint(&mut self) -> bool {
        let mut ok = true;
        let mut fenced = false;
        for (topic, scope) in &self.scopes {
            match self.save_scope(topic, scope).await {
                Saved::Ok => {}
                Saved::Failed => ok = false,
                Saved::Fenced => fenced = true,
            }
        }
        if fenced {
            // Another instance owns a topic this one still reads: read from the stored positions
            // (the group tells this instance soon what it owns).
            let topics: Vec<String> = self.scopes.keys().cloned().collect();
            for topic in topics {
                if let Some(scope) = self.scopes.remove(&topic) {
                    self.book.drop_chains(&scope.chains);
                }
            }
            self.consumer.context().poke();
        }
        ok
    }

    /// Saves one scope (fenced by the stored position).
    async fn save_scope(&self, topic: &str, scope: &Scope) -> Saved {
        let detectors = scope.detectors.snapshot();
        let seen = match serde_json::to_value(&scope.seen) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %tripwire_runtime::report(&e), "seen records do not serialize");
                return Saved::Failed;
            }
        };
        match store::checkpoint(
            &self.pool,
            &self.consumer_name,
            topic,
            &detectors,
            &seen,
            &scope.offsets,
        )
        .await
        {
            Ok(()) => {
                self.metrics.counters.checkpoints_total.increment(1);
                self.health.healthy(tripwire_runtime::Component::Postgres);
                Saved::Ok
            }
            Err(e @ store::StoreError::Fenced { .. }) => {
                tracing::warn!(error = %tripwire_runtime::report(&e), "checkpoint fenced: another instance owns the topic");
                Saved::Fenced
            }
            Err(e) => {
                self.health.set(
                    tripwire_runtime::Component::Postgres,
                    Status::Unhealthy,
                    tripwire_runtime::report(&e),
                );
                tracing::warn!(error = %tripwire_runtime::report(&e), "checkpoint failed");
                Saved::Failed
            }
        }
    }
}

/// How saving a scope ended.
enum Saved {
    Ok,
    Failed,
    Fenced,
}
