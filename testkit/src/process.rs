//! Child processes of the binaries under test and benchmarked (`tripwire-indexer`,
//! `tripwire-watchdog`): started with a config file and a role, their output in a log file, their
//! HTTP address read from that log, their memory and CPU use read from `/proc` ([`crate::procfs`];
//! the peak and the total are read just before [`Proc::stop`] stops them, since they vanish with
//! the process), and SIGTERM / SIGKILL / wait helpers. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::procfs;

/// A child process writing its output to a log file.
pub struct Proc {
    /// The running (or exited) child.
    pub child: Child,
    /// The role it was started with (`ingest`, `sink`, `run`, ...), used in messages.
    pub role: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Peak RSS (`VmHWM`), in KiB, read by [`Proc::stop`] just before it stopped the process.
    pub hwm_kb: Option<u64>,
    /// CPU time used (user + system), in clock ticks, read by [`Proc::stop`] just before it
    /// stopped the process.
    pub cpu_ticks: Option<u64>,
    /// The exit status, once the process has been waited for.
    pub status: Option<ExitStatus>,
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
        // Random, so several processes of one role (a restart, two sinks) keep their own logs.
        let log = dir.join(format!("{role}-{}.log", crate::random_hex(8)));
        Self::spawn_logged(bin, config, role, log, rust_log, env)
    }

    /// [`Proc::spawn_with_env`] writing its output to `log` (created, or truncated).
    pub fn spawn_logged(
        bin: &Path,
        config: &Path,
        role: &str,
        log: PathBuf,
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Result<Proc> {
        let file = std::fs::File::create(&log)
            .with_context(|| format!("creating the log {}", log.display()))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            // A service never reads the terminal of the test or benchmark that started it.
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawn {} {role}", bin.display()))?;
        Ok(Self::from_child(child, role, log))
    }

    /// A child started otherwise (another command line), whose output goes to `log`.
    pub fn from_child(child: Child, role: &str, log: PathBuf) -> Proc {
        Proc {
            child,
            role: role.to_owned(),
            log,
            hwm_kb: None,
            cpu_ticks: None,
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn tail(&self, n: usize) -> String {
        let text = self.output();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The address of /metrics and /health, if the log already names it.
    pub fn logged_http_addr(&self) -> Option<String> {
        let out = self.output();
        let line = out
            .lines()
            .find(|l| l.contains("serving /metrics and /health"))?;
        let pos = line.find("bound=")?;
        Some(
            line[pos + 6..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect(),
        )
    }

    /// The address of /metrics and /health, read from the log (the config asks for port 0).
    pub async fn http_addr(&self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(addr) = self.logged_http_addr() {
                return Ok(addr);
            }
            if Instant::now() > deadline {
                bail!("{} never served HTTP; log:\n{}", self.role, self.output());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET `path` on the process's HTTP address: status and body.
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

    /// Current and peak resident memory; `None` once the process is gone.
    pub fn mem(&self) -> Option<procfs::Mem> {
        procfs::mem(self.pid())
    }

    /// CPU time used so far, in clock ticks ([`procfs::ticks_per_second`]); `None` once the
    /// process is gone.
    pub fn cpu_ticks_now(&self) -> Option<u64> {
        procfs::cpu_ticks(self.pid())
    }

    /// An error with the end of the log if the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.status = Some(status);
            bail!(
                "{} exited early with {status}; last lines of {}:\n{}",
                self.role,
                self.log.display(),
                self.tail(30)
            );
        }
        Ok(())
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, like `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.status = Some(status);
        }
    }

    /// SIGTERM, then the exit status (killed, with an error holding the log, after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.sigterm();
        self.wait(timeout)
    }

    /// Reads peak RSS and CPU time into [`Proc::hwm_kb`] and [`Proc::cpu_ticks`] (they vanish
    /// with the process), then SIGTERM and waits; killed after `timeout`, with an error holding
    /// the end of the log (a benchmark reports it and goes on).
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.hwm_kb = self.mem().map(|m| m.hwm_kb);
        self.cpu_ticks = self.cpu_ticks_now();
        self.sigterm();
        match self.wait_until(timeout)? {
            Some(status) => Ok(status),
            None => {
                self.kill9();
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; killed; last lines of {}:\n{}",
                    self.role,
                    self.log.display(),
                    self.tail(30)
                );
            }
        }
    }

    /// The exit status; killed, with an error holding the log, after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.wait_until(timeout)? {
            Some(status) => Ok(status),
            None => {
                self.kill9();
                bail!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.role,
                    self.output()
                );
            }
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

    fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// The exit status once the process exits within `timeout`; `None` if it still runs.
    fn wait_until(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill9();
        }
    }
}
