//! E1: the real Prometheus scrapes the indexer's metrics, a rule fires, the real Alertmanager
//! delivers it (again and again) to the watchdog's webhook with the bearer token from the
//! example config, the watchdog records it and prepares exactly one Safe pause proposal.

use std::time::{Duration, Instant};
use testkit::config::{Rule, Webhook};

use crate::common::Env;
use anyhow::{bail, Result};
use testkit::alertmanager::Alertmanager;
use testkit::prometheus::Prometheus;

const TOKEN: &str = "e1-webhook-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e1_prometheus_rule_to_alertmanager_to_webhook_to_one_pause_proposal() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    env.server.listen = Some(format!("127.0.0.1:{metrics_port}"));
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    env.safe = Some(env.safe(&setup));
    env.webhook = Some(Webhook {
        bearer_token_env: Some("TRIPWIRE_TEST_WEBHOOK_TOKEN".into()),
        rules: vec![Rule {
            name: "ingest-behind-pause".into(),
            matchers: vec![
                r#"alertname="TripwireIngestBehind""#.into(),
                r#"severity="critical""#.into(),
            ],
            actions: vec!["record".into(), "pause".into()],
            ..Rule::default()
        }],
        ..Webhook::default()
    });
    env.start_ingest().await?;
    // The watchdog reads its token from this variable, given to the child only.
    let wd = env
        .spawn_watchdog_with_env(&[("TRIPWIRE_TEST_WEBHOOK_TOKEN", TOKEN)])
        .await?;
    let wd_addr = wd.http_addr().await?;

    // Alertmanager with the compose stack's routing, intervals shortened for the test.
    let token_file = env.dir.path().join("webhook-token");
    std::fs::write(&token_file, TOKEN)?;
    let shipped =
        std::fs::read_to_string(testkit::repo_root().join("deploy/alertmanager/alertmanager.yml"))?;
    let am_config = shipped
        .replace("http://watchdog:9466", &format!("http://{wd_addr}"))
        .replace(
            "/run/secrets/tripwire_webhook_token",
            &token_file.display().to_string(),
        )
        .replace("group_interval: 1m", "group_interval: 1s")
        .replace("repeat_interval: 4h", "repeat_interval: 1s")
        .replace("repeat_interval: 1h", "repeat_interval: 1s");
    assert_ne!(
        am_config, shipped,
        "the shipped routing changed: update the test's edits"
    );
    let am = Alertmanager::spawn_with_config(&am_config).await?;
    let prom = Prometheus::spawn(
        &format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: tripwire-indexer
    static_configs:
      - targets: ['127.0.0.1:{metrics_port}']
"#,
            am_port = am.port()
        ),
        // The runbook's "indexer lagging" rule with its threshold at 0 so that it fires at once.
        r#"
groups:
  - name: tripwire
    rules:
      - alert: TripwireIngestBehind
        expr: max by (chain) (tripwire_chain_head_block - tripwire_ingested_block) >= 0
        labels:
          severity: critical
          tripwire_action: pause
        annotations:
          summary: "ingest of {{ $labels.chain }} is behind the head"
"#,
    )
    .await?;

    // Several deliveries of the same alert, one receipt, one proposal.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (receipts, deliveries) = loop {
        let (receipts, deliveries): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(max(deliveries), 0)::bigint FROM webhook_receipts
             WHERE labels->>'alertname' = 'TripwireIngestBehind' AND status = 'firing'",
        )
        .fetch_one(env.db.pool())
        .await?;
        if deliveries >= 3 {
            break (receipts, deliveries);
        }
        if Instant::now() > deadline {
            bail!(
                "{receipts} receipts, {deliveries} deliveries; prometheus alerts {:?}; watchdog log:\n{}",
                prom.alerts().await.unwrap_or_default(),
                wd.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let proposals: Vec<(String, String)> =
        sqlx::query_as("SELECT source_key, state FROM safe_proposals ORDER BY id")
            .fetch_all(env.db.pool())
            .await?;
    println!("E1: {receipts} receipt(s), delivered {deliveries} times, proposals {proposals:?}");
    assert_eq!(receipts, 1, "one receipt per fingerprint and startsAt");
    assert_eq!(proposals.len(), 1, "{proposals:?}");
    assert!(proposals[0].0.starts_with("webhook:"), "{proposals:?}");
    assert_eq!(proposals[0].1, "recorded");
    let actions: serde_json::Value = sqlx::query_scalar(
        "SELECT actions FROM webhook_receipts WHERE labels->>'alertname' = 'TripwireIngestBehind'",
    )
    .fetch_one(env.db.pool())
    .await?;
    assert!(
        actions.to_string().contains("recorded") && actions.to_string().contains("safe_tx_hash"),
        "{actions}"
    );
    // The bearer token was required: a request without it was refused and stored nothing.
    let r = reqwest::Client::new()
        .post(format!("http://{wd_addr}/alertmanager/webhook"))
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    Ok(())
}

/// The repository's Alertmanager configs are valid for the packaged Alertmanager.
#[test]
fn example_alertmanager_configs_pass_amtool() {
    for f in [
        "examples/alertmanager.yml",
        "deploy/alertmanager/alertmanager.yml",
    ] {
        let out = std::process::Command::new("amtool")
            .arg("check-config")
            .arg(testkit::repo_root().join(f))
            .output()
            .expect("amtool (installed with prometheus-alertmanager by scripts/install-tools)");
        assert!(
            out.status.success(),
            "{f}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
