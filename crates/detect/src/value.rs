//! `value`: outsized values of a decoded numeric field. Amounts are heavy-tailed, so the detector
//! works on `ln(value)` and scores with the robust z `0.6745 (x - median) / MAD` over the series'
//! recent values. The median and MAD are refreshed every few dozen values rather than per event:
//! one outlier moves neither, and the per-event cost stays a logarithm and a comparison.

use std::collections::HashMap;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use tripwire_schema::LogRecord;

use super::stats::{median_mad, parse_amount, History};
use super::{group_of, series_label, Base, Finding, ValueParams};

/// Smallest MAD on the log scale (5 %): a series of identical amounts would otherwise score any
/// other amount as infinitely far out.
const MIN_LOG_MAD: f64 = 0.05;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Key {
    chain_id: u64,
    address: Address,
    group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    key: Key,
    label: String,
    /// `ln` of the recent values.
    history: History,
    /// Median and MAD of `history` when last refreshed, and pushes since.
    #[serde(skip)]
    cached: Option<(f64, f64)>,
    #[serde(skip)]
    since_refresh: usize,
}

/// The saved state of a value detector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ValueState {
    series: Vec<Series>,
}

pub(crate) struct ValueDetector {
    p: ValueParams,
    s: ValueState,
    index: HashMap<Key, usize>,
    scratch: Vec<f64>,
}

impl ValueDetector {
    pub(crate) fn new(p: ValueParams) -> ValueDetector {
        ValueDetector {
            p,
            s: ValueState::default(),
            index: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn state(&self) -> &ValueState {
        &self.s
    }

    pub(crate) fn restore(&mut self, s: ValueState) {
        self.index = s
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.clone(), i))
            .collect();
        self.s = s;
    }

    pub(crate) fn observe_log(&mut self, base: &Base<'_>, log: &LogRecord, out: &mut Vec<Finding>) {
        let Some(ev) = &log.event else { return };
        let Some(value) = ev.params.get(&self.p.field).and_then(parse_amount) else {
            return;
        };
        if !(value > 0.0 && value.is_finite()) {
            return;
        }
        let Some(group) = group_of(log, self.p.group_by.as_deref()) else {
            return;
        };
        let key = Key {
            chain_id: log.chain_id,
            address: log.address,
            group,
        };
        let i = match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let label = series_label(log, key.group.as_deref());
                self.s.series.push(Series {
                    key: key.clone(),
                    label,
                    history: History::new(self.p.history),
                    cached: None,
                    since_refresh: 0,
                });
                self.index.insert(key, self.s.series.len() - 1);
                self.s.series.len() - 1
            }
        };
        let s = &mut self.s.series[i];
        let x = value.ln();
        let n = s.history.len();
        if n >= self.p.warmup {
            if s.cached.is_none() || s.since_refresh >= (n / 32).max(16) {
                self.scratch.clear();
                self.scratch.extend(s.history.values());
                s.cached = median_mad(&mut self.scratch);
                s.since_refresh = 0;
            }
            if let Some((med, mad)) = s.cached {
                let z = 0.6745 * (x - med) / mad.max(MIN_LOG_MAD);
                if z > self.p.threshold && value >= self.p.floor {
                    let typical = med.exp();
                    let mut f = base.at_log(log, &s.label);
                    f.observed = value;
                    f.expected = typical;
                    f.score = z;
                    f.score_name = "robust_z";
                    f.summary = format!(
                        "{} {} = {:.4e} is {:.1} robust deviations above the median {:.4e} of the last {} values (threshold {})",
                        ev.name, self.p.field, value, z, typical, n, self.p.threshold
                    );
                    out.push(f);
                }
            }
        }
        s.history.push(x);
        s.since_refresh += 1;
    }
}
