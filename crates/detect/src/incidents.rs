//! The incident book: turns a stream of detector findings into incidents, the unit an on-call
//! person sees. One incident per key (detector and series), updated by later findings rather than
//! repeated; resolved once no finding came for `hold`; a cooldown after resolution during which
//! the same key does not fire again; a cap on new incidents per detector per minute, beyond which
//! one summary incident counts what was held back; and retractions (reorgs) that resolve or
//! annotate the incidents their blocks triggered.
//!
//! Every time here is block time: a finding happens at its block's timestamp, and an incident
//! resolves when its chain's blocks have moved `hold` past its last finding. The live watchdog
//! catching up over history and a back-test over the same blocks therefore open, merge and
//! resolve exactly the same incidents, however fast the blocks are read. (Wall time only paces
//! re-sending, in the service.)
//!
//! Plain state with no I/O: the service persists what [`IncidentBook`] changed and sends it to
//! Alertmanager.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use alloy_primitives::B256;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Action, DetectorKind, Finding, Severity};

/// What opened an incident: a detector of a kind, or the storm cap's summary of the findings it
/// held back. Stored as the kind's name (`rate`, ..., `storm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum IncidentKind {
    /// Opened by a detector of this kind.
    Detector(DetectorKind),
    /// The storm cap's summary of findings held back beyond `max_per_minute`.
    Storm,
}

impl IncidentKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Detector(k) => k.as_str(),
            IncidentKind::Storm => "storm",
        }
    }
}

impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<IncidentKind> for String {
    fn from(k: IncidentKind) -> String {
        k.as_str().to_owned()
    }
}

impl TryFrom<String> for IncidentKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "rate" => Ok(IncidentKind::Detector(DetectorKind::Rate)),
            "value" => Ok(IncidentKind::Detector(DetectorKind::Value)),
            "flow" => Ok(IncidentKind::Detector(DetectorKind::Flow)),
            "event" => Ok(IncidentKind::Detector(DetectorKind::Event)),
            "threshold" => Ok(IncidentKind::Detector(DetectorKind::Threshold)),
            "storm" => Ok(IncidentKind::Storm),
            other => Err(format!("`{other}` is not an incident kind")),
        }
    }
}

/// How findings become incidents.
#[derive(Debug, Clone)]
pub struct Policy {
    /// An incident resolves when no finding for its key came for this long.
    pub hold: Duration,
    /// After an incident resolved, findings for its key during this long are recorded on it but
    /// do not fire it again.
    pub cooldown: Duration,
    /// New incidents per detector per minute; beyond it one summary incident fires instead.
    pub max_per_minute: u32,
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Alerting: findings for its key came within the `hold` time.
    Firing,
    /// No finding for its key for `hold`; Alertmanager is told it ended.
    Resolved,
}

/// A block that contributed a finding, kept so a retraction can find the incidents it affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerBlock {
    /// Block height.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// One incident: what Alertmanager shows as one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Row id in `watchdog_incidents` once stored.
    pub id: Option<i64>,
    /// `detector/series`; unique among firing incidents.
    pub key: String,
    /// Name of the detector whose findings it collects.
    pub detector: String,
    /// What opened it: the detector's kind, or `storm`.
    pub kind: IncidentKind,
    /// The detector's `severity`, the alert's `severity` label.
    pub severity: Severity,
    /// EIP-155 id of the chain its findings come from.
    pub chain_id: u64,
    /// The contract of its findings, when they are about one.
    pub contract: Option<String>,
    /// The event of its findings, when they are about one.
    pub event: Option<String>,
    /// What the detector counts separately (the second half of `key`).
    pub series: String,
    /// Firing or resolved.
    pub state: State,
    /// Block time of the finding that opened it.
    pub opened_at: DateTime<Utc>,
    /// The block of the finding that opened it (0 in incidents stored before it was kept: see
    /// [`Incident::opening_block`]).
    #[serde(default)]
    pub opened_block: u64,
    /// Block time of the latest finding recorded on it.
    pub last_finding_at: DateTime<Utc>,
    /// Block time at which it resolved; `None` while firing.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Findings recorded on it (the first one opened it).
    pub findings: u64,
    /// The latest finding's numbers and place.
    pub block_number: u64,
    /// Hash of the latest finding's block.
    pub block_hash: B256,
    /// The latest finding's transaction, when a single log triggered it.
    pub tx_hash: Option<B256>,
    /// What the latest finding saw, in the detector's unit.
    pub observed: f64,
    /// What the baseline expected for the latest finding, in the same unit.
    pub expected: f64,
    /// The latest finding's decision statistic.
    pub score: f64,
    /// Name of the statistic in `score`.
    pub score_name: String,
    /// The latest finding's one-line summary: the alert's `summary` annotation.
    pub summary: String,
    /// Blocks whose logs produced findings, oldest first (the last [`MAX_TRIGGERS`]).
    pub triggers: Vec<TriggerBlock>,
    /// Why it changed other than by a finding (retraction, storm count), for the annotations.
    pub note: Option<String>,
    /// The incident carries the actions of a detector that asked for them (e.g. `pause`).
    pub actions: Vec<Action>,
}

