//! A5 at the process level: a bad config or an unreachable RPC stops `tripwire-indexer` at start
//! with a non-zero exit and a message naming the problem.

use std::process::Command;

use testkit::postgres::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_tripwire-indexer");

fn config(db: &str, rpc: &str, extra_chain: &str, contracts: &str) -> String {
    format!(
        r#"
[postgres]
url = "{db}"
[kafka]
brokers = "embedded"
[server]
listen = "127.0.0.1:0"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["{rpc}"]
rpc_timeout_s = 2
{extra_chain}
{contracts}
"#
    )
}

/// Runs `tripwire-indexer <args>` on the config text; returns (success, stderr).
fn run(text: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tripwire.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TOKEN: &str = "[[contracts]]\nname = \"token\"\nchain = \"devnet\"\naddresses = [\"0x5fbdb2315678afecb367f032d93f642f64180aa3\"]\n";

#[test]
fn bad_config_is_named_at_start() {
    let db = "postgres://postgres@127.0.0.1:5432/postgres";
    let rpc = "http://127.0.0.1:8545";
    let cases = [
        (config(db, rpc, "confirmation = 2", ""), "confirmation"),
        (
            config(
                db,
                rpc,
                "",
                &TOKEN.replace(
                    "0x5fbdb2315678afecb367f032d93f642f64180aa3",
                    "0xnot-an-address",
                ),
            ),
            "0xnot-an-address",
        ),
        (
            config(
                db,
                rpc,
                "",
                &format!("{TOKEN}abi = \"/nonexistent/Token.json\"\n"),
            ),
            "/nonexistent/Token.json",
        ),
        (config(db, "ftp://node", "", ""), "rpc_urls"),
    ];
    for (text, needle) in cases {
        for cmd in ["ingest", "check-config"] {
            let (ok, stderr) = run(&text, &[cmd]);
            assert!(!ok, "{cmd} accepted a bad config ({needle})");
            assert!(
                stderr.contains(needle),
                "{cmd}: message does not name `{needle}`:\n{stderr}"
            );
        }
    }
    let (ok, stderr) = run(&config(db, rpc, "", TOKEN), &["check-config"]);
    assert!(ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_rpc_is_named_at_start() {
    let db = TestDb::create().await.unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rpc = format!("http://127.0.0.1:{port}");
    let (ok, stderr) = run(&config(db.url(), &rpc, "", TOKEN), &["ingest"]);
    assert!(!ok);
    assert!(
        stderr.contains("no RPC provider answered") || stderr.contains("transport error"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "URL not named:\n{stderr}"
    );

    // A reachable node of another chain is refused too.
    let anvil = testkit::anvil::Anvil::builder()
        .chain_id(1)
        .spawn()
        .await
        .unwrap();
    let (ok, stderr) = run(&config(db.url(), &anvil.url(), "", TOKEN), &["ingest"]);
    assert!(!ok);
    assert!(
        stderr.contains("eth_chainId") && stderr.contains("31337"),
        "{stderr}"
    );
}
