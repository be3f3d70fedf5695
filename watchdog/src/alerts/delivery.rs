//! Delivery off the detection path: one queue and one task per Alertmanager URL.
//!
//! The service only [`Deliveries::enqueue`]s incidents (never waits): each URL's task posts the
//! latest state of every queued incident, keeps what failed for the next attempt (backing off
//! while the URL fails) and meanwhile lets newer states of an incident replace the queued one. A
//! member of an HA pair that accepts connections and never answers therefore delays only its own
//! queue: the other member and the stream go on. A queue holds at most [`MAX_QUEUED`] incidents
//! (one entry per incident key); beyond that its oldest entry is dropped and counted, which an
//! incident still firing survives, since it is queued again every `resend_interval_s`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::{Health, Status};

use super::{AlertSink, DeliveryError, Incident, Render};
use crate::metrics::Delivery;

/// Incidents one URL's queue holds at most.
pub const MAX_QUEUED: usize = 10_000;
/// Backoff of a failing URL: from this, doubling...
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// ...up to this.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The queues and tasks of every configured Alertmanager.
pub struct Deliveries {
    queues: Vec<Arc<Queue>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One URL's queue.
struct Queue {
    url: String,
    /// The URL as metric labels show it, credentials hidden.
    label: String,
    /// Incident key -> (latest state, when it was first queued, version).
    pending: Mutex<BTreeMap<String, Entry>>,
    /// Raised by `enqueue`.
    wake: Notify,
    /// Version counter: an entry replaced while it was being posted stays queued.
    next_version: std::sync::atomic::AtomicU64,
    metrics: Delivery,
}

struct Entry {
    incident: Incident,
    queued_at: Instant,
    version: u64,
}

/// Each URL's last outcome, for the one `alertmanager` health component.
#[derive(Default)]
struct Outcomes {
    errors: BTreeMap<usize, String>,
}

impl Deliveries {
    /// Starts one task per URL of `client` (the Alertmanager [`super::Client`], or any other
    /// [`AlertSink`]), running until `shutdown` (then each makes one last attempt at what it
    /// holds, bounded by the client's timeout).
    pub fn spawn<K: AlertSink>(
        client: K,
        render: Render,
        health: Health,
        shutdown: CancellationToken,
    ) -> Deliveries {
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let total = client.urls().len();
        let queues: Vec<Arc<Queue>> = client
            .urls()
            .iter()
            .map(|url| {
                let label = tripwire_config::redact_url(url);
                Arc::new(Queue {
                    url: url.clone(),
                    metrics: Delivery::new(&label),
                    label,
                    pending: Mutex::new(BTreeMap::new()),
                    wake: Notify::new(),
                    next_version: Default::default(),
                })
            })
            .collect();
        let mut tasks = Vec::with_capacity(queues.len());
        for (index, queue) in queues.iter().enumerate() {
            let worker = Worker {
                index,
                total,
                queue: queue.clone(),
                client: client.clone(),
                render: render.clone(),
                health: health.clone(),
                outcomes: outcomes.clone(),
            };
            tasks.push(tokio::spawn(worker.run(shutdown.clone())));
        }
        Deliveries { queues, tasks }
    }

    /// Waits (at most `within`) for the tasks, once their `shutdown` token is cancelled, to make
    /// their last attempt.
    pub async fn finish(self, within: Duration) {
        let all = async {
            for t in self.tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(
                ?within,
                "an Alertmanager did not answer the last delivery in time"
            );
        }
    }

    /// Drops what is queued for the incidents of `chains` (their topic went to another
    /// instance, which sends their firing incidents again).
    pub fn forget_chains(&self, chains: &[u64]) {
        for q in &self.queues {
            let mut pending = q.pending.lock().expect("queue lock");
            pending.retain(|_, e| !chains.contains(&e.incident.chain_id));
            q.report(&pending);
        }
    }

    /// Queues the current state of `incidents` on every URL; returns at once.
    pub fn enqueue<'a>(&self, incidents: impl IntoIterator<Item = &'a Incident>) {
        let incidents: Vec<&Incident> = incidents.into_iter().collect();
        if incidents.is_empty() {
            return;
        }
        for q in &self.queues {
            q.push(&incidents);
        }
    }

    /// Incidents queued for each URL: (url, count), for tests and logs.
    pub fn depths(&self) -> Vec<(String, usize)> {
        self.queues
            .iter()
            .map(|q| (q.label.clone(), q.pending.lock().expect("queue lock").len()))
            .collect()
    }
}