/// At most this many trigger blocks are kept per incident.
const MAX_TRIGGERS: usize = 64;

impl Incident {
    fn from_finding(f: &Finding, key: String, now: DateTime<Utc>, actions: &[Action]) -> Self {
        Incident {
            id: None,
            key,
            detector: f.detector.clone(),
            kind: IncidentKind::Detector(f.kind),
            severity: f.severity,
            chain_id: f.chain_id,
            contract: f.contract.clone(),
            event: f.event.clone(),
            series: f.series.clone(),
            state: State::Firing,
            opened_at: now,
            opened_block: f.block_number,
            last_finding_at: now,
            resolved_at: None,
            findings: 1,
            block_number: f.block_number,
            block_hash: f.block_hash,
            tx_hash: f.tx_hash,
            observed: f.observed,
            expected: f.expected,
            score: f.score,
            score_name: f.score_name.to_string(),
            summary: f.summary.clone(),
            triggers: vec![TriggerBlock {
                number: f.block_number,
                hash: f.block_hash,
            }],
            note: None,
            actions: actions.to_vec(),
        }
    }

    fn record(&mut self, f: &Finding, now: DateTime<Utc>) {
        self.findings += 1;
        self.last_finding_at = now;
        self.block_number = f.block_number;
        self.block_hash = f.block_hash;
        self.tx_hash = f.tx_hash;
        self.observed = f.observed;
        self.expected = f.expected;
        self.score = f.score;
        self.summary = f.summary.clone();
        if f.severity > self.severity {
            self.severity = f.severity;
        }
        let t = TriggerBlock {
            number: f.block_number,
            hash: f.block_hash,
        };
        if !self.triggers.contains(&t) {
            if self.triggers.len() == MAX_TRIGGERS {
                self.triggers.remove(0);
            }
            self.triggers.push(t);
        }
    }

    fn resolve(&mut self, now: DateTime<Utc>) {
        self.state = State::Resolved;
        self.resolved_at = Some(now);
    }

    /// The block that opened it; for an incident stored before that was kept, its oldest
    /// remaining trigger (or its latest block).
    pub fn opening_block(&self) -> u64 {
        if self.opened_block > 0 {
            return self.opened_block;
        }
        self.triggers
            .first()
            .map_or(self.block_number, |t| t.number)
    }

    /// The oldest and newest of its trigger blocks still on the chain (a retraction removes
    /// those reorged out); `None` once none is left.
    pub fn trigger_span(&self) -> Option<(u64, u64)> {
        let first = self.triggers.iter().map(|t| t.number).min()?;
        let last = self.triggers.iter().map(|t| t.number).max()?;
        Some((first, last))
    }
}

/// What a call changed: incidents to store and (re)send.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Incidents that were opened, updated or resolved, in their new state.
    pub changed: Vec<Incident>,
    /// Findings held back by the storm cap.
    pub suppressed: u64,
}

