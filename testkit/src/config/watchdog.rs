//! The `[watchdog]` parts of [`super::TestConfig`]: the section itself, its Alertmanager, its
//! detectors (their kind's parameters in a table, as the file writes them beside the selector),
//! the Safe that pauses and the webhook receiver with its rules. Like the other parts, a field
//! left unset is not written and keeps the product's default.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;

use serde::Serialize;

/// `[watchdog]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Watchdog {
    /// `consumer`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// `listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `checkpoint_interval_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_s: Option<u64>,
    /// `[watchdog.alertmanager]`
    pub alertmanager: Alertmanager,
    /// `[[watchdog.detectors]]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<Detector>,
    /// `[watchdog.safe]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe: Option<Safe>,
    /// `[watchdog.webhook]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

impl Watchdog {
    /// A watchdog alerting the Alertmanagers at `urls`, with no detector yet.
    pub fn new<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Watchdog {
        Watchdog {
            alertmanager: Alertmanager {
                urls: urls.into_iter().map(Into::into).collect(),
                ..Alertmanager::default()
            },
            ..Watchdog::default()
        }
    }

    /// Adds a detector.
    pub fn detector(mut self, detector: Detector) -> Watchdog {
        self.detectors.push(detector);
        self
    }
}

/// `[watchdog.alertmanager]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Alertmanager {
    /// `urls`
    pub urls: Vec<String>,
    /// `bearer_token`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// `resend_interval_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resend_interval_s: Option<u64>,
    /// `resolve_after_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_after_s: Option<u64>,
    /// `cooldown_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_s: Option<u64>,
    /// `max_alerts_per_minute`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_alerts_per_minute: Option<u32>,
    /// `explorer_tx_url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explorer_tx_url: Option<String>,
    /// `generator_url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// `timeout_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// `[[watchdog.detectors]]`: the selector and outcome keys, `kind`, and that kind's parameters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Detector {
    /// `name`
    pub name: String,
    /// `kind`: `rate`, `value`, `flow` or `event`.
    pub kind: String,
    /// `chain_id`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// `contract`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// `event`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `severity`: `info`, `warning` or `critical`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `actions`, e.g. `["pause"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// `description`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The kind's parameters (`window_s`, `field`, `allowed_actors`, ...), in the same table.
    #[serde(flatten)]
    pub params: toml::Table,
    /// `filters`
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, String>,
}

impl Detector {
    /// A detector `name` of `kind`, everything else at its defaults.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Detector {
        Detector {
            name: name.into(),
            kind: kind.into(),
            ..Detector::default()
        }
    }

    /// Only logs of `contract`.
    pub fn contract(mut self, contract: impl Into<String>) -> Detector {
        self.contract = Some(contract.into());
        self
    }

    /// Only the decoded event `event`.
    pub fn event(mut self, event: impl Into<String>) -> Detector {
        self.event = Some(event.into());
        self
    }

    /// `severity`
    pub fn severity(mut self, severity: impl Into<String>) -> Detector {
        self.severity = Some(severity.into());
        self
    }

    /// `actions`
    pub fn actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Detector {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// A parameter of the kind, e.g. `.param("window_s", 10)`.
    pub fn param(mut self, key: &str, value: impl Into<toml::Value>) -> Detector {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// `filters.<key> = value`
    pub fn filter(mut self, key: impl Into<String>, value: impl Into<String>) -> Detector {
        self.filters.insert(key.into(), value.into());
        self
    }
}

/// `[watchdog.safe]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Safe {
    /// `chain`
    pub chain: String,
    /// `address`
    pub address: String,
    /// `proposer_key_env`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer_key_env: Option<String>,
    /// `proposer_key_file`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer_key_file: Option<PathBuf>,
    /// `min_severity`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    /// `multisend`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multisend: Option<String>,
    /// `[[watchdog.safe.targets]]`
    pub targets: Vec<SafeTarget>,
    /// `[watchdog.safe.service]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<SafeService>,
}

impl Safe {
    /// The Safe at `address` (its `Display`) on `chain`, with no target yet.
    pub fn new(chain: impl Into<String>, address: impl Display) -> Safe {
        Safe {
            chain: chain.into(),
            address: address.to_string(),
            ..Safe::default()
        }
    }
}

/// `[[watchdog.safe.targets]]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct SafeTarget {
    /// `contract`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// `address`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `function`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// `args`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl SafeTarget {
    /// Every address of the `[[contracts]]` entry `name`, with the default `pause()`.
    pub fn contract(name: impl Into<String>) -> SafeTarget {
        SafeTarget {
            contract: Some(name.into()),
            ..SafeTarget::default()
        }
    }
}

/// `[watchdog.safe.service]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct SafeService {
    /// `url`
    pub url: String,
    /// `api_key_env`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// `attempts`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// `timeout_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// `[watchdog.webhook]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Webhook {
    /// `path`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `bearer_token_env`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// `hmac_secret_env`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret_env: Option<String>,
    /// `allow_unauthenticated`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_unauthenticated: Option<bool>,
    /// `max_body_bytes`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// `[[watchdog.webhook.rules]]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// `[[watchdog.webhook.rules]]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    /// `name`
    pub name: String,
    /// `matchers`, Alertmanager's syntax.
    pub matchers: Vec<String>,
    /// `actions`: `record`, `pause`, `alert`.
    pub actions: Vec<String>,
    /// `labels` of the re-posted alert.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
