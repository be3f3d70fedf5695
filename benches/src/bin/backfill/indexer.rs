//! Step 3: the indexer. One run sets up a database and a topic, starts `tripwire-indexer` as one
//! `run` process or as `ingest` and `sink` (pipelined or staged), waits until Postgres holds the
//! head, and collects what [`IndexerRun`] reports: times, peak RSS, CPU, rows and Kafka state.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testkit::{kafka::TestKafka, postgres::TestDb, process::Proc};
use tripwire_benches::procfs;

use crate::chain::{Chain, CHAIN_ID};
use crate::cli::{Args, BloomCheck, Mode};
use crate::config::config;
use crate::cpu::CpuMeter;
use crate::process::{offset_resets, report_metrics, PerfRecord};

/// What the indexer run measured.
#[derive(Default)]
pub(crate) struct IndexerRun {
    /// Pipelined: from spawning both processes until Postgres holds the head.
    pub(crate) end_to_end: Option<f64>,
    /// Until the ingest cursor reached the head (pipelined: with the sink running alongside).
    pub(crate) ingest: Option<f64>,
    /// Staged only: the sink alone, from its start until Postgres holds the head.
    pub(crate) sink: Option<f64>,
    /// Per indexer process: (role, peak RSS in MB, CPU seconds over the run).
    pub(crate) procs: Vec<(&'static str, Option<f64>, Option<f64>)>,
    /// CPU seconds over the pipelined run of anvil and of every Postgres backend.
    pub(crate) anvil_cpu_s: Option<f64>,
    pub(crate) postgres_cpu_s: Option<f64>,
    pub(crate) anvil_hwm_mb: Option<f64>,
    pub(crate) this_hwm_mb: Option<f64>,
    pub(crate) exit_ok: Vec<(&'static str, Option<ExitStatus>)>,
    pub(crate) rows: i64,
    pub(crate) block_rows: i64,
    /// Records in the topic at the end (high watermark) and the first one still held.
    pub(crate) kafka_high: i64,
    pub(crate) kafka_low: i64,
    /// Staged: records the broker had already dropped when the sink started.
    pub(crate) dropped_before_sink: i64,
    /// Times the sink's consumer skipped records the broker no longer had.
    pub(crate) offset_resets: usize,
    pub(crate) mock: bool,
}

/// Low and high watermark of partition 0 of `topic`: a low watermark above 0 means the broker
/// dropped the oldest records (the mock broker keeps only about 5 MiB per partition).
async fn watermarks(brokers: &str, topic: &str) -> Result<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "tripwire-bench-watermarks")
            .create()?;
        Ok(consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10))?)
    })
    .await?
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Until {
    Ingested,
    Synced,
}

