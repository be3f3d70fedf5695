//! The `[watchdog]` section of the shared config file. The structs are the documentation: every
//! field says what it does and its default. The rest of the file (Postgres, Kafka, chains,
//! contracts) is the indexer's and is read through `tripwire_indexer::config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tripwire_indexer::config::{ConfigError, Settings};

use crate::detect::{self, DetectorConfig};

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
    pub safe: Option<crate::safe::SafeConfig>,
    /// The Alertmanager webhook receiver (`[watchdog.webhook]`), served on `listen`.
    #[serde(default)]
    pub webhook: Option<crate::webhook::WebhookConfig>,
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
    pub fn resend_interval(&self) -> Duration {
        Duration::from_secs(self.resend_interval_s.max(1))
    }
}

/// The whole file as the watchdog sees it: the indexer's settings plus `[watchdog]`.
#[derive(Debug, Clone)]
pub struct WatchdogSettings {
    pub settings: Settings,
    pub watchdog: WatchdogConfig,
    pub path: PathBuf,
}

/// Only the `[watchdog]` table, parsed from the interpolated text so errors carry line numbers.
#[derive(Deserialize)]
struct File {
    watchdog: Option<WatchdogConfig>,
}

impl WatchdogSettings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    pub fn from_str_at(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let settings = Settings::from_str_at(text, path)?;
        let interpolated = tripwire_indexer::config::interpolate(text, |k| std::env::var(k).ok())?;
        let file: File = toml::from_str(&interpolated).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: format!("[watchdog]: {e}"),
        })?;
        let watchdog = file.watchdog.ok_or_else(|| ConfigError::Invalid {
            field: "watchdog".into(),
            message: "the file has no [watchdog] section".into(),
        })?;
        validate(&watchdog, &settings)?;
        // Their credentials are shown as `***` wherever they would appear (see `secrets`).
        for url in &watchdog.alertmanager.urls {
            tripwire_indexer::secrets::register_url(url);
        }
        if let Some(t) = &watchdog.alertmanager.bearer_token {
            tripwire_indexer::secrets::register(t);
        }
        if let Some(svc) = watchdog.safe.as_ref().and_then(|s| s.service.as_ref()) {
            tripwire_indexer::secrets::register_url(&svc.url);
        }
        Ok(WatchdogSettings {
            settings,
            watchdog,
            path: path.to_owned(),
        })
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn validate(w: &WatchdogConfig, settings: &Settings) -> Result<(), ConfigError> {
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
            if !settings.contracts.iter().any(|s| &s.name == c) {
                return Err(invalid(
                    format!("watchdog.detectors[{i}].contract"),
                    format!("`{c}` is not a configured contract ([[contracts]] name)"),
                ));
            }
        }
        if let Some(id) = d.chain_id {
            if !settings.config.chains.iter().any(|c| c.chain_id == id) {
                return Err(invalid(
                    format!("watchdog.detectors[{i}].chain_id"),
                    format!("{id} is not a configured chain"),
                ));
            }
        }
    }
    // After the checks above, so a misspelt contract or chain is named as such, not as an event
    // that contract lacks.
    detect::check_against_abis(&w.detectors, &contract_events(settings)).map_err(|e| {
        invalid(
            format!("watchdog.detectors[{}] \"{}\"", e.index, e.detector),
            format!("{}: {}", e.key, e.problem),
        )
    })?;
    Ok(())
}

