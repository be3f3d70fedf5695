//! The `[watchdog]` section of the shared config file: detectors, Alertmanager, the Safe that
//! pauses the protocol and the webhook receiver. The structs are the documentation: every field
//! says what it does and its default. Validated with the rest of the file, against its contracts
//! and chains.

mod abi_check;
#[cfg(test)]
mod abi_tests;
#[cfg(test)]
mod abi_tx_tests;
mod detectors;
mod kinds;
mod safe;
mod transactions;
mod tx_checks;
mod webhook;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::{Config, ConfigError, ContractSpec};

pub use abi_check::{check_against_abis, AbiMismatch, ContractEvents};
pub use detectors::*;
pub use kinds::*;
pub use safe::*;
pub use transactions::*;
pub use webhook::*;

/// `[watchdog]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Name of the watchdog's stored stream position and state, and its Kafka consumer group.
    /// Watchdogs of one name share the chain topics (each topic's state goes with it); two with
    /// different names watch the same stream independently.
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// `/metrics` and `/health` of the watchdog process.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Seconds between two saves of the detectors' state and the stream position (one Postgres
    /// transaction). A restart re-reads at most this much of the stream, without counting it twice.
    #[serde(default = "default_checkpoint_interval_s")]
    pub checkpoint_interval_s: u64,
    /// Where alerts go.
    pub alertmanager: AlertmanagerConfig,
    /// The detectors (`[[watchdog.detectors]]`).
    #[serde(default)]
    pub detectors: Vec<DetectorConfig>,
    /// The Safe that pauses the protocol (`[watchdog.safe]`): incidents of detectors with the
    /// `pause` action get a proposal there.
    #[serde(default)]
    pub safe: Option<SafeConfig>,
    /// The Alertmanager webhook receiver (`[watchdog.webhook]`), served on `listen`.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// `[watchdog.alertmanager]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of the Alertmanagers (an HA cluster: list every member; each gets every alert).
    pub urls: Vec<String>,
    /// Bearer token sent with every request, for an Alertmanager behind an authenticating proxy.
    /// Use `${ENV}` interpolation; never write the token into the file.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Seconds between two sends of a firing alert. Alertmanager forgets an alert that is not
    /// re-sent; each send sets `endsAt` to three intervals ahead.
    #[serde(default = "default_resend_interval_s")]
    pub resend_interval_s: u64,
    /// Seconds without a new finding after which an incident resolves.
    #[serde(default = "default_hold_s")]
    pub resolve_after_s: u64,
    /// Seconds after an incident resolved during which new findings for the same detector and
    /// series are recorded on it but do not fire again.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: u64,
    /// New incidents per detector per minute; beyond it one summary alert
    /// (`TripwireAlertStorm`) counts the findings held back.
    #[serde(default = "default_max_per_minute")]
    pub max_alerts_per_minute: u32,
    /// Link to a transaction in the annotations: `{tx_hash}`, `{block}` and `{chain_id}` are
    /// replaced, e.g. `https://etherscan.io/tx/{tx_hash}`.
    #[serde(default)]
    pub explorer_tx_url: Option<String>,
    /// `generatorURL` of the alerts (`{detector}` is replaced), e.g. a dashboard of the detector.
    #[serde(default = "default_generator_url")]
    pub generator_url: String,
    /// Timeout of one request to Alertmanager, in seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
}

fn default_consumer() -> String {
    "tripwire-watchdog".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:9465".parse().expect("static address")
}
fn default_checkpoint_interval_s() -> u64 {
    5
}
fn default_resend_interval_s() -> u64 {
    60
}
fn default_hold_s() -> u64 {
    300
}
fn default_cooldown_s() -> u64 {
    600
}
fn default_max_per_minute() -> u32 {
    10
}
fn default_generator_url() -> String {
    "http://127.0.0.1:9465/metrics".into()
}
fn default_timeout_s() -> u64 {
    10
}

