//! `flow`: the net flow of a contract per window of block time (inflow events minus outflow
//! events), standardised by the median and MAD of past windows, drives a one-sided CUSUM or EWMA
//! towards outflow: a drain too slow for any single window to stand out still adds up. The
//! optional balance rule alerts as soon as one window's outflow passes a share of the balance.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use tripwire_schema::{BlockMarker, LogRecord};

use super::stats::{median_mad, parse_amount, History};
use super::{window_of, Base, Finding, FlowMethod, FlowParams};

/// Largest standardised deviation one window contributes to the drift statistic.
const MAX_STEP: f64 = 3.0;

/// Where the latest outflow of a window happened: the place an alert points to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spot {
    block_number: u64,
    block_hash: B256,
    tx_hash: B256,
    log_index: u64,
    contract: Option<String>,
    event: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    address: Address,
    label: String,
    inflow: f64,
    outflow: f64,
    /// `initial_balance` plus every flow seen, and its value when the open window started.
    balance: f64,
    balance_at_open: f64,
    /// Net flow of past windows.
    history: History,
    /// CUSUM sum or EWMA value.
    stat: f64,
    /// Closed windows.
    closed: u64,
    last_outflow: Option<Spot>,
    /// The balance rule fired in this window.
    pct_alerted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Chain {
    window: i64,
    series: Vec<Series>,
}

/// The saved state of a flow detector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowState {
    chains: BTreeMap<u64, Chain>,
}

pub struct Flow {
    p: FlowParams,
    s: FlowState,
    index: HashMap<(u64, Address), usize>,
}

impl Flow {
    pub fn new(p: FlowParams) -> Flow {
        Flow {
            p,
            s: FlowState::default(),
            index: HashMap::new(),
        }
    }

    pub fn state(&self) -> &FlowState {
        &self.s
    }

    pub fn restore(&mut self, mut s: FlowState) {
        self.index.clear();
        for (chain, c) in &mut s.chains {
            for (i, series) in c.series.iter_mut().enumerate() {
                series.history.resum();
                self.index.insert((*chain, series.address), i);
            }
        }
        self.s = s;
    }

    pub fn observe_block(&mut self, base: &Base<'_>, b: &BlockMarker, out: &mut Vec<Finding>) {
        self.advance(base, b.chain_id, b.timestamp, Some((b.number, b.hash)), out);
    }

    pub fn observe_log(
        &mut self,
        base: &Base<'_>,
        log: &LogRecord,
        selected: bool,
        out: &mut Vec<Finding>,
    ) {
        self.advance(base, log.chain_id, log.block_timestamp, None, out);
        if !selected {
            return;
        }
        let Some(ev) = &log.event else { return };
        let sign = if self.p.inflow.iter().any(|e| e == &ev.name) {
            1.0
        } else if self.p.outflow.iter().any(|e| e == &ev.name) {
            -1.0
        } else {
            return;
        };
        let Some(amount) = ev.params.get(&self.p.field).and_then(parse_amount) else {
            return;
        };
        let Some(c) = self.s.chains.get_mut(&log.chain_id) else {
            return;
        };
        let i = match self.index.get(&(log.chain_id, log.address)) {
            Some(i) => *i,
            None => {
                c.series.push(Series {
                    address: log.address,
                    label: log
                        .contract
                        .clone()
                        .unwrap_or_else(|| log.address.to_string()),
                    inflow: 0.0,
                    outflow: 0.0,
                    balance: self.p.initial_balance,
                    balance_at_open: self.p.initial_balance,
                    history: History::new(self.p.baseline_windows),
                    stat: 0.0,
                    closed: 0,
                    last_outflow: None,
                    pct_alerted: false,
                });
                self.index
                    .insert((log.chain_id, log.address), c.series.len() - 1);
                c.series.len() - 1
            }
        };
        let s = &mut c.series[i];
        if sign > 0.0 {
            s.inflow += amount;
            s.balance += amount;
            return;
        }
        s.outflow += amount;
        s.balance -= amount;
        s.last_outflow = Some(Spot {
            block_number: log.block_number,
            block_hash: log.block_hash,
            tx_hash: log.tx_hash,
            log_index: log.log_index,
            contract: log.contract.clone(),
            event: ev.name.clone(),
        });
        let Some(pct) = self.p.max_outflow_pct else {
            return;
        };
        let share = if s.balance_at_open > 0.0 {
            100.0 * s.outflow / s.balance_at_open
        } else {
            0.0
        };
        if share > pct && !s.pct_alerted {
            s.pct_alerted = true;
            let mut f = base.at_log(log, &s.label);
            f.observed = s.outflow;
            f.expected = s.balance_at_open * pct / 100.0;
            f.score = share;
            f.score_name = "outflow_pct";
            f.summary = format!(
                "{:.1} % of the balance ({:.4e} of {:.4e}) left {} within one {} s window (limit {} %)",
                share, s.outflow, s.balance_at_open, s.label, self.p.window_s, pct
            );
            out.push(f);
        }
    }

