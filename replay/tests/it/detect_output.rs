//! The back-test against a node without archive state (anvil `--prune-history`: `eth_getCode` at
//! an old block fails there) while Postgres holds the rows, and its report in each `--format`, on
//! stdout and in an `--output` file. One chain and one indexer run serve every case.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::config::{Chain, Contract, Detector, Server, Sink, TestConfig, Watchdog};
use testkit::{abi, anvil::Anvil, kafka::TestKafka, postgres::TestDb, process::Proc, Address};

const BIN: &str = env!("CARGO_BIN_EXE_tripwire-replay");

/// What a run of the binary left: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn replay(config: &Path, args: &[&str]) -> Result<Run> {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .output()?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn config(
    dir: &Path,
    db: &TestDb,
    kafka: &TestKafka,
    topic: &str,
    anvil: &Anvil,
    treasury: Address,
) -> Result<PathBuf> {
    // No `start_block`: before the fix, every mode asked eth_getCode at --from-block.
    let mut config = TestConfig::new(db.url(), kafka.brokers());
    config.postgres.max_connections = Some(4);
    config.kafka.topic = Some(topic.to_owned());
    config
        .server(Server::any_port())
        .sink(Sink {
            consumer: Some("sink-detect-output-test".into()),
            batch_wait_ms: Some(50),
            ..Sink::default()
        })
        .chain(Chain {
            poll_interval_ms: Some(100),
            range_blocks: Some(20),
            ..Chain::new("devnet", 31337, anvil.url())
        })
        .contract(Contract::new("treasury", "devnet", [treasury]).artifact("Treasury"))
        .watchdog(
            Watchdog {
                consumer: Some("wd-detect-output".into()),
                listen: Some("127.0.0.1:0".into()),
                ..Watchdog::new(["http://127.0.0.1:9"])
            }
            .detector(
                Detector::new("privileged", "event")
                    .contract("treasury")
                    .severity("critical")
                    .param(
                        "allowed_actors",
                        vec![format!("{:#x}", anvil.accounts()[0])],
                    ),
            )
            .detector(
                Detector::new("big-withdrawal", "value")
                    .contract("treasury")
                    .event("Withdraw")
                    .param("field", "amount")
                    .param("warmup", 20)
                    .param("history", 100),
            ),
        )
        .write(dir.join("tripwire.toml"))
}

/// Runs ingest and sink (`tripwire-indexer run`) until every log of `treasury` on the chain is
/// stored.
async fn index_everything(
    config: &Path,
    anvil: &Anvil,
    db: &TestDb,
    treasury: Address,
) -> Result<()> {
    let mut indexer = Proc::spawn(
        &testkit::workspace_bin("tripwire-indexer")?,
        config,
        "run",
        config.parent().unwrap_or(Path::new(".")),
        "info",
    )?;
    indexer.http_addr().await?;
    let want = anvil
        .get_logs(json!({"fromBlock": "0x0", "toBlock": "latest", "address": [treasury]}))
        .await?
        .len() as i64;
    let head = anvil.block_number().await? as i64;
    let deadline = Instant::now() + Duration::from_secs(90);
    let result = loop {
        let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
            .fetch_one(db.pool())
            .await?;
        let top: Option<i64> = sqlx::query_scalar("SELECT max(number) FROM blocks")
            .fetch_one(db.pool())
            .await?;
        if logs == want && top == Some(head) {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "Postgres has {logs} of {want} logs, blocks up to {top:?} of {head}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    indexer.terminate(Duration::from_secs(20))?;
    result
}

/// A minimal RFC 4180 reader: fields split on commas outside quotes, `""` inside quotes.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted || !field.is_empty() || !row.is_empty() {
        bail!("CSV does not end with a complete line: {text:?}");
    }
    Ok(rows)
}

