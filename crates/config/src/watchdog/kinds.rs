//! The closed sets a detector's configuration names: how loud it is (`severity`), how it decides
//! (`kind`) and what its incidents trigger (`actions`), with the error a detector's parameters
//! raise when the types alone cannot refuse them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How loud a detector's alerts are; the `severity` label in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The quietest level (`info`).
    Info,
    /// Between `info` and `critical` (`warning`).
    Warning,
    /// The loudest level (`critical`); the default `min_severity` of Safe pause proposals.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// A detector's parameters that the types cannot refuse (a range, an unknown action, parameters
/// that contradict each other), naming the detector and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector `{detector}`: {field}: {message}")]
pub struct InvalidDetector {
    /// The detector's `name`.
    pub detector: String,
    /// The key at fault.
    pub field: String,
    /// Why the value is refused.
    pub message: String,
}

/// How a detector decides (`kind = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Events per window against a learned baseline.
    Rate,
    /// Outsized values of a decoded numeric field.
    Value,
    /// Sustained drift of a signed flow (inflow events minus outflow events).
    Flow,
    /// Privileged events (role, owner, admin, implementation, pause changes), or privileged
    /// function calls.
    Event,
    /// A field compared with a constant.
    Threshold,
}

impl DetectorKind {
    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Rate => "rate",
            DetectorKind::Value => "value",
            DetectorKind::Flow => "flow",
            DetectorKind::Event => "event",
            DetectorKind::Threshold => "threshold",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an incident of a detector triggers besides its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Action {
    /// A Safe proposal that pauses the protocol (`[watchdog.safe]`), for critical incidents.
    Pause,
}

impl Action {
    /// Every action, as written in the file.
    pub const ALL: &'static [Action] = &[Action::Pause];

    /// The name in the file, the `actions` label and the stored incident.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Action {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        super::named_action(&s, Action::ALL, Action::as_str)
    }
}
