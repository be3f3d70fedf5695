//! The builder's text is what the model reads: every part round-trips through the real parser,
//! `set` reaches into arrays, and a refused file is refused by `write` but not `write_unchecked`.

use super::*;

fn sample() -> TestConfig {
    TestConfig::new("postgres://u@127.0.0.1:5432/db", "127.0.0.1:9092")
        .server(Server::any_port())
        .sink(Sink {
            consumer: Some("s".into()),
            batch_wait_ms: Some(50),
            ..Sink::default()
        })
        .chain(Chain {
            max_reorg_depth: Some(12),
            providers: vec![Provider {
                url: "http://127.0.0.1:2".into(),
                name: Some("b".into()),
                weight: Some(2),
                ..Provider::default()
            }],
            ..Chain::new("devnet", 31337, "http://127.0.0.1:1")
        })
        .contract(
            Contract::new(
                "vault",
                "devnet",
                ["0x1111111111111111111111111111111111111111"],
            )
            .events(["event Withdraw(address indexed user, uint256 amount)"]),
        )
        .watchdog(
            Watchdog::new(["http://127.0.0.1:9093"]).detector(
                Detector::new("burst", "rate")
                    .contract("vault")
                    .event("Withdraw")
                    .severity("critical")
                    .param("window_s", 10)
                    .filter("user", "0x1111111111111111111111111111111111111111"),
            ),
        )
}

#[test]
fn the_parts_are_read_back_by_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample()
        .set("chains.0.verify_ranges", false)
        .set("kafka.properties.acks", "all")
        .write(dir.path().join("t.toml"))
        .unwrap();
    let s = tripwire_config::Settings::load(&path).unwrap();
    let chain = &s.config.chains[0];
    assert_eq!(chain.max_reorg_depth, 12);
    assert!(!chain.verify_ranges);
    assert_eq!(chain.all_providers().len(), 2);
    assert_eq!(s.config.kafka.properties["acks"], "all");
    assert_eq!(s.config.sink.batch_wait_ms, 50);
    let w = s.watchdog().unwrap();
    assert_eq!(w.detectors[0].name, "burst");
    assert_eq!(w.detectors[0].filters.len(), 1);
}

#[test]
fn write_refuses_what_the_model_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let bad = sample().set("chains.0.chain_id", "not a number");
    let err = bad.write(dir.path().join("bad.toml")).unwrap_err();
    assert!(format!("{err:#}").contains("refuse"), "{err:#}");
    assert!(!dir.path().join("bad.toml").exists());
    bad.write_unchecked(dir.path().join("bad.toml")).unwrap();
    assert!(tripwire_config::Settings::load(&dir.path().join("bad.toml")).is_err());
}

#[test]
fn raw_text_and_env_reach_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new("${TESTCONFIG_PG_URL}", "embedded")
        .chain(Chain::new("devnet", 1, "http://127.0.0.1:1"))
        .raw("[sink]\nbatch_wait_ms = 7")
        .env("TESTCONFIG_PG_URL", "postgres://u@h/db");
    let path = cfg.write(dir.path().join("t.toml")).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("batch_wait_ms = 7"), "{text}");
}
