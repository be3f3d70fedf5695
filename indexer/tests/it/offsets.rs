//! `tripwire-indexer offsets`: the sink's stored position against the topic's watermarks, and the
//! resets of the runbooks (to the earliest record kept, to the end), refused without confirmation,
//! for an unknown consumer, and against the embedded broker.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use testkit::config::{Chain, TestConfig};

use crate::common::{Env, BIN};

fn offsets(config: &std::path::Path, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("offsets")
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    ))
}

fn position(list_json: &str, consumer: &str) -> Value {
    let all: Value = serde_json::from_str(list_json).unwrap_or_else(|e| panic!("{e}: {list_json}"));
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["consumer"] == consumer)
        .cloned()
        .unwrap_or_else(|| panic!("no {consumer} in {list_json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_listed_and_reset_to_either_end() -> Result<()> {
    let env = Env::new().await?;
    env.traffic(20, 3).await?;
    let mut ingest = env.spawn("ingest")?;
    let mut sink = env.spawn("sink")?;
    env.wait_synced_with(Duration::from_secs(60), &[&ingest, &sink])
        .await?;
    sink.terminate(Duration::from_secs(20))?;
    ingest.terminate(Duration::from_secs(20))?;
    let config = env.config();

    // The sink stored the end of the topic: nothing to read, nothing lost.
    let (ok, out) = offsets(&config, &["list", "--json"])?;
    assert!(ok, "{out}");
    let p = position(&out, &env.consumer);
    assert_eq!(p["topic"], env.topic.as_str());
    let high = p["high"].as_i64().unwrap();
    assert!(high > 0, "{p}");
    assert_eq!(p["stored"].as_i64(), Some(high), "{p}");
    let (ok, table) = offsets(&config, &["list"])?;
    assert!(
        ok && table.contains(&env.consumer) && !table.contains("LOST"),
        "{table}"
    );

    // Not confirmed: refused, nothing moved.
    let (ok, out) = offsets(
        &config,
        &["reset", "--consumer", &env.consumer, "--to", "earliest"],
    )?;
    assert!(!ok && out.contains("--yes"), "{out}");
    let (_, out) = offsets(&config, &["list", "--json"])?;
    assert_eq!(position(&out, &env.consumer)["stored"].as_i64(), Some(high));

    // To the earliest record kept: the sink reads the whole topic again, writing nothing twice.
    let (ok, out) = offsets(
        &config,
        &[
            "reset",
            "--consumer",
            &env.consumer,
            "--to",
            "earliest",
            "--yes",
        ],
    )?;
    assert!(ok, "{out}");
    let (_, out) = offsets(&config, &["list", "--json"])?;
    let p = position(&out, &env.consumer);
    assert_eq!(p["stored"], p["low"], "{p}");
    let before = env.db_rows().await?.len();
    let sink = env.spawn("sink")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out) = offsets(&config, &["list", "--json"])?;
        if position(&out, &env.consumer)["stored"].as_i64() == Some(high) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink did not re-read: {out}\n{}",
            sink.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        env.db_rows().await?.len(),
        before,
        "a re-read wrote rows twice"
    );
    env.assert_matches_chain().await?;
    drop(sink);

    // To the end: what the topic holds is skipped.
    let (ok, out) = offsets(
        &config,
        &[
            "reset",
            "--consumer",
            &env.consumer,
            "--to",
            "latest",
            "--yes",
        ],
    )?;
    assert!(ok, "{out}");
    let (_, out) = offsets(&config, &["list", "--json"])?;
    assert_eq!(position(&out, &env.consumer)["stored"].as_i64(), Some(high));

    // A consumer with no stored position is named, with the ones that have one.
    let (ok, out) = offsets(
        &config,
        &["reset", "--consumer", "sinc", "--to", "latest", "--yes"],
    )?;
    assert!(
        !ok && out.contains("`sinc`") && out.contains(&env.consumer),
        "{out}"
    );
    Ok(())
}

#[test]
fn the_embedded_broker_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tripwire.toml");
    TestConfig::new("postgres://postgres@127.0.0.1:5432/postgres", "embedded")
        .chain(Chain::new("devnet", 31337, "http://127.0.0.1:9"))
        .write(&path)
        .unwrap();
    let (ok, out) = offsets(&path, &["list"]).unwrap();
    assert!(!ok && out.contains("KAFKA_BROKERS"), "{out}");
}
