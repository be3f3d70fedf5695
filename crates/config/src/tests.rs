//! Config tests: every shipped example parses, and each kind of mistake names its field.

use std::path::{Path, PathBuf};

use super::*;

pub(crate) fn repo() -> PathBuf {
    // crates/config -> the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const MINIMAL: &str = r#"
[postgres]
url = "postgres://postgres@127.0.0.1/test"
[kafka]
brokers = "embedded"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["http://127.0.0.1:8545"]
"#;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_str_at(text, &repo().join("examples/test.toml"))
}

fn err(text: &str) -> String {
    parse(text)
        .expect_err("config must be rejected")
        .to_string()
}

#[test]
fn every_example_config_parses() {
    let mut seen = 0;
    // The compose stack mounts examples/ too: its configs are these.
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Settings::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!s.config.chains.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 1, "no example config found");
}

#[test]
fn example_decodes_with_artifact_and_signatures() {
    let s = Settings::load(&repo().join("examples/tripwire.toml")).unwrap();
    let token = s.contracts.iter().find(|c| c.name == "token").unwrap();
    assert!(!token.abi.is_empty());
    let vault = s.contracts.iter().find(|c| c.name == "vault").unwrap();
    assert_eq!(vault.abi.len(), 2);
    let registry = s.contracts.iter().find(|c| c.name == "registry").unwrap();
    assert!(registry.abi.is_empty());
    assert_eq!(s.topic(&s.config.chains[0]), "tripwire.devnet.events");
}

#[test]
fn minimal_config_gets_defaults() {
    let s = parse(MINIMAL).unwrap();
    let c = &s.config.chains[0];
    assert_eq!(c.max_reorg_depth, 64);
    assert_eq!(c.confirmations, 0);
    assert_eq!(s.config.server.lag_threshold_blocks, 1000);
}

