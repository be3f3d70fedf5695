//! G3: the runbooks under `docs/runbooks/` only use commands that exist. Every command whose
//! program is one of ours (`tripwire-indexer`, `tripwire-watchdog`, `tripwire-replay`) or a tool the
//! runbooks rely on (`amtool`, `cast`, `pg_dump`, `pg_restore`, `psql`) is checked against the
//! program's own `--help`: each subcommand must exist and each `--flag` / `-f` must be listed.
//! Also: relative links and anchors resolve, the index names every runbook and routes every
//! Prometheus alert to the runbook its rule names, each test the index cites is defined in the file
//! it names, metric names are real, the compose services the commands name exist in
//! docker-compose.yml, and no command passes `--config` (the containers set `TRIPWIRE_CONFIG`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command as Process;

use anyhow::{bail, Context, Result};
use tripwire_deploy::runbook::{self, Command};

/// Programs whose subcommands and flags are checked against their `--help`.
const CHECKED: &[&str] = &[
    "tripwire-indexer",
    "tripwire-watchdog",
    "tripwire-replay",
    "amtool",
    "cast",
    "pg_dump",
    "pg_restore",
    "psql",
];

/// The alerts of the stack, each of which must lead to a runbook from the index.
const ALERTS: &[&str] = &[
    "TripwireIndexerLagging",
    "TripwireIndexerStalled",
    "TripwireIndexerDown",
    "TripwireSinkDown",
    "TripwireSinkLagging",
    "TripwireRpcProviderDown",
    "TripwireRpcAllProvidersDown",
    "TripwireWatchdogDown",
    "TripwireAlertDeliveryFailing",
    "AlertmanagerNotificationsFailing",
    "TripwireProposalSubmissionFailing",
];

fn runbook_dir() -> PathBuf {
    tripwire_deploy::repo_root().join("docs/runbooks")
}

/// Every markdown file of the runbook folder: (path relative to the repository, text).
fn runbook_files() -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(runbook_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = format!(
                "docs/runbooks/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            files.push((name, std::fs::read_to_string(&path)?));
        }
    }
    files.sort();
    if files.len() < 7 {
        bail!("docs/runbooks/ holds {} files, 7 expected", files.len());
    }
    Ok(files)
}

fn all_commands() -> Result<Vec<Command>> {
    let mut out = Vec::new();
    for (name, text) in runbook_files()? {
        out.extend(runbook::commands(&text, &name)?);
    }
    Ok(out)
}

/// What one `--help` says: the flags (and whether each takes a value), the subcommand tree as
/// listed, and whether the command takes positional arguments.
#[derive(Debug, Default)]
struct Help {
    flags: HashMap<String, bool>,
    /// (indentation, name) of each line of the commands section, in order.
    commands: Vec<(usize, String)>,
    takes_args: bool,
}

impl Help {
    fn parse(text: &str) -> Help {
        let mut help = Help::default();
        let mut section = String::new();
        let mut last_takes_value = false;
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if indent == 0 {
                section = t.trim_end_matches(':').to_ascii_lowercase();
                continue;
            }
            if section == "commands" || section == "subcommands" {
                if let Some(word) = t.split_whitespace().next() {
                    let word = word.trim_end_matches(['*', ',']);
                    if !word.starts_with(['-', '[', '<']) {
                        help.commands.push((indent, word.to_owned()));
                    }
                }
                continue;
            }
            if section == "arguments" || section == "args" {
                help.takes_args = true;
            }
            if let Some(aliases) = t.strip_prefix("[aliases:") {
                for a in aliases.trim_end_matches(']').split([',', ' ']) {
                    if a.starts_with('-') {
                        help.flags.insert(a.to_owned(), last_takes_value);
                    }
                }
                continue;
            }
            let starts_flag = t.starts_with("--")
                && t[2..].starts_with(|c: char| c.is_ascii_alphanumeric())
                || t.starts_with('-')
                    && t[1..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '?');
            if !starts_flag {
                continue;
            }
            // The flag spec ends where the description starts: two spaces, or the line's end.
            let spec = t.split("  ").next().unwrap_or(t);
            let takes_value = spec.contains('=')
                || spec.contains('<')
                || spec
                    .split([' ', ','])
                    .any(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            for piece in spec.split([' ', ',']) {
                if !piece.starts_with('-') || piece.len() < 2 {
                    continue;
                }
                let name: String = piece
                    .chars()
                    .take_while(|c| !matches!(c, '=' | '[' | '<'))
                    .collect();
                let name = name.trim_end_matches('.').to_owned();
                help.flags.insert(name, takes_value);
            }
            last_takes_value = takes_value;
        }
        help
    }

