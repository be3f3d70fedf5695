//! `flow`: the net flow of a contract per window of block time (inflow events minus outflow
//! events), standardised by the median and MAD of past windows, drives a one-sided CUSUM or EWMA
//! towards outflow: a drain too slow for any single window to stand out still adds up. The
//! statistic runs at several window lengths at once (`window_s` and `extra_windows_s`), each with
//! its own baseline: one window's step is capped, so a length needs at least four windows of a
//! drain to cross `h`, and only short windows catch a short drain in time. The spread is the
//! wider of the whole baseline's and that of the windows at the same time of day on earlier days,
//! so busy hours do not read as drains. The optional balance rule alerts as soon as one
//! `window_s` window's outflow passes a share of the balance.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use tripwire_schema::{BlockMarker, LogRecord};

use super::stats::{median_mad, parse_amount, History};
use super::{window_of, Base, Finding, FlowMethod, FlowParams};

/// Largest standardised deviation one window contributes to the drift statistic.
const MAX_STEP: f64 = 3.0;

/// Most past windows an extra window length keeps (a week of 2.5-minute windows).
const MAX_BASELINE: usize = 4032;

/// The default shorter window (`window_s / 4`) only if it is at least this long.
const MIN_DEFAULT_SHORT_S: u64 = 60;

/// Seconds in a day of block time, the period of the traffic's seasonality.
const DAY_S: u64 = 86_400;
/// Windows this close to the same time of day on earlier days give the spread at this hour.
const SAME_TIME_S: u64 = 3600;
/// Fewer such windows than this and only the whole baseline's spread counts.
const MIN_SAME_TIME: usize = 6;

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

/// The drift statistic of one series at one of the extra window lengths.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Track {
    /// Net flow of the open window.
    net: f64,
    /// Net flow of past windows.
    history: History,
    /// CUSUM sum or EWMA value.
    stat: f64,
    /// Closed windows.
    closed: u64,
    last_outflow: Option<Spot>,
}

impl Track {
    fn new(scale: &Scale) -> Track {
        Track {
            net: 0.0,
            history: History::new(scale.baseline),
            stat: 0.0,
            closed: 0,
            last_outflow: None,
        }
    }
}

/// A series' fields at `window_s` are those of the single-window detector, so its saved state
/// reads as it was; the extra window lengths are in `extra`.
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
    /// One per extra window length, in the order of [`Scales::extra`] (absent in state saved
    /// before there were extra lengths: they start learning).
    #[serde(default)]
    extra: Vec<Track>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Chain {
    window: i64,
    /// The open window of each extra window length.
    #[serde(default)]
    extra: Vec<i64>,
    series: Vec<Series>,
}

/// The saved state of a flow detector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FlowState {
    chains: BTreeMap<u64, Chain>,
}

/// One window length of the statistic, with its baseline and warm-up in windows of that length.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    window_s: u64,
    baseline: usize,
    warmup: usize,
}

/// The window lengths a detector runs at: `window_s` and the extra ones.
#[derive(Debug, Clone)]
struct Scales {
    main: Scale,
    extra: Vec<Scale>,
}

impl Scales {
    fn of(p: &FlowParams) -> Scales {
        let main = Scale {
            window_s: p.window_s,
            baseline: p.baseline_windows,
            warmup: p.warmup_windows,
        };
        let lengths: Vec<u64> = match &p.extra_windows_s {
            Some(v) => v.iter().map(|w| w.get()).collect(),
            // A window should span several blocks: too short a one mostly holds no block at all.
            None if p.window_s / 4 >= MIN_DEFAULT_SHORT_S => {
                vec![p.window_s / 4, p.window_s.saturating_mul(4)]
            }
            None => vec![p.window_s.saturating_mul(4)],
        };
        let mut extra: Vec<Scale> = Vec::new();
        for w in lengths {
            if w == 0 || w == p.window_s || extra.iter().any(|s| s.window_s == w) {
                continue;
            }
            // The same span of time as `window_s`'s baseline and warm-up, in windows of `w`; a
            // very short length keeps fewer (each close takes the median of its whole baseline).
            let span = |n: usize| {
                ((n as f64 * p.window_s as f64 / w as f64).ceil() as usize).clamp(4, MAX_BASELINE)
            };
            let baseline = span(p.baseline_windows);
            extra.push(Scale {
                window_s: w,
                baseline,
                warmup: span(p.warmup_windows).min(baseline),
            });
        }
        Scales { main, extra }
    }
}

