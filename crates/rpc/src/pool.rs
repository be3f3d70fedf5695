//! The providers of one chain and what is known about each: head, error rate, latency, and
//! whether it is in rotation. Selection is deterministic (best first) so that a healthy
//! provider keeps the traffic; a failing one is benched with jittered exponential backoff (or for
//! its `Retry-After`) and probed back in by the head refresh.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::metrics::{ChainMetrics, ProviderMetrics};
use alloy::rpc::client::RpcClient;
use rand::Rng;
use serde::Serialize;

use super::error::RpcError;

/// First bench after a failure; doubles with each consecutive failure.
const BENCH_BASE: Duration = Duration::from_millis(500);
/// Longest bench from our own backoff.
const BENCH_MAX: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured (a provider asking for an hour is treated as down for 10 min).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);
/// Shortest bench of a provider caught answering wrongly: it looked healthy while lying, so a
/// quick probe proves nothing.
const INCONSISTENT_BENCH: Duration = Duration::from_secs(30);
/// How long a wrong answer keeps the provider named in health.
pub(crate) const INCONSISTENT_MEMORY: Duration = Duration::from_secs(600);
/// Weight of the newest observation in the error-rate and latency averages.
const EWMA_ALPHA: f64 = 0.1;

/// One endpoint.
pub(crate) struct Provider {
    pub label: String,
    pub weight: u32,
    pub client: RpcClient,
    pub metrics: ProviderMetrics,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    head: Option<u64>,
    consecutive_failures: u32,
    benched_until: Option<Instant>,
    /// The bench is the provider's own `Retry-After`: never cut short.
    bench_requested: bool,
    /// Why it is out of rotation (bench or lag).
    reason: Option<String>,
    lagging: bool,
    /// A head request is outstanding (a hung provider gets one, not one per refresh).
    probing: bool,
    error_rate: f64,
    latency_ms: f64,
    last_error: Option<String>,
    /// Answers caught contradicting the evidence, and when the last one was.
    inconsistent: u64,
    last_inconsistent: Option<(Instant, String)>,
}

/// A provider's state for `status` and the `rpc_providers` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderStatus {
    /// The provider's redacted label.
    pub provider: String,
    /// Its configured `weight`: among healthy providers, a higher weight is asked first.
    pub weight: u32,
    /// Whether calls may go to it now (not benched, not lagging).
    pub in_rotation: bool,
    /// Head block it last reported, if any.
    pub head: Option<u64>,
    /// Moving average of its failure rate, 0 to 1.
    pub error_rate: f64,
    /// Moving average of its request latency, in milliseconds.
    pub latency_ms: f64,
    /// Why it is out of rotation, or its last error.
    pub reason: Option<String>,
    /// Answers caught contradicting the evidence since the process started.
    pub inconsistent_answers: u64,
    /// The latest such answer, when it is recent (within [`INCONSISTENT_MEMORY`]): how long ago,
    /// and what was wrong.
    pub recent_inconsistency: Option<(Duration, String)>,
}

/// How usable a provider is for a request, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Ready,
    /// Bench over: the next request is its trial.
    Probation,
    /// Behind the best head or the requested block; asked only when nobody better answers.
    Behind,
    /// Benched; asked only when every provider is benched, and then only the one due first.
    Benched,
}

