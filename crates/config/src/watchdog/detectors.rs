//! `[[watchdog.detectors]]`: what a detector watches (its selector), how it decides (its kind and
//! parameters), how loud it is (severity) and what follows (actions). The structs are the
//! documentation; `kind` picks the parameter set, and a misspelt parameter is an error that names it.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use super::kinds::{Action, DetectorKind, InvalidDetector, Severity};
use super::transactions::{Source, ThresholdParams, TxStatus};

/// One detector. Loading the file checks it against the ABIs of the contracts its selector admits
/// ([`check_against_abis`](super::check_against_abis)), so that one that could never fire is refused, naming the key:
/// the events it names must exist there, and the parameters it reads too, with a usable type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct DetectorConfig {
    /// Unique name; the `detector` label of its alerts and the key of its saved state.
    pub name: String,
    /// Only logs of this chain (`chain_id` of a `[[chains]]` entry); every chain when absent.
    pub chain_id: Option<u64>,
    /// Only logs of this contract (`name` of a `[[contracts]]` entry); every contract when absent.
    /// With `chain_id`, the contract must be on that chain. The contracts admitted are the scope
    /// the ABI check looks in.
    pub contract: Option<String>,
    /// Only this decoded event name (e.g. `Transfer`); every event when absent. It must be an
    /// event of at least one contract in scope (a contract indexed raw has none).
    pub event: Option<String>,
    /// Decoded fields that must equal the given values (addresses compare case-insensitively,
    /// integers as decimal strings), e.g. `filters = { to = "0xdead..." }`. Each key must be a
    /// parameter of at least one event the detector reads.
    pub filters: BTreeMap<String, String>,
    /// `logs` (default) or `transactions`: the calls sent to the contracts that opted in
    /// (`transactions` of `[[contracts]]`), with their receipts' outcome. A flow detector reads
    /// logs only; a detector on transactions selects with `function` and `status`, not `event`.
    pub source: Source,
    /// With `source = "transactions"`: only calls of this function, by name (every overload) or
    /// signature (e.g. `pause()`); a function of at least one contract in scope.
    pub function: Option<String>,
    /// With `source = "transactions"`: only transactions of this outcome, `success` or `reverted`
    /// (e.g. a rate of failed calls); both when absent.
    pub status: Option<TxStatus>,
    /// `info`, `warning` (default) or `critical`.
    pub severity: Severity,
    /// What an incident of this detector triggers besides the alert, e.g. `["pause"]`.
    pub actions: Vec<Action>,
    /// The kind and its parameters.
    pub params: Params,
}

/// The selector and outcome fields shared by every kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    #[serde(default)]
    chain_id: Option<u64>,
    #[serde(default)]
    contract: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    filters: BTreeMap<String, toml::Value>,
    #[serde(default)]
    source: Source,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    status: Option<TxStatus>,
    #[serde(default = "default_severity")]
    severity: Severity,
    #[serde(default)]
    actions: Vec<Action>,
    /// Free text for the operators; not used.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

pub(crate) const COMMON_KEYS: &[&str] = &[
    "name",
    "chain_id",
    "contract",
    "event",
    "filters",
    "source",
    "function",
    "status",
    "severity",
    "actions",
    "description",
];

fn default_severity() -> Severity {
    Severity::Warning
}

/// `kind = "..."` and the parameters of that kind, in the same table as the selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Params {
    /// Events per window against a learned baseline.
    Rate(RateParams),
    /// Outsized values of a decoded numeric field.
    Value(ValueParams),
    /// Sustained drift of a signed flow (inflow events minus outflow events).
    Flow(FlowParams),
    /// Privileged events (role, owner, admin, implementation, pause changes), or on transactions
    /// privileged function calls.
    Event(EventParams),
    /// A field compared with a constant (e.g. `gas_used > 2000000`); each matching record.
    Threshold(ThresholdParams),
}

