//! The detectors: plain state machines fed one decoded log, transaction or block marker at a time,
//! with no I/O, so the same code runs in the watchdog, in back-tests and in benchmarks. A detector
//! selects logs (chain, contract, event, field filters) or transactions (`source =
//! "transactions"`: function, status, field filters), decides with its kind (`rate`, `value`,
//! `flow`, `event`, `threshold`) and emits [`Finding`]s; [`incidents`] turns findings into
//! incidents (the watchdog's `alerts` delivers them).
//!
//! Time is block time: windows close when a log or block marker of a later window arrives, so
//! quiet periods count as quiet windows. Duplicates are the caller's concern (the stream is
//! at-least-once; see `seen`), and so are retractions (they annotate incidents; the baselines keep
//! what they learned, as a few orphaned events cannot move them).

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

mod event;
mod flow;
pub mod incidents;
mod rate;
mod select;
pub mod stats;
#[cfg(any(test, feature = "test-utils"))]
pub mod synth;
mod threshold;
#[cfg(any(test, feature = "test-utils"))]
pub mod traffic;
mod txview;
mod value;

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tx_tests;

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tripwire_schema::{BlockMarker, LogRecord, TransactionRecord, TxStatus};

use select::Selector;
pub use tripwire_config::watchdog::{
    check_against_abis, d_privileged as privileged_events, AbiMismatch, Action, CompareOp,
    ContractEvents, DetectorConfig, DetectorKind, EventParams, FlowMethod, FlowParams,
    InvalidDetector, Params, RateParams, Severity, Source, ThresholdParams, ValueParams, TX_FIELDS,
};

/// What can go wrong building or restoring detectors.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A detector's parameters are refused (a range, an unknown action, a contradiction).
    #[error(transparent)]
    Invalid(#[from] InvalidDetector),
    /// A saved detector state given to [`DetectorSet::restore`] has no `detectors` object.
    #[error("saved detector state is not readable: {0}")]
    Snapshot(String),
}

/// One detection: what was seen, against what was expected, where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Name of the detector that found it.
    pub detector: String,
    /// `rate`, `value`, `flow`, `event` or `threshold`.
    pub kind: DetectorKind,
    /// The detector's `severity`.
    pub severity: Severity,
    /// What the detector counts separately, e.g. the contract, or contract and recipient.
    pub series: String,
    /// EIP-155 id of the chain of the log or block.
    pub chain_id: u64,
    /// The configured contract the finding is about, when it is about one.
    pub contract: Option<String>,
    /// The event name the finding is about, when it is about one.
    pub event: Option<String>,
    /// The function called, when a transaction triggered the finding (its name, or its selector
    /// when the ABI does not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The outcome of that transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
    /// Height of the block whose log or time produced the finding.
    pub block_number: u64,
    /// Hash of that block, so a retraction can void the finding.
    pub block_hash: B256,
    /// The transaction of the triggering log, or the triggering transaction, when a single record
    /// triggered it.
    pub tx_hash: Option<B256>,
    /// Position of that log within its block (none for a transaction).
    pub log_index: Option<u64>,
    /// What was seen, in the detector's unit (events per window, a field's value, a window's net flow).
    pub observed: f64,
    /// What the baseline expected, in the same unit.
    pub expected: f64,
    /// The decision statistic (see `score_name`): a tail probability, a robust z, a CUSUM.
    pub score: f64,
    /// Name of the statistic in `score`, e.g. `robust_z`, `cusum`, `outflow_pct`.
    pub score_name: &'static str,
    /// One human-readable line saying what was seen against what, for the alert.
    pub summary: String,
}

/// The parts of a finding every kind fills the same way.
pub(crate) struct Base<'a> {
    pub detector: &'a str,
    pub kind: DetectorKind,
    pub severity: Severity,
    /// What the detector counts, in summaries: `events` or, on transactions, `calls`.
    pub unit: &'static str,
}

impl Base<'_> {
    fn of(config: &DetectorConfig) -> Base<'_> {
        Base {
            detector: &config.name,
            kind: config.params.kind(),
            severity: config.severity,
            unit: match config.source {
                Source::Logs => "events",
                Source::Transactions => "calls",
            },
        }
    }

    /// A finding located at `log`.
    pub(crate) fn at_log(&self, log: &LogRecord, series: &str) -> Finding {
        Finding {
            detector: self.detector.to_owned(),
            kind: self.kind,
            severity: self.severity,
            series: series.to_owned(),
            chain_id: log.chain_id,
            contract: log.contract.clone(),
            event: log.event.as_ref().map(|e| e.name.clone()),
            function: None,
            status: None,
            block_number: log.block_number,
            block_hash: log.block_hash,
            tx_hash: Some(log.tx_hash),
            log_index: Some(log.log_index),
            observed: 0.0,
            expected: 0.0,
            score: 0.0,
            score_name: "",
            summary: String::new(),
        }
    }
}