pub(crate) struct Flow {
    p: FlowParams,
    scales: Scales,
    s: FlowState,
    index: HashMap<(u64, Address), usize>,
}

impl Flow {
    pub(crate) fn new(p: FlowParams) -> Flow {
        Flow {
            scales: Scales::of(&p),
            p,
            s: FlowState::default(),
            index: HashMap::new(),
        }
    }

    pub(crate) fn state(&self) -> &FlowState {
        &self.s
    }

    pub(crate) fn restore(&mut self, mut s: FlowState) {
        self.index.clear();
        let n = self.scales.extra.len();
        for (chain, c) in &mut s.chains {
            // State of other extra lengths (or none, saved before them) is not kept: the
            // fingerprint covers `extra_windows_s`, so this only meets state of an older version.
            if c.extra.len() != n {
                c.extra.clear();
                for series in &mut c.series {
                    series.extra.clear();
                }
            }
            for (i, series) in c.series.iter_mut().enumerate() {
                series.history.resum();
                if series.extra.len() != n {
                    series.extra = self.scales.extra.iter().map(Track::new).collect();
                }
                for t in &mut series.extra {
                    t.history.resum();
                }
                self.index.insert((*chain, series.address), i);
            }
        }
        self.s = s;
    }

    pub(crate) fn observe_block(
        &mut self,
        base: &Base<'_>,
        b: &BlockMarker,
        out: &mut Vec<Finding>,
    ) {
        self.advance(base, b.chain_id, b.timestamp, Some((b.number, b.hash)), out);
    }

