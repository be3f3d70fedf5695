//! Drills: the runbooks' commands, taken from `docs/runbooks/` by the parser and run as processes
//! against real services, for the procedures no other test runs: silences with `amtool` on a real
//! Alertmanager; the emergency pause on the real Safe v1.4.1 contracts (the watchdog's proposal,
//! a second owner's `cast wallet sign`, `cast send ... execTransaction`, the unpause, a pause
//! prepared by hand) with the status, metrics and health commands against the running processes;
//! a Postgres backup and restore with `pg_dump` / `pg_restore`; every SQL statement of the
//! runbooks on the real schema; the RPC provider snippets through `check-config` and a running
//! ingest. The `docker compose exec|run` prefix is dropped by the parser, `<placeholders>` and
//! `$VARIABLES` are filled from what the drill set up, and addresses are mapped to the test's
//! services; a runbook command the drill cannot find or fill fails the drill.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use testkit::alertmanager::Alertmanager;
use testkit::anvil::Anvil;
use testkit::kafka::TestKafka;
use testkit::postgres::TestDb;
use testkit::process::Proc;
use testkit::safe::OWNER_KEYS;
use tripwire_deploy::runbook::{self, Command};

fn repo() -> PathBuf {
    tripwire_deploy::repo_root()
}

/// The commands of `docs/runbooks/<file>`.
fn runbook(file: &str) -> Result<Vec<Command>> {
    let name = format!("docs/runbooks/{file}");
    let text = std::fs::read_to_string(repo().join(&name)).with_context(|| name.clone())?;
    runbook::commands(&text, &name)
}

/// Every runbook's commands, file by file.
fn all_runbooks() -> Result<Vec<Command>> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("docs/runbooks"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        out.extend(runbook(&n)?);
    }
    Ok(out)
}

/// Every runbook's pipelines (`curl ... | grep ...` together), file by file.
fn all_pipelines() -> Result<Vec<Vec<Command>>> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("docs/runbooks"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let name = format!("docs/runbooks/{n}");
        out.extend(runbook::pipelines_in(
            &std::fs::read_to_string(repo().join(&name))?,
            &name,
        )?);
    }
    Ok(out)
}

/// The ```toml blocks of a runbook, in order.
fn toml_blocks(file: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(repo().join("docs/runbooks").join(file))?;
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match &mut current {
            None if t.starts_with("```toml") => current = Some(String::new()),
            Some(b) if t.starts_with("```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            Some(b) => {
                b.push_str(t);
                b.push('\n');
            }
            None => {}
        }
    }
    Ok(blocks)
}

fn has(c: &Command, words: &[&str]) -> bool {
    words.iter().all(|w| c.args.iter().any(|a| a == w))
}

/// The first command of `program` that `pred` accepts, or an error saying the runbook lacks it.
fn find<'a>(
    cmds: &'a [Command],
    program: &str,
    what: &str,
    pred: impl Fn(&Command) -> bool,
) -> Result<&'a Command> {
    cmds.iter()
        .find(|c| c.program == program && pred(c))
        .ok_or_else(|| {
            anyhow!(
                "{}: no `{program} {what}` command",
                cmds.first()
                    .map_or("the runbook".into(), |c| c.file.clone())
            )
        })
}

/// The arguments with `<placeholders>` and `$VARIABLES` replaced; anything left unfilled is an
/// error naming the runbook line, so a runbook and its drill cannot drift apart silently.
fn fill(c: &Command, values: &[(&str, &str)]) -> Result<Vec<String>> {
    let mut sorted: Vec<&(&str, &str)> = values.iter().collect();
    // Longest first: `$OWNER_KEY` before a shorter `$OWNER`.
    sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let left = regex::Regex::new(r"<[A-Za-z][A-Za-z0-9_.:-]*>|\$[A-Z_][A-Z0-9_]*")?;
    // A value equal to its name keeps the variable as written (to compare with printed commands).
    let kept: Vec<&str> = values
        .iter()
        .filter(|(k, v)| k == v)
        .map(|(k, _)| *k)
        .collect();
    c.args
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in &sorted {
                a = a.replace(k, v);
            }
            match left.find_iter(&a).find(|m| !kept.contains(&m.as_str())) {
                Some(m) => bail!(
                    "{}: the drill has no value for `{}` in `{}`",
                    c.location(),
                    m.as_str(),
                    c.display()
                ),
                None => Ok(a),
            }
        })
        .collect()
}

/// The executable behind a runbook program.
fn executable(program: &str) -> Result<PathBuf> {
    Ok(match program {
        "tripwire-indexer" | "tripwire-watchdog" | "tripwire-replay" | "tripwire-devnet" => {
            testkit::workspace_bin(program)?
        }
        "amtool" => PathBuf::from("/usr/bin/amtool"),
        "cast" => repo().join("tools/node_modules/.bin/cast"),
        other => PathBuf::from(other),
    })
}

#[derive(Debug)]
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
    /// stdout as written (a dump is binary).
    raw: Vec<u8>,
}

/// Runs `program args` to completion, with `stdin` fed to it when given.
fn run(
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<Output> {
    let exe = executable(program)?;
    let mut child = Process::new(&exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let out = child.wait_with_output()?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw: out.stdout,
    })
}

