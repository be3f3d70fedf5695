//! A real Prometheus Alertmanager per test (the Debian package's `prometheus-alertmanager`, or
//! `ALERTMANAGER_BIN`), run as a plain process with gossip off, and a small client for what tests
//! ask it: the alerts it holds and the silences.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A config routing everything to a receiver without integrations: alerts are kept and shown by
/// the API, nothing is sent anywhere.
pub const DEFAULT_CONFIG: &str =
    "route:\n  receiver: keep\n  group_wait: 0s\nreceivers:\n  - name: keep\n";

/// A running Alertmanager; killed (and its storage removed) when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    port: u16,
    dir: PathBuf,
    http: reqwest::Client,
}

fn binary() -> PathBuf {
    std::env::var_os("ALERTMANAGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"))
}

impl Alertmanager {
    /// Starts one with [`DEFAULT_CONFIG`].
    pub async fn spawn() -> anyhow::Result<Alertmanager> {
        Self::spawn_with_config(DEFAULT_CONFIG).await
    }

    /// Starts one with the given YAML config on a free loopback port.
    pub async fn spawn_with_config(config: &str) -> anyhow::Result<Alertmanager> {
        let dir = std::env::temp_dir().join(format!("tripwire-am-{}", crate::random_hex(12)));
        std::fs::create_dir_all(dir.join("data"))?;
        let config_path = dir.join("alertmanager.yml");
        std::fs::write(&config_path, config)?;
        let bin = binary();
        // Alertmanager cannot report a kernel-chosen port, so take a free one and retry if another
        // process grabs it first.
        let mut last_error = None;
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let log = std::fs::File::create(dir.join("alertmanager.log"))?;
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (install the Debian package prometheus-alertmanager, or set ALERTMANAGER_BIN)",
                        bin.display()
                    )
                })?;
            let mut am = Alertmanager {
                child,
                port,
                dir: dir.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
            };
            match am.wait_ready().await {
                Ok(()) => return Ok(am),
                Err(e) => {
                    let _ = am.child.kill();
                    let _ = am.child.wait();
                    // Keep the directory for the next attempt; `am`'s drop would remove it.
                    std::mem::forget(am);
                    last_error = Some(e);
                }
            }
        }
        let log = std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
            .context(format!("alertmanager did not start; its log:\n{log}")))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("alertmanager exited during start-up with {status}");
            }
            if let Ok(r) = self
                .http
                .get(format!("{}/-/ready", self.url()))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("alertmanager not ready within {STARTUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `GET /api/v2/alerts` with the given query (e.g. `active=true`), as JSON objects.
    pub async fn alerts_query(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .http
            .get(format!("{}/api/v2/alerts?{query}", self.url()))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    /// Every alert Alertmanager holds (active, silenced, inhibited, unprocessed).
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        self.alerts_query("").await
    }

    /// Alerts that are firing now (not resolved).
    pub async fn active_alerts(&self) -> anyhow::Result<Vec<Value>> {
        self.alerts_query("active=true&silenced=true&inhibited=true&unprocessed=true")
            .await
            .map(|v| {
                v.into_iter()
                    .filter(|a| a["status"]["state"] != "resolved")
                    .collect()
            })
    }

    /// `GET /api/v2/silences`.
    pub async fn silences(&self) -> anyhow::Result<Vec<Value>> {
        let r = self
            .http
            .get(format!("{}/api/v2/silences", self.url()))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    /// The process's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
