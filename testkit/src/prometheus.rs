//! A real Prometheus per test (the Debian package's `prometheus`, or `PROMETHEUS_BIN`): a config
//! and rule files of the test's choosing, a free loopback port, storage in a temporary folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts with `config` (YAML; `rules.yml` next to it holds `rules`).
    pub async fn spawn(config: &str, rules: &str) -> anyhow::Result<Prometheus> {
        let dir = std::env::temp_dir().join(format!("tripwire-prom-{}", crate::random_hex(12)));
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("prometheus.yml"), config)?;
        std::fs::write(dir.join("rules.yml"), rules)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let bin = std::env::var_os("PROMETHEUS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(&bin)
            .current_dir(&dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install the Debian package prometheus)",
                    bin.display()
                )
            })?;
        let mut p = Prometheus { child, port, dir };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = p.child.try_wait()? {
                bail!("prometheus exited with {status}; log:\n{}", p.log());
            }
            if let Ok(r) = http.get(format!("{}/-/ready", p.url())).send().await {
                if r.status().is_success() {
                    return Ok(p);
                }
            }
            if Instant::now() > deadline {
                bail!("prometheus not ready; log:\n{}", p.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/alerts`: the alerts its rules produce now.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let v: Value = reqwest::get(format!("{}/api/v1/alerts", self.url()))
            .await?
            .json()
            .await?;
        Ok(v["data"]["alerts"].as_array().cloned().unwrap_or_default())
    }
}
