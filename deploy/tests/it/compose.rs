//! The stack's files agree with each other: what docker-compose.yml mounts exists, every address in
//! the Prometheus and Alertmanager configs is a compose service on the port that service listens
//! on, the webhook's token reaches both ends, the Grafana mounts match its provisioning, every
//! alert rule is unit-tested and has a runbook, the images run the versions the tests run, and the
//! Dockerfile builds every program the compose file starts.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tripwire_deploy::compose::{Compose, Mount};

fn root() -> PathBuf {
    tripwire_deploy::repo_root()
}

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The variables `.env.example` documents.
fn example_env() -> BTreeSet<String> {
    std::fs::read_to_string(root().join(".env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

fn compose() -> Compose {
    let vars = example_env();
    // Every variable .env.example lists, set: a required one missing from it fails the load.
    Compose::load(&root().join("docker-compose.yml"), &|name| {
        vars.contains(name).then(|| "x".to_string())
    })
    .expect("docker-compose.yml loads with every variable of .env.example set")
}

/// Port of `host:port` or `scheme://host:port/...`.
fn host_port(addr: &str) -> (String, u16) {
    let addr = addr.split("://").last().unwrap();
    let addr = addr.split('/').next().unwrap();
    let (h, p) = addr.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// The port a service listens on, from its command line.
fn listen_port(c: &Compose, service: &str) -> u16 {
    let s = c.service(service).unwrap();
    let addr = s
        .flag("--listen")
        .or_else(|| s.flag("--web.listen-address"))
        .or_else(|| s.flag("--port").map(|p| format!("0.0.0.0:{p}")))
        .unwrap_or_else(|| panic!("{service} has no listen flag"));
    host_port(&addr).1
}

#[test]
fn mounted_files_exist_and_named_volumes_are_declared() {
    let c = compose();
    for (name, s) in &c.services {
        for m in s.mounts(&root()).unwrap() {
            match m {
                Mount::Bind { source, .. } => {
                    assert!(
                        source.exists(),
                        "{name} mounts {}, which is missing",
                        source.display()
                    )
                }
                Mount::Volume { name: v, .. } => {
                    assert!(
                        c.volumes.contains_key(&v),
                        "{name} uses undeclared volume {v}"
                    )
                }
            }
        }
        for secret in &s.secrets {
            let def = c
                .secrets
                .get(secret)
                .unwrap_or_else(|| panic!("{name}: secret {secret} undeclared"));
            if let Some(var) = &def.environment {
                assert!(
                    example_env().contains(var),
                    ".env.example lacks {var} (secret {secret})"
                );
            }
        }
        for dep in s.depends_on.keys() {
            assert!(
                c.services.contains_key(dep),
                "{name} depends on unknown {dep}"
            );
        }
    }
}

#[test]
fn prometheus_scrapes_each_service_where_it_listens() {
    let c = compose();
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let mut jobs = BTreeSet::new();
    for job in prom["scrape_configs"].as_array().unwrap() {
        jobs.insert(job["job_name"].as_str().unwrap().to_string());
        for sc in job["static_configs"].as_array().unwrap() {
            for t in sc["targets"].as_array().unwrap() {
                let (host, port) = host_port(t.as_str().unwrap());
                assert_eq!(
                    listen_port(&c, &host),
                    port,
                    "scrape target {t} of {}",
                    job["job_name"]
                );
            }
        }
    }
    for am in prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
        .as_array()
        .unwrap()
    {
        let (host, port) = host_port(am.as_str().unwrap());
        assert_eq!(host, "alertmanager");
        assert_eq!(listen_port(&c, &host), port);
    }
    // The rules name these jobs.
    for job in ["tripwire-ingest", "tripwire-sink", "tripwire-watchdog"] {
        assert!(jobs.contains(job), "no scrape job {job}");
    }
    // The Tripwire health checks probe the port the process listens on.
    for svc in ["indexer-ingest", "indexer-sink", "watchdog"] {
        let s = c.service(svc).unwrap();
        let url = s.healthcheck.as_ref().unwrap().test.last().unwrap().clone();
        assert_eq!(
            host_port(&url).1,
            listen_port(&c, svc),
            "{svc} health check {url}"
        );
    }
}

#[test]
fn alertmanager_calls_the_watchdog_webhook_with_the_watchdogs_token() {
    let c = compose();
    let am = yaml("deploy/alertmanager/alertmanager.yml");
    let receiver = am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "tripwire-watchdog")
        .expect("a tripwire-watchdog receiver");
    let hook = &receiver["webhook_configs"][0];
    let url = hook["url"].as_str().unwrap();
    let (host, port) = host_port(url);
    assert_eq!(host, "watchdog");
    assert_eq!(port, listen_port(&c, "watchdog"));

    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("examples/tripwire.toml")).unwrap())
            .unwrap();
    let webhook = &config["watchdog"]["webhook"];
    let path = webhook["path"].as_str().unwrap();
    assert!(
        url.ends_with(path),
        "{url} does not end with the watchdog's path {path}"
    );
    // Alertmanager's token file is the compose secret made from the variable the watchdog reads.
    let token_var = webhook["bearer_token_env"].as_str().unwrap();
    let file = hook["http_config"]["authorization"]["credentials_file"]
        .as_str()
        .unwrap();
    let secret = file
        .strip_prefix("/run/secrets/")
        .expect("a compose secret");
    assert!(c
        .service("alertmanager")
        .unwrap()
        .secrets
        .contains(&secret.to_string()));
    assert_eq!(c.secrets[secret].environment.as_deref(), Some(token_var));
    assert_eq!(
        c.service("watchdog").unwrap().env(token_var).as_deref(),
        Some("x")
    );
    // And the watchdog's alerts go to the compose Alertmanager.
    let wd = c.service("watchdog").unwrap();
    let (am_host, am_port) = host_port(&wd.env("ALERTMANAGER_URL").unwrap());
    assert_eq!(
        (am_host.as_str(), am_port),
        ("alertmanager", listen_port(&c, "alertmanager"))
    );
}

#[test]
fn grafana_mounts_match_its_provisioning() {
    let c = compose();
    let g = c.service("grafana").unwrap();
    let mounts = g.mounts(&root()).unwrap();
    let target_of = |rel: &str| {
        mounts.iter().find_map(|m| match m {
            Mount::Bind { source, target } if source.ends_with(rel) => Some(target.clone()),
            _ => None,
        })
    };
    assert_eq!(
        target_of("deploy/grafana/provisioning").as_deref(),
        Some("/etc/grafana/provisioning")
    );
    let provider = yaml("deploy/grafana/provisioning/dashboards/tripwire.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(
        target_of("deploy/grafana/dashboards").as_deref(),
        Some(path)
    );
    let home = g.env("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").unwrap();
    let file = home.strip_prefix(path).unwrap().trim_start_matches('/');
    assert!(
        root()
            .join("deploy/grafana/dashboards")
            .join(file)
            .is_file(),
        "{home}"
    );
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let (host, port) = host_port(ds["datasources"][0]["url"].as_str().unwrap());
    assert_eq!(port, listen_port(&c, &host));
}

#[test]
fn every_alert_has_a_runbook_labels_and_a_unit_test() {
    let rules = yaml("deploy/prometheus/rules/tripwire.rules.yml");
    let tests =
        std::fs::read_to_string(root().join("deploy/prometheus/rules/tripwire.test.yml")).unwrap();
    let mut n = 0;
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap();
            n += 1;
            let sev = r["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning"].contains(&sev),
                "{name}: severity {sev:?}"
            );
            let prio = r["labels"]["priority"].as_str().unwrap_or_default();
            assert!(["P1", "P2"].contains(&prio), "{name}: priority {prio:?}");
            assert_eq!(
                sev == "critical",
                prio == "P1",
                "{name}: P1 pages, so it is critical"
            );
            let runbook = r["annotations"]["runbook"].as_str().unwrap_or_default();
            assert!(
                root().join(runbook).is_file(),
                "{name}: runbook {runbook:?} missing"
            );
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "{name} has no case in tripwire.test.yml"
            );
        }
    }
    assert!(n >= 14, "{n} alerts");
}