#[test]
fn unknown_key_is_named() {
    let e = err(&MINIMAL.replace("chain_id = 31337", "chain_id = 31337\nconfirmation = 3"));
    assert!(e.contains("confirmation"), "{e}");
    let e = err(&format!("{MINIMAL}\n[bogus]\nx = 1\n"));
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn malformed_address_is_named() {
    let text = format!(
        "{MINIMAL}\n[[contracts]]\nname = \"token\"\nchain = \"devnet\"\naddresses = [\"0x1234\"]\n"
    );
    let e = err(&text);
    assert!(
        e.contains("contracts[0] (token).addresses") && e.contains("0x1234"),
        "{e}"
    );
    let bad_checksum = "0x5FBDB2315678afecb367f032d93F642f64180aa3";
    let e = err(&text.replace("0x1234", bad_checksum));
    assert!(e.contains("checksum"), "{e}");
}

#[test]
fn unreadable_abi_is_named() {
    let text = format!(
        "{MINIMAL}\n[[contracts]]\nname = \"token\"\nchain = \"devnet\"\naddresses = [\"0x5fbdb2315678afecb367f032d93f642f64180aa3\"]\nabi = \"nope/missing.json\"\n"
    );
    let e = err(&text);
    assert!(
        e.contains("(token).abi") && e.contains("missing.json"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("tripwire-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), "{\"abi\": 5}").unwrap();
    let e = err(&text.replace("nope/missing.json", dir.join("bad.json").to_str().unwrap()));
    assert!(e.contains("not a valid ABI"), "{e}");
    let e = err(&text.replace(
        "abi = \"nope/missing.json\"",
        "events = [\"event Broken(uint256 indexed\"]",
    ));
    assert!(e.contains("(token).events"), "{e}");
}

#[test]
fn semantic_mistakes_are_named() {
    let e = err(&MINIMAL.replace("rpc_urls = [\"http://127.0.0.1:8545\"]", "rpc_urls = []"));
    assert!(e.contains("rpc_urls"), "{e}");
    let e = err(&MINIMAL.replace("http://127.0.0.1:8545", "ws://x"));
    assert!(e.contains("rpc_urls"), "{e}");
    let e = err(&MINIMAL.replace("postgres://postgres@127.0.0.1/test", "mysql://x"));
    assert!(e.contains("postgres.url"), "{e}");
    let e = err(&format!(
        "{MINIMAL}\n[[contracts]]\nname = \"t\"\nchain = \"mainnet\"\naddresses = [\"0x5fbdb2315678afecb367f032d93f642f64180aa3\"]\n"
    ));
    assert!(e.contains("mainnet") && e.contains("chain"), "{e}");
    let e = err(&MINIMAL.replace("chain_id = 31337", "chain_id = 31337\nmax_reorg_depth = 0"));
    assert!(e.contains("max_reorg_depth"), "{e}");
}

#[test]
fn providers_are_validated_and_joined_with_rpc_urls() {
    let with =
        |extra: &str| MINIMAL.replace("chain_id = 31337", &format!("chain_id = 31337\n{extra}"));
    let e = err(&with("providers = [{ url = \"ftp://x\" }]"));
    assert!(
        e.contains("providers[0].url") && e.contains("ftp://x"),
        "{e}"
    );
    let e = err(&with("providers = [{ url = \"http://a\", max_rps = 0 }]"));
    assert!(e.contains("providers[0].max_rps"), "{e}");
    let e = err(&with("providers = [{ url = \"http://a\", wieght = 2 }]"));
    assert!(e.contains("wieght"), "{e}");
    let e = err(&MINIMAL.replace("rpc_urls = [\"http://127.0.0.1:8545\"]", ""));
    assert!(e.contains("rpc_urls") && e.contains("providers"), "{e}");
    let s = parse(&with(
        "providers = [{ url = \"http://b:8545\", name = \"b\", weight = 3, max_rps = 10 }]",
    ))
    .expect("valid");
    let all = s.config.chains[0].all_providers();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].weight, 1);
    assert_eq!(
        (all[1].name.as_deref(), all[1].weight, all[1].max_rps),
        (Some("b"), 3, Some(10))
    );
    assert!(s.config.chains[0].verify_ranges);
}

#[test]
fn env_interpolation_applies_and_missing_var_is_named() {
    let e = err(&MINIMAL.replace("embedded", "${TRIPWIRE_TEST_SURELY_UNSET_VAR}"));
    assert!(e.contains("TRIPWIRE_TEST_SURELY_UNSET_VAR"), "{e}");
    let s =
        parse(&MINIMAL.replace("embedded", "${TRIPWIRE_TEST_SURELY_UNSET_VAR:-k1:9092}")).unwrap();
    assert_eq!(s.config.kafka.brokers, Brokers::Servers("k1:9092".into()));
}

#[test]
fn abi_decodes_transfer_and_keeps_bad_data_raw() {
    use alloy_primitives::{keccak256, Address, B256, U256};
    let abi = ContractAbi::load(
        None,
        &["event Transfer(address indexed from, address indexed to, uint256 value)".into()],
    )
    .unwrap();
    let topic0 = keccak256("Transfer(address,address,uint256)");
    let from = Address::repeat_byte(1);
    let to = Address::repeat_byte(2);
    let topics = [topic0, from.into_word(), to.into_word()];
    let value = U256::from(10).pow(U256::from(24));
    let ev = abi.decode(&topics, &value.to_be_bytes::<32>()).unwrap();
    assert_eq!(ev.name, "Transfer");
    assert_eq!(ev.signature, "Transfer(address,address,uint256)");
    assert_eq!(ev.params["value"], "1000000000000000000000000");
    assert_eq!(ev.params["to"], to.to_checksum(None));
    // Five bytes of data cannot be a uint256: the log stays raw.
    assert!(abi.decode(&topics, &[1, 2, 3, 4, 5]).is_none());
    assert!(abi.decode(&[B256::ZERO], &[]).is_none());
}

#[test]
fn one_address_in_two_contracts_of_a_chain_names_both() {
    let contract = |name: &str, address: &str| {
        format!(
            "\n[[contracts]]\nname = \"{name}\"\nchain = \"devnet\"\naddresses = [\"{address}\"]\n"
        )
    };
    let a = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
    // The same address, once lowercase and once checksummed: still one address.
    let e = err(&format!(
        "{MINIMAL}{}{}",
        contract("token", a),
        contract("vault", "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    ));
    assert!(
        e.contains("contracts[1] (vault).addresses")
            && e.contains("contracts[0] (token)")
            && e.to_lowercase().contains(a),
        "{e}"
    );
    let e = err(&format!(
        "{MINIMAL}\n[[contracts]]\nname = \"token\"\nchain = \"devnet\"\naddresses = [\"{a}\", \"{a}\"]\n"
    ));
    assert!(
        e.contains("(token).addresses") && e.contains("twice"),
        "{e}"
    );
    // Different addresses are fine.
    let ok = format!(
        "{MINIMAL}{}{}",
        contract("token", a),
        contract("vault", "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512")
    );
    parse(&ok).expect("distinct addresses are accepted");
}

/// `MINIMAL` with `extra` inserted into its `[kafka]` and `sink` sections.
fn with(kafka: &str, sink: &str, brokers: &str) -> String {
    MINIMAL
        .replace(
            "brokers = \"embedded\"",
            &format!("brokers = \"{brokers}\"\n{kafka}"),
        )
        .replace("[[chains]]", &format!("[sink]\n{sink}\n[[chains]]"))
}

#[test]
fn lead_and_batch_defaults_fit_together() {
    // The embedded broker: a 4 MiB byte lead (compressed, as the broker keeps it); batches keep
    // their defaults.
    let flow = parse(MINIMAL).unwrap().flow();
    assert_eq!(flow.lead.bytes, Some(4 << 20));
    assert_eq!(flow.lead.records, None);
    assert_eq!((flow.batch_records, flow.batch_bytes), (50_000, 16 << 20));
    // A real cluster: no lead limit.
    let flow = parse(&with("", "", "kafka:9092")).unwrap().flow();
    assert!(flow.lead.is_unlimited());
    // A record lead alone: the batch follows it.
    let flow = parse(&with("max_lead_records = 20000", "", "kafka:9092"))
        .unwrap()
        .flow();
    assert_eq!(flow.lead.records, Some(20_000));
    assert_eq!(flow.batch_records, 10_000);
    let flow = parse(&with("max_lead_bytes = 8388608", "", "kafka:9092"))
        .unwrap()
        .flow();
    assert_eq!(flow.batch_bytes, 4 << 20);
    // 0 turns the embedded default off.
    let flow = parse(&with("max_lead_bytes = 0", "", "embedded"))
        .unwrap()
        .flow();
    assert!(flow.lead.is_unlimited());
}

#[test]
fn contradicting_lead_and_batch_name_both_keys() {
    let e = err(&with(
        "max_lead_records = 20000",
        "batch_records = 50000",
        "kafka:9092",
    ));
    assert!(
        e.contains("sink.batch_records") && e.contains("kafka.max_lead_records = 20000"),
        "{e}"
    );
    let e = err(&with(
        "max_lead_bytes = 1048576",
        "batch_bytes = 1048576",
        "embedded",
    ));
    assert!(
        e.contains("sink.batch_bytes") && e.contains("kafka.max_lead_bytes = 1048576"),
        "{e}"
    );
    let e = err(&with("max_lead_bytes = 6000000", "", "embedded"));
    assert!(
        e.contains("kafka.max_lead_bytes") && e.contains("embedded broker keeps"),
        "{e}"
    );
    // The byte lead is counted from the producer's statistics: an interval that stops or
    // slows them is refused, naming both keys; a fast one is kept.
    for bad in ["0", "60000", "soon"] {
        let e = err(&with(
            &format!("properties = {{ \"statistics.interval.ms\" = \"{bad}\" }}"),
            "",
            "embedded",
        ));
        assert!(
            e.contains("statistics.interval.ms") && e.contains("kafka.max_lead_bytes"),
            "{e}"
        );
    }
    parse(&with(
        "properties = { \"statistics.interval.ms\" = \"100\" }",
        "",
        "embedded",
    ))
    .unwrap()
    .flow();
    parse(&with(
        "max_lead_bytes = 0\nproperties = { \"statistics.interval.ms\" = \"60000\" }",
        "",
        "embedded",
    ))
    .unwrap()
    .flow();
    assert!(err(&with("", "batch_records = 0", "embedded")).contains("sink.batch_records"));
    assert!(err(&with("", "batch_bytes = 0", "embedded")).contains("sink.batch_bytes"));
    assert!(err(&with("max_lead_records = 1", "", "embedded")).contains("kafka.max_lead_records"));
    // Within the limit both are kept as given.
    let flow = parse(&with(
        "max_lead_records = 20000",
        "batch_records = 10000",
        "kafka:9092",
    ))
    .unwrap()
    .flow();
    assert_eq!(flow.batch_records, 10_000);
}

#[test]
fn range_targets_must_be_positive() {
    let text = MINIMAL.replace(
        "rpc_urls = [\"http://127.0.0.1:8545\"]",
        "rpc_urls = [\"http://127.0.0.1:8545\"]\nrange_target_logs = 0",
    );
    assert!(err(&text).contains("range_target_logs"), "{}", err(&text));
}

#[test]
fn a_response_cap_below_the_range_target_names_both_keys() {
    let text = MINIMAL.replace(
        "rpc_urls = [\"http://127.0.0.1:8545\"]",
        "rpc_urls = [\"http://127.0.0.1:8545\"]\nmax_response_bytes = 1000000",
    );
    let e = err(&text);
    assert!(
        e.contains("max_response_bytes") && e.contains("range_target_bytes = 4194304"),
        "{e}"
    );
}
