//! The Grafana dashboard's queries as data. Grafana only reports a broken query when someone opens
//! the panel, so the stack test extracts every panel's PromQL with [`queries`], replaces the
//! dashboard variables with [`substitute`] and has a real Prometheus evaluate each one; the unit
//! tests below check the dashboard against the provisioning files and the metrics the code exports.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use regex::Regex;
use serde_json::Value;

/// The uid of the provisioned Prometheus datasource; every panel and query names it.
pub const DATASOURCE_UID: &str = "tripwire-prometheus";

/// The dashboard file, relative to the repository root.
pub const DASHBOARD_FILE: &str = "deploy/grafana/dashboards/tripwire.json";

/// Value given to every `$__interval`-like variable: four scrapes at the provisioned 15s interval,
/// as `$__rate_interval` is at least, so `rate()` always has two samples to work with.
const INTERVAL: &str = "1m";

/// One query of one panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelQuery {
    /// The panel's title, as an operator finds it on the dashboard.
    pub panel: String,
    pub ref_id: String,
    /// The PromQL, with Grafana's variables still in it (see [`substitute`]).
    pub expr: String,
}

/// The shipped dashboard's path.
pub fn path() -> PathBuf {
    crate::repo_root().join(DASHBOARD_FILE)
}

/// Reads and parses a dashboard file.
pub fn load(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the dashboard {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("parsing the dashboard {} as JSON", path.display()))
}

/// Every panel of the dashboard, rows included, with the panels of collapsed rows (which Grafana
/// stores inside the row rather than after it).
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(list) = dashboard.get("panels") {
        walk(list, &mut out);
    }
    out
}

/// How errors name a panel: its title and id, both of which an operator can search for.
pub fn panel_name(panel: &Value) -> String {
    let title = panel
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("<untitled>");
    match panel.get("id").and_then(Value::as_u64) {
        Some(id) => format!("panel {title:?} (id {id})"),
        None => format!("panel {title:?} (no id)"),
    }
}

/// Checks that a datasource reference is the provisioned Prometheus. Names (the pre-uid form),
/// mixed or dashboard datasources and missing uids are all refused, because each of them depends
/// on what else the Grafana instance happens to have.
fn check_datasource(ds: &Value, what: &str) -> anyhow::Result<()> {
    let uid = ds.get("uid").and_then(Value::as_str);
    let kind = ds.get("type").and_then(Value::as_str);
    if uid != Some(DATASOURCE_UID) || kind != Some("prometheus") {
        bail!(
            "{what} uses datasource {ds}, not {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_UID}\"}}"
        );
    }
    Ok(())
}

/// The panels that show data without a query of their own.
fn needs_no_query(kind: &str) -> bool {
    matches!(kind, "row" | "text" | "news" | "dashlist" | "alertlist")
}

/// Every query of every panel, in the dashboard's order. Fails, naming the panel, on a panel or
/// target whose datasource is not the provisioned Prometheus, on a target without an expression
/// and on a data panel without targets.
pub fn queries(dashboard: &Value) -> anyhow::Result<Vec<PanelQuery>> {
    if !dashboard.get("panels").is_some_and(Value::is_array) {
        bail!("the dashboard has no \"panels\" array");
    }
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let name = panel_name(panel);
        let kind = panel.get("type").and_then(Value::as_str).unwrap_or("");
        let panel_ds = panel.get("datasource").filter(|d| !d.is_null());
        if let Some(ds) = panel_ds {
            check_datasource(ds, &name)?;
        }
        let targets = match panel.get("targets") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(t)) => t.as_slice(),
            Some(other) => bail!("{name}: \"targets\" is {other}, not an array"),
        };
        if targets.is_empty() {
            if needs_no_query(kind) {
                continue;
            }
            bail!("{name} ({kind}) has no queries");
        }
        for (i, target) in targets.iter().enumerate() {
            let ref_id = target
                .get("refId")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| anyhow!("{name}: target {i} has no refId"))?;
            let what = format!("{name}, query {ref_id}");
            // A target without its own datasource inherits the panel's.
            let ds = target
                .get("datasource")
                .filter(|d| !d.is_null())
                .or(panel_ds)
                .ok_or_else(|| anyhow!("{what} names no datasource"))?;
            check_datasource(ds, &what)?;
            let expr = target
                .get("expr")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| anyhow!("{what} has no PromQL expression (\"expr\")"))?;
            out.push(PanelQuery {
                panel: panel
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("<untitled>")
                    .to_owned(),
                ref_id: ref_id.to_owned(),
                expr: expr.to_owned(),
            });
        }
    }
    Ok(out)
}

