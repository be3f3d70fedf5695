//! The child processes of a run: a `tripwire-indexer` process ([`Proc`]) with its log file, peak
//! RSS and CPU time read before it is stopped, and what its `/metrics` say about where its time
//! went; and an optional `perf record` attached to it ([`PerfRecord`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tripwire_benches::procfs;

/// A `tripwire-indexer` child process writing its output to a file.
pub(crate) struct Proc {
    child: Child,
    pub(crate) role: &'static str,
    pub(crate) log: PathBuf,
    /// Peak RSS read just before it was stopped (`VmHWM`), in KiB.
    pub(crate) hwm_kb: Option<u64>,
    /// CPU time used, read just before it was stopped, in ticks.
    pub(crate) cpu_ticks: Option<u64>,
    pub(crate) status: Option<ExitStatus>,
}

impl Proc {
    pub(crate) fn spawn(
        bin: &Path,
        config: &Path,
        role: &'static str,
        dir: &Path,
        log: &str,
    ) -> Result<Proc> {
        let path = dir.join(format!("{role}.log"));
        let file = std::fs::File::create(&path)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawning {} {role}", bin.display()))?;
        Ok(Proc {
            child,
            role,
            log: path,
            hwm_kb: None,
            cpu_ticks: None,
            status: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn ensure_running(&mut self) -> Result<()> {
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

    /// Reads peak RSS and CPU time (they vanish with the process), then SIGTERM and wait.
    pub(crate) fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.hwm_kb = procfs::mem(self.pid()).map(|m| m.hwm_kb);
        self.cpu_ticks = procfs::cpu_ticks(self.pid());
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait()?;
                self.status = Some(status);
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; killed",
                    self.role
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrapes `/metrics` (the address is in the process's log), saves it beside the log and
    /// prints where the process spent its time according to its own histograms.
    pub(crate) async fn report_metrics(&self, wall: f64) {
        let text = match self.scrape().await {
            Ok(t) => t,
            Err(e) => {
                println!("  ({} /metrics not available: {e:#})", self.role);
                return;
            }
        };
        let _ = std::fs::write(self.log.with_extension("metrics.txt"), &text);
        let metric_of = |stage: &str| format!("stage=\"{stage}\"");
        if self.role == "ingest" || self.role == "run" {
            let stage = metric_of("ingest");
            let steps = metric_sum(&text, "tripwire_batch_duration_seconds_count", &stage);
            let step_s = metric_sum(&text, "tripwire_batch_duration_seconds_sum", &stage);
            let batch = "method=\"batch:eth_getLogs\"";
            let rpc_s = metric_sum(&text, "tripwire_rpc_latency_seconds_sum", batch);
            let rpc_n = metric_sum(&text, "tripwire_rpc_latency_seconds_count", batch);
            // The ranges of one step are fetched concurrently: the fetch phase of a step lasts
            // about one request's latency, and the rest of the step is local work.
            let per_rpc = rpc_s / rpc_n.max(1.0);
            let fetch_s = (per_rpc * steps).min(step_s);
            println!(
                "  ingest metrics: {steps:.0} steps of {:.1} ranges ({:.1} ms per step); \
                 {rpc_n:.0} range requests of {:.1} ms mean latency incl. decoding. Wall time: \
                 fetch phase ~{fetch_s:.2} s ({:.0}%), build + publish + Kafka acks + cursor save \
                 ~{:.2} s ({:.0}%), outside steps (startup, polling, waiting for the sink) {:.2} s",
                rpc_n / steps.max(1.0),
                1e3 * step_s / steps.max(1.0),
                1e3 * per_rpc,
                100.0 * fetch_s / step_s.max(1e-9),
                step_s - fetch_s,
                100.0 * (step_s - fetch_s) / step_s.max(1e-9),
                (wall - step_s).max(0.0)
            );
            let range = metric_sum(&text, "tripwire_rpc_range_blocks", "");
            let density = metric_sum(&text, "tripwire_rpc_range_logs_per_block", "");
            let lead = metric_sum(&text, "tripwire_ingest_lead_bytes", "");
            println!(
                "  ingest ranges: {range:.0} blocks per eth_getLogs at the end, {density:.0} logs \
                 per block estimated; lead after the last publish {lead:.0} bytes"
            );
        }
        if self.role == "sink" || self.role == "run" {
            let stage = metric_of("sink");
            let steps = metric_sum(&text, "tripwire_batch_duration_seconds_count", &stage);
            let step_s = metric_sum(&text, "tripwire_batch_duration_seconds_sum", &stage);
            let records = metric_sum(&text, "tripwire_records_consumed_total", "");
            println!(
                "  sink metrics: {steps:.0} batches of {:.0} records on average; write_batch \
                 (Postgres) {step_s:.2} s ({:.0}% of {wall:.1} s); the rest, {:.2} s, is startup, \
                 consuming and parsing",
                records / steps.max(1.0),
                100.0 * step_s / wall,
                (wall - step_s).max(0.0)
            );
        }
    }

    async fn scrape(&self) -> Result<String> {
        let log = std::fs::read_to_string(&self.log)?;
        let addr = log
            .lines()
            .find_map(|l| l.split("bound=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .context("no `bound=` address in the log")?;
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await?
            .text()
            .await?;
        Ok(text)
    }

    pub(crate) fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `perf record` attached to a process until [`PerfRecord::stop`].
pub(crate) struct PerfRecord {
    child: Child,
    out: PathBuf,
}

impl PerfRecord {
    pub(crate) fn attach(pid: u32, out: PathBuf) -> Result<PerfRecord> {
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "250",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record (is perf installed?)")?;
        Ok(PerfRecord { child, out })
    }

    pub(crate) fn stop(mut self) {
        // SAFETY: plain kill(2) on our own child's pid; perf writes its file on SIGINT.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        println!(
            "  perf profile: {} (perf report -i <file> --no-children)",
            self.out.display()
        );
    }
}

/// Lines of the sink's log reporting that librdkafka jumped over records it could not fetch.
pub(crate) fn offset_resets(sink: &Proc) -> usize {
    std::fs::read_to_string(&sink.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("offset reset") || l.contains("Offset out of range"))
        .count()
}

/// Sum of the samples of `name` whose labels contain `label` (Prometheus text format).
fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
