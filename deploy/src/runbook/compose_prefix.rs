//! The `docker compose` prefix of a runbook command: [`strip_compose`] leaves the program that
//! `exec` / `run` starts inside the container, [`compose_services`] names the services a command
//! targets. Both must know which of Compose's options take a value, or they would take that value
//! for the service.

use anyhow::bail;

use super::Command;

/// Options of `docker compose exec` / `run` that take a value.
const COMPOSE_VALUE_OPTIONS: &[&str] = &[
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--index",
    "-v",
    "--volume",
    "--name",
    "--entrypoint",
    "-p",
    "--publish",
    "-l",
    "--label",
    "--env-file",
];

/// Options of `docker compose exec` / `run` without a value.
const COMPOSE_FLAGS: &[&str] = &[
    "-T",
    "--no-TTY",
    "-d",
    "--detach",
    "--rm",
    "-i",
    "--interactive",
    "-t",
    "--tty",
    "-it",
    "--privileged",
    "--no-deps",
    "--service-ports",
    "-P",
    "--build",
    "--quiet-pull",
    "--remove-orphans",
    "--use-aliases",
];

/// Options of `docker compose` itself that take a value.
const COMPOSE_GLOBAL_VALUE_OPTIONS: &[&str] = &[
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--profile",
    "--env-file",
    "--project-directory",
    "--ansi",
    "--progress",
];

/// `docker compose [global options] exec|run [options] <service> <program> <args...>` ->
/// `<program> <args...>`; anything else unchanged.
pub(super) fn strip_compose(
    words: Vec<String>,
    file: &str,
    line: usize,
) -> anyhow::Result<Vec<String>> {
    let compose_at = match words.first().map(String::as_str) {
        Some("docker") if words.get(1).map(String::as_str) == Some("compose") => 2,
        Some("docker-compose") => 1,
        _ => return Ok(words),
    };
    let mut i = compose_at;
    while let Some(w) = words.get(i) {
        if let Some((name, _)) = w.split_once('=') {
            if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&name) {
                i += 1;
                continue;
            }
        }
        if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&w.as_str()) {
            i += 2;
        } else {
            break;
        }
    }
    let action = words.get(i).map(String::as_str);
    if !matches!(action, Some("exec" | "run")) {
        return Ok(words);
    }
    let action = action.unwrap_or_default().to_owned();
    i += 1;
    while let Some(w) = words.get(i) {
        if !w.starts_with('-') {
            break;
        }
        let name = w.split_once('=').map_or(w.as_str(), |(n, _)| n);
        if COMPOSE_VALUE_OPTIONS.contains(&name) {
            i += if w.contains('=') { 1 } else { 2 };
        } else if COMPOSE_FLAGS.contains(&w.as_str()) {
            i += 1;
        } else {
            bail!("{file}:{line}: unknown `docker compose {action}` option `{w}`");
        }
    }
    let service = words.get(i);
    if service.is_none() || words.len() <= i + 1 {
        bail!(
            "{file}:{line}: `docker compose {action}` needs a service and the program to run in it"
        );
    }
    Ok(words[i + 1..].to_vec())
}

/// Options of `docker compose logs/ps/up/...` that take a value.
const COMPOSE_OTHER_VALUE_OPTIONS: &[&str] = &[
    "--since",
    "--until",
    "--tail",
    "-n",
    "--format",
    "--filter",
    "--status",
    "--scale",
    "-t",
    "--timeout",
    "--wait-timeout",
    "--pull",
];

/// The services a `docker compose` command (as [`super::shell_commands`] lists it) names: the one
/// of `exec`/`run`, or every one of `stop`, `start`, `restart`, `up`, `logs`, `ps`...; empty for
/// anything that is not `docker compose`.
pub fn compose_services(cmd: &Command) -> anyhow::Result<Vec<String>> {
    let words = cmd.words();
    let mut i = match words.first().map(String::as_str) {
        Some("docker") if words.get(1).map(String::as_str) == Some("compose") => 2,
        Some("docker-compose") => 1,
        _ => return Ok(Vec::new()),
    };
    while let Some(w) = words.get(i) {
        if w.split_once('=')
            .is_some_and(|(n, _)| COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&n))
        {
            i += 1;
        } else if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&w.as_str()) {
            i += 2;
        } else {
            break;
        }
    }
    let Some(action) = words.get(i).cloned() else {
        bail!("{}: `docker compose` without a command", cmd.location());
    };
    if action == "exec" || action == "run" {
        let stripped = strip_compose(words.clone(), &cmd.file, cmd.line)?;
        // The service is the word right before the program the prefix leaves.
        let service_at = words.len() - stripped.len() - 1;
        return Ok(vec![words[service_at].clone()]);
    }
    let mut services = Vec::new();
    i += 1;
    while let Some(w) = words.get(i) {
        if w.starts_with('-') {
            let name = w.split_once('=').map_or(w.as_str(), |(n, _)| n);
            i += if COMPOSE_OTHER_VALUE_OPTIONS.contains(&name) && !w.contains('=') {
                2
            } else {
                1
            };
            continue;
        }
        services.push(w.clone());
        i += 1;
    }
    Ok(services)
}