/// The JSON report's incidents as CSV would write them, to compare the two formats row by row.
fn json_as_rows(fired: &[Value], header: &[String]) -> Vec<Vec<String>> {
    fired
        .iter()
        .map(|f| {
            header
                .iter()
                .map(|k| match &f[k.as_str()] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    // Numbers compare by value: CSV writes 1e12 as 1000000000000, JSON as 1e12.
                    Value::Number(n) => n.as_f64().map(|x| x.to_string()).unwrap_or_default(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn numbers_normalised(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v.parse::<f64>() {
                    Ok(x) => x.to_string(),
                    Err(_) => v,
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn detect_needs_no_archive_state_and_writes_each_format_to_stdout_or_a_file() -> Result<()> {
    let anvil = Anvil::builder().arg("--prune-history").spawn().await?;
    let db = TestDb::create().await?;
    tripwire_store::migrate(db.pool()).await?;
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("tripwire-detect-output");
    kafka.create_topic(&topic, 1).await?;
    let (treasury, deployed) = anvil.deploy_with_receipt("Treasury", &[]).await?;
    let dir = tempfile::tempdir()?;
    let config = config(dir.path(), &db, &kafka, &topic, &anvil, treasury)?;

    // History with two planted incidents: a role granted, then a drain.
    let mut rng = StdRng::seed_from_u64(7);
    let withdraw = |amount: u64| abi::call("withdraw(uint256)", &[abi::uint(amount)]);
    for _ in 0..30 {
        anvil
            .send_and_mine(treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let from = anvil.block_number().await? + 1;
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let grant = anvil
        .send_and_mine(
            treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(anvil.accounts()[6])],
            ),
        )
        .await?;
    for _ in 0..10 {
        anvil
            .send_and_mine(treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    let drain = anvil
        .send_and_mine(treasury, withdraw(1_000_000_000_000))
        .await?;
    for _ in 0..3 {
        anvil
            .send_and_mine(treasury, withdraw(rng.random_range(800..1200)))
            .await?;
    }
    index_everything(&config, &anvil, &db, treasury).await?;

    // The node keeps no old state: the deployment check reindex needs cannot be answered, and
    // the error names the setting that avoids it.
    let old = anvil
        .rpc(
            "eth_getCode",
            json!([
                format!("{treasury:#x}"),
                format!("{:#x}", deployed.block_number)
            ]),
        )
        .await;
    assert!(old.is_err(), "the node kept old state: {old:?}");
    let from_s = from.to_string();
    let base = ["--chain", "devnet", "--from-block", &from_s];
    let run = replay(&config, &[&base[..], &["--dry-run"]].concat())?;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("set `start_block` of [[contracts]] `treasury`")
            && run.stderr.contains("block height is"),
        "{run}"
    );

    // Detect reads Postgres: it succeeds on that node. Default: a table on stdout, and only the
    // table there (the lines about the run are on stderr).
    let detect = [&base[..], &["--mode", "detect"]].concat();
    let table = replay(&config, &detect)?;
    assert_eq!(table.code, 0, "{table}");
    assert!(table.stderr.contains("2 would have fired"), "{table}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("DETECTOR"),
        "{table}"
    );
    assert!(lines[1].contains("privileged") && lines[1].contains(&grant.block_number.to_string()));
    assert!(
        lines[2].contains("big-withdrawal") && lines[2].contains(&drain.block_number.to_string())
    );
    let explicit = replay(&config, &[&detect[..], &["--format", "table"]].concat())?;
    assert_eq!(explicit.code, 0, "{explicit}");
    assert_eq!(explicit.stdout, table.stdout);

    // JSON: one well-formed document, an array of incident objects.
    let json_run = replay(&config, &[&detect[..], &["--format", "json"]].concat())?;
    assert_eq!(json_run.code, 0, "{json_run}");
    let fired: Vec<Value> = serde_json::from_str(&json_run.stdout)
        .with_context(|| format!("stdout is not a JSON array: {json_run}"))?;
    let got: Vec<(&str, u64)> = fired
        .iter()
        .map(|f| {
            (
                f["detector"].as_str().unwrap_or_default(),
                f["block"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("privileged", grant.block_number),
            ("big-withdrawal", drain.block_number)
        ]
    );
    for f in &fired {
        for key in [
            "time",
            "severity",
            "series",
            "score_name",
            "score",
            "observed",
            "expected",
            "tx_hash",
            "summary",
        ] {
            assert!(f.get(key).is_some(), "no `{key}` in {f}");
        }
    }

    // CSV: a header and the same rows as the JSON.
    let csv_run = replay(&config, &[&detect[..], &["--format", "csv"]].concat())?;
    assert_eq!(csv_run.code, 0, "{csv_run}");
    let mut rows = parse_csv(&csv_run.stdout)?;
    let header = rows.remove(0);
    assert_eq!(
        header.join(","),
        "time,block,detector,severity,series,score_name,score,observed,expected,tx_hash,summary"
    );
    assert_eq!(
        numbers_normalised(rows),
        numbers_normalised(json_as_rows(&fired, &header))
    );

    // --output only chooses the place: the same document in the file, nothing on stdout.
    let stdout_of = [
        ("table", &table.stdout),
        ("json", &json_run.stdout),
        ("csv", &csv_run.stdout),
    ];
    for (format, expected) in stdout_of {
        let file = dir.path().join(format!("report-{format}.out"));
        let path = file.to_str().unwrap_or_default();
        let run = replay(
            &config,
            &[&detect[..], &["--format", format, "--output", path]].concat(),
        )?;
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(run.stdout, "", "{format}: {run}");
        assert!(run.stderr.contains("written to"), "{run}");
        assert_eq!(&std::fs::read_to_string(&file)?, expected, "{format}");
    }
    // Without --format a file's extension decides, as older scripts expect.
    let file = dir.path().join("fired.json");
    let run = replay(
        &config,
        &[
            &detect[..],
            &["--output", file.to_str().unwrap_or_default()],
        ]
        .concat(),
    )?;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(std::fs::read_to_string(&file)?, json_run.stdout);

    // The reported mistake: `--output json` meant --format json; refused before anything runs.
    let run = replay(&config, &[&detect[..], &["--output", "json"]].concat())?;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--format json"), "{run}");
    assert!(!Path::new("json").exists());
    // The report options belong to detect; elsewhere they are a wrong request, not a no-op.
    let run = replay(&config, &[&base[..], &["--format", "json"]].concat())?;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("apply to --mode detect only"), "{run}");
    Ok(())
}