/// What each `[[contracts]]` entry decodes, for the detectors' ABI check.
fn contract_events(settings: &Settings) -> Vec<detect::ContractEvents> {
    settings
        .contracts
        .iter()
        .map(|c| detect::ContractEvents {
            name: c.name.clone(),
            // The indexer checked that every contract's chain is configured.
            chain_id: settings.chain(&c.chain).map_or(0, |ch| ch.chain_id),
            events: c.abi.events().cloned().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    const BASE: &str = r#"
[postgres]
url = "postgres://x@127.0.0.1/db"
[kafka]
brokers = "127.0.0.1:9092"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["http://127.0.0.1:8545"]
[[contracts]]
name = "vault"
chain = "devnet"
addresses = ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]
events = ["event Withdraw(address indexed user, uint256 amount)"]
"#;

    fn load(watchdog: &str) -> Result<WatchdogSettings, String> {
        WatchdogSettings::from_str_at(
            &format!("{BASE}\n{watchdog}"),
            &repo().join("examples/test.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn every_example_config_with_a_watchdog_section_parses() {
        let mut seen = 0;
        for dir in ["examples", "deploy"] {
            let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("dir entry").path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if path.extension().is_some_and(|e| e == "toml") && text.contains("[watchdog]") {
                    let s = WatchdogSettings::load(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    crate::detect::DetectorSet::new(&s.watchdog.detectors)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(!s.watchdog.detectors.is_empty());
                    seen += 1;
                }
            }
        }
        assert!(seen >= 1, "no example config with a [watchdog] section");
    }

    #[test]
    fn defaults_and_named_errors() {
        let s = load("[watchdog]\n[watchdog.alertmanager]\nurls = [\"http://127.0.0.1:9093\"]\n")
            .expect("minimal watchdog section");
        assert_eq!(s.watchdog.consumer, "tripwire-watchdog");
        assert_eq!(s.watchdog.alertmanager.resend_interval_s, 60);
        assert!(s.watchdog.detectors.is_empty());

        let e = load("").unwrap_err();
        assert!(e.contains("[watchdog]"), "{e}");
        let e = load("[watchdog]\n[watchdog.alertmanager]\nurls = []\n").unwrap_err();
        assert!(e.contains("watchdog.alertmanager.urls"), "{e}");
        let e = load("[watchdog]\n[watchdog.alertmanager]\nurls = [\"ftp://x\"]\n").unwrap_err();
        assert!(e.contains("ftp://x"), "{e}");
        let e =
            load("[watchdog]\nconsumr = \"x\"\n[watchdog.alertmanager]\nurls = [\"http://a\"]\n")
                .unwrap_err();
        assert!(e.contains("consumr"), "{e}");
        let am = "[watchdog]\n[watchdog.alertmanager]\nurls = [\"http://a\"]\n";
        let e = load(&format!(
            "{am}[[watchdog.detectors]]\nname = \"d\"\nkind = \"event\"\ncontract = \"vaul\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("watchdog.detectors[0].contract") && e.contains("vaul"),
            "{e}"
        );
        let e = load(&format!(
            "{am}[[watchdog.detectors]]\nname = \"d\"\nkind = \"event\"\n[[watchdog.detectors]]\nname = \"d\"\nkind = \"event\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("watchdog.detectors[1].name"), "{e}");
        let e = load(&format!(
            "{am}[[watchdog.detectors]]\nname = \"d\"\nkind = \"rate\"\nchain_id = 1\n"
        ))
        .unwrap_err();
        assert!(e.contains("chain_id") && e.contains('1'), "{e}");
        let e = load(&format!(
            "{am}[[watchdog.detectors]]\nname = \"d\"\nkind = \"rate\"\nwindow_s = 0\n"
        ))
        .unwrap_err();
        assert!(e.contains("window_s"), "{e}");
    }

    const AM: &str = "[watchdog]\n[watchdog.alertmanager]\nurls = [\"http://a\"]\n";

    #[test]
    fn detectors_are_checked_against_the_abi_when_loading() {
        let e = load(&format!(
            "{AM}[[watchdog.detectors]]\nname = \"big\"\nkind = \"value\"\ncontract = \"vault\"\nevent = \"Withdraw\"\nfield = \"value\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "config: watchdog.detectors[0] \"big\": field = \"value\": Withdraw has no parameter \"value\" (it has user, amount)"
        );
        // The vault has none of the default privileged events.
        let e = load(&format!(
            "{AM}[[watchdog.detectors]]\nname = \"p\"\nkind = \"event\"\ncontract = \"vault\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("watchdog.detectors[0] \"p\": events (default)"),
            "{e}"
        );
        load(&format!(
            "{AM}[[watchdog.detectors]]\nname = \"big\"\nkind = \"value\"\ncontract = \"vault\"\nevent = \"Withdraw\"\nfield = \"amount\"\n"
        ))
        .expect("a detector that can fire");
    }

    /// `[watchdog.safe]` up to where `run` needs the chain; the key is checked where it is present.
    #[test]
    fn safe_is_checked_without_the_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("proposer.key");
        // Any scalar below the curve order is a key; this one guards nothing.
        std::fs::write(&key, format!("0x{}\n", "11".repeat(32))).expect("write key");
        let garbage = dir.path().join("garbage.key");
        std::fs::write(&garbage, "not a key").expect("write key");
        let safe = |key_line: &str, target: &str| {
            let ws = load(&format!(
                "{AM}[watchdog.safe]\nchain = \"devnet\"\naddress = \"0x4a09F484F4fDf62d205a9c2B9287ed636A9103cA\"\n{key_line}\n[[watchdog.safe.targets]]\n{target}\n"
            ))
            .expect("loads: the Safe is not checked when loading");
            crate::safe::check_offline(&ws).map_err(|e| e.to_string())
        };
        let with_key = format!("proposer_key_file = \"{}\"", key.display());
        assert_eq!(
            safe(&with_key, "contract = \"vault\""),
            Ok(vec![]),
            "a good Safe section"
        );
        let e = safe(&with_key, "contract = \"vault\"\nfunction = \"unpause()\"").unwrap_err();
        assert!(
            e.contains("watchdog.safe.targets[0].function")
                && e.contains("never proposes an unpause"),
            "{e}"
        );
        let e = safe(&with_key, "contract = \"token\"").unwrap_err();
        assert!(e.contains("watchdog.safe.targets[0].contract"), "{e}");
        let e = safe(&with_key, "address = \"0x4a09F484F4fDf62d205a9c2B9287ed636A9103cA\"\nfunction = \"pause(uint256)\"").unwrap_err();
        assert!(e.contains("1 argument"), "{e}");
        let e = safe("", "contract = \"vault\"").unwrap_err();
        assert!(e.contains("exactly one of proposer_key_env"), "{e}");
        let e = safe(
            &format!("proposer_key_file = \"{}\"", garbage.display()),
            "contract = \"vault\"",
        )
        .unwrap_err();
        assert!(
            e.contains("not a hex private key") && !e.contains("not a key"),
            "{e}"
        );
        // A key `run` would find in its own environment is only noted here.
        let notes = safe(
            "proposer_key_file = \"/nonexistent/proposer.key\"",
            "contract = \"vault\"",
        )
        .expect("a key absent here is a note");
        assert!(
            notes.len() == 1 && notes[0].contains("watchdog.safe.proposer_key_file"),
            "{notes:?}"
        );
    }
}
