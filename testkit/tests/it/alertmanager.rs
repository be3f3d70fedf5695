//! The Alertmanager harness against the real binary: an alert posted through the API shows up
//! with its labels, and one sent again with `endsAt` in the past is resolved.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::json;
use testkit::alertmanager::Alertmanager;

#[tokio::test]
async fn posted_alert_is_listed_then_resolved() -> Result<()> {
    let am = Alertmanager::spawn().await?;
    let http = reqwest::Client::new();
    let now = rfc3339_from_now(-10);
    let alert = json!([{
        "labels": {"alertname": "TripwireTest", "severity": "warning", "detector": "t1"},
        "annotations": {"summary": "a test alert"},
        "startsAt": now,
        "generatorURL": "http://127.0.0.1/test"
    }]);
    let r = http
        .post(format!("{}/api/v2/alerts", am.url()))
        .json(&alert)
        .send()
        .await?;
    ensure!(r.status().is_success(), "POST alerts: {}", r.status());
    let active = am.active_alerts().await?;
    ensure!(active.len() == 1, "active alerts: {active:?}");
    ensure!(active[0]["labels"]["detector"] == "t1");

    let mut resolved = alert.clone();
    resolved[0]["endsAt"] = json!(rfc3339_from_now(-1));
    http.post(format!("{}/api/v2/alerts", am.url()))
        .json(&resolved)
        .send()
        .await?
        .error_for_status()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if am.active_alerts().await?.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "alert not resolved:\n{}",
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// RFC 3339 UTC time `offset_s` seconds from now.
fn rfc3339_from_now(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s)).to_rfc3339()
}