/// The compose images run the versions the tests run (Debian's packages), so a rule or routing
/// that passes here behaves the same in the stack.
#[test]
fn images_run_the_tested_versions() {
    let c = compose();
    for (svc, program) in [
        ("prometheus", "prometheus"),
        ("alertmanager", "prometheus-alertmanager"),
    ] {
        let out = std::process::Command::new(program)
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let version = text
            .split_whitespace()
            .skip_while(|w| *w != "version")
            .nth(1)
            .unwrap_or_else(|| panic!("{program} --version: {text}"))
            // Debian's suffix: 2.42.0+ds
            .split(['+', '-'])
            .next()
            .unwrap()
            .to_string();
        let image = c.service(svc).unwrap().image.clone().unwrap();
        assert!(
            image.ends_with(&format!(":v{version}")),
            "{svc} image {image}, tests run {version}"
        );
    }
    // The demo's anvil image and the tests' npm anvil are the same release.
    let pkg: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tools/package.json")).unwrap())
            .unwrap();
    let anvil = pkg["dependencies"]["@foundry-rs/anvil-linux-amd64"]
        .as_str()
        .unwrap();
    let image = c.service("anvil").unwrap().image.clone().unwrap();
    assert!(
        image.ends_with(&format!(":v{anvil}")),
        "anvil image {image}, tests run {anvil}"
    );
}

