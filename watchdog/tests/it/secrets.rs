//! Secrets never leave the processes: credentials planted in every kind of URL (a key in the
//! path, `?apikey=`, `user:pass@`, a key as the user name) of RPC providers, Alertmanagers and
//! the Safe Transaction Service, every one of them failing, appear nowhere: not in the logs of the
//! indexer and the watchdog, their `/health` and `/metrics`, `status`, `proposals show|list`, the
//! webhook's HTTP answer, nor a `pg_dump` of the database.

use std::time::{Duration, Instant};
use testkit::config::{Rule, Safe, SafeService, Webhook};

use crate::common::Env;
use anyhow::{Context, Result};
use testkit::abi;
use testkit::process::Proc;

/// Every planted secret.
const SECRETS: &[&str] = &[
    "9aa3d95b3bc440fa88ea12eaa4456161",
    "Zq81kLm2XvSecret",
    "rpcuser",
    "RpcPass-771",
    "RPCKEYASUSER123456",
    "f00dbabe1234567890abcdef00",
    "AmQuerySecret42",
    "amuser",
    "AmPass-882",
    "AMKEYASUSER987654",
    "SafePass-993",
];

fn closed_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planted_credentials_appear_in_no_log_health_metric_cli_answer_or_row() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let p = closed_port()?;
    env.rpc_urls_extra = vec![
        format!("http://127.0.0.1:{p}/v3/9aa3d95b3bc440fa88ea12eaa4456161"),
        format!("http://127.0.0.1:{p}/?apikey=Zq81kLm2XvSecret"),
        format!("http://rpcuser:RpcPass-771@127.0.0.1:{p}/"),
        format!("http://RPCKEYASUSER123456@127.0.0.1:{p}/"),
    ];
    env.am_urls_before = vec![
        format!("http://127.0.0.1:{p}/f00dbabe1234567890abcdef00"),
        format!("http://127.0.0.1:{p}/?apikey=AmQuerySecret42"),
        format!("http://amuser:AmPass-882@127.0.0.1:{p}"),
        format!("http://AMKEYASUSER987654@127.0.0.1:{p}"),
    ];
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    env.safe = Some(Safe {
        service: Some(SafeService {
            url: format!("http://safeop:SafePass-993@127.0.0.1:{p}"),
            attempts: Some(1),
            timeout_s: Some(2),
            ..SafeService::default()
        }),
        ..env.safe(&setup)
    });
    env.webhook = Some(Webhook {
        path: Some("/hook".into()),
        allow_unauthenticated: Some(true),
        rules: vec![Rule {
            name: "repost".into(),
            matchers: vec![r#"alertname=~".+""#.into()],
            actions: vec!["alert".into()],
            ..Rule::default()
        }],
        ..Webhook::default()
    });
    let indexer = Proc::spawn(
        &testkit::workspace_bin("tripwire-indexer")?,
        &env.config(),
        "ingest",
        env.dir.path(),
        "info,tripwire_indexer=debug,tripwire_rpc=debug,tripwire_kafka=debug,tripwire_store=debug",
    )?;
    indexer.http_addr().await?;
    let mut wd = env.spawn_watchdog().await?;
    let addr = wd.http_addr().await?;

    // An attack: an incident (Alertmanagers fail), a proposal (the service fails).
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    env.anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(env.anvil.accounts()[7])],
            ),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let proposal = loop {
        let rows: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, error FROM safe_proposals ORDER BY id")
                .fetch_all(env.db.pool())
                .await?;
        if let Some((id, Some(_))) = rows.first() {
            break *id;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no failed proposal:\n{}",
            wd.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The webhook's `alert` action fails on the planted Alertmanagers: its answer quotes them.
    let body = serde_json::json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "tripwire", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "alerts": [{
            "status": "firing", "labels": {"alertname": "X"}, "annotations": {},
            "startsAt": "2026-12-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "0123456789abcdef"
        }]
    });
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/hook"))
        .json(&body)
        .send()
        .await?
        .text()
        .await?;
    assert!(answer.contains("error"), "the action failed: {answer}");
    // Failures recorded everywhere they are recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = indexer.get("/health").await?;
        let down: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rpc_providers WHERE NOT in_rotation AND reason IS NOT NULL",
        )
        .fetch_one(env.db.pool())
        .await?;
        if down >= 4 && wd.metric("tripwire_watchdog_delivery_errors_total").await? >= 4.0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "providers not marked down ({down}): {health}\n{}",
            indexer.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut places: Vec<(String, String)> = Vec::new();
    for (name, p) in [("indexer", &indexer), ("watchdog", &wd)] {
        places.push((format!("{name} /health"), p.get("/health").await?.1));
        places.push((format!("{name} /metrics"), p.get("/metrics").await?.1));
    }
    places.push(("webhook answer".into(), answer));
    let status = std::process::Command::new(testkit::workspace_bin("tripwire-indexer")?)
        .arg("--config")
        .arg(env.config())
        .arg("status")
        .output()?;
    places.push((
        "status".into(),
        String::from_utf8_lossy(&status.stdout).into_owned()
            + &String::from_utf8_lossy(&status.stderr),
    ));
    for args in [
        vec!["proposals".to_string(), "show".into(), proposal.to_string()],
        vec!["proposals".into(), "list".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        places.push((args.join(" "), env.watchdog_command(&args)?.1));
    }
    let dump = std::process::Command::new("pg_dump")
        .arg(env.db.url())
        .output()
        .context("pg_dump")?;
    anyhow::ensure!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    places.push((
        "pg_dump".into(),
        String::from_utf8_lossy(&dump.stdout).into_owned(),
    ));
    wd.terminate(Duration::from_secs(15))?;
    places.push(("indexer log".into(), indexer.output()));
    places.push(("watchdog log".into(), wd.output()));
    // The failures are there (the test saw what it checks), under `***`.
    assert!(
        places.iter().any(|(_, t)| t.contains("***")),
        "nothing redacted anywhere"
    );

    let mut found = Vec::new();
    for (place, text) in &places {
        for s in SECRETS {
            let n = text.matches(s).count();
            if n > 0 {
                found.push(format!("{s} x{n} in {place}"));
            }
        }
    }
    println!(
        "checked {} places ({} bytes) for {} secrets: {} found",
        places.len(),
        places.iter().map(|(_, t)| t.len()).sum::<usize>(),
        SECRETS.len(),
        found.len()
    );
    assert!(found.is_empty(), "{found:#?}");
    Ok(())
}
