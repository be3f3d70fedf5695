//! G3: the runbooks under `docs/runbooks/` only use commands that exist. Every command whose
//! program is one of ours (`tripwire-indexer`, `tripwire-watchdog`, `tripwire-replay`) or a tool the
//! runbooks rely on (`amtool`, `cast`, `pg_dump`, `pg_restore`, `psql`) is checked against the
//! program's own `--help`: each subcommand must exist and each `--flag` / `-f` must be listed.
//! Also: relative links and anchors resolve, the index names every runbook and routes every
//! Prometheus alert to the runbook its rule names, each test the index cites is defined in the file
//! it names, metric names are real, the compose services the commands name exist in
//! docker-compose.yml, and no command passes `--config` (the containers set `TRIPWIRE_CONFIG`).
//!
//! [`commands`] checks the commands against the programs' `--help` (and keeps `--config` out),
//! [`index`] the links, anchors and the index (alerts routed to runbooks, tests cited), [`names`]
//! the metric and compose service names; this file holds the runbook files they all read.

mod commands;
mod index;
mod names;

use std::path::PathBuf;

use anyhow::{bail, Result};
use tripwire_deploy::runbook::{self, Command};

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