impl Params {
    /// The detector's `kind`, as the parameters imply.
    pub fn kind(&self) -> DetectorKind {
        match self {
            Params::Rate(_) => DetectorKind::Rate,
            Params::Value(_) => DetectorKind::Value,
            Params::Flow(_) => DetectorKind::Flow,
            Params::Event(_) => DetectorKind::Event,
            Params::Threshold(_) => DetectorKind::Threshold,
        }
    }
}

/// `kind = "rate"`: alert when the count of matching events in the current window is improbable
/// under the baseline learned from past windows (Poisson, or negative binomial when the past counts
/// are overdispersed). Evaluated as events arrive, so a burst alerts within the block showing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateParams {
    /// Window length in seconds of block time.
    #[serde(default = "d_rate_window")]
    pub window_s: u64,
    /// Past windows the baseline is learned from.
    #[serde(default = "d_rate_history")]
    pub baseline_windows: usize,
    /// Windows observed before the detector may alert.
    #[serde(default = "d_rate_warmup")]
    pub warmup_windows: usize,
    /// Probability of a false alert per window, shared by all series (Bonferroni).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Never alert on fewer events than this in one window.
    #[serde(default = "d_min_count")]
    pub min_count: u64,
    /// A decoded field that splits the events into series (e.g. `to`); one series per contract
    /// when absent. A parameter of at least one event the detector reads.
    #[serde(default)]
    pub group_by: Option<String>,
    /// Learn a baseline per hour of the week (human-driven traffic). Needs `window_s` to divide
    /// 3600 and `warmup_windows` windows in the same hour of earlier weeks before alerting.
    #[serde(default)]
    pub hour_of_week: bool,
}

fn d_rate_window() -> u64 {
    60
}
fn d_rate_history() -> usize {
    240
}
fn d_rate_warmup() -> usize {
    30
}
fn d_alpha() -> f64 {
    1e-6
}
fn d_min_count() -> u64 {
    5
}

/// `kind = "value"`: alert on a value whose robust z-score of `ln(value)` (median and MAD of past
/// values) exceeds `threshold`, and which is at least `floor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueParams {
    /// The decoded numeric field, e.g. `value` or `amount`: a parameter of at least one event the
    /// detector reads, and an integer (`uintN`, `intN`) in every one that has it.
    pub field: String,
    /// Robust z-score above which a value alerts. The default keeps a detector on log-normal
    /// amounts quiet over millions of events; 3.5 is the textbook outlier mark, not an alert level.
    #[serde(default = "d_value_threshold")]
    pub threshold: f64,
    /// Values below this (raw units, e.g. wei) never alert, whatever their score.
    #[serde(default)]
    pub floor: f64,
    /// Values observed before the detector may alert.
    #[serde(default = "d_value_warmup")]
    pub warmup: usize,
    /// Past values the median and MAD are taken over.
    #[serde(default = "d_value_history")]
    pub history: usize,
    /// A decoded field that splits the values into series; one series per contract when absent.
    /// A parameter of at least one event the detector reads.
    #[serde(default)]
    pub group_by: Option<String>,
}

fn d_value_threshold() -> f64 {
    6.0
}
fn d_value_warmup() -> usize {
    200
}
fn d_value_history() -> usize {
    1000
}