/// The `group_by` value of `log` (text lower-cased, as addresses come checksummed): `Some(None)`
/// without `group_by`, `None` when the log lacks the field (it is not counted).
pub(crate) fn group_of(log: &LogRecord, group_by: Option<&str>) -> Option<Option<String>> {
    let Some(field) = group_by else {
        return Some(None);
    };
    match log.event.as_ref()?.params.get(field)? {
        serde_json::Value::String(s) => Some(Some(s.to_ascii_lowercase())),
        v => Some(Some(v.to_string())),
    }
}

/// A series' name in findings: the contract (or its address) and the group.
pub(crate) fn series_label(log: &LogRecord, group: Option<&str>) -> String {
    let base = log
        .contract
        .clone()
        .unwrap_or_else(|| log.address.to_string());
    match group {
        Some(g) => format!("{base}/{g}"),
        None => base,
    }
}

/// Where a log sits in a detector's time: its chain and window.
pub(crate) fn window_of(ts: u64, window_s: u64) -> i64 {
    (ts / window_s.max(1)) as i64
}

enum Kind {
    Rate(rate::Rate),
    Value(value::ValueDetector),
    Flow(flow::Flow),
    Event(event::EventRule),
    Threshold(threshold::Threshold),
}

struct Detector {
    config: DetectorConfig,
    selector: Selector,
    fingerprint: String,
    kind: Kind,
}

impl Detector {
    fn new(config: &DetectorConfig) -> Result<Detector, DetectError> {
        config.validate()?;
        let kind = Self::fresh(config);
        Ok(Detector {
            selector: Selector::new(config),
            fingerprint: fingerprint(config),
            config: config.clone(),
            kind,
        })
    }

    fn fresh(config: &DetectorConfig) -> Kind {
        match &config.params {
            Params::Rate(p) => Kind::Rate(rate::Rate::new(p.clone())),
            Params::Value(p) => Kind::Value(value::ValueDetector::new(p.clone())),
            Params::Flow(p) => Kind::Flow(flow::Flow::new(p.clone())),
            Params::Event(p) => Kind::Event(event::EventRule::new(
                p.clone(),
                config.source == Source::Transactions,
            )),
            Params::Threshold(p) => Kind::Threshold(threshold::Threshold::new(p.clone())),
        }
    }
}

/// What the saved state of a detector must match to be reused: everything that shapes it.
fn fingerprint(c: &DetectorConfig) -> String {
    let mut v = serde_json::json!({
        "chain_id": c.chain_id,
        "contract": c.contract,
        "event": c.event,
        "filters": c.filters,
        "params": c.params,
    });
    // Only when set, so that the saved state of a detector on logs stays valid across the upgrade
    // that brought the keys.
    if c.source == Source::Transactions {
        v["source"] = serde_json::json!("transactions");
        v["function"] = serde_json::json!(c.function);
        v["status"] = serde_json::json!(c.status);
    }
    v.to_string()
}

/// All configured detectors, fed together.
pub struct DetectorSet {
    detectors: Vec<Detector>,
}

