//! `rate`: counts of selected events per window of block time, against a baseline fitted to the
//! past windows of the same series (Poisson, or negative binomial when overdispersed). The open
//! window is judged as events arrive: the count threshold is computed once per window and series
//! (alpha divided by the number of series), so each event costs a comparison, and a burst alerts
//! in the block that completes it. One finding per series and window.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use tripwire_schema::LogRecord;

use super::stats::{CountModel, History};
use super::{group_of, series_label, window_of, Base, Finding, RateParams};

const HOURS_PER_WEEK: i64 = 168;

/// Identifies a series: contract address and, with `group_by`, the field's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Key {
    address: Address,
    group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    key: Key,
    label: String,
    /// Selected events in the open window.
    count: u64,
    history: History,
    /// Per hour of the week, with `hour_of_week`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    weekly: Vec<History>,
    /// Whether this window already produced a finding.
    alerted: bool,
    /// Alert threshold for the open window (`u64::MAX`: not warmed up); recomputed after a close.
    #[serde(skip)]
    threshold: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Chain {
    /// The open window.
    window: i64,
    /// Windows closed since the detector first saw this chain.
    closed: u64,
    series: Vec<Series>,
    #[serde(skip)]
    index: HashMap<Key, usize>,
}

/// The saved state of a rate detector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RateState {
    chains: BTreeMap<u64, Chain>,
}

pub(crate) struct Rate {
    p: RateParams,
    s: RateState,
}

impl Rate {
    pub(crate) fn new(p: RateParams) -> Rate {
        Rate {
            p,
            s: RateState::default(),
        }
    }

    pub(crate) fn state(&self) -> &RateState {
        &self.s
    }

    pub(crate) fn restore(&mut self, mut s: RateState) {
        for c in s.chains.values_mut() {
            c.index = c
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.key.clone(), i))
                .collect();
            for s in &mut c.series {
                s.history.resum();
            }
        }
        self.s = s;
    }

    /// Moves block time of `chain` to `ts`, closing the windows before it.
    pub(crate) fn observe_time(&mut self, chain: u64, ts: u64) {
        let w = window_of(ts, self.p.window_s);
        let p = &self.p;
        let c = self.s.chains.entry(chain).or_insert_with(|| Chain {
            window: w,
            ..Chain::default()
        });
        if w <= c.window {
            return;
        }
        let gap = (w - c.window) as u64;
        for s in &mut c.series {
            close(p, s, c.window, gap);
        }
        c.closed += gap;
        c.window = w;
    }

    pub(crate) fn observe_log(
        &mut self,
        base: &Base<'_>,
        log: &LogRecord,
        selected: bool,
        out: &mut Vec<Finding>,
    ) {
        self.observe_time(log.chain_id, log.block_timestamp);
        if !selected {
            return;
        }
        let Some(group) = group_of(log, self.p.group_by.as_deref()) else {
            return;
        };
        let p = &self.p;
        let Some(c) = self.s.chains.get_mut(&log.chain_id) else {
            return;
        };
        let key = Key {
            address: log.address,
            group,
        };
        let i = match c.index.get(&key) {
            Some(i) => *i,
            None => {
                let label = series_label(log, key.group.as_deref());
                let mut s = Series {
                    key: key.clone(),
                    label,
                    count: 0,
                    history: History::new(p.baseline_windows),
                    weekly: Vec::new(),
                    alerted: false,
                    threshold: None,
                };
                // A series first seen now was quiet in every window the detector watched.
                let quiet = c.closed.min(p.baseline_windows as u64);
                if quiet > 0 {
                    close(p, &mut s, c.window - quiet as i64, quiet);
                    s.alerted = false;
                }
                c.series.push(s);
                c.index.insert(key, c.series.len() - 1);
                // Bonferroni: one more series shares alpha; thresholds of the open window follow.
                for s in &mut c.series {
                    s.threshold = None;
                }
                c.series.len() - 1
            }
        };
        let n_series = c.series.len();
        let window = c.window;
        let s = &mut c.series[i];
        s.count += 1;
        let bar = match s.threshold {
            Some(t) => t,
            None => {
                let t = threshold(p, s, window, n_series).map_or(u64::MAX, |(_, t)| t);
                s.threshold = Some(t);
                t
            }
        };
        if s.count < bar || s.alerted {
            return;
        }
        s.alerted = true;
        let Some((model, _)) = threshold(p, s, window, n_series) else {
            return;
        };
        let pval = model.tail(s.count);
        let mut f = base.at_log(log, &s.label);
        f.observed = s.count as f64;
        f.expected = model.mean();
        f.score = pval;
        f.score_name = "p_value";
        f.summary = format!(
            "{} {} {} in one {} s window against {:.2} expected ({}): P(X >= {}) = {:.2e}, below alpha {:.1e} / {} series",
            s.count,
            log.event.as_ref().map_or("selected", |e| e.name.as_str()),
            base.unit,
            p.window_s,
            model.mean(),
            model.name(),
            s.count,
            pval,
            p.alpha,
            n_series
        );
        out.push(f);
    }
}

/// The baseline of `s` for `window` and the smallest alerting count, once warmed up.
fn threshold(
    p: &RateParams,
    s: &Series,
    window: i64,
    n_series: usize,
) -> Option<(CountModel, u64)> {
    let h = if p.hour_of_week {
        s.weekly.get(hour_of_week(window, p.window_s))?
    } else {
        &s.history
    };
    if h.len() < p.warmup_windows {
        return None;
    }
    let model = CountModel::fit(h);
    let t = model.threshold(p.alpha / n_series.max(1) as f64);
    Some((model, t.max(p.min_count)))
}

fn hour_of_week(window: i64, window_s: u64) -> usize {
    let hour = window * window_s as i64 / 3600;
    hour.rem_euclid(HOURS_PER_WEEK) as usize
}

/// Closes `gap` windows of `s` starting at `from`: the open one with its count, the rest empty.
fn close(p: &RateParams, s: &mut Series, from: i64, gap: u64) {
    let first = s.count as f64;
    s.history.push(first);
    let quiet = gap - 1;
    s.history.push_n(0.0, quiet);
    if p.hour_of_week {
        if s.weekly.is_empty() {
            s.weekly = (0..HOURS_PER_WEEK)
                .map(|_| History::new(p.baseline_windows))
                .collect();
        }
        // Beyond a week of quiet windows every bucket is full of zeros anyway.
        let per_week = (HOURS_PER_WEEK as u64 * 3600 / p.window_s) * p.baseline_windows as u64;
        let start = gap.saturating_sub(per_week);
        for k in start..gap {
            let w = from + k as i64;
            let v = if k == 0 { first } else { 0.0 };
            s.weekly[hour_of_week(w, p.window_s)].push(v);
        }
    }
    s.count = 0;
    s.alerted = false;
    s.threshold = None;
}