/// `kind = "flow"`: per window, net flow = sum of `field` over `inflow` events minus over
/// `outflow` events. A CUSUM (or EWMA) on the standardised net flow alerts on a sustained drain;
/// it runs at several window lengths at once (`window_s` and `extra_windows_s`: 15 min, 1 h and
/// 4 h by default), so a drain of an hour is caught as well as one of a day.
/// `max_outflow_pct` also alerts when one window's outflow exceeds that share of the balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowParams {
    /// The decoded amount field of the inflow and outflow events: each of them must have it, as
    /// an integer (`uintN`, `intN`), in at least one contract in scope (and nowhere another type).
    pub field: String,
    /// Events that add to the balance, e.g. `["Deposit"]`; each an event of a contract in scope.
    pub inflow: Vec<String>,
    /// Events that take from the balance, e.g. `["Withdraw"]`; each an event of a contract in
    /// scope.
    pub outflow: Vec<String>,
    /// Window length in seconds of block time.
    #[serde(default = "d_flow_window")]
    pub window_s: u64,
    /// `cusum` (default) or `ewma`.
    #[serde(default)]
    pub method: FlowMethod,
    /// CUSUM allowance, in standard deviations per window.
    #[serde(default = "d_cusum_k")]
    pub k: f64,
    /// CUSUM decision interval, in standard deviations. With `k = 0.5` the default 8 means about
    /// 19,000 windows between false alarms on normal noise, and 18 windows to catch a drift of one
    /// standard deviation per window (5 windows at three). One window adds at most 2.5 (its
    /// deviation is capped at 3), so at least 4 windows of a length must pass: hence the shorter
    /// `extra_windows_s`.
    #[serde(default = "d_cusum_h")]
    pub h: f64,
    /// EWMA weight of the newest window.
    #[serde(default = "d_ewma_lambda")]
    pub lambda: f64,
    /// EWMA control limit, in standard deviations of the EWMA.
    #[serde(default = "d_ewma_l")]
    pub limit: f64,
    /// Windows observed before the detector may alert.
    #[serde(default = "d_flow_warmup")]
    pub warmup_windows: usize,
    /// Past windows the mean and spread of the net flow are learned from (median and MAD, so an
    /// earlier drain does not become normal).
    #[serde(default = "d_flow_history")]
    pub baseline_windows: usize,
    /// Further window lengths, in seconds of block time, the CUSUM or EWMA also runs at, each
    /// with its own baseline over the same span of time as `window_s`'s (`baseline_windows` times
    /// `window_s`) and the same warm-up time; a finding of any of them is one of this detector and
    /// series. A fast drain stands out in short windows, a slow one in long windows. Absent:
    /// `window_s / 4` (if at least 60 s, so a window spans several blocks) and `4 * window_s`,
    /// i.e. 15 min and 4 h at the defaults; `[]` runs the statistic at `window_s` alone. The
    /// balance rule always uses `window_s`. At every length the spread is the wider of the whole
    /// baseline's and that of the windows within an hour of the same time of day on earlier
    /// days, so busy hours of daily traffic do not read as drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_windows_s: Option<Vec<NonZeroU64>>,
    /// Alert when outflow within one window exceeds this percentage of the balance at the
    /// window's start. The balance is `initial_balance` plus all flows seen.
    #[serde(default)]
    pub max_outflow_pct: Option<f64>,
    /// Balance before the first event the stream holds (raw units), for `max_outflow_pct`.
    #[serde(default)]
    pub initial_balance: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// How a `flow` detector tells a sustained drain from noise (`method`).
pub enum FlowMethod {
    #[default]
    /// Cumulative sum of the standardised net flow (the default): alerts once the deviations
    /// beyond the allowance `k` add up to `h`.
    Cusum,
    /// Exponentially weighted moving average of the standardised net flow (weight `lambda`):
    /// alerts when it passes `limit` standard deviations.
    Ewma,
}

fn d_flow_window() -> u64 {
    3600
}
fn d_cusum_k() -> f64 {
    0.5
}
fn d_cusum_h() -> f64 {
    8.0
}
fn d_ewma_lambda() -> f64 {
    0.2
}
fn d_ewma_l() -> f64 {
    3.5
}
fn d_flow_warmup() -> usize {
    24
}
fn d_flow_history() -> usize {
    168
}