/// The value of a Grafana variable in an instant query, or `None` for a variable this dashboard
/// does not define (left in place, so Prometheus rejects the query and the test names it).
fn variable(name: &str) -> Option<&'static str> {
    Some(match name {
        // Multi-value with "All": Grafana sends the allValue, a regex matching every chain.
        "chain" => ".*",
        "__rate_interval" | "__interval" | "__range" => INTERVAL,
        "__rate_interval_ms" | "__interval_ms" | "__range_ms" => "60000",
        "__range_s" => "60",
        _ => return None,
    })
}

/// Replaces Grafana's variables (`$name`, `${name}`, `${name:format}`, `[[name]]`) with values
/// Prometheus accepts in an instant query: `.*` for `chain`, `1m` for the interval and range
/// variables (in milliseconds or seconds for their `_ms` and `_s` forms).
pub fn substitute(expr: &str) -> String {
    let re = variable_pattern();
    re.replace_all(expr, |c: &regex::Captures| {
        let name = c
            .get(1)
            .or_else(|| c.get(2))
            .or_else(|| c.get(3))
            .map_or("", |m| m.as_str());
        variable(name).map_or_else(|| c[0].to_owned(), str::to_owned)
    })
    .into_owned()
}

fn variable_pattern() -> Regex {
    // Longest names first is implicit: `\w+` takes `__rate_interval_ms` whole.
    Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)").expect("static pattern")
}