    /// The subcommands at `path`: clap lists one level; kingpin (amtool) lists the tree from the
    /// command it was asked about, so descend through the names already taken.
    fn subcommands(&self, path: &[String]) -> Vec<String> {
        let mut nodes: Vec<usize> = self.level(0, self.commands.len());
        for p in path {
            let Some(&i) = nodes.iter().find(|&&i| &self.commands[i].1 == p) else {
                break;
            };
            let end = (i + 1..self.commands.len())
                .find(|&j| self.commands[j].0 <= self.commands[i].0)
                .unwrap_or(self.commands.len());
            let children = self.level(i + 1, end);
            if children.is_empty() {
                break;
            }
            nodes = children;
        }
        nodes.iter().map(|&i| self.commands[i].1.clone()).collect()
    }

    /// Entries of `commands[from..to]` at the smallest indentation there.
    fn level(&self, from: usize, to: usize) -> Vec<usize> {
        let Some(min) = self.commands[from..to].iter().map(|c| c.0).min() else {
            return Vec::new();
        };
        (from..to).filter(|&i| self.commands[i].0 == min).collect()
    }
}

/// Checks commands against the `--help` of their programs, caching each help text.
#[derive(Default)]
struct Checker {
    helps: HashMap<(String, Vec<String>), std::rc::Rc<Help>>,
}

