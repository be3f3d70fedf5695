//! The production stack as `docker-compose.yml` describes it, with its own files: the demo chain
//! and traffic, `migrate`, `indexer-ingest`, `indexer-sink`, `watchdog`, Alertmanager and
//! Prometheus run their compose commands, environment, mounted configuration (examples/tripwire.toml,
//! deploy/prometheus, deploy/alertmanager) and health checks; Postgres and Kafka are the test's own
//! (a throwaway database; librdkafka's mock broker or `KAFKA_BROKERS`). Grafana does not run here:
//! every query of the provisioned dashboard goes through the provisioned data source's URL instead.

use std::collections::BTreeMap;
use std::time::Duration;
use testkit::wait::eventually;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testkit::{kafka::TestKafka, postgres::TestDb};
use tripwire_deploy::dashboard;

use crate::common::Stack;

const PORTS: [u16; 6] = [8545, 9090, 9093, 9464, 9465, 9466];

/// Prometheus as the provisioned Grafana data source reaches it (`http://prometheus:9090`, the
/// compose name resolved to the loopback like the stack's /etc/hosts does).
struct Prom {
    http: reqwest::Client,
    url: String,
}

impl Prom {
    fn from_datasource() -> Result<Prom> {
        let path = tripwire_deploy::repo_root()
            .join("deploy/grafana/provisioning/datasources/prometheus.yml");
        let ds: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
        let url = ds["datasources"][0]["url"]
            .as_str()
            .context("datasource url")?
            .trim_end_matches('/')
            .to_string();
        let parsed = reqwest::Url::parse(&url)?;
        let host = parsed.host_str().context("datasource host")?.to_string();
        let port = parsed.port_or_known_default().context("datasource port")?;
        let http = reqwest::Client::builder()
            .resolve(&host, ([127, 0, 0, 1], port).into())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Prom { http, url })
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.url))?;
        url.query_pairs_mut().extend_pairs(query);
        let resp = self.http.get(url).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() || body["status"] != "success" {
            bail!("GET {path} {query:?}: {status} {body}");
        }
        Ok(body["data"].clone())
    }

    async fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_with_its_own_files() -> Result<()> {
    let db = TestDb::create().await?;
    let kafka = TestKafka::start()?;
    let token = format!("stack-{}", std::process::id());
    // The operator's .env.
    let dotenv: BTreeMap<String, String> = [
        ("POSTGRES_PASSWORD", "unused-by-the-test-database"),
        ("TRIPWIRE_WEBHOOK_TOKEN", token.as_str()),
        ("TRIPWIRE_PROPOSER_KEY", testkit::safe::OWNER_KEYS[0]),
        ("GRAFANA_ADMIN_PASSWORD", "unused"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let overrides: BTreeMap<String, String> = [
        ("DATABASE_URL", db.url().to_string()),
        ("KAFKA_BROKERS", kafka.brokers()),
        // Records of earlier runs stay on a real broker: a topic of this run's own.
        ("KAFKA_TOPIC_PREFIX", kafka.unique_topic("stack")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // librdkafka's mock broker does not create topics on request: make the example's one.
    kafka
        .create_topic(
            &format!("{}.devnet.events", overrides["KAFKA_TOPIC_PREFIX"]),
            1,
        )
        .await?;
    let mut stack = Stack::new(dotenv, overrides)?;
    stack.check_ports(&PORTS)?;
    let order = stack.compose.start_order(&["demo"])?;
    let skipped = ["postgres", "kafka", "grafana"];
    for name in &order {
        if skipped.contains(&name.as_str()) {
            continue;
        }
        stack
            .up(name)
            .await
            .with_context(|| format!("bringing up {name}"))?;
    }
    let prom = Prom::from_datasource()?;

    // 1. The indexer fills Postgres from the demo traffic.
    eventually("logs in Postgres", Duration::from_secs(90), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
            .fetch_one(db.pool())
            .await?;
        Ok((n >= 20).then_some(n))
    })
    .await?;

    // 2. Prometheus scrapes every job of its file, and every rule of the shipped files evaluates.
    let jobs = eventually(
        "every scrape target up",
        Duration::from_secs(60),
        || async {
            let data = prom.get("/api/v1/targets", &[]).await?;
            let targets = data["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let up: Vec<String> = targets
                .iter()
                .filter(|t| t["health"] == "up")
                .map(|t| t["labels"]["job"].as_str().unwrap_or("").to_string())
                .collect();
            Ok((targets.len() == 5 && up.len() == 5).then_some(up))
        },
    )
    .await?;
    for job in [
        "tripwire-ingest",
        "tripwire-sink",
        "tripwire-watchdog",
        "alertmanager",
        "prometheus",
    ] {
        assert!(
            jobs.contains(&job.to_string()),
            "{job} not scraped: {jobs:?}"
        );
    }
    // Rules evaluated before the first scrape of a job see it absent (pending, never firing
    // with their `for`): wait for an evaluation of the running stack with nothing raised.
    let rules = eventually(
        "every rule evaluated, none raised",
        Duration::from_secs(60),
        || async {
            let data = prom.get("/api/v1/rules", &[]).await?;
            let rules: Vec<Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let raised: Vec<&Value> = rules
                .iter()
                .filter(|r| r["alerts"].as_array().is_some_and(|a| !a.is_empty()))
                .collect();
            let evaluated = rules
                .iter()
                .all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z");
            if !raised.is_empty() {
                bail!("raised: {raised:?}");
            }
            Ok((rules.len() >= 14 && evaluated).then_some(rules))
        },
    )
    .await?;
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} does not evaluate: {}",
            r["name"], r["lastError"]
        );
    }

    // 3. The planted attack: the watchdog alerts Alertmanager, whose critical route calls the
    //    watchdog's webhook with the bearer token of the compose secret.
    let contracts = stack
        .local_path(
            stack.compose.service("demo-traffic")?,
            "/var/lib/tripwire-demo/contracts.json",
        )?
        .context("demo state volume")?;
    let attack = std::process::Command::new(testkit::workspace_bin("tripwire-devnet")?)
        .args(["attack", "--rpc", "http://127.0.0.1:8545", "--contracts"])
        .arg(&contracts)
        .output()?;
    assert!(
        attack.status.success(),
        "attack: {}",
        String::from_utf8_lossy(&attack.stderr)
    );
    let receipt: (String, Vec<String>) = eventually("the webhook receipt of the critical alert", Duration::from_secs(60), || async {
        let row: Option<(serde_json::Value, Vec<String>)> = sqlx::query_as(
            "SELECT labels, rules FROM webhook_receipts WHERE labels->>'severity' = 'critical' ORDER BY id LIMIT 1",
        )
        .fetch_optional(db.pool())
        .await?;
        Ok(row.map(|(labels, rules)| (labels["detector"].as_str().unwrap_or("").to_string(), rules)))
    })
    .await
    .with_context(|| format!("watchdog log:\n{}\nalertmanager log:\n{}", stack.log("watchdog"), stack.log("alertmanager")))?;
    assert_eq!(receipt.0, "treasury-privileged", "{receipt:?}");
    let proposals: i64 = sqlx::query_scalar("SELECT count(*) FROM safe_proposals")
        .fetch_one(db.pool())
        .await?;
    assert!(
        proposals >= 1,
        "the critical incident prepared no Safe proposal"
    );
    let rejected = prom
        .query(r#"sum(tripwire_watchdog_webhook_requests_total{status=~"401|403"})"#)
        .await?;
    assert!(
        rejected.is_empty(),
        "the webhook rejected Alertmanager: {rejected:?}"
    );

    // 4. Every query of the provisioned dashboard runs, and the panels of the running stack's
    //    lag, throughput, provider health, alerts and proposals have data.
    let board = dashboard::load(
        &tripwire_deploy::repo_root().join("deploy/grafana/dashboards/tripwire.json"),
    )?;
    let queries = dashboard::queries(&board)?;
    let must_have = [
        "tripwire_lag_blocks",
        "tripwire_logs_written_total",
        "tripwire_rpc_provider_up",
        "tripwire_watchdog_alerts_fired_total",
        "tripwire_watchdog_safe_proposals_total",
    ];
    let mut with_data = std::collections::BTreeSet::new();
    // Counters need two scrapes after the attack before rate() has a value.
    tokio::time::sleep(Duration::from_secs(21)).await;
    for q in &queries {
        let expr = dashboard::substitute(&q.expr);
        let result = prom
            .query(&expr)
            .await
            .with_context(|| format!("panel {:?} query {}: {expr}", q.panel, q.ref_id))?;
        if !result.is_empty() {
            with_data.extend(dashboard::metric_names(&expr));
        }
    }
    for m in must_have {
        assert!(
            with_data.contains(m),
            "no dashboard query on {m} has data; with data: {with_data:?}"
        );
    }

    // 5. Stopping the watchdog (SIGTERM, clean exit) raises TripwireWatchdogDown.
    stack.stop("watchdog")?;
    eventually(
        "TripwireWatchdogDown pending",
        Duration::from_secs(60),
        || async {
            let data = prom.get("/api/v1/alerts", &[]).await?;
            let found = data["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["labels"]["alertname"] == "TripwireWatchdogDown");
            Ok(found.then_some(()))
        },
    )
    .await?;

    // 6. The rest shuts down cleanly on SIGTERM too.
    for name in [
        "demo-traffic",
        "indexer-ingest",
        "indexer-sink",
        "prometheus",
        "alertmanager",
        "anvil",
    ] {
        stack.stop(name)?;
    }
    Ok(())
}