/// `kind = "event"`: every matching privileged event alerts, unless all of its actor fields
/// name an allowed actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Event names that alert. Each listed one must be an event of a contract in scope; of the
    /// default catalogue (below), which no ABI has whole, at least one must be. With `event` set,
    /// it must be one of these.
    #[serde(default = "d_privileged")]
    pub events: Vec<String>,
    /// Decoded fields naming who acted or who gained the privilege: an `address` in every event
    /// read that has it (an actor that does not parse never matches `allowed_actors`). A listed
    /// one must be a parameter of at least one event read; the defaults need not be.
    #[serde(default = "d_actor_fields")]
    pub actor_fields: Vec<String>,
    /// Expected actors (addresses): an event whose actor fields all name one of these is quiet.
    #[serde(default)]
    pub allowed_actors: Vec<String>,
    /// With `source = "transactions"`: the functions whose calls alert, by name or signature
    /// (e.g. `["pause()", "grantRole"]`), succeeded or reverted; each a function of a contract in
    /// scope. Empty: the calls `function` selects. On transactions the actor field defaults to
    /// the sender (`from`); a listed `actor_fields` entry is `from` or a decoded parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
}

/// The privileged events of OpenZeppelin's AccessControl, Ownable, Pausable and ERC-1967 proxies.
pub fn d_privileged() -> Vec<String> {
    [
        "RoleGranted",
        "RoleRevoked",
        "RoleAdminChanged",
        "OwnershipTransferred",
        "Upgraded",
        "AdminChanged",
        "BeaconUpgraded",
        "Paused",
        "Unpaused",
    ]
    .map(String::from)
    .to_vec()
}

pub(crate) fn d_actor_fields() -> Vec<String> {
    [
        "account",
        "sender",
        "newOwner",
        "newAdmin",
        "implementation",
        "beacon",
    ]
    .map(String::from)
    .to_vec()
}

impl TryFrom<toml::Table> for DetectorConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let label = match table.get("name") {
            Some(toml::Value::String(n)) => format!("detector `{n}`"),
            _ => "detector".to_owned(),
        };
        let mut common = toml::Table::new();
        for k in COMMON_KEYS {
            if let Some(v) = table.remove(*k) {
                common.insert((*k).to_owned(), v);
            }
        }
        if !table.contains_key("kind") {
            return Err(format!(
                "{label}: missing field `kind` (one of rate, value, flow, event, threshold)"
            ));
        }
        let c: Common = toml::Value::Table(common)
            .try_into()
            .map_err(|e| format!("{label}: {e}"))?;
        let params: Params = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("{label}: {e}"))?;
        let mut filters = BTreeMap::new();
        for (k, v) in c.filters {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "{label}: filters.{k}: {other} is not a string, integer or boolean"
                    ))
                }
            };
            filters.insert(k, s);
        }
        Ok(DetectorConfig {
            name: c.name,
            chain_id: c.chain_id,
            contract: c.contract,
            event: c.event,
            filters,
            source: c.source,
            function: c.function,
            status: c.status,
            severity: c.severity,
            actions: c.actions,
            params,
        })
    }
}