/// The compose broker is the Apache Kafka release the tests run (scripts/kafka): its image tag is
/// `kafka.version` of deploy/kafka/pom.xml, the one place that version is pinned.
#[test]
fn kafka_image_runs_the_tested_version() {
    let pom = std::fs::read_to_string(root().join("deploy/kafka/pom.xml")).unwrap();
    // The line scripts/lib.sh (kafka_version) reads.
    let version = pom
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("<kafka.version>")?
                .strip_suffix("</kafka.version>")
        })
        .map(str::trim)
        .expect("deploy/kafka/pom.xml has no <kafka.version>...</kafka.version> line");
    assert!(
        !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "kafka.version {version:?} in deploy/kafka/pom.xml is not a release number"
    );
    let image = compose().service("kafka").unwrap().image.clone().unwrap();
    assert_eq!(
        image,
        format!("apache/kafka:{version}"),
        "the kafka service runs {image}, the tests run Apache Kafka {version} (deploy/kafka/pom.xml)"
    );
}

#[test]
fn the_image_holds_every_program_the_compose_file_runs() {
    let c = compose();
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let runtime = dockerfile
        .split("AS runtime")
        .nth(1)
        .unwrap()
        .split("\nFROM ")
        .next()
        .unwrap();
    assert!(
        runtime.contains("USER 10001"),
        "the runtime stage runs as an unprivileged user"
    );
    for (name, s) in &c.services {
        let Some(image) = &s.image else { continue };
        let Some(program) = s.argv().first().cloned() else {
            continue;
        };
        if !program.starts_with("tripwire-") {
            continue;
        }
        assert!(
            dockerfile.contains(&format!("--bin {program}")),
            "Dockerfile does not build {program}"
        );
        if image.contains("tripwire-demo") {
            assert!(
                dockerfile.contains(&format!("/out/{program} /usr/local/bin/")),
                "{name}: demo stage lacks {program}"
            );
        } else {
            assert!(
                runtime.contains(&format!("/out/{program}")),
                "{name}: runtime stage lacks {program}"
            );
        }
    }
    // Its Rust is at least the workspace's.
    let cargo: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let msrv = cargo["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let arg = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .unwrap();
    let v = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        v(arg) >= v(msrv),
        "Dockerfile Rust {arg} < rust-version {msrv}"
    );
}
