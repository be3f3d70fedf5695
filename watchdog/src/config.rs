//! The whole file as the watchdog sees it: the shared settings plus its own `[watchdog]`
//! section (its model lives in `tripwire_config::watchdog`, parsed and validated with the rest).

use std::path::Path;

use tripwire_config::{ConfigError, Settings};

pub use tripwire_config::watchdog::*;

/// The whole file as the watchdog sees it: the shared settings, known to hold a `[watchdog]`
/// section. One parsed [`Settings`] and nothing copied out of it, so no part can disagree with it.
#[derive(Debug, Clone)]
pub struct WatchdogSettings {
    settings: Settings,
}

impl WatchdogSettings {
    /// Reads and validates the file; it must have a `[watchdog]` section.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_settings(Settings::load(path)?)
    }

    /// Parses config text as if read from `path`.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::from_settings(Settings::from_str_at(text, path)?)
    }

    /// The watchdog's view of validated settings: refused without a `[watchdog]` section.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        settings.watchdog()?;
        Ok(WatchdogSettings { settings })
    }

    /// The whole file's settings (chains, contracts, Kafka, Postgres, server).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The `[watchdog]` section.
    pub fn watchdog(&self) -> &WatchdogConfig {
        self.settings
            .config
            .watchdog
            .as_ref()
            .expect("from_settings refuses settings without [watchdog]")
    }

    /// The file the settings were read from.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
                    tripwire_detect::DetectorSet::new(&s.watchdog().detectors)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(!s.watchdog().detectors.is_empty());
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
        assert_eq!(s.watchdog().consumer, "tripwire-watchdog");
        assert_eq!(s.watchdog().alertmanager.resend_interval_s, 60);
        assert!(s.watchdog().detectors.is_empty());

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
        let e = load(&format!(
            "{am}[[watchdog.detectors]]\nname = \"d\"\nkind = \"event\"\nactions = [\"paws\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("detector `d`") && e.contains("`paws` is not an action (known: pause)"),
            "{e}"
        );
        let e = load(&format!(
            "{am}[watchdog.webhook]\nallow_unauthenticated = true\n[[watchdog.webhook.rules]]\nname = \"r\"\nmatchers = ['a=\"b\"']\nactions = [\"page\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("`page` is not an action (known: record, pause, alert)"),
            "{e}"
        );
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
