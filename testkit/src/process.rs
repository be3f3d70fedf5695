//! Child processes of the binaries under test (`tripwire-indexer`, `tripwire-watchdog`): started
//! with a config file and a role, their output in a log file, their HTTP address read from that
//! log, and SIGTERM / SIGKILL / wait helpers. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Proc {
    pub child: Child,
    pub role: String,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `bin --config <config> <role>` with `RUST_LOG=<rust_log>`, output into a log file
    /// in `dir`.
    pub fn spawn(
        bin: &Path,
        config: &Path,
        role: &str,
        dir: &Path,
        rust_log: &str,
    ) -> Result<Proc> {
        Self::spawn_with_env(bin, config, role, dir, rust_log, &[])
    }

    /// [`Proc::spawn`] with extra environment variables (e.g. `FAILPOINTS`).
    pub fn spawn_with_env(
        bin: &Path,
        config: &Path,
        role: &str,
        dir: &Path,
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Result<Proc> {
        let log = dir.join(format!("{role}-{}.log", crate::random_hex(8)));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Proc {
            child,
            role: role.to_owned(),
            log,
        })
    }

    /// The process's log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of /metrics and /health, read from the log (the config asks for port 0).
    pub async fn http_addr(&self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.output();
            if let Some(line) = out
                .lines()
                .find(|l| l.contains("serving /metrics and /health"))
            {
                if let Some(pos) = line.find("bound=") {
                    let addr: String = line[pos + 6..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    return Ok(addr);
                }
            }
            if Instant::now() > deadline {
                bail!("{} never served HTTP; log:\n{out}", self.role);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let addr = self.http_addr().await?;
        let r = reqwest::get(format!("http://{addr}{path}")).await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// The value of a metric line starting with `prefix` (name and labels), summed over matches.
    pub async fn metric(&self, prefix: &str) -> Result<f64> {
        let (_, text) = self.get("/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGKILL, like `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                self.kill9();
                bail!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.role,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a short-lived command (e.g. `migrate`) to succeed.
    pub async fn wait_ok(mut self) -> Result<Proc> {
        let status = tokio::task::block_in_place(|| self.wait(Duration::from_secs(60)))?;
        if !status.success() {
            bail!("{} failed ({status}):\n{}", self.role, self.output());
        }
        Ok(self)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