impl Checker {
    fn help(&mut self, cmd: &Command, path: &[String]) -> Result<std::rc::Rc<Help>> {
        let key = (cmd.program.clone(), path.to_vec());
        if let Some(h) = self.helps.get(&key) {
            return Ok(h.clone());
        }
        let exe = testkit::program(&cmd.program)?;
        let out = Process::new(&exe)
            .args(path)
            .arg("--help")
            .output()
            .with_context(|| format!("{}: cannot run {}", cmd.location(), exe.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!(
                "{}: `{} {} --help` failed: {}",
                cmd.location(),
                cmd.program,
                path.join(" "),
                text.lines().next().unwrap_or("")
            );
        }
        let help = std::rc::Rc::new(Help::parse(&text));
        if help.flags.is_empty() {
            bail!(
                "{}: no flags found in `{} {} --help` (its format changed?)",
                cmd.location(),
                cmd.program,
                path.join(" ")
            );
        }
        self.helps.insert(key, help.clone());
        Ok(help)
    }

    /// Walks the arguments: positional words descend into subcommands while the help lists
    /// some, flags must be in the help of the command they follow.
    fn check(&mut self, cmd: &Command) -> Result<()> {
        let mut path: Vec<String> = Vec::new();
        let mut help = self.help(cmd, &path)?;
        let mut positional_seen = false;
        let mut only_positional = false;
        let mut i = 0;
        while i < cmd.args.len() {
            let a = &cmd.args[i];
            if !only_positional && a == "--" {
                only_positional = true;
                i += 1;
                continue;
            }
            if !only_positional && a.starts_with('-') && a.len() > 1 {
                i += flag_width(&help, cmd, &path, i)?;
                continue;
            }
            if !positional_seen && !help.commands.is_empty() {
                let subs = help.subcommands(&path);
                if subs.iter().any(|s| s == a) {
                    path.push(a.clone());
                    help = self.help(cmd, &path)?;
                    i += 1;
                    continue;
                }
                if !help.takes_args {
                    bail!(
                        "{}: `{}` has no subcommand `{a}` (its --help lists: {}) in `{}`",
                        cmd.location(),
                        std::iter::once(cmd.program.as_str())
                            .chain(path.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(" "),
                        subs.join(", "),
                        cmd.display()
                    );
                }
            }
            positional_seen = true;
            i += 1;
        }
        Ok(())
    }
}

/// How many arguments the flag at `args[i]` uses (itself, and its value when separate), or an
/// error naming the flag when the help does not list it.
fn flag_width(help: &Help, cmd: &Command, path: &[String], i: usize) -> Result<usize> {
    let a = &cmd.args[i];
    let unknown = |flag: &str| {
        anyhow::anyhow!(
            "{}: unknown flag `{flag}` for `{}` (not in its --help) in `{}`",
            cmd.location(),
            std::iter::once(cmd.program.as_str())
                .chain(path.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            cmd.display()
        )
    };
    if a.starts_with("--") {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (a.as_str(), None),
        };
        let takes = *help.flags.get(name).ok_or_else(|| unknown(name))?;
        return Ok(if takes && inline.is_none() { 2 } else { 1 });
    }
    // Short flags, getopt style: `-Fc` is -F with the value c; `-tA` is -t and -A.
    let chars: Vec<char> = a[1..].chars().collect();
    for (k, c) in chars.iter().enumerate() {
        let flag = format!("-{c}");
        match help.flags.get(&flag) {
            None => return Err(unknown(&flag)),
            Some(true) => return Ok(if k + 1 < chars.len() { 1 } else { 2 }),
            Some(false) => {}
        }
    }
    Ok(1)
}

/// Checks every command of `commands` whose program is in [`CHECKED`]; all problems in one error.
fn check_all(commands: &[Command]) -> Result<usize> {
    let mut checker = Checker::default();
    let mut errors = Vec::new();
    let mut checked = 0;
    for c in commands
        .iter()
        .filter(|c| CHECKED.contains(&c.program.as_str()))
    {
        checked += 1;
        if let Err(e) = checker.check(c) {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(checked)
}

#[test]
fn every_subcommand_and_flag_of_the_runbooks_exists() -> Result<()> {
    let commands = all_commands()?;
    let checked = check_all(&commands)?;
    // Each runbook has commands of the checked programs; a parser that found none would pass.
    for (name, _) in runbook_files()? {
        if name.ends_with("README.md") {
            continue;
        }
        let n = commands
            .iter()
            .filter(|c| c.file == name && CHECKED.contains(&c.program.as_str()))
            .count();
        assert!(n >= 2, "{name}: only {n} checked commands");
    }
    for program in CHECKED {
        assert!(
            commands.iter().any(|c| c.program == *program),
            "no runbook uses {program}"
        );
    }
    println!("{checked} runbook commands checked against their programs' --help");
    Ok(())
}

#[test]
fn the_checker_names_a_made_up_flag_or_subcommand() -> Result<()> {
    let md = "# Made up\n\n```sh\ndocker compose run --rm cli tripwire-replay --chain devnet --from-block 1 \\\n    --form-block 2\ndocker compose exec indexer-ingest tripwire-indexer stauts\ndocker compose exec alertmanager amtool --alertmanager.url=http://localhost:9093 silence add a=b --durration=1h\ncast wallet sign --no-hsh 0x01\ndocker compose exec -T postgres pg_dump -U tripwire -Fc -Q tripwire\ndocker compose exec watchdog tripwire-watchdog proposals shw 1\n```\n";
    let commands = runbook::commands(md, "made-up.md")?;
    let err = format!("{:#}", check_all(&commands).unwrap_err());
    for needle in [
        "made-up.md:4: unknown flag `--form-block` for `tripwire-replay`",
        "made-up.md:6: `tripwire-indexer` has no subcommand `stauts`",
        "made-up.md:7: unknown flag `--durration` for `amtool silence add`",
        "made-up.md:8: unknown flag `--no-hsh` for `cast wallet sign`",
        "made-up.md:9: unknown flag `-Q` for `pg_dump`",
        "made-up.md:10: `tripwire-watchdog proposals` has no subcommand `shw`",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    // The same commands spelled right pass: the failures above are the typos, nothing else.
    let fixed = md
        .replace("--form-block", "--to-block")
        .replace("stauts", "status")
        .replace("--durration", "--duration")
        .replace("--no-hsh", "--no-hash")
        .replace(" -Q ", " -d ")
        .replace("shw", "show");
    assert_eq!(check_all(&runbook::commands(&fixed, "fixed.md")?)?, 6);
    Ok(())
}

#[test]
fn grep_patterns_name_metrics() {
    assert_eq!(
        pattern_names("^tripwire_(a|b_c)"),
        ["tripwire_a", "tripwire_b_c"]
    );
    assert_eq!(
        pattern_names("^tripwire_watchdog_(x|y)"),
        ["tripwire_watchdog_x", "tripwire_watchdog_y"]
    );
    assert_eq!(
        pattern_names("^tripwire_rpc_(up|down)_total"),
        ["tripwire_rpc_up_total", "tripwire_rpc_down_total"]
    );
    assert_eq!(
        pattern_names("^tripwire_lag_blocks"),
        ["tripwire_lag_blocks"]
    );
    assert!(pattern_names("^alertmanager_x").is_empty());
}

#[test]
fn help_parsing_understands_clap_kingpin_and_getopt() {
    let clap = "Usage: x [OPTIONS] <COMMAND>\n\nCommands:\n  run     Run it\n          more words\n  status  Status\n\nOptions:\n  -c, --config <CONFIG>  File\n      --json             JSON\n          [aliases: --js]\n";
    let h = Help::parse(clap);
    assert_eq!(h.subcommands(&[]), ["run", "status"]);
    assert_eq!(h.flags.get("-c"), Some(&true));
    assert_eq!(h.flags.get("--config"), Some(&true));
    assert_eq!(h.flags.get("--json"), Some(&false));
    assert_eq!(h.flags.get("--js"), Some(&false));
    assert!(!h.takes_args);
    let kingpin = "usage: amtool silence <command> [<args> ...]\n\nFlags:\n  -o, --output=simple  Output\n      --version-check  Check\n\nCommands:\n  silence\n    add [<flags>] [<matcher-groups>...]\n    query* [<flags>]\n";
    let h = Help::parse(kingpin);
    assert_eq!(h.subcommands(&["silence".into()]), ["add", "query"]);
    assert_eq!(h.flags.get("-o"), Some(&true));
    assert_eq!(h.flags.get("--version-check"), Some(&false));
    let getopt = "pg_dump dumps a database.\n\nUsage:\n  pg_dump [OPTION]... [DBNAME]\n\nGeneral options:\n  -F, --format=c|d|t|p         output file format\n  -v, --verbose                verbose mode\n";
    let h = Help::parse(getopt);
    assert_eq!(h.flags.get("-F"), Some(&true));
    assert_eq!(h.flags.get("-v"), Some(&false));
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn relative_links_and_anchors_resolve() -> Result<()> {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)")?;
    let mut bad = Vec::new();
    let mut checked = 0;
    for (name, text) in runbook_files()? {
        for (n, line) in text.lines().enumerate() {
            for cap in link.captures_iter(line) {
                let target = &cap[1];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target, None),
                };
                let path = if file.is_empty() {
                    tripwire_deploy::repo_root().join(&name)
                } else {
                    runbook_dir().join(file)
                };
                if !path.exists() {
                    bad.push(format!("{name}:{}: link to missing {target}", n + 1));
                    continue;
                }
                if let Some(anchor) = anchor {
                    let doc = std::fs::read_to_string(&path).unwrap_or_default();
                    if !anchors(&doc).contains(anchor) {
                        bad.push(format!(
                            "{name}:{}: no heading `#{anchor}` in {}",
                            n + 1,
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(checked > 10, "only {checked} relative links found");
    Ok(())
}

/// `(alert, runbook)` of every rule in deploy/prometheus/rules/*.rules.yml.
fn rule_runbooks() -> Result<Vec<(String, String)>> {
    let dir = tripwire_deploy::repo_root().join("deploy/prometheus/rules");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with(".rules.yml") {
            continue;
        }
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| path.display().to_string())?;
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                let Some(alert) = rule["alert"].as_str() else {
                    continue;
                };
                let runbook = rule["annotations"]["runbook"].as_str().with_context(|| {
                    format!("{}: {alert} has no runbook annotation", path.display())
                })?;
                out.push((alert.to_owned(), runbook.to_owned()));
            }
        }
    }
    Ok(out)
}

#[test]
fn the_index_routes_every_alert_to_an_existing_runbook() -> Result<()> {
    let files = runbook_files()?;
    let readme = &files
        .iter()
        .find(|(n, _)| n.ends_with("/README.md"))
        .context("docs/runbooks/README.md is missing")?
        .1;
    let link = regex::Regex::new(r"\]\(([a-z0-9-]+\.md)(#[^)]*)?\)")?;
    // Every runbook is in the index, and every file the index names exists.
    let named: BTreeSet<String> = link
        .captures_iter(readme)
        .map(|c| c[1].to_owned())
        .collect();
    for f in &named {
        assert!(
            runbook_dir().join(f).is_file(),
            "README.md names missing {f}"
        );
    }
    for (name, _) in &files {
        let file = name.trim_start_matches("docs/runbooks/");
        if file != "README.md" {
            assert!(named.contains(file), "README.md does not list {file}");
        }
    }
    // Each alert: a row of the index naming it and its runbook, which mentions the alert too.
    let mut pairs: Vec<(String, String)> = rule_runbooks()?;
    for a in ALERTS {
        assert!(
            pairs.iter().any(|(alert, _)| alert == a),
            "no Prometheus rule raises {a}"
        );
    }
    pairs.sort();
    for (alert, runbook) in &pairs {
        let file = runbook.strip_prefix("docs/runbooks/").with_context(|| {
            format!("{alert}: runbook annotation {runbook} is outside docs/runbooks/")
        })?;
        assert!(
            runbook_dir().join(file).is_file(),
            "{alert}: {runbook} does not exist"
        );
        let row = readme
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`{alert}`")))
            .with_context(|| format!("README.md has no row for `{alert}`"))?;
        assert!(
            row.contains(&format!("]({file})")) || row.contains(&format!("]({file}#")),
            "README.md's row for {alert} does not lead to {file} (the rule's runbook): {row}"
        );
        let (_, text) = files
            .iter()
            .find(|(n, _)| n == runbook)
            .context("runbook file listed")?;
        assert!(
            text.contains(&format!("`{alert}`")),
            "{runbook} does not mention `{alert}`, which its rule sends there"
        );
    }
    Ok(())
}

#[test]
fn the_index_names_tests_that_exist() -> Result<()> {
    let readme = std::fs::read_to_string(runbook_dir().join("README.md"))?;
    let section = readme
        .split("## Where the commands are exercised")
        .nth(1)
        .context("README.md has no `Where the commands are exercised` section")?;
    let name = regex::Regex::new(r"`([a-z0-9]+(?:_[a-z0-9]+){3,})`")?;
    let file = regex::Regex::new(r"`([a-z0-9_/]+\.rs)`")?;
    let mut cited = 0;
    for row in section.lines().filter(|l| l.starts_with('|')) {
        // The last cell: `file.rs`: `test`, `test`; `other/tests/file.rs`: `test` ... (an escaped
        // `\|` inside a cell is no separator).
        let row = row.replace("\\|", "");
        let Some(exercised) = row.split('|').map(str::trim).rfind(|c| !c.is_empty()) else {
            continue;
        };
        for part in exercised.split(';') {
            let names: Vec<&str> = name
                .captures_iter(part)
                .map(|c| c.get(1).map_or("", |m| m.as_str()))
                .collect();
            if names.is_empty() {
                continue;
            }
            let cited_file = file
                .captures(part)
                .with_context(|| format!("README.md cites {names:?} without its file: {part}"))?[1]
                .to_owned();
            // Paths of other crates are given from the root; the deploy crate's from its tests.
            let path = if cited_file.contains("/tests/") {
                tripwire_deploy::repo_root().join(&cited_file)
            } else {
                tripwire_deploy::repo_root()
                    .join("deploy/tests")
                    .join(&cited_file)
            };
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("README.md cites {cited_file}, which is not there"))?;
            for f in names {
                cited += 1;
                assert!(
                    source.contains(&format!("fn {f}(")),
                    "README.md cites `{f}` in {cited_file}, which does not define it"
                );
            }
        }
    }
    assert!(cited >= 8, "only {cited} tests cited");
    Ok(())
}

/// `^tripwire_(a|b)`, `^tripwire_x_(a|b)` and `^tripwire_a` in a grep pattern -> the names it
/// selects.
fn pattern_names(pattern: &str) -> Vec<String> {
    let p = pattern.trim_start_matches('^');
    if !p.starts_with("tripwire_") {
        return Vec::new();
    }
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    match p
        .split_once('(')
        .and_then(|(pre, rest)| Some((pre, rest.split_once(')')?)))
    {
        Some((prefix, (alts, rest))) if word(prefix) == prefix => {
            let suffix = word(rest);
            alts.split('|')
                .map(|a| format!("{prefix}{a}{suffix}"))
                .collect()
        }
        _ => vec![word(p)],
    }
}

#[test]
fn metric_names_in_the_runbooks_are_registered() -> Result<()> {
    let metrics = tripwire_deploy::metrics::declared()?;
    assert!(metrics.len() > 30, "{metrics:?}");
    let compose = std::fs::read_to_string(tripwire_deploy::repo_root().join("docker-compose.yml"))?;
    let word = regex::Regex::new(r"`(tripwire_[a-z0-9_]+)[`{]")?;
    let mut bad = Vec::new();
    let mut seen = 0;
    for (name, text) in runbook_files()? {
        // Names in the prose: a metric, or a compose object (the webhook token's secret).
        for (n, line) in text.lines().enumerate() {
            for cap in word.captures_iter(line) {
                seen += 1;
                let m = &cap[1];
                if !metrics.contains(m) && !compose.contains(m) {
                    bad.push(format!("{name}:{}: `{m}` is no metric", n + 1));
                }
            }
        }
        // Names selected by the grep patterns of the commands.
        for c in runbook::commands(&text, &name)? {
            if c.program != "grep" {
                continue;
            }
            for a in c.args.iter().filter(|a| a.contains("tripwire_")) {
                for m in pattern_names(a) {
                    seen += 1;
                    if !metrics.contains(&m) {
                        bad.push(format!(
                            "{}: grep pattern selects unknown metric {m}",
                            c.location()
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(seen > 30, "only {seen} metric names found");
    Ok(())
}

#[test]
fn compose_services_named_by_the_runbooks_exist() -> Result<()> {
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        tripwire_deploy::repo_root().join("docker-compose.yml"),
    )?)?;
    let services: BTreeSet<String> = compose["services"]
        .as_mapping()
        .context("docker-compose.yml has no services")?
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let mut bad = Vec::new();
    let mut named = BTreeSet::new();
    for (name, text) in runbook_files()? {
        for c in runbook::shell_commands(&text, &name)? {
            for s in runbook::compose_services(&c)? {
                if !services.contains(&s) {
                    bad.push(format!(
                        "{}: no compose service `{s}` in `{}`",
                        c.location(),
                        c.display()
                    ));
                }
                named.insert(s);
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    for s in [
        "indexer-ingest",
        "indexer-sink",
        "watchdog",
        "postgres",
        "alertmanager",
        "cli",
    ] {
        assert!(
            named.contains(s),
            "no runbook command uses the `{s}` service"
        );
    }
    Ok(())
}

#[test]
fn commands_keep_the_config_out() -> Result<()> {
    // The containers set TRIPWIRE_CONFIG; a `--config` in a runbook would point elsewhere.
    for c in all_commands()? {
        if c.program.starts_with("tripwire-") {
            assert!(
                !c.args
                    .iter()
                    .any(|a| a == "--config" || a == "-c" || a.starts_with("--config=")),
                "{}: `{}` passes --config",
                c.location(),
                c.display()
            );
        }
    }
    Ok(())
}
