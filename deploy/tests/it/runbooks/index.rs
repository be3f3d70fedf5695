//! The runbooks' relative links and anchors resolve, and the index (`docs/runbooks/README.md`)
//! names every runbook, routes every Prometheus alert to the runbook its rule names, and cites
//! only tests defined in the files it names.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::{runbook_dir, runbook_files};

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
