//! The names the runbooks use are real: metric names in the prose and those the commands' grep
//! patterns select are declared, and the compose services the commands name exist in
//! docker-compose.yml.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use tripwire_deploy::runbook;

use super::runbook_files;

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
