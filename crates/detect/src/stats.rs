//! The statistics the detectors share: a bounded history with running sums, median and MAD
//! (statrs has neither a MAD nor a cheap repeated median), and the count threshold of a Poisson or
//! negative binomial baseline.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// The last `cap` numbers, with their sum and sum of squares kept up to date.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    cap: usize,
    values: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl History {
    /// An empty history keeping at most `cap` values (at least one).
    pub fn new(cap: usize) -> Self {
        History {
            cap: cap.max(1),
            values: VecDeque::with_capacity(cap.min(4096)),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// Appends `x`, dropping the oldest value once `cap` are held.
    pub fn push(&mut self, x: f64) {
        if self.values.len() == self.cap {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.values.push_back(x);
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Pushes `x` `n` times (at most `cap` times: older ones would fall out anyway).
    pub fn push_n(&mut self, x: f64, n: u64) {
        for _ in 0..n.min(self.cap as u64) {
            self.push(x);
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Mean of the values held (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }

    /// Sample variance (n - 1).
    pub fn var(&self) -> f64 {
        let n = self.values.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }

    /// The values held, oldest first.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    /// Recomputes the sums from the values: floating-point drift of long-running sums stays bounded.
    pub fn resum(&mut self) {
        self.sum = self.values.iter().sum();
        self.sum_sq = self.values.iter().map(|x| x * x).sum();
    }
}

/// Median and median absolute deviation of `values` (reordered in place).
pub fn median_mad(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let med = median(values);
    for v in values.iter_mut() {
        *v = (*v - med).abs();
    }
    Some((med, median(values)))
}

fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// The count baseline of a rate series: which distribution, and its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CountModel {
    /// Poisson with mean `lambda` (counts no more spread than their mean).
    Poisson {
        /// Mean (and variance) of the count per window.
        lambda: f64,
    },
    /// Negative binomial with `r` successes and success probability `p`, for over-dispersed counts
    /// (variance above the mean).
    NegBin {
        /// Number of successes (the shape); smaller means more spread.
        r: f64,
        /// Success probability, in (0, 1].
        p: f64,
    },
}

impl CountModel {
    /// From past window counts: their mean (with one pseudo-window of one event, so a series
    /// that was always quiet has a small positive rate rather than zero) and variance.
    pub fn fit(h: &History) -> CountModel {
        let n = h.len() as f64;
        let mean = (h.mean() * n + 1.0) / (n + 1.0);
        let var = h.var();
        if var > mean * 1.05 {
            CountModel::NegBin {
                r: mean * mean / (var - mean),
                p: mean / var,
            }
        } else {
            CountModel::Poisson { lambda: mean }
        }
    }

    /// Mean count per window under the model.
    pub fn mean(&self) -> f64 {
        match *self {
            CountModel::Poisson { lambda } => lambda,
            CountModel::NegBin { r, p } => r * (1.0 - p) / p,
        }
    }

    /// `P(X >= k)`.
    pub fn tail(&self, k: u64) -> f64 {
        if k == 0 {
            return 1.0;
        }
        match *self {
            CountModel::Poisson { lambda } => Poisson::new(lambda.max(1e-9))
                .map(|d| d.sf(k - 1))
                .unwrap_or(0.0),
            CountModel::NegBin { r, p } => NegativeBinomial::new(r.max(1e-9), p.clamp(1e-12, 1.0))
                .map(|d| d.sf(k - 1))
                .unwrap_or(0.0),
        }
    }

    /// The smallest count `k` with `P(X >= k) < alpha` (binary search: the tail falls with k).
    pub fn threshold(&self, alpha: f64) -> u64 {
        let mean = self.mean();
        let mut lo = mean.floor() as u64;
        if self.tail(lo) < alpha {
            lo = 0;
        }
        let mut hi = (mean * 2.0 + 16.0) as u64;
        while self.tail(hi) >= alpha {
            lo = hi;
            hi = hi.saturating_mul(2);
            if hi > 1 << 40 {
                return u64::MAX;
            }
        }
        // Invariant: tail(lo) >= alpha > tail(hi) (tail(0) = 1).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.tail(mid) < alpha {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// The distribution's name, as findings report it (`poisson`, `negative binomial`).
    pub fn name(&self) -> &'static str {
        match self {
            CountModel::Poisson { .. } => "poisson",
            CountModel::NegBin { .. } => "negative binomial",
        }
    }
}

/// Parses a decoded numeric field (a decimal string, as the indexer writes integers) to `f64`.
pub fn parse_amount(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => {
            if s.len() <= 19 {
                if let Ok(u) = s.parse::<u64>() {
                    return Some(u as f64);
                }
            }
            s.parse::<f64>().ok()
        }
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}