/// Polls `indexer_state` until the ingest cursor (or the sink's) reaches the head. Returns the
/// seconds since `t0` at which the ingest cursor, and then the sink cursor, reached it.
async fn wait_for(
    db: &TestDb,
    head: u64,
    procs: &mut [&mut Proc],
    until: Until,
    t0: Instant,
    timeout: Duration,
) -> Result<(Option<f64>, Option<f64>)> {
    let mut ingested_at = None;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    loop {
        for p in procs.iter_mut() {
            p.ensure_running()?;
        }
        let row: Option<(Option<i64>, Option<i64>)> = match sqlx::query_as(
            "SELECT last_ingested_block, last_synced_block FROM indexer_state WHERE chain_id = $1",
        )
        .bind(CHAIN_ID as i64)
        .fetch_optional(db.pool())
        .await
        {
            Ok(row) => row,
            // The processes apply the migrations when they start: no view yet.
            Err(_) if t0.elapsed() < Duration::from_secs(60) => None,
            Err(e) => return Err(e).context("polling indexer_state"),
        };
        let (ingested, synced) = row.map_or((-1, -1), |(i, s)| (i.unwrap_or(-1), s.unwrap_or(-1)));
        let now = t0.elapsed().as_secs_f64();
        if ingested_at.is_none() && ingested >= head as i64 {
            ingested_at = Some(now);
            println!("  {now:>6.1} s  ingest cursor reached the head (block {head})");
        }
        match until {
            Until::Ingested if ingested_at.is_some() => return Ok((ingested_at, None)),
            Until::Synced if synced >= head as i64 => {
                println!("  {now:>6.1} s  Postgres synced to the head (block {head})");
                return Ok((ingested_at, Some(now)));
            }
            _ => {}
        }
        if Instant::now() >= next_report {
            let rss: Vec<String> = procs
                .iter()
                .map(|p| {
                    let m = procfs::mem(p.pid()).unwrap_or_default();
                    format!("{} RSS {:.0} MB", p.role, m.rss_kb as f64 / 1024.0)
                })
                .collect();
            println!(
                "  {now:>6.1} s  ingested block {ingested}, synced block {synced} of {head}; {}",
                rss.join(", ")
            );
            next_report += Duration::from_secs(5);
        }
        if t0.elapsed() > timeout {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {} ({})\n{}", p.role, p.log.display(), p.tail(20)))
                .collect();
            bail!(
                "not done within {timeout:?}: ingested {ingested}, synced {synced}, head {head}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process that did not stop cleanly is a FAIL line in the summary, not an abort.
fn warn_on(r: Result<ExitStatus>) {
    if let Err(e) = r {
        println!("  WARNING: {e:#}");
    }
}

/// `bin --config <config> <role>`, its output in `<dir>/<role>.log` (one process per role and
/// run directory, so the log, its `.metrics.txt` and `.perf.data` are named by the role alone).
fn spawn(bin: &Path, config: &Path, role: &str, dir: &Path, log: &str) -> Result<Proc> {
    Proc::spawn_logged(bin, config, role, dir.join(format!("{role}.log")), log, &[])
}

fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|k| k as f64 / 1024.0)
}

pub(crate) async fn run_indexer(
    args: &Args,
    chain: &Chain,
    bin: &Path,
    dir: &Path,
    mode: Mode,
    providers: usize,
    bloom: BloomCheck,
) -> Result<IndexerRun> {
    let db = TestDb::create()
        .await
        .context("creating the Postgres database")?;
    // Run mode: the indexer starts its own embedded broker.
    let kafka = match mode {
        Mode::Split => Some(TestKafka::start().context("starting Kafka")?),
        Mode::Run => None,
    };
    let topic = match &kafka {
        Some(k) => k.unique_topic("tripwire-bench"),
        None => "tripwire-bench".to_owned(),
    };
    if let Some(k) = &kafka {
        k.create_topic(&topic, 1).await?;
    }
    let brokers = kafka
        .as_ref()
        .map_or("embedded".to_owned(), |k| k.brokers());
    println!(
        "Postgres database {}; Kafka {} ({}), topic {topic}",
        db.name(),
        brokers,
        match &kafka {
            None => "the embedded broker inside tripwire-indexer run",
            Some(k) if k.is_mock() => {
                "librdkafka mock broker inside this process; it keeps only ~5 MiB per partition"
            }
            Some(_) => "KAFKA_BROKERS",
        }
    );
    let config = config(
        args,
        chain,
        &db,
        &brokers,
        &topic,
        providers,
        bloom,
        kafka.as_ref().is_some_and(TestKafka::is_mock),
    )?
    .write(dir.join("tripwire.toml"))?;
    let timeout = Duration::from_secs(args.timeout_s);
    let head = chain.head;
    let mut run = IndexerRun {
        mock: kafka.as_ref().is_none_or(TestKafka::is_mock),
        ..IndexerRun::default()
    };
    let log = args.indexer_log.as_str();
    let perf = |p: &Proc| -> Result<Option<PerfRecord>> {
        if !args.perf {
            return Ok(None);
        }
        PerfRecord::attach(p.pid(), dir.join(format!("{}.perf.data", p.role))).map(Some)
    };
    let secs = |ticks: u64| ticks as f64 / procfs::ticks_per_second() as f64;

    if args.staged {
        // Stage 1: ingest alone until its cursor reaches the head.
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let mut ingest = spawn(bin, &config, "ingest", dir, log)?;
        let prof = perf(&ingest)?;
        let (ingested, _) =
            wait_for(&db, head, &mut [&mut ingest], Until::Ingested, t0, timeout).await?;
        run.ingest = ingested;
        let ingest_cpu = procfs::cpu_ticks(ingest.pid()).unwrap_or(0);
        cpu.finish(&[("ingest", ingest_cpu)])
            .print("stage 1, ingest alone");
        report_metrics(
            &ingest,
            ingested.unwrap_or_else(|| t0.elapsed().as_secs_f64()),
        )
        .await;
        if let Some(p) = prof {
            p.stop();
        }
        let stopped = ingest.stop(Duration::from_secs(60));
        run.procs
            .push(("ingest", mb(ingest.hwm_kb), Some(secs(ingest_cpu))));
        run.exit_ok.push(("ingest", ingest.status));
        warn_on(stopped);
        let (low, high) = watermarks(&brokers, &topic).await?;
        println!("  topic holds offsets {low}..{high}");
        run.dropped_before_sink = low;
        if low > 0 {
            println!(
                "  WARNING: the broker already dropped the first {low} of {high} records (mock \
                 retention): the sink stage only sees the rest"
            );
        }

        // Stage 2: the sink alone drains the topic into Postgres.
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let mut sink = spawn(bin, &config, "sink", dir, log)?;
        let prof = perf(&sink)?;
        let (_, synced) = wait_for(&db, head, &mut [&mut sink], Until::Synced, t0, timeout).await?;
        run.sink = synced;
        let sink_cpu = procfs::cpu_ticks(sink.pid()).unwrap_or(0);
        cpu.finish(&[("sink", sink_cpu)])
            .print("stage 2, sink alone");
        report_metrics(&sink, t0.elapsed().as_secs_f64()).await;
        if let Some(p) = prof {
            p.stop();
        }
        let stopped = sink.stop(Duration::from_secs(60));
        run.procs
            .push(("sink", mb(sink.hwm_kb), Some(secs(sink_cpu))));
        run.exit_ok.push(("sink", sink.status));
        run.offset_resets = offset_resets(&sink);
        warn_on(stopped);
    } else {
        let cpu = CpuMeter::start(chain.anvil.pid());
        let t0 = Instant::now();
        let roles: &[&'static str] = match mode {
            Mode::Run => &["run"],
            Mode::Split => &["ingest", "sink"],
        };
        let mut procs = roles
            .iter()
            .map(|role| spawn(bin, &config, role, dir, log))
            .collect::<Result<Vec<_>>>()?;
        let mut profs = Vec::new();
        for p in &procs {
            profs.push(perf(p)?);
        }
        let mut refs: Vec<&mut Proc> = procs.iter_mut().collect();
        let waited = wait_for(&db, head, &mut refs, Until::Synced, t0, timeout).await;
        let (ingested, synced) = match waited {
            Ok(w) => w,
            Err(e) => {
                for p in &mut procs {
                    let _ = p.stop(Duration::from_secs(10));
                }
                return Err(e);
            }
        };
        run.ingest = ingested;
        run.end_to_end = synced;
        // All read before any is stopped.
        let ticks: Vec<u64> = procs
            .iter()
            .map(|p| procfs::cpu_ticks(p.pid()).unwrap_or(0))
            .collect();
        let labelled: Vec<(&str, u64)> = procs
            .iter()
            .map(|p| p.role.as_str())
            .zip(ticks.iter().copied())
            .collect();
        let report = cpu.finish(&labelled);
        report.print("the pipelined run");
        run.anvil_cpu_s = report.part("anvil");
        run.postgres_cpu_s = report.part("postgres");
        let wall = t0.elapsed().as_secs_f64();
        for p in &procs {
            let until = if p.role == "ingest" {
                ingested.unwrap_or(wall)
            } else {
                wall
            };
            report_metrics(p, until).await;
        }
        for p in profs.into_iter().flatten() {
            p.stop();
        }
        for ((p, t), role) in procs.iter_mut().zip(ticks).zip(roles) {
            let stopped = p.stop(Duration::from_secs(60));
            run.procs.push((*role, mb(p.hwm_kb), Some(secs(t))));
            run.exit_ok.push((*role, p.status));
            if p.role != "ingest" {
                run.offset_resets = offset_resets(p);
            }
            warn_on(stopped);
        }
    }
    if kafka.is_some() {
        (run.kafka_low, run.kafka_high) = watermarks(&brokers, &topic).await?;
    }
    run.anvil_hwm_mb = chain
        .anvil
        .pid()
        .and_then(procfs::mem)
        .map(|m| m.hwm_kb as f64 / 1024.0);
    run.this_hwm_mb = procfs::mem(std::process::id()).map(|m| m.hwm_kb as f64 / 1024.0);
    run.rows = sqlx::query_scalar("SELECT count(*) FROM logs")
        .fetch_one(db.pool())
        .await?;
    run.block_rows = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(db.pool())
        .await?;
    Ok(run)
}