/// The incidents of one watchdog, keyed by `detector/series`.
#[derive(Debug)]
pub struct IncidentBook {
    policy: Policy,
    /// The newest incident of each key (firing, or resolved and maybe cooling down).
    by_key: BTreeMap<String, Incident>,
    /// Openings per detector in the last minute, for the storm cap.
    openings: BTreeMap<String, VecDeque<DateTime<Utc>>>,
    /// The newest block time seen per chain: the clock its incidents resolve and cool down by.
    clocks: BTreeMap<u64, DateTime<Utc>>,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl IncidentBook {
    /// An empty book applying `policy`.
    pub fn new(policy: Policy) -> Self {
        IncidentBook {
            policy,
            by_key: BTreeMap::new(),
            openings: BTreeMap::new(),
            clocks: BTreeMap::new(),
        }
    }

    /// The newest block time seen on `chain_id`, if any.
    pub fn clock(&self, chain_id: u64) -> Option<DateTime<Utc>> {
        self.clocks.get(&chain_id).copied()
    }

    /// The blocks of `chain_id` reached time `at` (a record of a block with that timestamp was
    /// read): resolves that chain's incidents whose last finding is `hold` older. The clock never
    /// goes back (a block of a replaced fork may carry an earlier time).
    pub fn advance(&mut self, chain_id: u64, at: DateTime<Utc>) -> Changes {
        let clock = self.clocks.entry(chain_id).or_insert(at);
        if at > *clock {
            *clock = at;
        }
        let now = *clock;
        self.resolve_held(now, Some(chain_id))
    }

    /// Takes back incidents stored by an earlier run (the newest per key), so a restart updates
    /// them instead of opening duplicates.
    pub fn load(&mut self, incidents: impl IntoIterator<Item = Incident>) {
        for i in incidents {
            self.by_key.insert(i.key.clone(), i);
        }
    }

    /// Lets go of the incidents of `chains` (their topic went to another instance, which loads
    /// them).
    pub fn drop_chains(&mut self, chains: &[u64]) {
        self.by_key.retain(|_, i| !chains.contains(&i.chain_id));
    }

    /// The incidents currently firing, by key.
    pub fn firing(&self) -> impl Iterator<Item = &Incident> {
        self.by_key.values().filter(|i| i.state == State::Firing)
    }

    /// The incident stored under `key` (`detector/series`), firing or resolved.
    pub fn get(&self, key: &str) -> Option<&Incident> {
        self.by_key.get(key)
    }

    /// Stores the id the database gave an incident.
    pub fn set_id(&mut self, key: &str, id: i64) {
        if let Some(i) = self.by_key.get_mut(key) {
            i.id = Some(id);
        }
    }

    /// Records `finding` (from a detector configured with `actions`) at its block's time `now`.
    pub fn on_finding(&mut self, f: &Finding, actions: &[Action], now: DateTime<Utc>) -> Changes {
        let clock = self.clocks.entry(f.chain_id).or_insert(now);
        if now > *clock {
            *clock = now;
        }
        let key = format!("{}/{}", f.detector, f.series);
        let mut changes = Changes::default();
        if let Some(existing) = self.by_key.get_mut(&key) {
            let cooling = existing.state == State::Resolved
                && existing
                    .resolved_at
                    .is_some_and(|r| now - r < chrono_duration(self.policy.cooldown));
            if existing.state == State::Firing || cooling {
                existing.record(f, now);
                changes.changed.push(existing.clone());
                return changes;
            }
        }
        // A new incident: subject to the storm cap.
        let window = self.openings.entry(f.detector.clone()).or_default();
        while window
            .front()
            .is_some_and(|t| now - *t >= chrono::Duration::seconds(60))
        {
            window.pop_front();
        }
        if window.len() as u32 >= self.policy.max_per_minute {
            changes.suppressed = 1;
            let storm_key = format!("{}/storm", f.detector);
            let storm = self.by_key.entry(storm_key.clone()).or_insert_with(|| {
                let mut s = Incident::from_finding(f, storm_key.clone(), now, &[]);
                s.findings = 0;
                s.kind = IncidentKind::Storm;
                s.series = "storm".into();
                s.contract = None;
                s.event = None;
                s
            });
            if storm.state == State::Resolved {
                storm.state = State::Firing;
                storm.opened_at = now;
                storm.opened_block = f.block_number;
                storm.resolved_at = None;
                storm.findings = 0;
            }
            storm.findings += 1;
            storm.last_finding_at = now;
            storm.block_number = f.block_number;
            storm.block_hash = f.block_hash;
            storm.tx_hash = f.tx_hash;
            storm.summary = format!(
                "detector {} exceeded {} new incidents per minute: {} findings held back (latest: {})",
                f.detector, self.policy.max_per_minute, storm.findings, f.summary
            );
            storm.note = Some(format!("{} findings held back", storm.findings));
            changes.changed.push(storm.clone());
            return changes;
        }
        window.push_back(now);
        let incident = Incident::from_finding(f, key.clone(), now, actions);
        // A resolved incident past its cooldown is replaced: the new one gets its own row.
        self.by_key.insert(key, incident.clone());
        changes.changed.push(incident);
        changes
    }

    /// Resolves the incidents of every chain whose last finding is older than the hold at `now`
    /// (for a caller with one clock for all, such as a back-test of one chain; the service
    /// advances each chain's clock with [`IncidentBook::advance`]).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Changes {
        self.resolve_held(now, None)
    }

