//! Drills: the runbooks' commands, taken from `docs/runbooks/` by the parser and run as processes
//! against real services, for the procedures no other test runs. One module per runbook family:
//! [`alert_storm`] (silences with `amtool` on a real Alertmanager), [`emergency_pause`] (the real
//! Safe v1.4.1 contracts, the watchdog's proposal completed and executed by a second owner, the
//! status, metrics and health commands against the running processes), [`restore`] (`pg_dump` /
//! `pg_restore`), [`sql`] (every SQL statement and log filter of the runbooks) and [`providers`]
//! (the RPC provider snippets through `check-config` and a running ingest).
//!
//! The `docker compose exec|run` prefix is dropped by the parser, `<placeholders>` and
//! `$VARIABLES` are filled from what the drill set up, and addresses are mapped to the test's
//! services; a runbook command the drill cannot find or fill fails the drill, so a runbook and its
//! drill cannot drift apart silently. This file holds what the drills share: finding, filling and
//! running commands, amtool and curl against the test's services, Postgres access.

mod alert_storm;
mod emergency_pause;
mod providers;
mod restore;
mod sql;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
/// The drills' probes run commands: the blocking form of the one `eventually`.
pub(crate) use testkit::wait::eventually_blocking as eventually;

use anyhow::{anyhow, bail, Context, Result};
use testkit::postgres::TestDb;
use tripwire_deploy::runbook::{self, Command};

fn repo() -> PathBuf {
    tripwire_deploy::repo_root()
}

/// The text of `docs/runbooks/<file>` and its name in messages.
fn runbook_text(file: &str) -> Result<(String, String)> {
    let name = format!("docs/runbooks/{file}");
    let text = std::fs::read_to_string(repo().join(&name)).with_context(|| name.clone())?;
    Ok((name, text))
}

/// The commands of `docs/runbooks/<file>`.
fn runbook(file: &str) -> Result<Vec<Command>> {
    let (name, text) = runbook_text(file)?;
    runbook::commands(&text, &name)
}

/// The pipelines of `docs/runbooks/<file>` (`curl ... | grep ...` together).
fn pipelines(file: &str) -> Result<Vec<Vec<Command>>> {
    let (name, text) = runbook_text(file)?;
    runbook::pipelines_in(&text, &name)
}

/// The markdown files of `docs/runbooks/`, sorted.
fn runbook_files() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("docs/runbooks"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    Ok(names)
}

/// Every runbook's commands, file by file.
fn all_runbooks() -> Result<Vec<Command>> {
    let mut out = Vec::new();
    for n in runbook_files()? {
        out.extend(runbook(&n)?);
    }
    Ok(out)
}

/// Every runbook's pipelines, file by file.
fn all_pipelines() -> Result<Vec<Vec<Command>>> {
    let mut out = Vec::new();
    for n in runbook_files()? {
        out.extend(pipelines(&n)?);
    }
    Ok(out)
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
/// error naming the runbook line.
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
    let exe = testkit::program(program)?;
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
    // Fed from a thread: a program that writes much before reading all its input would otherwise
    // block on a full stdout pipe while we block on its full stdin.
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

/// [`run_ok`] keeping the whole output; a failure names the runbook line.
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
// Alertmanager and the processes' HTTP endpoints

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
        // Without it amtool would ask whatever its own config names, not the test's instance.
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

/// The head of a drill's configuration: Postgres, Kafka, a free metrics port and the devnet chain
/// with `chain_lines` last (its providers, which may be `[[chains.providers]]` tables, and tuning);
/// the caller appends contracts and the watchdog. Text, because the providers drill splices in the
/// runbooks' own snippets, which are what an operator writes.
fn config_head(
    db: &TestDb,
    kafka: &testkit::kafka::TestKafka,
    topic: &str,
    chain_lines: &str,
) -> String {
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
poll_interval_ms = 100
rpc_timeout_s = 10
{chain_lines}
"#,
        pg = db.url(),
        brokers = kafka.brokers(),
    )
}

/// [`config_head`] as a [`TestConfig`](testkit::config::TestConfig), its chain to add
/// ([`drill_chain`]).
fn drill_config(
    db: &TestDb,
    kafka: &testkit::kafka::TestKafka,
    topic: &str,
) -> testkit::config::TestConfig {
    let mut config = testkit::config::TestConfig::new(db.url(), kafka.brokers());
    config.postgres.max_connections = Some(4);
    config.kafka.topic = Some(topic.to_owned());
    config.server(testkit::config::Server::any_port())
}

/// The devnet chain of [`config_head`] on `rpc`.
fn drill_chain(rpc: &str) -> testkit::config::Chain {
    testkit::config::Chain {
        poll_interval_ms: Some(100),
        rpc_timeout_s: Some(10),
        ..testkit::config::Chain::new("devnet", 31337, rpc)
    }
}

// ------------------------------------------------------------------------------------------------
// Postgres

/// A minimal configuration whose only use is `tripwire-indexer migrate` on `db`.
fn migrate(db: &TestDb, dir: &Path) -> Result<PathBuf> {
    let config = testkit::config::TestConfig::new(db.url(), "127.0.0.1:9")
        .chain(testkit::config::Chain::new(
            "devnet",
            31337,
            "http://127.0.0.1:9",
        ))
        .contract(
            testkit::config::Contract::new(
                "token",
                "devnet",
                ["0x5FbDB2315678afecb367f032d93F642f64180aa3"],
            )
            .events(["event Transfer(address indexed from, address indexed to, uint256 value)"]),
        )
        .write(dir.join("tripwire.toml"))?;
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

/// `PGHOST` and `PGPORT` of the test server.
fn pg_env(db: &TestDb) -> Vec<(&'static str, String)> {
    let addr = db.server_addr();
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "5432"));
    vec![("PGHOST", host.to_owned()), ("PGPORT", port.to_owned())]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
