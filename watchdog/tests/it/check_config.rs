//! `tripwire-watchdog check-config` refuses what `run` would refuse, or would start with and never
//! fire: a detector reading a field its event does not have, an event no contract has, a Safe
//! target that unpauses. Each error names the detector (or Safe setting) and the key. Needs no
//! Postgres, Kafka or chain: the check reads only the file.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tripwire-watchdog");

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
name = "token"
chain = "devnet"
addresses = ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]
events = ["event Transfer(address indexed from, address indexed to, uint256 value)"]
[[contracts]]
name = "treasury"
chain = "devnet"
addresses = ["0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"]
events = [
  "event Withdraw(address indexed user, uint256 amount)",
  "event Paused(address account)",
]

[watchdog]
[watchdog.alertmanager]
urls = ["http://127.0.0.1:9093"]

[[watchdog.detectors]]
name = "withdraw-burst"
kind = "rate"
contract = "treasury"
event = "Withdraw"

[[watchdog.detectors]]
name = "paused"
kind = "event"
contract = "treasury"
"#;

/// Runs `check-config` on `BASE` plus `extra`: (success, stdout, stderr).
fn check_config(dir: &Path, extra: &str) -> (bool, String, String) {
    let path = dir.join("tripwire.toml");
    std::fs::write(&path, format!("{BASE}{extra}")).expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .env_remove("TRIPWIRE_CONFIG")
        .env_remove("TRIPWIRE_PROPOSER_KEY")
        .output()
        .expect("run tripwire-watchdog");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_the_detector_and_key_that_could_never_fire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, stdout, stderr) = check_config(dir.path(), "");
    assert!(ok, "the base config passes: {stderr}");
    assert!(stdout.contains("ok (2 detectors"), "{stdout}");

    let cases = [
        (
            "unknown field",
            "field = \"amount\"",
            r#"watchdog.detectors[2] "big-transfers": field = "amount": Transfer has no parameter "amount" (it has from, to, value)"#,
        ),
        (
            "unknown event",
            "event = \"Transferr\"\nfield = \"value\"",
            r#"watchdog.detectors[2] "big-transfers": event = "Transferr": token has no event "Transferr" (it has Transfer)"#,
        ),
        (
            "address field",
            "field = \"to\"",
            r#"watchdog.detectors[2] "big-transfers": field = "to": "to" of Transfer on token is address, not an integer"#,
        ),
    ];
    for (what, lines, expect) in cases {
        let event = if lines.contains("event =") {
            ""
        } else {
            "event = \"Transfer\"\n"
        };
        let (ok, _, stderr) = check_config(
            dir.path(),
            &format!(
                "\n[[watchdog.detectors]]\nname = \"big-transfers\"\nkind = \"value\"\ncontract = \"token\"\n{event}{lines}\n"
            ),
        );
        assert!(!ok, "{what}: check-config passed");
        assert!(
            stderr.contains(expect),
            "{what}: expected `{expect}` in:\n{stderr}"
        );
    }
}

#[test]
fn check_config_checks_the_safe_as_far_as_it_can_without_the_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let safe = |target: &str| {
        format!(
            "\n[watchdog.safe]\nchain = \"devnet\"\naddress = \"0x4a09F484F4fDf62d205a9c2B9287ed636A9103cA\"\nproposer_key_env = \"TRIPWIRE_PROPOSER_KEY\"\n[[watchdog.safe.targets]]\n{target}\n"
        )
    };
    // The key is not in this environment: noted, not refused (run's environment has it).
    let (ok, stdout, stderr) = check_config(dir.path(), &safe("contract = \"treasury\""));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("TRIPWIRE_PROPOSER_KEY is not set"),
        "{stdout}"
    );
    let (ok, _, stderr) = check_config(
        dir.path(),
        &safe("contract = \"treasury\"\nfunction = \"unpause()\""),
    );
    assert!(!ok, "an unpause target passed");
    assert!(
        stderr.contains("watchdog.safe.targets[0].function: `unpause()`: the watchdog never proposes an unpause"),
        "{stderr}"
    );
    let (ok, _, stderr) = check_config(dir.path(), &safe("contract = \"vault\""));
    assert!(!ok, "an unknown target contract passed");
    assert!(
        stderr.contains("watchdog.safe.targets[0].contract: `vault`"),
        "{stderr}"
    );
}