/// Runs a runbook command with filled arguments; it must succeed. Returns its stdout.
fn run_ok(
    c: &Command,
    args: &[String],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<String> {
    Ok(run_checked(c, args, env, stdin)?.stdout)
}

fn run_checked(
    c: &Command,
    args: &[String],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<Output> {
    let out = run(&c.program, args, env, stdin)?;
    if !out.ok {
        bail!(
            "{}: `{} {}` failed:\n{}{}",
            c.location(),
            c.program,
            args.join(" "),
            out.stdout,
            out.stderr
        );
    }
    Ok(out)
}

async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        // Errors count as "not yet" until the deadline: a process may still be starting.
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) if Instant::now() > deadline => bail!("timed out waiting for {what}"),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("timed out waiting for {what}")))
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A fresh directory for a drill's files.
fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tripwire-drill-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// ------------------------------------------------------------------------------------------------
// Alert storm

/// Alertmanager's v2 alert with these labels (firing until its resolve timeout).
fn alert(labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "labels": labels, "annotations": { "summary": "drill" } })
}

/// The amtool command's arguments with its `--alertmanager.url` pointed at `url`.
fn amtool_args(c: &Command, url: &str, values: &[(&str, &str)]) -> Result<Vec<String>> {
    let mut args = fill(c, values)?;
    let mut pointed = false;
    for a in &mut args {
        if a.starts_with("--alertmanager.url=") {
            *a = format!("--alertmanager.url={url}");
            pointed = true;
        }
    }
    if !pointed {
        bail!(
            "{}: amtool without --alertmanager.url: `{}`",
            c.location(),
            c.display()
        );
    }
    Ok(args)
}

fn amtool(c: &Command, url: &str, values: &[(&str, &str)]) -> Result<String> {
    run_ok(c, &amtool_args(c, url, values)?, &[], None)
}

/// Lines of an `amtool alert query` listing that name `alertname`.
fn rows(listing: &str, alertname: &str) -> usize {
    listing
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(alertname))
        .count()
}

