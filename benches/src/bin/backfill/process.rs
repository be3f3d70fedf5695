//! What the benchmark reads from its `tripwire-indexer` processes (`testkit::process::Proc`,
//! which also reads their peak RSS and CPU time before it stops them): where their time went
//! according to their `/metrics`, and the sink's offset resets; and an optional `perf record`
//! attached to one ([`PerfRecord`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use testkit::process::Proc;

/// Scrapes `/metrics` (the address is in the process's log), saves it beside the log and
/// prints where the process spent its time according to its own histograms.
pub(crate) async fn report_metrics(p: &Proc, wall: f64) {
    let text = match scrape(p).await {
        Ok(t) => t,
        Err(e) => {
            println!("  ({} /metrics not available: {e:#})", p.role);
            return;
        }
    };
    let _ = std::fs::write(p.log.with_extension("metrics.txt"), &text);
    let metric_of = |stage: &str| format!("stage=\"{stage}\"");
    if p.role == "ingest" || p.role == "run" {
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
    if p.role == "sink" || p.role == "run" {
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

/// `/metrics` of `p`, at the address its log names (it served long before it is scraped).
async fn scrape(p: &Proc) -> Result<String> {
    let addr = p
        .logged_http_addr()
        .context("no `bound=` address in the log")?;
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text)
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
