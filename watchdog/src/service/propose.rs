//! Pause proposals off the detection path: the service queues the incidents that asked for a
//! pause, and one task prepares and submits their proposals, retrying with backoff while the
//! chain or the Safe Transaction Service fails or hangs. The store keeps one proposal per
//! incident, so an incident queued twice (or again after a restart) gets one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::{Health, Status};

use crate::metrics::Proposing;
use crate::safe::Proposer;

/// Incidents waiting for their proposal at most; beyond it the oldest waits for the next restart
/// (which queues every firing incident's proposal again).
const MAX_QUEUED: usize = 1_000;
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The queue the service fills; the task empties it.
#[derive(Clone)]
pub(super) struct Proposals {
    inner: Arc<Inner>,
}

struct Inner {
    /// Incident id -> (summary, when queued).
    pending: Mutex<BTreeMap<i64, (String, Instant)>>,
    wake: Notify,
    metrics: Proposing,
}

impl Proposals {
    /// Starts the task: first re-submits proposals an earlier run left pending, then prepares
    /// what is queued, until `shutdown`.
    pub(super) fn spawn(
        proposer: Arc<Proposer>,
        consumer: String,
        health: Health,
        shutdown: CancellationToken,
    ) -> Proposals {
        let inner = Arc::new(Inner {
            pending: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            metrics: Proposing::new(),
        });
        tokio::spawn(run(inner.clone(), proposer, consumer, health, shutdown));
        Proposals { inner }
    }

    /// Queues incident `id`'s proposal; returns at once.
    pub(super) fn enqueue(&self, id: i64, summary: String) {
        let mut pending = self.inner.pending.lock().expect("proposal queue lock");
        if !pending.contains_key(&id) && pending.len() >= MAX_QUEUED {
            tracing::error!(
                incident = id,
                "{MAX_QUEUED} pause proposals already wait; this one is prepared after a restart"
            );
            return;
        }
        pending.entry(id).or_insert((summary, Instant::now()));
        report(&self.inner.metrics, &pending);
        drop(pending);
        self.inner.wake.notify_one();
    }
}

fn report(metrics: &Proposing, pending: &BTreeMap<i64, (String, Instant)>) {
    let gauges = metrics.queue.get();
    gauges.safe_proposal_queue.set(pending.len() as f64);
    let age = pending
        .values()
        .map(|(_, t)| t.elapsed().as_secs_f64())
        .fold(0.0, f64::max);
    gauges.safe_proposal_queue_age_seconds.set(age);
}

async fn run(
    inner: Arc<Inner>,
    proposer: Arc<Proposer>,
    consumer: String,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut backoff = RETRY_FIRST;
    let mut resubmitted = false;
    loop {
        let mut failed = false;
        if !resubmitted {
            match proposer.retry_pending().await {
                Ok(()) => resubmitted = true,
                Err(e) => {
                    failed = true;
                    tracing::warn!(error = %tripwire_runtime::report(&e), "re-submitting pending proposals failed; retrying");
                }
            }
        }
        let queued: Vec<(i64, String)> = {
            let pending = inner.pending.lock().expect("proposal queue lock");
            report(&inner.metrics, &pending);
            pending.iter().map(|(k, (s, _))| (*k, s.clone())).collect()
        };
        for (id, summary) in queued {
            if shutdown.is_cancelled() {
                return;
            }
            let key = format!("incident:{consumer}:{id}");
            match proposer.propose(&key, &summary).await {
                Ok(prop) => {
                    let states = inner.metrics.states.get(&prop.state);
                    states.safe_proposals_total.increment(1);
                    health.healthy(tripwire_runtime::Component::Safe);
                    let mut pending = inner.pending.lock().expect("proposal queue lock");
                    pending.remove(&id);
                    report(&inner.metrics, &pending);
                }
                Err(e) => {
                    failed = true;
                    inner.metrics.errors.safe_proposal_errors_total.increment(1);
                    health.set(
                        tripwire_runtime::Component::Safe,
                        Status::Degraded,
                        tripwire_runtime::report(&e),
                    );
                    tracing::error!(incident = id, error = %tripwire_runtime::report(&e), "preparing the pause proposal failed; retrying");
                }
            }
        }
        let wait = if failed {
            let w = backoff;
            backoff = (backoff * 2).min(RETRY_MAX);
            w
        } else {
            backoff = RETRY_FIRST;
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.wake.notified(), if !failed => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
