//! `docker-compose.yml` read the way Compose reads it (YAML merge keys, `${VAR}` interpolation
//! from an environment), into the few facts the stack test needs to start each service as a local
//! process: command, environment, mounts, secrets, health check and start order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The compose file, interpolated.
#[derive(Debug, Deserialize)]
pub struct Compose {
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretDef>,
}

#[derive(Debug, Deserialize)]
pub struct Service {
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub depends_on: BTreeMap<String, Dependency>,
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    pub restart: Option<String>,
}

/// An environment value: Compose accepts strings, numbers and booleans.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    pub condition: String,
}

#[derive(Debug, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct SecretDef {
    pub environment: Option<String>,
    pub file: Option<String>,
}

/// Where a service sees a file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A folder of the project (`./deploy/prometheus:/etc/prometheus:ro`).
    Bind { source: PathBuf, target: String },
    /// A named volume (`pgdata:/var/lib/postgresql/data`).
    Volume { name: String, target: String },
}

impl Compose {
    /// Reads `path`, merges `<<` keys and interpolates every string with `env`, failing like
    /// Compose on `${VAR:?message}` when `env` lacks `VAR`.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Compose> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut value: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        value.apply_merge().context("merging `<<` keys")?;
        let value = interpolate_value(value, env, "")?;
        let compose: Compose = serde_yaml_ng::from_value(value)
            .with_context(|| format!("reading the services of {}", path.display()))?;
        Ok(compose)
    }

    pub fn service(&self, name: &str) -> anyhow::Result<&Service> {
        self.services
            .get(name)
            .ok_or_else(|| anyhow!("docker-compose.yml has no service `{name}`"))
    }

    /// The services active with `profiles`, each after the services it depends on.
    pub fn start_order(&self, profiles: &[&str]) -> anyhow::Result<Vec<String>> {
        let active: BTreeSet<&str> = self
            .services
            .iter()
            .filter(|(_, s)| {
                s.profiles.is_empty() || s.profiles.iter().any(|p| profiles.contains(&p.as_str()))
            })
            .map(|(n, _)| n.as_str())
            .collect();
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        fn visit<'a>(
            c: &'a Compose,
            name: &'a str,
            active: &BTreeSet<&str>,
            done: &mut BTreeSet<&'a str>,
            path: &mut Vec<&'a str>,
            order: &mut Vec<String>,
        ) -> anyhow::Result<()> {
            if done.contains(name) {
                return Ok(());
            }
            if path.contains(&name) {
                bail!("dependency cycle: {} -> {name}", path.join(" -> "));
            }
            if !active.contains(name) {
                bail!(
                    "`{}` depends on `{name}`, which is not active with these profiles",
                    path.last().unwrap_or(&"?")
                );
            }
            path.push(name);
            for dep in c.service(name)?.depends_on.keys() {
                visit(c, dep, active, done, path, order)?;
            }
            path.pop();
            done.insert(name);
            order.push(name.to_string());
            Ok(())
        }
        for name in &active {
            visit(self, name, &active, &mut done, &mut Vec::new(), &mut order)?;
        }
        Ok(order)
    }
}

impl Service {
    /// The bind mounts (sources resolved against `project_dir`) and named volumes.
    pub fn mounts(&self, project_dir: &Path) -> anyhow::Result<Vec<Mount>> {
        self.volumes
            .iter()
            .map(|spec| {
                let mut parts = spec.splitn(3, ':');
                let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
                    bail!("volume `{spec}` is not source:target[:mode]");
                };
                Ok(if source.starts_with("./") || source.starts_with('/') {
                    Mount::Bind {
                        source: project_dir.join(source.trim_start_matches("./")),
                        target: target.to_string(),
                    }
                } else {
                    Mount::Volume {
                        name: source.to_string(),
                        target: target.to_string(),
                    }
                })
            })
            .collect()
    }

    /// The program and arguments the container runs (entrypoint, then command).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = self.entrypoint.clone().unwrap_or_default();
        argv.extend(self.command.iter().cloned());
        argv
    }

    /// The value of `--flag=value` or `--flag value` in the command.
    pub fn flag(&self, flag: &str) -> Option<String> {
        let argv = self.argv();
        let prefix = format!("{flag}=");
        argv.iter().enumerate().find_map(|(i, a)| {
            if let Some(v) = a.strip_prefix(&prefix) {
                Some(v.to_string())
            } else if a == flag {
                argv.get(i + 1).cloned()
            } else {
                None
            }
        })
    }

    pub fn env(&self, name: &str) -> Option<String> {
        self.environment.get(name).map(|v| v.to_string())
    }
}

