//! Runs services of `docker-compose.yml` as local processes, with the compose file's own commands,
//! environment, mounted files and health checks: the images' programs are the workspace's binaries
//! and the Debian packages' `prometheus` and `prometheus-alertmanager`; container paths are mapped
//! to the mounted project folders (named volumes to temporary folders); and each process runs in a
//! private mount namespace whose `/etc/hosts` resolves the compose service names to the loopback
//! and whose `/run/secrets` holds the compose secrets. Ports are the compose file's, so the stack
//! needs 8545, 9090, 9093 and 9464-9466 free on the loopback.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testkit::process::Proc;
use tripwire_deploy::compose::{Compose, Mount, Service};

pub(crate) struct Stack {
    pub compose: Compose,
    pub root: PathBuf,
    pub dir: PathBuf,
    hosts: PathBuf,
    run: PathBuf,
    /// What `.env` gives Compose.
    pub dotenv: BTreeMap<String, String>,
    /// Addresses of the services the test brings itself (Postgres, Kafka), replacing the
    /// compose file's values of these variables.
    pub overrides: BTreeMap<String, String>,
    pub procs: BTreeMap<String, Proc>,
}

impl Stack {
    pub(crate) fn new(
        dotenv: BTreeMap<String, String>,
        overrides: BTreeMap<String, String>,
    ) -> Result<Stack> {
        let root = tripwire_deploy::repo_root();
        let lookup = |name: &str| dotenv.get(name).cloned();
        let compose = Compose::load(&root.join("docker-compose.yml"), &lookup)?;
        let dir = std::env::temp_dir().join(format!("tripwire-stack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run/secrets"))?;
        let names: Vec<&str> = compose.services.keys().map(String::as_str).collect();
        let hosts = dir.join("hosts");
        // The machine's own entries (its hostname, which librdkafka's mock broker advertises),
        // then the compose names.
        let own = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        std::fs::write(&hosts, format!("{own}\n127.0.0.1 {}\n", names.join(" ")))?;
        for (name, def) in &compose.secrets {
            let value = match (&def.environment, &def.file) {
                (Some(var), _) => dotenv
                    .get(var)
                    .cloned()
                    .with_context(|| format!("secret {name}: {var} is not in the test's .env"))?,
                (None, Some(file)) => std::fs::read_to_string(root.join(file))?,
                (None, None) => bail!("secret {name} has neither environment nor file"),
            };
            std::fs::write(dir.join("run/secrets").join(name), value)?;
        }
        Ok(Stack {
            compose,
            run: dir.join("run"),
            hosts,
            dir,
            root,
            dotenv,
            overrides,
            procs: BTreeMap::new(),
        })
    }