impl DetectorSet {
    /// Builds one detector per configuration, in order; refuses the first invalid one.
    pub fn new(configs: &[DetectorConfig]) -> Result<DetectorSet, DetectError> {
        Ok(DetectorSet {
            detectors: configs
                .iter()
                .map(Detector::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Number of configured detectors.
    pub fn len(&self) -> usize {
        self.detectors.len()
    }

    /// Whether no detector is configured.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Feeds one log (seen for the first time) to every detector; returns their findings.
    pub fn observe_log(&mut self, log: &LogRecord) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in &mut self.detectors {
            let selected = d.selector.matches(log);
            let base = Base::of(&d.config);
            match &mut d.kind {
                // Rate and flow need every log's time, selected or not, to close their windows.
                Kind::Rate(r) => r.observe_log(&base, log, selected, &mut out),
                Kind::Flow(f) => f.observe_log(&base, log, selected, &mut out),
                Kind::Value(v) if selected => v.observe_log(&base, log, &mut out),
                Kind::Event(e) if selected => e.observe_log(&base, log, &mut out),
                Kind::Threshold(t) if selected => t.observe_log(&base, log, &mut out),
                _ => {}
            }
        }
        out
    }

    /// Feeds one transaction (seen for the first time; the stream puts a block's transactions
    /// before its logs) to the detectors on transactions; returns their findings, which name the
    /// transaction, its function and its status. Its block time moves the windows of every rate
    /// detector on, as a log's does.
    pub fn observe_transaction(&mut self, tx: &TransactionRecord) -> Vec<Finding> {
        let mut out = Vec::new();
        let view = txview::view(tx);
        for d in &mut self.detectors {
            let selected = d.selector.matches_tx(tx, &view);
            let base = Base::of(&d.config);
            match &mut d.kind {
                Kind::Rate(r) => r.observe_log(&base, &view, selected, &mut out),
                Kind::Value(v) if selected => v.observe_log(&base, &view, &mut out),
                Kind::Event(e) if selected => e.observe_log(&base, &view, &mut out),
                Kind::Threshold(t) if selected => t.observe_log(&base, &view, &mut out),
                // A flow reads logs only (refused on transactions by the configuration).
                _ => {}
            }
        }
        let function = txview::call_name(tx);
        for f in &mut out {
            f.event = None;
            f.log_index = None;
            f.function = Some(function.clone());
            f.status = Some(tx.status);
            f.summary = format!(
                "{} (transaction {}, {} {})",
                f.summary,
                tx.tx_hash,
                function,
                tx.status.as_str()
            );
        }
        out
    }

    /// Feeds one block marker: block time moves on, windows close, quiet ones count.
    pub fn observe_block(&mut self, b: &BlockMarker) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in &mut self.detectors {
            if d.selector.chain_id.is_some_and(|c| c != b.chain_id) {
                continue;
            }
            let base = Base::of(&d.config);
            match &mut d.kind {
                Kind::Rate(r) => r.observe_time(b.chain_id, b.timestamp),
                Kind::Flow(f) => f.observe_block(&base, b, &mut out),
                Kind::Value(_) | Kind::Event(_) | Kind::Threshold(_) => {}
            }
        }
        out
    }

    /// The learned state of every detector, to be saved with the stream position.
    pub fn snapshot(&self) -> Value {
        let mut map = serde_json::Map::new();
        for d in &self.detectors {
            let state = match &d.kind {
                Kind::Rate(r) => serde_json::to_value(r.state()),
                Kind::Value(v) => serde_json::to_value(v.state()),
                Kind::Flow(f) => serde_json::to_value(f.state()),
                Kind::Event(_) | Kind::Threshold(_) => Ok(Value::Null),
            };
            let state = state.unwrap_or(Value::Null);
            map.insert(
                d.config.name.clone(),
                serde_json::json!({ "fingerprint": d.fingerprint, "state": state }),
            );
        }
        serde_json::json!({ "version": 1, "detectors": map })
    }

    /// Restores a [`snapshot`](Self::snapshot). Detectors whose configuration changed since (or
    /// whose state does not read) start fresh; their names are returned.
    pub fn restore(&mut self, snapshot: Value) -> Result<Vec<String>, DetectError> {
        let Some(saved) = snapshot.get("detectors").and_then(Value::as_object) else {
            return Err(DetectError::Snapshot("no `detectors` object".into()));
        };
        let mut reset = Vec::new();
        for d in &mut self.detectors {
            let Some(entry) = saved.get(&d.config.name) else {
                continue;
            };
            if entry.get("fingerprint").and_then(Value::as_str) != Some(d.fingerprint.as_str()) {
                reset.push(d.config.name.clone());
                continue;
            }
            let state = entry.get("state").cloned().unwrap_or(Value::Null);
            let ok = match &mut d.kind {
                Kind::Rate(r) => serde_json::from_value(state).map(|s| r.restore(s)).is_ok(),
                Kind::Value(v) => serde_json::from_value(state).map(|s| v.restore(s)).is_ok(),
                Kind::Flow(f) => serde_json::from_value(state).map(|s| f.restore(s)).is_ok(),
                Kind::Event(_) | Kind::Threshold(_) => true,
            };
            if !ok {
                d.kind = Detector::fresh(&d.config);
                reset.push(d.config.name.clone());
            }
        }
        Ok(reset)
    }
}