    pub(crate) fn observe_log(
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
                    extra: self.scales.extra.iter().map(Track::new).collect(),
                });
                self.index
                    .insert((log.chain_id, log.address), c.series.len() - 1);
                c.series.len() - 1
            }
        };
        let s = &mut c.series[i];
        for t in &mut s.extra {
            t.net += sign * amount;
        }
        if sign > 0.0 {
            s.inflow += amount;
            s.balance += amount;
            return;
        }
        s.outflow += amount;
        s.balance -= amount;
        let spot = Spot {
            block_number: log.block_number,
            block_hash: log.block_hash,
            tx_hash: log.tx_hash,
            log_index: log.log_index,
            contract: log.contract.clone(),
            event: ev.name.clone(),
        };
        for t in &mut s.extra {
            t.last_outflow = Some(spot.clone());
        }
        s.last_outflow = Some(spot);
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

    /// Moves block time of `chain` to `ts`; closes the windows before it, at every window
    /// length, and judges them.
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
            extra: Vec::new(),
            series: Vec::new(),
        });
        // A new chain, or state saved before the extra lengths: they start at the open window.
        if c.extra.len() != self.scales.extra.len() {
            c.extra = self
                .scales
                .extra
                .iter()
                .map(|sc| window_of(ts, sc.window_s))
                .collect();
        }
        let p = &self.p;
        if w > c.window {
            let main = &self.scales.main;
            // Quiet windows beyond the baseline's length add nothing the baseline does not hold.
            let gap = ((w - c.window) as u64).min(main.baseline as u64 * 2);
            for s in &mut c.series {
                for k in 0..gap {
                    let net = if k == 0 { s.inflow - s.outflow } else { 0.0 };
                    let view = View {
                        scale: main,
                        history: &mut s.history,
                        stat: &mut s.stat,
                        closed: s.closed,
                        spot: s.last_outflow.as_ref(),
                    };
                    if let Some(f) = judge(p, base, chain, &s.label, view, net, at_block) {
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
        for (j, sc) in self.scales.extra.iter().enumerate() {
            let wj = window_of(ts, sc.window_s);
            if wj <= c.extra[j] {
                continue;
            }
            let gap = ((wj - c.extra[j]) as u64).min(sc.baseline as u64 * 2);
            for s in &mut c.series {
                let t = &mut s.extra[j];
                for k in 0..gap {
                    let net = if k == 0 { t.net } else { 0.0 };
                    let view = View {
                        scale: sc,
                        history: &mut t.history,
                        stat: &mut t.stat,
                        closed: t.closed,
                        spot: t.last_outflow.as_ref(),
                    };
                    if let Some(f) = judge(p, base, chain, &s.label, view, net, at_block) {
                        out.push(f);
                    }
                    t.history.push(net);
                    t.closed += 1;
                    t.net = 0.0;
                    t.last_outflow = None;
                }
            }
            c.extra[j] = wj;
        }
    }
}

/// The statistic of one series at one window length, as [`judge`] needs it.
struct View<'a> {
    scale: &'a Scale,
    history: &'a mut History,
    stat: &'a mut f64,
    closed: u64,
    spot: Option<&'a Spot>,
}

/// Updates the drift statistic with one closed window's net flow; a finding if it crosses.
fn judge(
    p: &FlowParams,
    base: &Base<'_>,
    chain: u64,
    label: &str,
    v: View<'_>,
    net: f64,
    at_block: Option<(u64, B256)>,
) -> Option<Finding> {
    let warmup = v.scale.warmup;
    if (v.closed as usize) < warmup || v.history.len() < warmup {
        return None;
    }
    let mut past: Vec<f64> = v.history.values().collect();
    let mut same_time = same_time_of_day(&past, v.scale.window_s);
    let (mu, mad) = median_mad(&mut past)?;
    // MAD is zero when most windows had no flow; half the standard deviation keeps one unusual
    // window from counting as infinitely many deviations.
    let sd = v.history.var().sqrt();
    let mut sigma = (1.4826 * mad).max(0.5 * sd).max(f64::MIN_POSITIVE);
    // Human-driven traffic is busier, and noisier, at some hours: the spread of the windows at
    // this time of day on earlier days, where wider, keeps busy hours from reading as drains
    // (quiet hours keep the whole baseline's spread, so they lose no sensitivity).
    if same_time.len() >= MIN_SAME_TIME {
        if let Some((_, mad_now)) = median_mad(&mut same_time) {
            sigma = sigma.max(1.4826 * mad_now);
        }
    }
    // Clamped: one extreme window adds at most a few sigma, so only a sustained drift crosses;
    // a single large outflow is the balance rule's and the value detector's business.
    let x = ((net - mu) / sigma).clamp(-MAX_STEP, MAX_STEP);
    let (crossed, limit) = match p.method {
        FlowMethod::Cusum => {
            *v.stat = (*v.stat - x - p.k).max(0.0);
            (*v.stat > p.h, p.h)
        }
        FlowMethod::Ewma => {
            *v.stat = p.lambda * x + (1.0 - p.lambda) * *v.stat;
            let limit = p.limit * (p.lambda / (2.0 - p.lambda)).sqrt();
            (*v.stat < -limit, -limit)
        }
    };
    if !crossed {
        return None;
    }
    let score = *v.stat;
    *v.stat = 0.0;
    let spot = v.spot;
    let (block_number, block_hash) = match (spot, at_block) {
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
        series: label.to_owned(),
        chain_id: chain,
        contract: spot
            .and_then(|sp| sp.contract.clone())
            .or_else(|| Some(label.to_owned())),
        event: spot.map(|sp| sp.event.clone()),
        function: None,
        status: None,
        block_number,
        block_hash,
        tx_hash: spot.map(|sp| sp.tx_hash),
        log_index: spot.map(|sp| sp.log_index),
        observed: net,
        expected: mu,
        score,
        score_name: method,
        summary: format!(
            "sustained outflow from {} over {} s windows: window net flow {:.4e} against a median of {:.4e} (sigma {:.4e}); {} {:.2} crossed {:.2}",
            label, v.scale.window_s, net, mu, sigma, method, score, limit
        ),
    })
}

/// The past windows (oldest first, the window being judged would come next) that began within
/// [`SAME_TIME_S`] of its time of day on earlier days. Windows that do not divide a day are
/// taken at the nearest whole number of windows per day.
fn same_time_of_day(past: &[f64], window_s: u64) -> Vec<f64> {
    let w = window_s.max(1);
    let per_day = ((DAY_S + w / 2) / w) as usize;
    if per_day < 2 {
        return Vec::new();
    }
    let reach = ((SAME_TIME_S + w / 2) / w) as usize;
    let n = past.len();
    let mut out = Vec::new();
    let mut day = per_day;
    while day <= n {
        for lag in day.saturating_sub(reach).max(1)..=(day + reach).min(n) {
            out.push(past[n - lag]);
        }
        day += per_day;
    }
    out
}