impl AlertmanagerConfig {
    /// How often a still-firing alert is posted again (`resend_interval_s`, at least 1 s).
    pub fn resend_interval(&self) -> Duration {
        Duration::from_secs(self.resend_interval_s.max(1))
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks `w` against the rest of the file: its contracts (ABIs included) and chains.
pub(crate) fn validate(
    w: &WatchdogConfig,
    config: &Config,
    contracts: &[ContractSpec],
) -> Result<(), ConfigError> {
    if w.consumer.trim().is_empty() {
        return Err(invalid("watchdog.consumer", "is empty"));
    }
    if w.alertmanager.urls.is_empty() {
        return Err(invalid(
            "watchdog.alertmanager.urls",
            "lists no Alertmanager",
        ));
    }
    for u in &w.alertmanager.urls {
        let parsed = url::Url::parse(u)
            .map_err(|e| invalid("watchdog.alertmanager.urls", format!("`{u}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(
                "watchdog.alertmanager.urls",
                format!("`{u}`: scheme must be http or https"),
            ));
        }
    }
    if let Some(wh) = &w.webhook {
        wh.rules(w.safe.is_some())
            .map_err(|(field, message)| invalid(field, message))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, d) in w.detectors.iter().enumerate() {
        if !names.insert(d.name.clone()) {
            return Err(invalid(
                format!("watchdog.detectors[{i}].name"),
                format!("`{}` is used by another detector", d.name),
            ));
        }
        d.validate()
            .map_err(|e| invalid(format!("watchdog.detectors[{i}]"), e.to_string()))?;
        if let Some(c) = &d.contract {
            if !contracts.iter().any(|s| &s.name == c) {
                return Err(invalid(
                    format!("watchdog.detectors[{i}].contract"),
                    format!("`{c}` is not a configured contract ([[contracts]] name)"),
                ));
            }
        }
        if let Some(id) = d.chain_id {
            if !config.chains.iter().any(|c| c.chain_id == id) {
                return Err(invalid(
                    format!("watchdog.detectors[{i}].chain_id"),
                    format!("{id} is not a configured chain"),
                ));
            }
        }
    }
    // After the checks above, so a misspelt contract or chain is named as such, not as an event
    // that contract lacks.
    check_against_abis(&w.detectors, &contract_events(config, contracts)).map_err(|e| {
        invalid(
            format!("watchdog.detectors[{}] \"{}\"", e.index, e.detector),
            format!("{}: {}", e.key, e.problem),
        )
    })?;
    Ok(())
}

/// What each `[[contracts]]` entry decodes, for the detectors' ABI check.
fn contract_events(config: &Config, contracts: &[ContractSpec]) -> Vec<ContractEvents> {
    contracts
        .iter()
        .map(|c| ContractEvents {
            name: c.name.clone(),
            // The indexer checked that every contract's chain is configured.
            chain_id: config
                .chains
                .iter()
                .find(|ch| ch.name == c.chain)
                .map_or(0, |ch| ch.chain_id),
            events: c.abi.events().cloned().collect(),
            functions: c.abi.functions().cloned().collect(),
            transactions: c.transactions != crate::TxWatch::Off,
        })
        .collect()
}

/// Registers the section's credentials, so they show as `***` wherever they would appear.
pub(crate) fn register_secrets(w: &WatchdogConfig) {
    for url in &w.alertmanager.urls {
        crate::secrets::register_url(url);
    }
    if let Some(t) = &w.alertmanager.bearer_token {
        crate::secrets::register(t);
    }
    if let Some(svc) = w.safe.as_ref().and_then(|s| s.service.as_ref()) {
        crate::secrets::register_url(&svc.url);
    }
}

/// The action of `all` written `s` in the file, or an error listing the known ones.
fn named_action<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, String> {
    all.iter().copied().find(|a| name(*a) == s).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|a| name(*a)).collect();
        format!("`{s}` is not an action (known: {})", known.join(", "))
    })
}