    /// Moves block time of `chain` to `ts`; closes the windows before it and judges them.
    fn advance(
        &mut self,
        base: &Base<'_>,
        chain: u64,
        ts: u64,
        at_block: Option<(u64, B256)>,
        out: &mut Vec<Finding>,
    ) {
        let w = window_of(ts, self.p.window_s);
        let c = self.s.chains.entry(chain).or_insert_with(|| Chain {
            window: w,
            series: Vec::new(),
        });
        if w <= c.window {
            return;
        }
        // Quiet windows beyond the baseline's length add nothing the baseline does not hold.
        let gap = ((w - c.window) as u64).min(self.p.baseline_windows as u64 * 2);
        for s in &mut c.series {
            for k in 0..gap {
                let net = if k == 0 { s.inflow - s.outflow } else { 0.0 };
                if let Some(f) = judge(&self.p, base, chain, s, net, at_block) {
                    out.push(f);
                }
                s.history.push(net);
                s.closed += 1;
                s.inflow = 0.0;
                s.outflow = 0.0;
                s.pct_alerted = false;
                s.balance_at_open = s.balance;
                s.last_outflow = None;
            }
        }
        c.window = w;
    }
}

/// Updates the drift statistic with one closed window's net flow; a finding if it crosses.
fn judge(
    p: &FlowParams,
    base: &Base<'_>,
    chain: u64,
    s: &mut Series,
    net: f64,
    at_block: Option<(u64, B256)>,
) -> Option<Finding> {
    if (s.closed as usize) < p.warmup_windows || s.history.len() < p.warmup_windows {
        return None;
    }
    let mut v: Vec<f64> = s.history.values().collect();
    let (mu, mad) = median_mad(&mut v)?;
    // MAD is zero when most windows had no flow; half the standard deviation keeps one unusual
    // window from counting as infinitely many deviations.
    let sd = s.history.var().sqrt();
    let sigma = (1.4826 * mad).max(0.5 * sd).max(f64::MIN_POSITIVE);
    // Clamped: one extreme window adds at most a few sigma, so only a sustained drift crosses;
    // a single large outflow is the balance rule's and the value detector's business.
    let x = ((net - mu) / sigma).clamp(-MAX_STEP, MAX_STEP);
    let (crossed, limit) = match p.method {
        FlowMethod::Cusum => {
            s.stat = (s.stat - x - p.k).max(0.0);
            (s.stat > p.h, p.h)
        }
        FlowMethod::Ewma => {
            s.stat = p.lambda * x + (1.0 - p.lambda) * s.stat;
            let limit = p.limit * (p.lambda / (2.0 - p.lambda)).sqrt();
            (s.stat < -limit, -limit)
        }
    };
    if !crossed {
        return None;
    }
    let score = s.stat;
    s.stat = 0.0;
    let spot = s.last_outflow.clone();
    let (block_number, block_hash) = match (&spot, at_block) {
        (Some(sp), _) => (sp.block_number, sp.block_hash),
        (None, Some(b)) => b,
        (None, None) => (0, B256::ZERO),
    };
    let method = match p.method {
        FlowMethod::Cusum => "cusum",
        FlowMethod::Ewma => "ewma",
    };
    Some(Finding {
        detector: base.detector.to_owned(),
        kind: base.kind,
        severity: base.severity,
        series: s.label.clone(),
        chain_id: chain,
        contract: spot
            .as_ref()
            .and_then(|sp| sp.contract.clone())
            .or_else(|| Some(s.label.clone())),
        event: spot.as_ref().map(|sp| sp.event.clone()),
        block_number,
        block_hash,
        tx_hash: spot.as_ref().map(|sp| sp.tx_hash),
        log_index: spot.as_ref().map(|sp| sp.log_index),
        observed: net,
        expected: mu,
        score,
        score_name: method,
        summary: format!(
            "sustained outflow from {}: window net flow {:.4e} against a median of {:.4e} (sigma {:.4e}); {} {:.2} crossed {:.2}",
            s.label, net, mu, sigma, method, score, limit
        ),
    })
}