impl Provider {
    pub(crate) fn new(
        label: String,
        weight: u32,
        client: RpcClient,
        metrics: ProviderMetrics,
    ) -> Self {
        Provider {
            label,
            weight,
            client,
            metrics,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn head(&self) -> Option<u64> {
        self.lock().head
    }

    fn tier(&self, now: Instant, needs: Option<u64>) -> Tier {
        let s = self.lock();
        match s.benched_until {
            Some(until) if until > now => return Tier::Benched,
            Some(_) => return Tier::Probation,
            None => {}
        }
        let short = matches!((needs, s.head), (Some(n), Some(h)) if h < n);
        if s.lagging || short {
            Tier::Behind
        } else {
            Tier::Ready
        }
    }

    /// Lower is better: latency inflated by the error rate.
    fn cost(&self) -> f64 {
        let s = self.lock();
        (s.latency_ms + 1.0) * (1.0 + 4.0 * s.error_rate)
    }

    /// True when a head request may be sent now (in rotation, or its bench is over).
    pub(crate) fn claim_probe(&self, now: Instant) -> bool {
        let mut s = self.lock();
        if s.probing || s.benched_until.is_some_and(|u| u > now) {
            return false;
        }
        s.probing = true;
        true
    }

    /// Claims a head request even while benched (every provider is benched).
    pub(crate) fn claim_forced(&self) -> bool {
        let mut s = self.lock();
        !std::mem::replace(&mut s.probing, true)
    }

    pub(crate) fn end_probe(&self) {
        self.lock().probing = false;
    }
}

/// The pool of one chain.
pub(crate) struct Pool {
    pub chain: String,
    pub providers: Vec<Provider>,
    pub max_lag: u64,
    pub metrics: ChainMetrics,
}

impl Pool {
    /// Providers to try for a request that needs block `needs` (if any), best first. Benched
    /// providers are left out unless all are benched; then the one due first is tried, unless it
    /// asked for its delay itself.
    pub(crate) fn candidates(&self, needs: Option<u64>) -> Vec<usize> {
        let now = Instant::now();
        let mut ranked: Vec<(Tier, std::cmp::Reverse<u32>, f64, usize)> = self
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.tier(now, needs), std::cmp::Reverse(p.weight), p.cost(), i))
            .collect();
        ranked.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let usable: Vec<usize> = ranked
            .iter()
            .filter(|r| r.0 != Tier::Benched)
            .map(|r| r.3)
            .collect();
        if !usable.is_empty() {
            return usable;
        }
        self.providers
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.lock().bench_requested)
            .min_by_key(|(_, p)| p.lock().benched_until)
            .map(|(i, _)| vec![i])
            .unwrap_or_default()
    }

    /// How long provider `i` stays benched (`None`: it may be asked now).
    pub(crate) fn bench_remaining(&self, i: usize) -> Option<Duration> {
        let until = self.providers[i].lock().benched_until?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Why nothing can be asked now (for [`RpcError::NoProvider`]).
    pub(crate) fn unavailable_reason(&self) -> String {
        let now = Instant::now();
        self.providers
            .iter()
            .map(|p| {
                let s = p.lock();
                let wait = s
                    .benched_until
                    .map(|u| u.saturating_duration_since(now).as_secs_f64())
                    .unwrap_or(0.0);
                format!(
                    "{}: {} (back in {wait:.1}s)",
                    p.label,
                    s.reason.as_deref().unwrap_or("benched")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn record_success(&self, i: usize, latency: Duration) {
        let p = &self.providers[i];
        let was_out;
        {
            let mut s = p.lock();
            was_out = s.benched_until.is_some();
            s.consecutive_failures = 0;
            s.benched_until = None;
            s.bench_requested = false;
            if !s.lagging {
                s.reason = None;
            }
            s.error_rate *= 1.0 - EWMA_ALPHA;
            let ms = latency.as_secs_f64() * 1000.0;
            s.latency_ms = if s.latency_ms == 0.0 {
                ms
            } else {
                s.latency_ms * (1.0 - EWMA_ALPHA) + ms * EWMA_ALPHA
            };
        }
        if was_out {
            tracing::info!(chain = %self.chain, provider = %p.label, "RPC provider back in rotation");
        }
        self.publish_state(i);
    }

    /// A head probe answered: the provider is reachable again and leaves the bench, but keeps its
    /// failure count, so one that answers probes yet fails real requests is benched longer each
    /// time.
    pub(crate) fn record_alive(&self, i: usize, latency: Duration) {
        let p = &self.providers[i];
        let was_out;
        {
            let mut s = p.lock();
            was_out = s.benched_until.is_some();
            s.benched_until = None;
            s.bench_requested = false;
            if !s.lagging {
                s.reason = None;
            }
            let ms = latency.as_secs_f64() * 1000.0;
            s.latency_ms = if s.latency_ms == 0.0 {
                ms
            } else {
                s.latency_ms * (1.0 - EWMA_ALPHA) + ms * EWMA_ALPHA
            };
        }
        if was_out {
            tracing::info!(chain = %self.chain, provider = %p.label, "RPC provider answers again: back in rotation");
        }
        self.publish_state(i);
    }

    /// Counts a failure; a provider fault benches the provider.
    pub(crate) fn record_failure(&self, i: usize, e: &RpcError) {
        let p = &self.providers[i];
        p.metrics.errors.get(&e.kind()).errors_total.increment(1);
        if !e.is_provider_fault() {
            return;
        }
        let newly_benched;
        let delay;
        {
            let mut s = p.lock();
            s.error_rate = s.error_rate * (1.0 - EWMA_ALPHA) + EWMA_ALPHA;
            newly_benched = s.benched_until.is_none_or(|u| u <= Instant::now());
            // Requests already in flight when the bench began fail too: they are the same
            // incident, not a reason to double the bench once per request.
            if newly_benched {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            }
            s.last_error = Some(e.to_string());
            let own = match e.retry_after() {
                Some(d) => d.min(RETRY_AFTER_MAX),
                None => backoff(s.consecutive_failures),
            };
            delay = if let RpcError::Inconsistent { .. } = e {
                s.inconsistent += 1;
                s.last_inconsistent = Some((Instant::now(), e.to_string()));
                own.max(INCONSISTENT_BENCH)
            } else {
                own
            };
            let until = Instant::now() + delay;
            s.benched_until = Some(s.benched_until.map_or(until, |u| u.max(until)));
            s.bench_requested = e.retry_after().is_some();
            s.reason = Some(format!("{}: {e}", e.fault()));
        }
        if newly_benched {
            tracing::warn!(chain = %self.chain, provider = %p.label, error = %e, back_in = ?delay, "RPC provider out of rotation");
        }
        self.publish_state(i);
    }

    /// Records a provider's head and re-evaluates who lags behind the best head.
    pub(crate) fn record_head(&self, i: usize, head: u64) {
        self.providers[i].lock().head = Some(head);
        let gauge = self.providers[i].metrics.head.get();
        gauge.provider_head_block.set(head as f64);
        let best = self.best_head().unwrap_or(head);
        for (j, p) in self.providers.iter().enumerate() {
            let changed = {
                let mut s = p.lock();
                // A provider whose own head request is still out is judged when it answers (or
                // times out): a hang would otherwise be blamed on lag for up to a timeout,
                // because its last head ages while the others move on.
                if j != i && s.probing {
                    continue;
                }
                let behind = s.head.map_or(0, |h| best.saturating_sub(h));
                let lagging = behind > self.max_lag;
                let changed = lagging != s.lagging;
                s.lagging = lagging;
                // A provider that failed and has not answered since keeps its fault as the
                // reason: its head is old because it does not answer, not because its node is
                // behind.
                let failing = s.benched_until.is_some();
                if lagging && !failing {
                    s.reason = Some(format!(
                        "lagging {behind} blocks behind the best head {best} (max_provider_lag_blocks = {})",
                        self.max_lag
                    ));
                } else if changed && !failing {
                    s.reason = None;
                }
                changed
            };
            if changed {
                if p.lock().lagging {
                    tracing::warn!(chain = %self.chain, provider = %p.label, best, "RPC provider lagging: out of rotation");
                } else {
                    tracing::info!(chain = %self.chain, provider = %p.label, "RPC provider caught up");
                }
                self.publish_state(j);
            }
        }
    }

    /// A provider answered that it lacks `block`: it is behind at least that far.
    pub(crate) fn record_missing(&self, i: usize, block: u64) {
        let mut s = self.providers[i].lock();
        s.head = Some(
            s.head
                .map_or(block.saturating_sub(1), |h| h.min(block.saturating_sub(1))),
        );
    }

    /// Highest head any provider reported.
    pub(crate) fn best_head(&self) -> Option<u64> {
        self.providers.iter().filter_map(Provider::head).max()
    }

    pub(crate) fn count_failover(&self, from: usize) {
        let counters = &self.providers[from].metrics.counters;
        counters.failovers_total.increment(1);
    }

    /// Providers in rotation (not benched, not lagging).
    pub(crate) fn in_rotation(&self) -> usize {
        let now = Instant::now();
        self.providers
            .iter()
            .filter(|p| matches!(p.tier(now, None), Tier::Ready | Tier::Probation))
            .count()
    }

    fn publish_state(&self, i: usize) {
        let p = &self.providers[i];
        let up = matches!(p.tier(Instant::now(), None), Tier::Ready);
        let health = p.metrics.health.get();
        health.provider_up.set(if up { 1.0 } else { 0.0 });
        let error_rate = p.lock().error_rate;
        health.provider_error_rate.set(error_rate);
        let rotation = self.metrics.rotation.get();
        rotation
            .providers_in_rotation
            .set(self.in_rotation() as f64);
    }

    /// Sets every gauge (at start, so dashboards see each provider before its first call).
    pub(crate) fn publish_all(&self) {
        for i in 0..self.providers.len() {
            self.publish_state(i);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<ProviderStatus> {
        let now = Instant::now();
        self.providers
            .iter()
            .map(|p| {
                let tier = p.tier(now, None);
                let s = p.lock();
                ProviderStatus {
                    provider: p.label.clone(),
                    weight: p.weight,
                    in_rotation: matches!(tier, Tier::Ready | Tier::Probation),
                    head: s.head,
                    error_rate: s.error_rate,
                    latency_ms: s.latency_ms,
                    reason: if tier == Tier::Ready {
                        None
                    } else {
                        s.reason.clone().or_else(|| s.last_error.clone())
                    },
                    inconsistent_answers: s.inconsistent,
                    recent_inconsistency: s
                        .last_inconsistent
                        .as_ref()
                        .map(|(at, what)| (at.elapsed(), what.clone()))
                        .filter(|(ago, _)| *ago < INCONSISTENT_MEMORY),
                }
            })
            .collect()
    }
}

/// Jittered exponential backoff: 0.5 s, 1 s, 2 s ... up to 30 s, each between 50% and 100%.
fn backoff(failures: u32) -> Duration {
    let exp = BENCH_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(BENCH_MAX);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32]) -> Pool {
        let providers = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let url = format!("http://127.0.0.1:{}", 1 + i).parse().expect("url");
                let label = format!("p{i}");
                let metrics = ProviderMetrics::new("test", &label);
                Provider::new(label, *w, RpcClient::new_http(url), metrics)
            })
            .collect();
        Pool {
            chain: "test".into(),
            providers,
            max_lag: 5,
            metrics: ChainMetrics::new("test"),
        }
    }

    fn fault(i: usize) -> RpcError {
        RpcError::Http {
            provider: format!("p{i}"),
            method: "eth_getLogs",
            status: 500,
            body: String::new(),
        }
    }

    #[test]
    fn weight_then_cost_then_order() {
        let p = pool(&[1, 2, 1]);
        assert_eq!(p.candidates(None), vec![1, 0, 2]);
        p.record_success(0, Duration::from_millis(50));
        p.record_success(2, Duration::from_millis(5));
        assert_eq!(p.candidates(None), vec![1, 2, 0]);
    }

    #[test]
    fn a_fault_benches_and_a_range_limit_does_not() {
        let p = pool(&[1, 1]);
        p.record_failure(
            0,
            &RpcError::RangeLimit {
                provider: "p0".into(),
                method: "eth_getLogs",
                style: "ankr",
                max_blocks: None,
                message: String::new(),
            },
        );
        assert_eq!(p.candidates(None), vec![0, 1]);
        p.record_failure(0, &fault(0));
        assert_eq!(p.candidates(None), vec![1]);
        assert_eq!(p.in_rotation(), 1);
        assert!(p.snapshot()[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 500"));
    }

    #[test]
    fn failures_in_flight_when_benched_do_not_lengthen_the_bench() {
        let p = pool(&[1]);
        for _ in 0..10 {
            p.record_failure(0, &fault(0));
        }
        let s = p.providers[0].lock();
        assert_eq!(s.consecutive_failures, 1);
        let left = s
            .benched_until
            .expect("benched")
            .saturating_duration_since(Instant::now());
        assert!(left <= BENCH_BASE, "{left:?}");
    }

    #[test]
    fn all_benched_offers_the_one_due_first_unless_it_asked_for_the_delay() {
        let p = pool(&[1, 1]);
        // Provider 0 fails, answers a probe, fails again: its second bench is twice as long.
        p.record_failure(0, &fault(0));
        p.record_alive(0, Duration::from_millis(1));
        p.record_failure(0, &fault(0));
        p.record_failure(1, &fault(1));
        assert_eq!(p.candidates(None), vec![1]);
        let limited = RpcError::RateLimited {
            provider: "p1".into(),
            method: "eth_getLogs",
            retry_after: Some(Duration::from_secs(60)),
            message: String::new(),
        };
        p.record_failure(1, &limited);
        assert_eq!(p.candidates(None), vec![0]);
        p.record_failure(0, &limited);
        assert!(p.candidates(None).is_empty());
        assert!(p.unavailable_reason().contains("rate limited"));
    }

    #[test]
    fn lagging_and_short_providers_come_last() {
        let p = pool(&[3, 1, 1]);
        p.record_head(0, 100);
        p.record_head(1, 110);
        p.record_head(2, 104);
        // p0 is 10 behind (> 5): lagging. p2 is 6 behind: lagging too.
        assert_eq!(p.candidates(None), vec![1, 0, 2]);
        p.record_head(2, 109);
        assert_eq!(p.candidates(Some(110)), vec![1, 0, 2]);
        assert_eq!(p.candidates(Some(105)), vec![1, 2, 0]);
        assert_eq!(p.in_rotation(), 2);
    }

    #[test]
    fn a_provider_with_its_head_request_out_is_not_judged_lagging() {
        let p = pool(&[1, 1]);
        p.record_head(0, 100);
        p.record_head(1, 100);
        // p0's head request hangs while p1 moves on.
        assert!(p.providers[0].claim_probe(Instant::now()));
        p.record_head(1, 110);
        assert!(!p.providers[0].lock().lagging);
        assert_eq!(p.in_rotation(), 2);
        // Once it answers (with its old head), it is behind.
        p.record_head(0, 100);
        p.providers[0].end_probe();
        assert!(p.providers[0].lock().lagging);
        assert_eq!(p.in_rotation(), 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= BENCH_BASE && backoff(1) >= BENCH_BASE / 2);
        assert!(backoff(3) >= Duration::from_secs(1));
        assert!(backoff(40) <= BENCH_MAX);
    }
}
