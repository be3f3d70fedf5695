//! `docs/runbooks/alert-storm.md` on a real Alertmanager holding a storm of one detector's alerts
//! among others: the listing names the detector, a silence hides exactly its alerts (they show as
//! suppressed) and expiring it releases them; the restore runbook's regular-expression silence
//! hides the detectors' alerts and not the stack's; every other `amtool` command of every runbook
//! runs against the same instance and selects what its runbook says; Alertmanager's notification
//! failure counter is where the runbook greps for it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use testkit::alertmanager::Alertmanager;

use crate::drills::{
    all_pipelines, all_runbooks, amtool, curl_grep, eventually, fill, find, has, repo, rows,
    run_ok, runbook,
};

/// Alertmanager's v2 alert with these labels (firing until its resolve timeout).
fn alert(labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "labels": labels, "annotations": { "summary": "drill" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_hides_and_expire_restores_the_alerts() -> Result<()> {
    let am = Alertmanager::spawn().await?;
    let url = am.url();
    let mut alerts: Vec<Value> = (0..12)
        .map(|i| {
            alert(&[
                ("alertname", "TripwireValue"),
                ("detector", "token-huge-transfer"),
                ("severity", "warning"),
                ("series", &format!("holder-{i}")),
            ])
        })
        .collect();
    alerts.push(alert(&[
        ("alertname", "TripwireEvent"),
        ("detector", "treasury-privileged"),
        ("severity", "critical"),
    ]));
    alerts.push(alert(&[
        ("alertname", "TripwireIndexerLagging"),
        ("chain", "devnet"),
        ("stage", "ingest"),
        ("severity", "critical"),
        ("priority", "P1"),
    ]));
    reqwest::Client::new()
        .post(format!("{url}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await?
        .error_for_status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while am.alerts().await?.len() < 14 {
        if Instant::now() > deadline {
            bail!("Alertmanager holds {:#?}", am.alerts().await?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let storm = runbook("alert-storm.md")?;
    let detector = "token-huge-transfer";
    let values = [
        ("<detector>", detector),
        ("<ticket>", "INC-42"),
        ("<your-name>", "drill-operator"),
    ];
    let mut ran: Vec<(String, usize)> = Vec::new();

    // Look: the extended listing names the detector of every alert.
    let c = find(&storm, "amtool", "alert query -o extended", |c| {
        has(c, &["alert", "query", "-o", "extended"])
    })?;
    let out = amtool(c, &url, &values)?;
    assert_eq!(
        out.matches(&format!("detector=\"{detector}\"")).count(),
        12,
        "{out}"
    );
    ran.push((c.file.clone(), c.line));

    // Silence the noisy detector.
    let add = find(&storm, "amtool", "silence add", |c| {
        has(c, &["silence", "add"])
    })?;
    let id = amtool(add, &url, &values)?.trim().to_owned();
    ran.push((add.file.clone(), add.line));
    let silence = am
        .silences()
        .await?
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .with_context(|| {
            format!("`silence add` printed {id:?}, which Alertmanager does not hold")
        })?;
    assert_eq!(silence["status"]["state"], "active", "{silence}");
    assert_eq!(silence["createdBy"], "drill-operator", "{silence}");
    assert!(
        silence["comment"].as_str().unwrap_or("").contains("INC-42"),
        "{silence}"
    );
    assert_eq!(
        silence["matchers"],
        json!([{ "name": "detector", "value": detector, "isRegex": false, "isEqual": true }]),
        "{silence}"
    );

    // The silence is listed, with its id alone under -q.
    let q = find(&storm, "amtool", "silence query", |c| {
        has(c, &["silence", "query"]) && c.args.len() == 3
    })?;
    let out = amtool(q, &url, &values)?;
    assert!(out.contains(&id) && out.contains("INC-42"), "{out}");
    let qq = find(&storm, "amtool", "silence query -q", |c| {
        has(c, &["silence", "query", "-q"])
    })?;
    assert_eq!(amtool(qq, &url, &values)?.trim(), id);
    ran.extend([(q.file.clone(), q.line), (qq.file.clone(), qq.line)]);

    // The detector's alerts no longer notify; they show as suppressed; the others stay.
    let aq = find(&storm, "amtool", "alert query detector=<detector>", |c| {
        has(c, &["alert", "query", "detector=<detector>"]) && !has(c, &["--silenced"])
    })?;
    eventually(
        "the silence to hide the alerts",
        Duration::from_secs(10),
        || Ok((rows(&amtool(aq, &url, &values)?, "TripwireValue") == 0).then_some(())),
    )
    .await?;
    let silenced = find(&storm, "amtool", "alert query --silenced", |c| {
        has(c, &["alert", "query", "--silenced"])
    })?;
    let out = amtool(silenced, &url, &values)?;
    assert_eq!(rows(&out, "TripwireValue"), 12, "{out}");
    assert_eq!(out.matches("suppressed").count(), 12, "{out}");
    let everything = find(&storm, "amtool", "alert query", |c| {
        has(c, &["alert", "query"]) && c.args.len() == 3
    })?;
    let out = amtool(everything, &url, &values)?;
    assert_eq!(rows(&out, "TripwireValue"), 0, "{out}");
    assert_eq!(
        rows(&out, "TripwireIndexerLagging") + rows(&out, "TripwireEvent"),
        2,
        "{out}"
    );
    ran.extend([
        (aq.file.clone(), aq.line),
        (silenced.file.clone(), silenced.line),
        (everything.file.clone(), everything.line),
    ]);

    // Expire: the alerts notify again.
    let expire = find(&storm, "amtool", "silence expire <silence-id>", |c| {
        has(c, &["silence", "expire"])
    })?;
    let mut with_id = values.to_vec();
    with_id.push(("<silence-id>", &id));
    amtool(expire, &url, &with_id)?;
    ran.push((expire.file.clone(), expire.line));
    eventually(
        "the expired silence to release the alerts",
        Duration::from_secs(10),
        || Ok((rows(&amtool(aq, &url, &values)?, "TripwireValue") == 12).then_some(())),
    )
    .await?;
    let state = am
        .silences()
        .await?
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| s["status"]["state"].clone());
    assert_eq!(state, Some(json!("expired")));

    // The restore runbook's regular-expression silence: the detectors' alerts, not the stack's.
    let restore = runbook("restore-postgres-backup.md")?;
    let add2 = find(&restore, "amtool", "silence add", |c| {
        has(c, &["silence", "add"])
    })?;
    let id2 = amtool(add2, &url, &[])?.trim().to_owned();
    ran.push((add2.file.clone(), add2.line));
    eventually(
        "the restore silence to apply",
        Duration::from_secs(10),
        || {
            let out = amtool(everything, &url, &values)?;
            Ok(
                (rows(&out, "TripwireValue") + rows(&out, "TripwireEvent") == 0
                    && rows(&out, "TripwireIndexerLagging") == 1)
                    .then_some(()),
            )
        },
    )
    .await?;
    let mut with_id2 = values.to_vec();
    with_id2.push(("<silence-id>", &id2));
    amtool(expire, &url, &with_id2)?;

    // Every other amtool command of every runbook runs against the real Alertmanager, and the
    // alert queries of the other runbooks select what they say.
    let expectations: BTreeMap<&str, (&[&str], &[&str])> = BTreeMap::from([
        (
            "severity=critical",
            (
                &["TripwireEvent", "TripwireIndexerLagging"][..],
                &["TripwireValue"][..],
            ),
        ),
        (
            "alertname=~TripwireIndexer.*|TripwireSink.*",
            (
                &["TripwireIndexerLagging"][..],
                &["TripwireEvent", "TripwireValue"][..],
            ),
        ),
        (
            "alertname=~TripwireRpc.*",
            (
                &[][..],
                &["TripwireEvent", "TripwireValue", "TripwireIndexerLagging"][..],
            ),
        ),
        (
            "alertname=TripwireAlertStorm",
            (
                &[][..],
                &["TripwireEvent", "TripwireValue", "TripwireIndexerLagging"][..],
            ),
        ),
    ]);
    let all = all_runbooks()?;
    let mut others = 0;
    for c in all.iter().filter(|c| c.program == "amtool") {
        if ran.contains(&(c.file.clone(), c.line)) || has(c, &["expire"]) {
            continue;
        }
        if has(c, &["check-config"]) {
            // The compose file mounts deploy/alertmanager at /etc/alertmanager.
            let args: Vec<String> = fill(c, &[])?
                .into_iter()
                .map(|a| {
                    a.replace(
                        "/etc/alertmanager/",
                        &format!("{}/deploy/alertmanager/", repo().display()),
                    )
                })
                .collect();
            let out = run_ok(c, &args, &[], None)?;
            assert!(out.contains("SUCCESS"), "{}: {out}", c.location());
        } else {
            let out = amtool(c, &url, &values)?;
            if let Some((present, absent)) =
                c.args.last().and_then(|m| expectations.get(m.as_str()))
            {
                for a in *present {
                    assert!(
                        rows(&out, a) > 0,
                        "{}: {a} missing from\n{out}",
                        c.location()
                    );
                }
                for a in *absent {
                    assert_eq!(rows(&out, a), 0, "{}: {a} listed in\n{out}", c.location());
                }
            }
        }
        others += 1;
    }
    assert!(others >= 5, "only {others} other amtool commands");

    // Alertmanager's notification failures counter, as the runbook greps it.
    let mut grepped = 0;
    for p in all_pipelines()? {
        if !p[0]
            .args
            .iter()
            .any(|a| a.contains("localhost:9093/metrics"))
        {
            continue;
        }
        let map = |u: &str| Some(u.replace("http://localhost:9093", &url));
        let Some((out, ok)) = curl_grep(&p, &map)? else {
            continue;
        };
        assert!(
            ok && out.contains("alertmanager_notifications_failed_total{"),
            "{}: {out}",
            p[0].location()
        );
        grepped += 1;
    }
    assert!(grepped >= 1);
    Ok(())
}