    /// Fails early, with a clear reason, when a port of the stack is taken.
    pub(crate) fn check_ports(&self, ports: &[u16]) -> Result<()> {
        for p in ports {
            if std::net::TcpListener::bind(("127.0.0.1", *p)).is_err() {
                bail!("port {p} is in use on 127.0.0.1: the stack test runs the compose services on their own ports (is the demo running?)");
            }
        }
        Ok(())
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.dir.join("volumes").join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Maps a container path to the local path of the mount that holds it.
    pub(crate) fn local_path(&self, service: &Service, path: &str) -> Result<Option<PathBuf>> {
        for m in service.mounts(&self.root)? {
            let (target, base) = match &m {
                Mount::Bind { source, target } => (target.clone(), source.clone()),
                Mount::Volume { name, target } => (target.clone(), self.volume_dir(name)?),
            };
            if let Some(rest) = path.strip_prefix(&target) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Ok(Some(base.join(rest.trim_start_matches('/'))));
                }
            }
        }
        Ok(None)
    }

    /// Rewrites every container path inside `arg` (`--config.file=/etc/prometheus/x.yml`).
    fn map_arg(&self, service: &Service, arg: &str) -> Result<String> {
        let (prefix, value) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with('-') => (format!("{k}="), v),
            _ => (String::new(), arg),
        };
        Ok(match self.local_path(service, value)? {
            Some(p) => format!("{prefix}{}", p.display()),
            None => arg.to_string(),
        })
    }

    /// The local program for the first word of a service's argv; `""` is the image's entrypoint.
    pub(crate) fn program(&self, service: &Service, word: &str) -> Result<PathBuf> {
        let image = service.image.as_deref().unwrap_or("");
        Ok(match word {
            "" if image.starts_with("prom/prometheus") => PathBuf::from("/usr/bin/prometheus"),
            "" if image.starts_with("prom/alertmanager") => {
                PathBuf::from("/usr/bin/prometheus-alertmanager")
            }
            "" => bail!("no local program for the entrypoint of image {image}"),
            other => testkit::program(other)?,
        })
    }

    /// The service's argv with a local program and local paths.
    pub(crate) fn argv(&self, name: &str) -> Result<Vec<String>> {
        let s = self.compose.service(name)?;
        let argv = s.argv();
        let image = s.image.as_deref().unwrap_or("");
        // The Prometheus images' entrypoint is the program; the command holds only its flags.
        let (program, args) = if image.starts_with("prom/") {
            (self.program(s, "")?, &argv[..])
        } else {
            let first = argv
                .first()
                .with_context(|| format!("service {name} has no command"))?;
            (self.program(s, first)?, &argv[1..])
        };
        let mut out = vec![program.display().to_string()];
        for a in args {
            out.push(self.map_arg(s, a)?);
        }
        Ok(out)
    }

    /// The service's environment, container paths mapped, the test's overrides applied.
    pub(crate) fn env(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let s = self.compose.service(name)?;
        let mut env = BTreeMap::new();
        for (k, v) in &s.environment {
            let v = v.to_string();
            let v = match self.local_path(s, &v)? {
                Some(p) if v.starts_with('/') => p.display().to_string(),
                _ => v,
            };
            env.insert(k.clone(), v);
        }
        for (k, v) in &self.overrides {
            if env.contains_key(k) {
                env.insert(k.clone(), v.clone());
            }
        }
        Ok(env)
    }

    /// A command in the stack's namespace: compose names resolve to the loopback, secrets at
    /// /run/secrets.
    pub(crate) fn command(&self, argv: &[String], env: &BTreeMap<String, String>) -> Command {
        let mut c = Command::new("unshare");
        c.arg("--mount").arg("--propagation").arg("private");
        // As root the mount namespace is enough; otherwise a user namespace grants the mounts.
        if unsafe { libc::geteuid() } != 0 {
            c.arg("--map-root-user");
        }
        c.arg("sh")
            .arg("-c")
            .arg(
                r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /run && shift 2 && exec "$@""#,
            )
            .arg("tripwire-stack")
            .arg(&self.hosts)
            .arg(&self.run)
            .args(argv);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .envs(env)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    /// Starts service `name`: runs it to completion when its restart policy is "no", otherwise
    /// waits for its health check to pass.
    pub(crate) async fn up(&mut self, name: &str) -> Result<()> {
        let argv = self.argv(name)?;
        let env = self.env(name)?;
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = self
            .command(&argv, &env)
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}: {argv:?}"))?;
        let proc = Proc::from_child(child, name, log);
        let s = self.compose.service(name)?;
        if s.restart.as_deref() == Some("no") {
            proc.wait_ok().await?;
            return Ok(());
        }
        let check = s.healthcheck.as_ref().map(|h| h.test.clone());
        self.procs.insert(name.to_string(), proc);
        if let Some(test) = check {
            self.wait_healthy(name, &test).await?;
        }
        Ok(())
    }

    /// Runs the compose health check (`CMD` form, programs from the host) until it passes.
    async fn wait_healthy(&mut self, name: &str, test: &[String]) -> Result<()> {
        let (kind, argv) = test.split_first().context("empty healthcheck")?;
        if kind != "CMD" {
            bail!("{name}: the stack test runs CMD health checks only, not {kind}");
        }
        let s = self.compose.service(name)?;
        let program = self.program(s, &argv[0])?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = Command::new(&program)
                .args(&argv[1..])
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("{name}: running its health check {argv:?}"))?;
            if out.status.success() {
                return Ok(());
            }
            let proc = self.procs.get_mut(name).expect("started above");
            if !proc.is_running() {
                bail!("{name} exited before it was healthy:\n{}", proc.output());
            }
            if Instant::now() > deadline {
                bail!(
                    "{name}: health check {argv:?} still fails after 90 s:\n{}",
                    proc.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGTERM, and the process must exit by itself with success within the compose grace period.
    pub(crate) fn stop(&mut self, name: &str) -> Result<()> {
        let mut p = self
            .procs
            .remove(name)
            .with_context(|| format!("{name} is not running"))?;
        let status = p.terminate(Duration::from_secs(30))?;
        if !status.success() {
            bail!("{name} exited with {status} after SIGTERM:\n{}", p.output());
        }
        Ok(())
    }

    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.procs.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