/// Runs a runbook pipeline that starts with curl: curl with its URL mapped by `map`, then its
/// output through the grep that follows, if any. `None` when it is no curl pipeline or the URL
/// has no mapping; otherwise the output and whether grep selected anything.
fn curl_grep(
    pipeline: &[Command],
    map: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, bool)>> {
    let Some(c) = pipeline.first().filter(|c| c.program == "curl") else {
        return Ok(None);
    };
    let mut args = c.args.clone();
    let Some(pos) = args.iter().position(|a| a.starts_with("http://")) else {
        bail!("{}: curl without an http:// URL", c.location());
    };
    let Some(url) = map(&args[pos]) else {
        return Ok(None);
    };
    args[pos] = url;
    let body = run_ok(c, &args, &[], None)?;
    match pipeline.get(1).filter(|g| g.program == "grep") {
        Some(g) => {
            let out = run("grep", &g.args, &[], Some(body.as_bytes()))?;
            Ok(Some((out.stdout, out.ok)))
        }
        None => Ok(Some((body, true))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_storm_silence_hides_and_expire_restores_the_alerts() -> Result<()> {
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

// ------------------------------------------------------------------------------------------------
// Emergency pause

/// `field:   value` of `tripwire-watchdog proposals show`.
fn shown(out: &str, field: &str) -> Result<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(field).map(|v| v.trim().to_owned()))
        .with_context(|| format!("`proposals show` has no `{field}` line:\n{out}"))
}

/// The shell command `proposals show` printed that starts with `prefix`, parsed.
fn printed_command(out: &str, prefix: &str) -> Result<Command> {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with(prefix))
        .with_context(|| format!("`proposals show` prints no `{prefix}`:\n{out}"))?;
    let mut text = String::new();
    for l in &lines[start..] {
        text.push_str(l.trim());
        text.push('\n');
        if !l.trim_end().ends_with('\\') {
            break;
        }
    }
    let mut cmds = runbook::commands(&format!("```sh\n{text}```\n"), "proposals show")?;
    cmds.pop().context("parsed nothing")
}

/// Placeholder or variable -> value.
type Values = Vec<(&'static str, String)>;

fn with(base: &Values, extra: &[(&'static str, String)]) -> Values {
    let mut all = base.clone();
    all.extend(extra.iter().cloned());
    all
}

fn args_of(c: &Command, values: &Values) -> Result<Vec<String>> {
    let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fill(c, &pairs)
}

/// `0x` + signatures (65 bytes each, without their `0x`) in ascending order of the signer, as the
/// Safe wants them (or descending, to see it refuse them).
fn packed(mut sigs: Vec<(String, String)>, descending: bool) -> String {
    sigs.sort_by_key(|(addr, _)| addr.to_lowercase());
    if descending {
        sigs.reverse();
    }
    let mut out = String::from("0x");
    for (_, s) in sigs {
        out.push_str(s.trim().trim_start_matches("0x"));
    }
    out
}

/// Hex digits of one 65-byte signature.
const SIGNATURE_HEX: usize = 130;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emergency_pause_second_owner_signs_executes_and_the_admin_unpauses() -> Result<()> {
    let dir = scratch("pause")?;
    let anvil = Anvil::spawn().await?;
    let rpc = anvil.url();
    let db = TestDb::create().await?;
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("tripwire-drill");
    kafka.create_topic(&topic, 1).await?;
    let am = Alertmanager::spawn().await?;

    // The demo deployment: the treasury, the Safe v1.4.1 contracts, a 2-of-3 Safe (owners:
    // anvil accounts 1-3) holding the treasury's pauser role.
    let deployed = dir.join("contracts.json");
    let out = run(
        "tripwire-devnet",
        &[
            "deploy".into(),
            "--rpc".into(),
            rpc.clone(),
            "--out".into(),
            deployed.display().to_string(),
        ],
        &[],
        None,
    )?;
    assert!(
        out.ok,
        "tripwire-devnet deploy: {}{}",
        out.stdout, out.stderr
    );
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&deployed)?)?;
    let field = |k: &str| {
        d[k].as_str()
            .map(str::to_owned)
            .with_context(|| format!("{k} in {d}"))
    };
    let (treasury, safe, multisend) = (field("treasury")?, field("safe")?, field("multisend")?);
    let accounts = anvil.accounts().to_vec();
    let owners: Vec<String> = accounts[1..4].iter().map(|a| format!("{a:#x}")).collect();
    let pause = runbook("emergency-pause.md")?;
    let address_cmd = find(&pause, "cast", "wallet address", |c| {
        has(c, &["wallet", "address"])
    })?;
    let owner_address = |key: &str| -> Result<String> {
        Ok(run_ok(
            address_cmd,
            &fill(address_cmd, &[("$OWNER_KEY", key)])?,
            &[],
            None,
        )?
        .trim()
        .to_owned())
    };
    // The contracts' admin (the ops team, who may unpause) is not a Safe owner: the account of
    // testkit's third key, funded and granted the admin role; the detector expects it as an actor.
    let admin_key = OWNER_KEYS[2];
    let admin = owner_address(admin_key)?;
    if !owners.iter().any(|o| o.eq_ignore_ascii_case(&admin)) {
        anvil
            .rpc("anvil_setBalance", json!([admin, "0x56bc75e2d63100000"]))
            .await?;
    }
    anvil
        .send_and_mine(
            treasury.parse()?,
            testkit::abi::call(
                "grantRole(bytes32,address)",
                &[
                    testkit::abi::bytes32(testkit::B256::ZERO),
                    testkit::abi::address(admin.parse()?),
                ],
            ),
        )
        .await?;

    let key_file = dir.join("proposer.key");
    std::fs::write(&key_file, OWNER_KEYS[0])?;
    let config = dir.join("tripwire.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[postgres]
url = "{pg}"
max_connections = 4
[kafka]
brokers = "{brokers}"
topic = "{topic}"
[server]
listen = "127.0.0.1:0"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["{rpc}"]
poll_interval_ms = 100
range_blocks = 200
rpc_timeout_s = 10
[[contracts]]
name = "treasury"
chain = "devnet"
addresses = ["{treasury}"]
abi = "{abi}"

[watchdog]
consumer = "tripwire-watchdog"
listen = "127.0.0.1:0"
checkpoint_interval_s = 1
[watchdog.alertmanager]
urls = ["{am}"]
resend_interval_s = 5
[[watchdog.detectors]]
name = "treasury-privileged"
kind = "event"
contract = "treasury"
severity = "critical"
actions = ["pause"]
allowed_actors = ["{deployer:#x}", "{admin}", "{safe}"]
[watchdog.safe]
chain = "devnet"
address = "{safe}"
proposer_key_file = "{key}"
multisend = "{multisend}"
[[watchdog.safe.targets]]
contract = "treasury"
"#,
            pg = db.url(),
            brokers = kafka.brokers(),
            abi = testkit::contracts::artifact_path("Treasury").display(),
            am = am.url(),
            deployer = accounts[0],
            key = key_file.display(),
        ),
    )?;
    let cfg = config.display().to_string();
    // What the containers set: the commands of the runbooks pass no --config.
    let env = [("TRIPWIRE_CONFIG", cfg.as_str())];

    // The ingest and the sink as separate processes, as the compose file runs them, so that each
    // runbook command reaches the process its port names.
    let ingest = Proc::spawn(
        &executable("tripwire-indexer")?,
        &config,
        "ingest",
        &dir,
        "info",
    )?;
    let ingest_addr = ingest.http_addr().await?;
    let sink = Proc::spawn(
        &executable("tripwire-indexer")?,
        &config,
        "sink",
        &dir,
        "info",
    )?;
    let sink_addr = sink.http_addr().await?;
    let watchdog = Proc::spawn(
        &executable("tripwire-watchdog")?,
        &config,
        "run",
        &dir,
        "info",
    )?;
    let watchdog_addr = watchdog.http_addr().await?;
    eventually(
        "the watchdog's Safe checks",
        Duration::from_secs(30),
        || {
            Ok(watchdog
                .output()
                .contains("Safe pause proposals ready")
                .then_some(()))
        },
    )
    .await
    .with_context(|| watchdog.output())?;

    // The planted attack: the pauser role granted to an unknown account.
    let out = run(
        "tripwire-devnet",
        &[
            "attack".into(),
            "--rpc".into(),
            rpc.clone(),
            "--contracts".into(),
            deployed.display().to_string(),
        ],
        &[],
        None,
    )?;
    assert!(
        out.ok,
        "tripwire-devnet attack: {}{}",
        out.stdout, out.stderr
    );
    let id: i64 = {
        let pool = db.pool().clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let row: Option<i64> =
                sqlx::query_scalar("SELECT id FROM safe_proposals ORDER BY id LIMIT 1")
                    .fetch_optional(&pool)
                    .await?;
            if let Some(id) = row {
                break id;
            }
            if Instant::now() > deadline {
                bail!("no proposal; watchdog log:\n{}", watchdog.output());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };

    let id_s = id.to_string();

    // Checks: the critical alert in Alertmanager, the proposal listed and shown.
    let crit = find(&pause, "amtool", "alert query severity=critical", |c| {
        has(c, &["alert", "query", "severity=critical"])
    })?;
    let am_url = am.url();
    eventually("the attack's alert", Duration::from_secs(30), || {
        Ok(amtool(crit, &am_url, &[])?
            .contains("TripwireEvent")
            .then_some(()))
    })
    .await?;
    let list = find(&pause, "tripwire-watchdog", "proposals list", |c| {
        has(c, &["proposals", "list"])
    })?;
    let out = run_ok(list, &fill(list, &[])?, &env, None)?;
    assert!(out.contains("recorded"), "{out}");
    let show = find(&pause, "tripwire-watchdog", "proposals show <id>", |c| {
        has(c, &["proposals", "show"])
    })?;
    let shown_out = run_ok(show, &fill(show, &[("<id>", &id_s)])?, &env, None)?;
    let hash = shown(&shown_out, "safeTxHash:")?;
    let nonce = shown(&shown_out, "nonce:")?;
    let data = shown(&shown_out, "data:")?;
    // "to <addr> value <v> operation <op> (call)"
    let tx: Vec<String> = shown(&shown_out, "transaction:")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let (to, value, operation) = (tx[1].clone(), tx[3].clone(), tx[5].clone());
    assert!(
        to.eq_ignore_ascii_case(&treasury),
        "one target: a direct call to it ({to})"
    );
    let printed_send = printed_command(&shown_out, "cast send")?;
    let printed_sign = printed_command(&shown_out, "cast wallet sign")?;
    let proposer_sig = printed_send
        .args
        .iter()
        .find(|a| a.len() == 2 + SIGNATURE_HEX && a.starts_with("0x"))
        .cloned()
        .context("the printed cast send carries no signature")?;

    // The RPC URL as `show` prints it (the config's, normalised): the node of this drill.
    let printed_rpc = printed_send
        .args
        .iter()
        .skip_while(|a| *a != "--rpc-url")
        .nth(1)
        .cloned()
        .context("the printed cast send has no --rpc-url")?;
    assert_eq!(printed_rpc.trim_end_matches('/'), rpc);
    let proposal: Values = vec![
        ("<safe>", safe.clone()),
        ("<rpc>", printed_rpc),
        ("<to>", to.clone()),
        ("<value>", value.clone()),
        ("<data>", data.clone()),
        ("<operation>", operation.clone()),
        ("<nonce>", nonce.clone()),
        ("<safeTxHash>", hash.clone()),
        ("<target>", treasury.clone()),
    ];
    let cast_call = |needle: &str| {
        find(&pause, "cast", needle, |c| {
            c.args.first().map(String::as_str) == Some("call")
                && c.args.iter().any(|a| a.starts_with(needle))
        })
    };
    let send = find(&pause, "cast", "send <safe> 'execTransaction(...)'", |c| {
        c.args.first().map(String::as_str) == Some("send")
            && c.args.iter().any(|a| a.starts_with("execTransaction("))
    })?;
    let sign = find(&pause, "cast", "wallet sign --no-hash", |c| {
        has(c, &["wallet", "sign", "--no-hash"])
    })?;
    let simulate = cast_call("execTransaction(")?;
    let hash_cmd = cast_call("getTransactionHash(")?;
    let nonce_cmd = cast_call("nonce()")?;
    let paused_cmd = cast_call("paused()")?;
    let cast = |c: &Command, values: &Values| -> Result<String> {
        Ok(run_ok(c, &args_of(c, values)?, &[], None)?
            .trim()
            .to_owned())
    };
    let owner_sign = |key: &str, hash: &str| -> Result<String> {
        let s = cast(
            sign,
            &vec![
                ("$OWNER_KEY", key.to_owned()),
                ("<safeTxHash>", hash.to_owned()),
            ],
        )?;
        assert_eq!(s.len(), 2 + SIGNATURE_HEX, "{s}");
        Ok(s)
    };
    let paused = || cast(paused_cmd, &proposal);

    // The runbook's templates are the commands `show` prints: the same arguments once filled
    // with the shown values (the signature argument: the proposer's alone).
    let keep_key = ("$OWNER_KEY", "$OWNER_KEY".to_owned());
    let lower =
        |v: Vec<String>| -> Vec<String> { v.into_iter().map(|a| a.to_lowercase()).collect() };
    assert_eq!(
        lower(args_of(
            send,
            &with(
                &proposal,
                &[("$SIGS", proposer_sig.clone()), keep_key.clone()]
            )
        )?),
        lower(printed_send.args.clone()),
        "{} differs from the command `proposals show` prints",
        send.location()
    );
    assert_eq!(
        lower(args_of(sign, &with(&proposal, &[keep_key]))?),
        lower(printed_sign.args.clone()),
        "{} differs from the command `proposals show` prints",
        sign.location()
    );

    // Independent checks of what is signed.
    let out = cast(cast_call("getOwners()")?, &proposal)?;
    for o in &owners {
        assert!(out.to_lowercase().contains(o), "{o} not among {out}");
    }
    assert_eq!(cast(cast_call("getThreshold()")?, &proposal)?, "2");
    assert_eq!(cast(nonce_cmd, &proposal)?, nonce);
    let sig_cmd = find(&pause, "cast", "sig 'pause()'", |c| {
        has(c, &["sig", "pause()"])
    })?;
    assert_eq!(cast(sig_cmd, &proposal)?, data);
    assert_eq!(cast(hash_cmd, &proposal)?, hash);

    // The second owner signs; the signatures go in ascending order of their signers.
    let proposer = shown_out
        .lines()
        .skip_while(|l| !l.contains("signatures gathered"))
        .nth(1)
        .map(|l| l.trim().to_owned())
        .context("no signer listed")?;
    assert!(proposer.eq_ignore_ascii_case(&owner_address(OWNER_KEYS[0])?));
    let signed = vec![
        (proposer.clone(), proposer_sig.clone()),
        (
            owner_address(OWNER_KEYS[1])?,
            owner_sign(OWNER_KEYS[1], &hash)?,
        ),
    ];
    let right = packed(signed.clone(), false);
    let wrong = packed(signed, true);

    // Simulation: refused in the wrong order (GS026, as the runbook says), true in the right one.
    let out = run(
        &simulate.program,
        &args_of(simulate, &with(&proposal, &[("$SIGS", wrong)]))?,
        &[],
        None,
    )?;
    assert!(
        !out.ok && format!("{}{}", out.stdout, out.stderr).contains("GS026"),
        "{out:?}"
    );
    assert_eq!(
        cast(simulate, &with(&proposal, &[("$SIGS", right.clone())]))?,
        "true"
    );

    assert_eq!(paused()?, "false");
    cast(
        send,
        &with(
            &proposal,
            &[("$SIGS", right), ("$OWNER_KEY", OWNER_KEYS[1].to_owned())],
        ),
    )?;
    assert_eq!(
        paused()?,
        "true",
        "the runbook's execTransaction did not pause the treasury"
    );
    let next = nonce.parse::<u64>()? + 1;
    assert_eq!(cast(nonce_cmd, &proposal)?, next.to_string());

    // Roll back: the admin unpauses.
    let unpause = find(&pause, "cast", "send <target> 'unpause()'", |c| {
        has(c, &["send", "unpause()"])
    })?;
    cast(
        unpause,
        &with(&proposal, &[("$ADMIN_KEY", admin_key.to_owned())]),
    )?;
    assert_eq!(paused()?, "false", "the runbook's unpause did not unpause");

    // Without a proposal: the call data by hand, the Safe's hash at its nonce, two owners (the
    // proposer's key this time too: any two owners will do).
    let calldata = find(&pause, "cast", "calldata 'pause()'", |c| {
        has(c, &["calldata", "pause()"])
    })?;
    let by_hand = cast(calldata, &proposal)?;
    assert_eq!(by_hand, data);
    let base: Values = vec![
        ("<safe>", safe.clone()),
        ("<rpc>", rpc.clone()),
        ("<to>", treasury.clone()),
        ("<value>", "0".to_owned()),
        ("<data>", by_hand),
        ("<operation>", "0".to_owned()),
        ("<nonce>", cast(nonce_cmd, &proposal)?),
    ];
    let hash2 = cast(hash_cmd, &base)?;
    let sigs2 = packed(
        vec![
            (
                owner_address(OWNER_KEYS[1])?,
                owner_sign(OWNER_KEYS[1], &hash2)?,
            ),
            (
                owner_address(OWNER_KEYS[0])?,
                owner_sign(OWNER_KEYS[0], &hash2)?,
            ),
        ],
        false,
    );
    assert_eq!(
        cast(simulate, &with(&base, &[("$SIGS", sigs2.clone())]))?,
        "true"
    );
    cast(
        send,
        &with(
            &base,
            &[("$SIGS", sigs2), ("$OWNER_KEY", OWNER_KEYS[0].to_owned())],
        ),
    )?;
    assert_eq!(
        paused()?,
        "true",
        "the pause prepared by hand did not pause"
    );

    // The status, metrics and health commands of every runbook, against the running processes
    // (ingest, sink, watchdog, Alertmanager).
    let mut statuses = 0;
    for c in all_runbooks()?
        .iter()
        .filter(|c| c.program == "tripwire-indexer" && has(c, &["status"]))
    {
        statuses += 1;
        let out = run_ok(c, &fill(c, &[])?, &env, None)?;
        if has(c, &["--json"]) {
            let rows: Value = serde_json::from_str(&out)?;
            assert_eq!(rows[0]["chain"], "devnet", "{out}");
            assert!(
                rows[0]["providers"][0]["in_rotation"].as_bool() == Some(true),
                "{out}"
            );
        } else {
            assert!(
                out.contains("devnet") && out.contains("in rotation"),
                "{out}"
            );
        }
    }
    assert!(statuses >= 4, "only {statuses} status commands");
    let map = |u: &str| -> Option<String> {
        let rest = u.strip_prefix("http://")?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let base = match hostport {
            "127.0.0.1:9464" => ingest_addr.clone(),
            "127.0.0.1:9465" => sink_addr.clone(),
            "127.0.0.1:9466" => watchdog_addr.clone(),
            "alertmanager:9093" | "localhost:9093" => {
                am_url.trim_start_matches("http://").to_string()
            }
            _ => return None,
        };
        Some(format!("http://{base}/{path}"))
    };
    // Counters that only exist once something failed: their greps may select nothing here.
    let error_only = ["^tripwire_watchdog_delivery_errors_total"];
    let mut probed = 0;
    for p in all_pipelines()? {
        let Some((out, matched)) = curl_grep(&p, &map)? else {
            continue;
        };
        probed += 1;
        let c = &p[0];
        let grep = p.get(1).filter(|g| g.program == "grep");
        if c.args.iter().any(|a| a.ends_with("/health")) {
            assert!(out.contains("\"status\""), "{}: {out}", c.location());
        } else if let Some(g) = grep {
            if !g.args.iter().any(|a| error_only.contains(&a.as_str())) {
                assert!(
                    matched && !out.trim().is_empty(),
                    "{}: `{}` selects nothing",
                    c.location(),
                    g.display()
                );
            }
        }
    }
    assert!(probed >= 10, "only {probed} curl commands probed");
    drop(watchdog);
    drop(sink);
    drop(ingest);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Postgres: backup and restore, and the runbooks' SQL

/// A minimal configuration whose only use is `tripwire-indexer migrate` on `db`.
fn migrate(db: &TestDb, dir: &Path) -> Result<PathBuf> {
    let config = dir.join("tripwire.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[postgres]
url = "{}"
[kafka]
brokers = "127.0.0.1:9"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["http://127.0.0.1:9"]
[[contracts]]
name = "token"
chain = "devnet"
addresses = ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]
events = ["event Transfer(address indexed from, address indexed to, uint256 value)"]
"#,
            db.url()
        ),
    )?;
    let out = run(
        "tripwire-indexer",
        &["migrate".into()],
        &[("TRIPWIRE_CONFIG", config.to_str().context("path")?)],
        None,
    )?;
    if !out.ok {
        bail!("tripwire-indexer migrate: {}{}", out.stdout, out.stderr);
    }
    Ok(config)
}

/// The runbook's Postgres command pointed at `db`: `-U` the test server's user, `-d` the test
/// database (the host and port come from the environment, as a socket would in the container).
fn pg_args(c: &Command, db: &TestDb) -> Result<Vec<String>> {
    let mut args = fill(c, &[])?;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-U" => args[i + 1] = "postgres".into(),
            "-d" => args[i + 1] = db.name().into(),
            _ => {}
        }
        i += 1;
    }
    Ok(args)
}