/// The `tripwire_*` metric names an expression reads, in order of appearance, each once. Quoted
/// label values are skipped, so `job="tripwire_x"` names no metric.
pub fn metric_names(expr: &str) -> Vec<String> {
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#).expect("static");
    let unquoted = strings.replace_all(expr, "\"\"");
    let names = Regex::new(r"(?:^|[^A-Za-z0-9_:])(tripwire_[A-Za-z0-9_:]*)").expect("static");
    let mut out: Vec<String> = Vec::new();
    for c in names.captures_iter(&unquoted) {
        let name = &c[1];
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    const JOBS: [&str; 5] = [
        "tripwire-ingest",
        "tripwire-sink",
        "tripwire-watchdog",
        "alertmanager",
        "prometheus",
    ];

    fn shipped() -> Value {
        load(&path()).unwrap()
    }

    fn yaml(rel: &str) -> Value {
        let path = crate::repo_root().join(rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    fn data_panels(d: &Value) -> Vec<&Value> {
        panels(d)
            .into_iter()
            .filter(|p| p["type"] != "row")
            .collect()
    }

    #[test]
    fn shipped_dashboard_parses() {
        let d = shipped();
        assert_eq!(d["uid"], "tripwire-overview");
        assert_eq!(d["title"], "Tripwire");
        assert_eq!(d["schemaVersion"], 39);
        assert_eq!(d["refresh"], "30s");
        assert_eq!(d["time"]["from"], "now-6h");
        let q = queries(&d).unwrap();
        assert!(q.len() > 20, "only {} queries", q.len());
        let rows: Vec<&str> = panels(&d)
            .iter()
            .filter(|p| p["type"] == "row")
            .filter_map(|p| p["title"].as_str())
            .collect();
        for row in [
            "Lag per chain",
            "Throughput",
            "Provider health",
            "Reorgs",
            "Alerts",
            "Proposals",
        ] {
            assert!(rows.contains(&row), "no row {row:?} in {rows:?}");
        }
    }

    #[test]
    fn chain_variable() {
        let d = shipped();
        let vars = d["templating"]["list"].as_array().unwrap();
        let chain = vars.iter().find(|v| v["name"] == "chain").unwrap();
        assert_eq!(chain["multi"], true);
        assert_eq!(chain["includeAll"], true);
        assert_eq!(chain["allValue"], ".*");
        assert_eq!(
            chain["query"]["query"],
            "label_values(tripwire_chain_head_block, chain)"
        );
        assert_eq!(chain["definition"], chain["query"]["query"]);
        check_datasource(&chain["datasource"], "variable chain").unwrap();
    }

    #[test]
    fn panel_ids_unique_and_layout_complete() {
        let d = shipped();
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let name = panel_name(p);
            let id = p["id"].as_u64().unwrap_or_else(|| panic!("{name}: no id"));
            assert!(ids.insert(id), "{name}: id {id} used twice");
            let g = &p["gridPos"];
            for k in ["h", "w", "x", "y"] {
                assert!(g[k].is_u64(), "{name}: gridPos.{k} missing");
            }
            let right = g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap();
            assert!(right <= 24, "{name}: extends to column {right} of 24");
        }
        for p in data_panels(&d) {
            let desc = p["description"].as_str().unwrap_or("");
            assert!(desc.len() > 40, "{}: no useful description", panel_name(p));
        }
    }

    #[test]
    fn panels_do_not_overlap() {
        let d = shipped();
        let boxes: Vec<(String, [u64; 4])> = panels(&d)
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                let v = |k: &str| g[k].as_u64().unwrap();
                (panel_name(p), [v("x"), v("y"), v("w"), v("h")])
            })
            .collect();
        for (i, (a, [ax, ay, aw, ah])) in boxes.iter().enumerate() {
            for (b, [bx, by, bw, bh]) in &boxes[i + 1..] {
                let apart = ax + aw <= *bx || bx + bw <= *ax || ay + ah <= *by || by + bh <= *ay;
                assert!(apart, "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn datasource_is_the_provisioned_one() {
        let file = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
        assert_eq!(file["apiVersion"], 1);
        let sources = file["datasources"].as_array().unwrap();
        assert_eq!(sources.len(), 1);
        let ds = &sources[0];
        assert_eq!(ds["uid"], DATASOURCE_UID);
        assert_eq!(ds["type"], "prometheus");
        assert_eq!(ds["url"], "http://prometheus:9090");
        assert_eq!(ds["isDefault"], true);
        assert_eq!(ds["jsonData"]["timeInterval"], "15s");

        let d = shipped();
        // queries() refuses any other datasource; this also covers panels and the variable.
        queries(&d).unwrap();
        for p in data_panels(&d) {
            check_datasource(&p["datasource"], &panel_name(p)).unwrap();
            for t in p["targets"].as_array().unwrap() {
                check_datasource(&t["datasource"], &panel_name(p)).unwrap();
            }
        }
    }

    #[test]
    fn dashboard_provider_reads_the_mounted_directory() {
        let file = yaml("deploy/grafana/provisioning/dashboards/tripwire.yml");
        assert_eq!(file["apiVersion"], 1);
        let p = &file["providers"][0];
        assert_eq!(p["type"], "file");
        assert_eq!(p["folder"], "Tripwire");
        assert_eq!(p["allowUiUpdates"], false);
        assert_eq!(p["options"]["path"], "/var/lib/grafana/dashboards");
    }

    #[test]
    fn every_metric_is_declared_in_the_code() {
        let declared = crate::metrics::declared().unwrap();
        let d = shipped();
        let mut exprs: Vec<(String, String)> = queries(&d)
            .unwrap()
            .into_iter()
            .map(|q| (format!("{} {}", q.panel, q.ref_id), q.expr))
            .collect();
        for v in d["templating"]["list"].as_array().unwrap() {
            let query = v["query"]["query"].as_str().or(v["query"].as_str());
            exprs.push((format!("variable {}", v["name"]), query.unwrap().into()));
        }
        let mut seen = 0;
        for (what, expr) in &exprs {
            for name in metric_names(expr) {
                assert!(
                    crate::metrics::is_declared(&declared, &name),
                    "{what}: {name} is not declared in the code"
                );
                seen += 1;
            }
        }
        assert!(seen > 40, "only {seen} metric references");
    }

    #[test]
    fn every_query_substitutes_to_plain_promql() {
        for q in queries(&shipped()).unwrap() {
            let expr = substitute(&q.expr);
            assert!(
                !expr.contains('$') && !expr.contains("[["),
                "{} {}: variable left in {expr}",
                q.panel,
                q.ref_id
            );
            let mut depth = Vec::new();
            for c in expr.chars() {
                match c {
                    '(' | '[' | '{' => depth.push(c),
                    ')' | ']' | '}' => {
                        let open = depth.pop();
                        let want = match c {
                            ')' => '(',
                            ']' => '[',
                            _ => '{',
                        };
                        assert_eq!(
                            open,
                            Some(want),
                            "{} {}: unbalanced {expr}",
                            q.panel,
                            q.ref_id
                        );
                    }
                    _ => {}
                }
            }
            assert!(
                depth.is_empty(),
                "{} {}: unclosed {expr}",
                q.panel,
                q.ref_id
            );
        }
    }

    #[test]
    fn ranges_follow_the_scrape_interval() {
        // A fixed window breaks when the scrape interval changes; Grafana's variables follow it.
        let range = Regex::new(r"\[([^\]]*)\]").unwrap();
        let d = shipped();
        let q = queries(&d).unwrap();
        for q in &q {
            for c in range.captures_iter(&q.expr) {
                assert!(
                    matches!(&c[1], "$__rate_interval" | "$__range"),
                    "{} {}: range [{}] in {}",
                    q.panel,
                    q.ref_id,
                    &c[1],
                    q.expr
                );
            }
        }
        let all: String = q.iter().map(|q| q.expr.as_str()).collect();
        assert!(all.contains("[$__rate_interval]"));
        for job in JOBS {
            assert!(all.contains(job), "no query shows whether {job} is up");
        }
        assert!(all.contains(r#"ALERTS{alertstate="firing"}"#));
    }

    #[test]
    fn substitute_replaces_grafana_variables() {
        assert_eq!(
            substitute(r#"rate(x{chain=~"$chain"}[$__rate_interval])"#),
            r#"rate(x{chain=~".*"}[1m])"#
        );
        assert_eq!(substitute(r#"x{chain=~"${chain}"}"#), r#"x{chain=~".*"}"#);
        assert_eq!(
            substitute(r#"x{chain=~"${chain:regex}"}"#),
            r#"x{chain=~".*"}"#
        );
        assert_eq!(substitute(r#"x{chain=~"[[chain]]"}"#), r#"x{chain=~".*"}"#);
        assert_eq!(
            substitute("increase(x[$__range]) / $__range_s"),
            "increase(x[1m]) / 60"
        );
        assert_eq!(
            substitute("a[$__interval] $__interval_ms $__rate_interval_ms"),
            "a[1m] 60000 60000"
        );
        // An unknown variable stays, so Prometheus rejects the query instead of it passing vacuously.
        assert_eq!(substitute("x{job=\"$job\"}"), "x{job=\"$job\"}");
    }

    #[test]
    fn metric_names_finds_tripwire_metrics() {
        assert_eq!(
            metric_names(
                r#"histogram_quantile(0.95, sum by (le) (rate(tripwire_rpc_latency_seconds_bucket{chain=~"tripwire_no"}[1m]))) / tripwire_lag_blocks + up{job="tripwire-ingest"} + tripwire_lag_blocks"#
            ),
            ["tripwire_rpc_latency_seconds_bucket", "tripwire_lag_blocks"]
        );
        assert!(metric_names("my_tripwire_x + up").is_empty());
    }

    fn dashboard_with(target: Value) -> Value {
        let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
        json!({
            "panels": [
                {"type": "row", "id": 1, "title": "Top", "collapsed": false, "panels": []},
                {"type": "timeseries", "id": 2, "title": "Fine", "datasource": ds,
                 "targets": [{"refId": "A", "datasource": ds, "expr": "up"}]},
                {"type": "row", "id": 3, "title": "Collapsed", "collapsed": true, "panels": [
                    {"type": "stat", "id": 4, "title": "Broken lag", "datasource": ds,
                     "targets": [target]}
                ]}
            ]
        })
    }

    #[test]
    fn walks_collapsed_rows() {
        let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
        let d =
            dashboard_with(json!({"refId": "B", "datasource": ds, "expr": "tripwire_lag_blocks"}));
        let q = queries(&d).unwrap();
        assert_eq!(
            q.iter()
                .map(|q| (q.panel.as_str(), q.ref_id.as_str(), q.expr.as_str()))
                .collect::<Vec<_>>(),
            [
                ("Fine", "A", "up"),
                ("Broken lag", "B", "tripwire_lag_blocks")
            ]
        );
        // Without its own datasource a target inherits the panel's.
        let d = dashboard_with(json!({"refId": "B", "expr": "up"}));
        assert_eq!(queries(&d).unwrap().len(), 2);
    }

    #[test]
    fn broken_targets_are_named() {
        let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
        let err = |target: Value| queries(&dashboard_with(target)).unwrap_err().to_string();

        let e = err(json!({"refId": "B", "datasource": ds}));
        assert!(
            e.contains("\"Broken lag\" (id 4)") && e.contains("query B"),
            "{e}"
        );
        assert!(e.contains("no PromQL expression"), "{e}");

        let e = err(json!({"refId": "B", "datasource": ds, "expr": "  "}));
        assert!(e.contains("Broken lag") && e.contains("no PromQL"), "{e}");

        let e = err(json!({"refId": "B", "expr": "up",
                           "datasource": {"type": "prometheus", "uid": "other"}}));
        assert!(e.contains("Broken lag") && e.contains("\"other\""), "{e}");

        let e = err(json!({"refId": "B", "expr": "up", "datasource": "Prometheus"}));
        assert!(e.contains("Broken lag"), "{e}");

        let mut d = dashboard_with(json!({"refId": "B", "expr": "up"}));
        d["panels"][2]["panels"][0]["datasource"] = Value::Null;
        let e = queries(&d).unwrap_err().to_string();
        assert!(
            e.contains("Broken lag") && e.contains("names no datasource"),
            "{e}"
        );

        let mut d = dashboard_with(json!({"refId": "B", "expr": "up"}));
        d["panels"][2]["panels"][0]["targets"] = json!([]);
        let e = queries(&d).unwrap_err().to_string();
        assert!(
            e.contains("Broken lag") && e.contains("has no queries"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let e = load(Path::new("/nonexistent/tripwire.json")).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/tripwire.json"));
    }
}
