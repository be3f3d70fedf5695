//! Every command of the runbooks whose program is one of ours or a tool the runbooks rely on is
//! checked against the program's own `--help` (subcommands and flags, parsed from clap, kingpin
//! and getopt help texts), and no command of ours passes `--config`.

use std::collections::HashMap;
use std::process::Command as Process;

use anyhow::{bail, Context, Result};
use tripwire_deploy::runbook::{self, Command};

use super::{all_commands, runbook_files};

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