    fn resolve_held(&mut self, now: DateTime<Utc>, chain_id: Option<u64>) -> Changes {
        let hold = chrono_duration(self.policy.hold);
        let mut changes = Changes::default();
        for i in self.by_key.values_mut() {
            if chain_id.is_some_and(|c| c != i.chain_id) {
                continue;
            }
            if i.state == State::Firing && now - i.last_finding_at >= hold {
                i.resolve(now);
                changes.changed.push(i.clone());
            }
        }
        changes
    }

    /// A reorg removed `orphaned` blocks of chain `chain_id`. An incident all of whose triggers
    /// were orphaned is resolved with a note; one with triggers left is annotated.
    pub fn on_retraction(
        &mut self,
        chain_id: u64,
        orphaned: &[(u64, B256)],
        now: DateTime<Utc>,
    ) -> Changes {
        let mut changes = Changes::default();
        for i in self.by_key.values_mut() {
            if i.chain_id != chain_id {
                continue;
            }
            let before = i.triggers.len();
            i.triggers
                .retain(|t| !orphaned.iter().any(|(n, h)| *n == t.number && *h == t.hash));
            let removed = before - i.triggers.len();
            if removed == 0 {
                continue;
            }
            let blocks: Vec<String> = orphaned.iter().map(|(n, _)| n.to_string()).collect();
            if i.triggers.is_empty() {
                i.note = Some(format!(
                    "retracted: the triggering block(s) {} were reorged out; the events are no longer on the chain",
                    blocks.join(", ")
                ));
                if i.state == State::Firing {
                    i.resolve(now);
                }
            } else {
                i.note = Some(format!(
                    "partly retracted: {removed} triggering block(s) reorged out ({}); {} remain",
                    blocks.join(", "),
                    i.triggers.len()
                ));
            }
            changes.changed.push(i.clone());
        }
        changes
    }

    /// Drops resolved incidents whose cooldown is over at their chain's clock (they stay in the
    /// database); those of a chain with no block read yet are kept.
    pub fn forget_old(&mut self) {
        let cooldown = chrono_duration(self.policy.cooldown);
        let clocks = &self.clocks;
        self.by_key.retain(|_, i| {
            let Some(now) = clocks.get(&i.chain_id) else {
                return true;
            };
            i.state == State::Firing || i.resolved_at.is_none_or(|r| *now - r < cooldown)
        });
    }
}