pub(crate) fn bad(detector: &str, field: &str, message: impl Into<String>) -> InvalidDetector {
    InvalidDetector {
        detector: detector.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

impl DetectorConfig {
    /// Checks what the types cannot: ranges and consistent parameters.
    pub fn validate(&self) -> Result<(), InvalidDetector> {
        let n = self.name.as_str();
        if n.trim().is_empty() || n.contains('/') {
            return Err(bad(n, "name", "must be non-empty and must not contain `/`"));
        }
        if self.filters.keys().any(|k| k.is_empty()) {
            return Err(bad(n, "filters", "a filter has an empty field name"));
        }
        self.validate_source()?;
        match &self.params {
            Params::Rate(p) => {
                if p.window_s == 0 {
                    return Err(bad(n, "window_s", "must be at least 1"));
                }
                if p.hour_of_week && 3600 % p.window_s != 0 {
                    return Err(bad(
                        n,
                        "window_s",
                        format!(
                            "{} does not divide an hour (needed by hour_of_week)",
                            p.window_s
                        ),
                    ));
                }
                if !(p.alpha > 0.0 && p.alpha < 1.0) {
                    return Err(bad(n, "alpha", format!("{} is not in (0, 1)", p.alpha)));
                }
                if p.baseline_windows < 2 {
                    return Err(bad(n, "baseline_windows", "must be at least 2"));
                }
                if p.warmup_windows == 0 || p.warmup_windows > p.baseline_windows {
                    return Err(bad(
                        n,
                        "warmup_windows",
                        format!(
                            "{} must be between 1 and baseline_windows ({})",
                            p.warmup_windows, p.baseline_windows
                        ),
                    ));
                }
            }
            Params::Value(p) => {
                if p.field.is_empty() {
                    return Err(bad(n, "field", "is empty"));
                }
                if !(p.threshold > 0.0 && p.threshold.is_finite()) {
                    return Err(bad(
                        n,
                        "threshold",
                        format!("{} is not positive", p.threshold),
                    ));
                }
                if !(p.floor >= 0.0 && p.floor.is_finite()) {
                    return Err(bad(n, "floor", format!("{} is negative", p.floor)));
                }
                if p.history < 10 {
                    return Err(bad(n, "history", "must be at least 10"));
                }
                if p.warmup < 10 || p.warmup > p.history {
                    return Err(bad(
                        n,
                        "warmup",
                        format!(
                            "{} must be between 10 and history ({})",
                            p.warmup, p.history
                        ),
                    ));
                }
            }
            Params::Flow(p) => {
                if self.event.is_some() {
                    return Err(bad(
                        n,
                        "event",
                        "a flow detector takes its events from `inflow` and `outflow`",
                    ));
                }
                if p.inflow.is_empty() && p.outflow.is_empty() {
                    return Err(bad(n, "outflow", "no inflow or outflow events"));
                }
                if let Some(e) = p.inflow.iter().find(|e| p.outflow.contains(e)) {
                    return Err(bad(n, "outflow", format!("`{e}` is also an inflow event")));
                }
                if p.window_s == 0 {
                    return Err(bad(n, "window_s", "must be at least 1"));
                }
                if !(p.k >= 0.0 && p.h > 0.0) {
                    return Err(bad(n, "h", "k must be >= 0 and h > 0"));
                }
                if !(p.lambda > 0.0 && p.lambda <= 1.0) {
                    return Err(bad(n, "lambda", format!("{} is not in (0, 1]", p.lambda)));
                }
                if p.limit <= 0.0 {
                    return Err(bad(n, "limit", "must be positive"));
                }
                if p.baseline_windows < 4 {
                    return Err(bad(n, "baseline_windows", "must be at least 4"));
                }
                if p.warmup_windows < 4 || p.warmup_windows > p.baseline_windows {
                    return Err(bad(
                        n,
                        "warmup_windows",
                        format!(
                            "{} must be between 4 and baseline_windows ({})",
                            p.warmup_windows, p.baseline_windows
                        ),
                    ));
                }
                if let Some(pct) = p.max_outflow_pct {
                    if !(pct > 0.0 && pct <= 100.0) {
                        return Err(bad(
                            n,
                            "max_outflow_pct",
                            format!("{pct} is not in (0, 100]"),
                        ));
                    }
                }
            }
            Params::Event(p) => {
                if p.events.is_empty() {
                    return Err(bad(n, "events", "lists no event"));
                }
                for a in &p.allowed_actors {
                    a.parse::<Address>().map_err(|e| {
                        bad(n, "allowed_actors", format!("`{a}` is not an address: {e}"))
                    })?;
                }
            }
            Params::Threshold(p) => {
                if p.field.is_empty() {
                    return Err(bad(n, "field", "is empty"));
                }
                if !p.value.is_finite() {
                    return Err(bad(n, "value", format!("{} is not finite", p.value)));
                }
            }
        }
        Ok(())
    }
}