fn interpolate_value(
    v: Value,
    env: &dyn Fn(&str) -> Option<String>,
    at: &str,
) -> anyhow::Result<Value> {
    Ok(match v {
        Value::String(s) => {
            Value::String(interpolate(&s, env).with_context(|| format!("at {at}"))?)
        }
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .enumerate()
                .map(|(i, x)| interpolate_value(x, env, &format!("{at}[{i}]")))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Mapping(m) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (k, x) in m {
                let key = k.as_str().unwrap_or("?").to_string();
                out.insert(k, interpolate_value(x, env, &format!("{at}.{key}"))?);
            }
            Value::Mapping(out)
        }
        other => other,
    })
}

/// Compose's interpolation: `${VAR}`, `${VAR:-default}` / `${VAR-default}` (empty counts as unset
/// only with the colon), `${VAR:?error}` / `${VAR?error}`, `$VAR`, and `$$` for a literal `$`.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            // The closing brace of this expression, past any nested `${...}` of its default.
            let mut depth = 0usize;
            let end = r
                .char_indices()
                .find(|&(_, c)| match c {
                    '{' => {
                        depth += 1;
                        false
                    }
                    '}' if depth == 0 => true,
                    '}' => {
                        depth -= 1;
                        false
                    }
                    _ => false,
                })
                .map(|(i, _)| i)
                .ok_or_else(|| anyhow!("unclosed `${{` in `{s}`"))?;
            out.push_str(&expand(&r[..end], env)?);
            rest = &r[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&env(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let name_len = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let value = env(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let nested = |s: &str| interpolate(s, env);
    Ok(match op {
        "" => value.unwrap_or_default(),
        _ if op.starts_with(":-") => {
            if set_nonempty {
                value.unwrap_or_default()
            } else {
                nested(&op[2..])?
            }
        }
        _ if op.starts_with('-') => match value {
            Some(v) => v,
            None => nested(&op[1..])?,
        },
        _ if op.starts_with(":?") => {
            if set_nonempty {
                value.unwrap_or_default()
            } else {
                bail!("{name}: {}", &op[2..])
            }
        }
        _ if op.starts_with('?') => match value {
            Some(v) => v,
            None => bail!("{name}: {}", &op[1..]),
        },
        _ => bail!("unsupported interpolation `${{{expr}}}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("v".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_follows_compose() {
        assert_eq!(interpolate("a${SET}b", &env).unwrap(), "avb");
        assert_eq!(
            interpolate("${EMPTY:-d}|${EMPTY-d}|${NOPE-d}", &env).unwrap(),
            "d||d"
        );
        assert_eq!(interpolate("$$SET $SET", &env).unwrap(), "$SET v");
        assert_eq!(interpolate("${NOPE:-${SET}}", &env).unwrap(), "v");
        let e = interpolate("${NOPE:?set NOPE in .env}", &env).unwrap_err();
        assert!(e.to_string().contains("NOPE: set NOPE in .env"), "{e}");
        assert!(interpolate("${EMPTY:?x}", &env).is_err());
        assert_eq!(interpolate("${EMPTY?x}", &env).unwrap(), "");
    }

    fn shipped() -> Compose {
        let env = |name: &str| -> Option<String> {
            match name {
                "POSTGRES_PASSWORD" | "TRIPWIRE_WEBHOOK_TOKEN" | "TRIPWIRE_PROPOSER_KEY" => {
                    Some("x".into())
                }
                _ => None,
            }
        };
        Compose::load(&crate::repo_root().join("docker-compose.yml"), &env).unwrap()
    }

    #[test]
    fn the_shipped_file_starts_in_dependency_order() {
        let c = shipped();
        let order = c.start_order(&[]).unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("postgres") < pos("migrate"));
        assert!(pos("migrate") < pos("indexer-ingest"));
        assert!(pos("alertmanager") < pos("watchdog"));
        assert!(!order.contains(&"anvil".to_string()), "demo profile off");
        let demo = c.start_order(&["demo"]).unwrap();
        assert!(
            demo.iter().position(|x| x == "demo-deploy")
                < demo.iter().position(|x| x == "demo-traffic")
        );
    }

    #[test]
    fn anchors_are_merged_and_required_variables_enforced() {
        let c = shipped();
        let wd = c.service("watchdog").unwrap();
        // From the shared anchor, plus the watchdog's own secrets.
        assert_eq!(
            wd.env("DATABASE_URL").unwrap(),
            "postgres://tripwire:x@postgres:5432/tripwire"
        );
        assert_eq!(wd.env("TRIPWIRE_WEBHOOK_TOKEN").unwrap(), "x");
        assert_eq!(wd.flag("--listen").unwrap(), "0.0.0.0:9466");
        let err =
            Compose::load(&crate::repo_root().join("docker-compose.yml"), &|_| None).unwrap_err();
        assert!(format!("{err:#}").contains("POSTGRES_PASSWORD"), "{err:#}");
    }
}