fn pg_env(db: &TestDb) -> Vec<(&'static str, String)> {
    let addr = db.server_addr();
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "5432"));
    vec![("PGHOST", host.to_owned()), ("PGPORT", port.to_owned())]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A digest per table of what a restore must bring back.
async fn snapshot(db: &TestDb) -> Result<BTreeMap<&'static str, String>> {
    let mut out = BTreeMap::new();
    for (table, sql) in [
        ("logs", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(l::text, ',' ORDER BY chain_id, block_number, log_index)), '') FROM logs l"),
        ("ingest_cursors", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(c::text, ',' ORDER BY chain_id)), '') FROM ingest_cursors c"),
        ("sink_cursors", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(c::text, ',' ORDER BY chain_id)), '') FROM sink_cursors c"),
        ("sink_offsets", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(o::text, ',' ORDER BY consumer, topic, partition)), '') FROM sink_offsets o"),
        ("cursor_resets", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY id)), '') FROM cursor_resets r"),
        ("indexer_state", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(s::text, ',' ORDER BY chain_id)), '') FROM indexer_state s"),
    ] {
        let v: String = sqlx::query_scalar(sql).fetch_one(db.pool()).await?;
        out.insert(table, v);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_a_dump_brings_back_the_rows_present_at_dump_time() -> Result<()> {
    let dir = scratch("restore")?;
    let db = TestDb::create().await?;
    migrate(&db, &dir)?;
    for sql in [
        "INSERT INTO chains (chain_id, name) VALUES (31337, 'devnet')",
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, address, data, contract, event_name, params)
         SELECT 31337, n, decode(lpad(to_hex(n), 64, '0'), 'hex'), to_timestamp(1700000000 + n),
                decode(lpad(to_hex(n + 100000), 64, '0'), 'hex'), 0, 0, decode(repeat('ab', 20), 'hex'),
                '\\x'::bytea, 'token', 'Transfer', jsonb_build_object('value', n::text)
         FROM generate_series(1, 50) n",
        "INSERT INTO ingest_cursors (chain_id, block_number, block_hash, recent, head_block) VALUES (31337, 50, decode(lpad(to_hex(50), 64, '0'), 'hex'), '[]', 60)",
        "INSERT INTO sink_cursors (chain_id, block_number, block_hash) VALUES (31337, 50, decode(lpad(to_hex(50), 64, '0'), 'hex'))",
        "INSERT INTO sink_offsets (consumer, topic, partition, next_offset) VALUES ('tripwire-sink', 'tripwire.devnet.events', 0, 101)",
        "INSERT INTO cursor_resets (chain_id, old_block, new_block, new_hash, requested_by) VALUES (31337, 40, 30, '\\x00'::bytea, 'drill')",
    ] {
        sqlx::query(sql).execute(db.pool()).await?;
    }
    let at_dump = snapshot(&db).await?;
    assert!(at_dump["logs"].starts_with("50:"), "{at_dump:?}");

    let cmds = runbook("restore-postgres-backup.md")?;
    let env = pg_env(&db);
    let env = env_refs(&env);

    // The backup, written where the runbook redirects it, and its listing.
    let dump = find(&cmds, "pg_dump", "-Fc", |c| has(c, &["-Fc"]))?;
    let backup_bytes = run_checked(dump, &pg_args(dump, &db)?, &env, None)?.raw;
    assert!(
        backup_bytes.starts_with(b"PGDMP"),
        "-Fc writes the custom format"
    );
    let name = "docs/runbooks/restore-postgres-backup.md";
    let listing = runbook::pipelines_in(&std::fs::read_to_string(repo().join(name))?, name)?
        .into_iter()
        .find(|p| p[0].program == "pg_restore" && has(&p[0], &["--list"]))
        .context("restore-postgres-backup.md: no `pg_restore --list | grep`")?;
    let (list, grep) = (&listing[0], listing.get(1).context("the listing's grep")?);
    let listed = run_ok(list, &pg_args(list, &db)?, &env, Some(&backup_bytes))?;
    let out = run("grep", &grep.args, &[], Some(listed.as_bytes()))?;
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);

    // Damage after the dump: rows lost, a row the dump lacks, a cursor moved, an audit truncated.
    for sql in [
        "DELETE FROM logs WHERE block_number > 25",
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, address, data)
         VALUES (31337, 99, decode(repeat('99', 32), 'hex'), now(), decode(repeat('98', 32), 'hex'), 0, 0, decode(repeat('ab', 20), 'hex'), '\\x'::bytea)",
        "UPDATE ingest_cursors SET block_number = 999",
        "TRUNCATE cursor_resets",
    ] {
        sqlx::query(sql).execute(db.pool()).await?;
    }
    let damaged = snapshot(&db).await?;
    assert_ne!(damaged, at_dump);

    // Step 2, the rollback's dump (the second pg_dump of the runbook), into its own file.
    let keep = cmds
        .iter()
        .filter(|c| c.program == "pg_dump")
        .nth(1)
        .context("restore-postgres-backup.md: no second pg_dump (the copy before restoring)")?;
    let before_bytes = run_checked(keep, &pg_args(keep, &db)?, &env, None)?.raw;

    // Step 3: restore, from stdin as the runbook redirects it.
    let restore = find(&cmds, "pg_restore", "--clean --if-exists", |c| {
        has(c, &["--clean", "--if-exists"])
    })?;
    let restore_args = pg_args(restore, &db)?;
    run_ok(restore, &restore_args, &env, Some(&backup_bytes))?;
    assert_eq!(
        snapshot(&db).await?,
        at_dump,
        "the rows of the dump are back, the later ones gone"
    );

    // Without --clean the same restore fails on the existing objects and changes nothing.
    let no_clean: Vec<String> = restore_args
        .iter()
        .filter(|a| *a != "--clean" && *a != "--if-exists")
        .cloned()
        .collect();
    let out = run("pg_restore", &no_clean, &env, Some(&backup_bytes))?;
    assert!(!out.ok && out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(snapshot(&db).await?, at_dump);

    // Into an empty database (the "create it empty" case): --if-exists keeps the drops of missing
    // objects from failing the single transaction.
    let empty = TestDb::create().await?;
    let empty_env = pg_env(&empty);
    let empty_env = env_refs(&empty_env);
    let into_empty = pg_args(restore, &empty)?;
    let no_if_exists: Vec<String> = into_empty
        .iter()
        .filter(|a| *a != "--if-exists")
        .cloned()
        .collect();
    let out = run("pg_restore", &no_if_exists, &empty_env, Some(&backup_bytes))?;
    assert!(!out.ok, "without --if-exists the drops fail: {out:?}");
    run_ok(restore, &into_empty, &empty_env, Some(&backup_bytes))?;
    assert_eq!(snapshot(&empty).await?, at_dump);

    // Roll back: the copy of step 2, restored the same way, is the damaged state again.
    let rollback = cmds
        .iter()
        .filter(|c| c.program == "pg_restore" && has(c, &["--clean", "--if-exists"]))
        .nth(1)
        .context("restore-postgres-backup.md: no second pg_restore (the rollback)")?;
    run_ok(
        rollback,
        &pg_args(rollback, &db)?,
        &env,
        Some(&before_bytes),
    )?;
    assert_eq!(snapshot(&db).await?, damaged);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_sql_runs_against_the_schema() -> Result<()> {
    let dir = scratch("sql")?;
    let db = TestDb::create().await?;
    let config = migrate(&db, &dir)?;
    sqlx::query("INSERT INTO chains (chain_id, name) VALUES (31337, 'devnet')")
        .execute(db.pool())
        .await?;
    let env = pg_env(&db);
    let env = env_refs(&env);
    let mut statements = 0;
    for c in all_runbooks()?.iter().filter(|c| c.program == "psql") {
        let mut args = pg_args(c, &db)?;
        // Stop at the first error, and say so in the exit status.
        args.extend(["-v".into(), "ON_ERROR_STOP=1".into()]);
        let out = run("psql", &args, &env, None)?;
        assert!(
            out.ok,
            "{}: `{}` fails on the schema:\n{}",
            c.location(),
            c.display(),
            out.stderr
        );
        assert!(out.stderr.is_empty(), "{}: {}", c.location(), out.stderr);
        statements += 1;
    }
    assert!(statements >= 10, "only {statements} psql commands");

    // The runbooks' log filters select the error lines of the JSON logs the containers write.
    let broken = dir.join("broken.toml");
    let text =
        std::fs::read_to_string(&config)?.replace(db.url(), "postgres://postgres@127.0.0.1:9/none");
    std::fs::write(&broken, text)?;
    let out = run(
        "tripwire-indexer",
        &["status".into()],
        &[
            ("TRIPWIRE_CONFIG", broken.to_str().context("path")?),
            ("TRIPWIRE_LOG_FORMAT", "json"),
        ],
        None,
    )?;
    assert!(!out.ok);
    let logs = out.stderr;
    let mut filters = 0;
    for g in all_runbooks()?
        .iter()
        .filter(|c| c.program == "grep" && c.args.iter().any(|a| a.contains("\"level\"")))
    {
        let out = run("grep", &g.args, &[], Some(logs.as_bytes()))?;
        assert!(
            out.ok && out.stdout.contains("\"level\":\"ERROR\""),
            "{}: `{}` misses\n{logs}",
            g.location(),
            g.display()
        );
        filters += 1;
    }
    assert!(filters >= 2, "only {filters} log filters");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// RPC providers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_provider_validates_and_reports_up() -> Result<()> {
    let dir = scratch("providers")?;
    let anvil = Anvil::spawn().await?;
    let db = TestDb::create().await?;
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("tripwire-drill");
    kafka.create_topic(&topic, 1).await?;
    let primary = anvil.url();
    // The same node under another host name: another provider to the pool.
    let backup = primary.replace("127.0.0.1", "localhost");
    let blocks = toml_blocks("rpc-providers.md")?;
    let urls = blocks
        .iter()
        .find(|b| b.contains("rpc_urls"))
        .context("rpc-providers.md: no rpc_urls snippet")?;
    let table = blocks
        .iter()
        .find(|b| b.contains("[[chains.providers]]"))
        .context("rpc-providers.md: no [[chains.providers]] snippet")?;
    let ranges = toml_blocks("lagging-indexer.md")?
        .into_iter()
        .find(|b| b.contains("ranges_in_flight"))
        .context("lagging-indexer.md: no range snippet")?;
    let config = |name: &str, rpc_line: &str, extra: &str| -> Result<PathBuf> {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"
[postgres]
url = "{pg}"
max_connections = 4
[kafka]
brokers = "{brokers}"
topic = "{topic}"
[server]
listen = "127.0.0.1:0"
[[chains]]
name = "devnet"
chain_id = 31337
{rpc_line}
poll_interval_ms = 100
rpc_timeout_s = 10
{extra}
[[contracts]]
name = "treasury"
chain = "devnet"
addresses = ["0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"]
abi = "{abi}"
"#,
                pg = db.url(),
                brokers = kafka.brokers(),
                abi = testkit::contracts::artifact_path("Treasury").display(),
            ),
        )?;
        Ok(path)
    };
    let cmds = runbook("rpc-providers.md")?;
    let check = find(&cmds, "tripwire-indexer", "check-config", |c| {
        has(c, &["check-config"])
    })?;
    let env_urls = [
        ("RPC_URL", primary.as_str()),
        ("RPC_URL_BACKUP", backup.as_str()),
    ];
    for (what, path) in [
        ("rpc_urls", config("urls", urls.trim(), &ranges)?),
        (
            "[[chains.providers]]",
            config("table", "rpc_urls = [\"${RPC_URL}\"]", table)?,
        ),
    ] {
        let cfg = path.display().to_string();
        let mut env = env_urls.to_vec();
        env.push(("TRIPWIRE_CONFIG", &cfg));
        let out = run_ok(check, &fill(check, &[])?, &env, None)?;
        assert!(out.contains("ok (1 chains, 1 contracts)"), "{what}: {out}");
        // An unset variable is named: the runbook's reason for passing it to every container.
        let out = run(
            &check.program,
            &fill(check, &[])?,
            &[("TRIPWIRE_CONFIG", &cfg), ("RPC_URL", &primary)],
            None,
        )?;
        assert!(
            !out.ok && out.stderr.contains("RPC_URL_BACKUP"),
            "{what}: {out:?}"
        );
    }

    // The table's provider, by its name, in the ingest's metrics and in `status`.
    let text = std::fs::read_to_string(config("table", "rpc_urls = [\"${RPC_URL}\"]", table)?)?
        .replace("${RPC_URL_BACKUP}", &backup)
        .replace("${RPC_URL}", &primary);
    let live = dir.join("live.toml");
    std::fs::write(&live, text)?;
    let ingest = Proc::spawn(
        &executable("tripwire-indexer")?,
        &live,
        "ingest",
        &dir,
        "info",
    )?;
    let addr = ingest.http_addr().await?;
    let name = "docs/runbooks/rpc-providers.md";
    let verify: Vec<Vec<Command>> =
        runbook::pipelines_in(&std::fs::read_to_string(repo().join(name))?, name)?
            .into_iter()
            .filter(|p| {
                p[0].program == "curl" && p[0].args.iter().any(|a| a.ends_with(":9464/metrics"))
            })
            .collect();
    assert!(verify.len() >= 2, "rpc-providers.md: no metrics commands");
    let map = |u: &str| Some(u.replace("127.0.0.1:9464", &addr));
    for p in verify {
        eventually(
            "both providers in rotation",
            Duration::from_secs(30),
            || {
                let (out, _) = curl_grep(&p, &map)?.context("mapped")?;
                Ok((out
                    .contains("tripwire_rpc_provider_up{chain=\"devnet\",provider=\"backup\"} 1")
                    && out.contains("tripwire_rpc_providers_in_rotation{chain=\"devnet\"} 2"))
                .then_some(()))
            },
        )
        .await
        .with_context(|| ingest.output())?;
    }
    let status = find(&cmds, "tripwire-indexer", "status", |c| has(c, &["status"]))?;
    let cfg = live.display().to_string();
    let out = eventually(
        "the backup provider in `status`",
        Duration::from_secs(30),
        || {
            let out = run_ok(
                status,
                &fill(status, &[])?,
                &[("TRIPWIRE_CONFIG", &cfg)],
                None,
            )?;
            Ok(out
                .lines()
                .any(|l| l.contains("backup") && l.contains("in rotation"))
                .then_some(out))
        },
    )
    .await?;
    assert!(out.contains("devnet"), "{out}");
    drop(ingest);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