impl Queue {
    fn push(&self, incidents: &[&Incident]) {
        let mut pending = self.pending.lock().expect("queue lock");
        let now = Instant::now();
        for i in incidents {
            let version = self
                .next_version
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match pending.get_mut(&i.key) {
                // A newer state replaces the queued one; its age stays that of the first.
                Some(e) => {
                    e.incident = (*i).clone();
                    e.version = version;
                }
                None => {
                    if pending.len() >= MAX_QUEUED {
                        let oldest = pending
                            .iter()
                            .min_by_key(|(_, e)| e.queued_at)
                            .map(|(k, _)| k.clone());
                        if let Some(k) = oldest {
                            pending.remove(&k);
                            self.metrics.counters.delivery_dropped_total.increment(1);
                        }
                    }
                    pending.insert(
                        i.key.clone(),
                        Entry {
                            incident: (*i).clone(),
                            queued_at: now,
                            version,
                        },
                    );
                }
            }
        }
        self.report(&pending);
        drop(pending);
        self.wake.notify_one();
    }

    fn report(&self, pending: &BTreeMap<String, Entry>) {
        let gauges = self.metrics.queue.get();
        gauges.delivery_queue_incidents.set(pending.len() as f64);
        let age = pending
            .values()
            .map(|e| e.queued_at.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        gauges.delivery_queue_age_seconds.set(age);
    }
}

struct Worker<K> {
    index: usize,
    total: usize,
    queue: Arc<Queue>,
    client: K,
    render: Render,
    health: Health,
    outcomes: Arc<Mutex<Outcomes>>,
}

impl<K: AlertSink> Worker<K> {
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = RETRY_FIRST;
        loop {
            let failed = match self.attempt().await {
                Some(Err(e)) => {
                    let retry = e.is_retryable();
                    self.note(Some(tripwire_runtime::report(&e)));
                    tracing::warn!(error = %tripwire_runtime::report(&e), "alert delivery failed");
                    retry
                }
                Some(Ok(())) => {
                    self.note(None);
                    false
                }
                None => false,
            };
            if shutdown.is_cancelled() {
                break;
            }
            if failed {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
            backoff = RETRY_FIRST;
            // The age gauge moves while the queue waits too.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.queue.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // One last attempt at what is queued, bounded by the client's timeout.
        if let Some(Err(e)) = self.attempt().await {
            tracing::warn!(error = %tripwire_runtime::report(&e), url = %self.queue.label, "alerts still queued at shutdown were not delivered");
        }
    }

    /// Posts everything queued; `None` when the queue was empty. Entries posted successfully
    /// (or refused for good) leave the queue unless a newer state replaced them meanwhile.
    async fn attempt(&self) -> Option<Result<(), DeliveryError>> {
        let batch: Vec<(String, u64, Incident)> = {
            let pending = self.queue.pending.lock().expect("queue lock");
            self.queue.report(&pending);
            pending
                .iter()
                .map(|(k, e)| (k.clone(), e.version, e.incident.clone()))
                .collect()
        };
        if batch.is_empty() {
            return None;
        }
        let now = Utc::now();
        let alerts: Vec<_> = batch
            .iter()
            .map(|(_, _, i)| self.render.alert(i, now))
            .collect();
        let started = Instant::now();
        let result = self.client.post_to(&self.queue.url, &alerts).await;
        let counters = &self.queue.metrics.counters;
        counters
            .delivery_seconds
            .record(started.elapsed().as_secs_f64());
        let done = match &result {
            Ok(()) => true,
            Err(e) => {
                counters.delivery_errors_total.increment(1);
                // Alertmanager refuses these alerts as they are: sending them again cannot help.
                !e.is_retryable()
            }
        };
        if done {
            let mut pending = self.queue.pending.lock().expect("queue lock");
            for (k, version, _) in &batch {
                if pending.get(k).is_some_and(|e| e.version == *version) {
                    pending.remove(k);
                }
            }
            self.queue.report(&pending);
        }
        Some(result)
    }

    /// Records this URL's outcome and sets the `alertmanager` health component from all of them.
    fn note(&self, error: Option<String>) {
        let mut o = self.outcomes.lock().expect("outcomes lock");
        match error {
            Some(e) => o.errors.insert(self.index, e),
            None => o.errors.remove(&self.index),
        };
        if o.errors.is_empty() {
            self.health
                .healthy(tripwire_runtime::Component::Alertmanager);
            return;
        }
        let status = if o.errors.len() == self.total {
            Status::Unhealthy
        } else {
            Status::Degraded
        };
        let text = o.errors.values().cloned().collect::<Vec<_>>().join("; ");
        self.health
            .set(tripwire_runtime::Component::Alertmanager, status, text);
    }
}
