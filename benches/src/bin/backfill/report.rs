//! What the benchmark prints: the summary of each indexer run, checked against the targets of
//! acceptance point A6, and the table of all runs at the end.

use crate::ceiling::{ceiling_span, Ceiling};
use crate::chain::Chain;
use crate::cli::{Args, BloomCheck, Mode};
use crate::indexer::IndexerRun;

/// Targets of acceptance point A6 on the reference 2-core machine.
const TARGET_LOGS_PER_S: f64 = 125_000.0;
const TARGET_CEILING_RATIO: f64 = 0.80;
const TARGET_RSS_MB: f64 = 300.0;

/// One line of the final table: one shape, mode, provider count and bloom setting.
pub(crate) struct Row {
    shape: u64,
    mode: Mode,
    providers: usize,
    bloom: BloomCheck,
    /// logs/s end to end (None: failed or staged).
    rate: Option<f64>,
    /// (process, peak RSS MB, CPU-s per 1M logs).
    procs: Vec<(&'static str, Option<f64>, Option<f64>)>,
    /// CPU-s per 1M logs of anvil and of Postgres (all backends).
    anvil_cpu: Option<f64>,
    postgres_cpu: Option<f64>,
    complete: bool,
    failure: Option<String>,
}

impl Row {
    pub(crate) fn of(
        chain: &Chain,
        mode: Mode,
        providers: usize,
        bloom: BloomCheck,
        run: &IndexerRun,
    ) -> Row {
        let per_m = |s: f64| s * 1e6 / chain.logs as f64;
        Row {
            shape: chain.logs_per_block,
            mode,
            providers,
            bloom,
            rate: run.end_to_end.map(|s| chain.logs as f64 / s),
            procs: run
                .procs
                .iter()
                .map(|(role, hwm, cpu)| (*role, *hwm, cpu.map(per_m)))
                .collect(),
            anvil_cpu: run.anvil_cpu_s.map(per_m),
            postgres_cpu: run.postgres_cpu_s.map(per_m),
            complete: run.rows as u64 == chain.logs && run.offset_resets == 0,
            failure: None,
        }
    }

    pub(crate) fn failed(
        shape: u64,
        mode: Mode,
        providers: usize,
        bloom: BloomCheck,
        e: &anyhow::Error,
    ) -> Row {
        let first = format!("{e:#}");
        Row {
            shape,
            mode,
            providers,
            bloom,
            rate: None,
            procs: Vec::new(),
            anvil_cpu: None,
            postgres_cpu: None,
            complete: false,
            failure: Some(
                first
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect(),
            ),
        }
    }
}

pub(crate) fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let f = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.0}{unit}"));
    let f1 = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
    println!("\n======================= backfill benchmark: all runs =======================");
    println!(
        "{:>9} {:<6} {:>4} {:>5} {:>13}  {:<58} {:>7} {:>9}",
        "logs/blk",
        "mode",
        "prov",
        "bloom",
        "end to end",
        "process: peak RSS, CPU-s per 1M logs",
        "anvil",
        "postgres"
    );
    for r in rows {
        let procs: Vec<String> = r
            .procs
            .iter()
            .map(|(role, hwm, cpu)| format!("{role}: {}, {} s", f(*hwm, " MB"), f1(*cpu)))
            .collect();
        let rate = match (&r.failure, r.complete) {
            (Some(_), _) => "FAILED".to_owned(),
            (None, false) => format!("{} (rows lost)", f(r.rate, "/s")),
            (None, true) => f(r.rate, " logs/s"),
        };
        println!(
            "{:>9} {:<6} {:>4} {:>5} {:>13}  {:<58} {:>7} {:>9}",
            r.shape,
            r.mode.label(),
            r.providers,
            r.bloom.label(),
            rate,
            procs.join("; "),
            f1(r.anvil_cpu),
            f1(r.postgres_cpu)
        );
        if let Some(why) = &r.failure {
            println!("{:>9} {why}", "");
        }
    }
    println!(
        "(CPU-s per 1M logs: CPU seconds the process used over the run, per million logs indexed)"
    );
    println!("============================================================================");
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

pub(crate) fn summary(args: &Args, chain: &Chain, ceiling: Option<&Ceiling>, run: &IndexerRun) {
    let logs = chain.logs as f64;
    let rate = |secs: Option<f64>| secs.map(|s| logs / s);
    let fmt_rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.0} logs/s"));
    let fmt_mb = |m: Option<f64>| m.map_or("n/a".to_owned(), |m| format!("{m:.0} MB"));
    let e2e = rate(run.end_to_end);
    let ceil = ceiling.map(|c| c.sequential.per_s());

    println!("\n================ A6 backfill benchmark: summary ================");
    println!("logs                      {}", chain.logs);
    println!(
        "blocks                    {} (head {}; {} with logs, {} logs/block; range_blocks {})",
        chain.head + 1,
        chain.head,
        chain.log_blocks,
        chain.logs_per_block,
        args.range_blocks
            .map_or("at the indexer's default".to_owned(), |r| r.to_string()),
    );
    if let Some(c) = ceiling {
        println!(
            "ceiling                   {} (sequential eth_getLogs, {} blocks per request)",
            fmt_rate(Some(c.sequential.per_s())),
            ceiling_span(args, chain)
        );
        println!(
            "  {} concurrent fetchers   {} (informational)",
            args.fetchers,
            fmt_rate(Some(c.concurrent.per_s()))
        );
        println!(
            "  headers+logs batch      {} (informational: the indexer's request shape)",
            fmt_rate(Some(c.batch_shaped.per_s()))
        );
    }
    if args.staged {
        println!(
            "ingest alone              {} ({:.1} s, until the ingest cursor reached the head)",
            fmt_rate(rate(run.ingest)),
            run.ingest.unwrap_or(f64::NAN)
        );
        println!(
            "sink alone                {} ({:.1} s, logs written / time to drain the topic)",
            fmt_rate(run.sink.map(|s| run.rows as f64 / s)),
            run.sink.unwrap_or(f64::NAN)
        );
        if let (Some(i), Some(s), true) = (run.ingest, run.sink, run.rows as u64 == chain.logs) {
            println!(
                "staged total              {} ({:.1} s, ingest then sink)",
                fmt_rate(Some(logs / (i + s))),
                i + s
            );
        }
    } else {
        println!(
            "end to end                {} ({:.1} s from spawning both processes until Postgres had the head)",
            fmt_rate(e2e),
            run.end_to_end.unwrap_or(f64::NAN)
        );
        println!(
            "ingest, sink alongside    {} ({:.1} s until the ingest cursor reached the head)",
            fmt_rate(rate(run.ingest)),
            run.ingest.unwrap_or(f64::NAN)
        );
    }
    if let (Some(e), Some(c)) = (e2e, ceil) {
        println!("end to end / ceiling      {:.1}%", 100.0 * e / c);
    }
    for (role, hwm, cpu) in &run.procs {
        println!(
            "{:<25} peak RSS {}, {} CPU-s per 1M logs",
            format!("process {role}"),
            fmt_mb(*hwm),
            cpu.map_or("n/a".to_owned(), |c| format!("{:.2}", c * 1e6 / logs))
        );
    }
    println!(
        "peak RSS (informational)  anvil {}, this benchmark incl. Kafka mock broker {}",
        fmt_mb(run.anvil_hwm_mb),
        fmt_mb(run.this_hwm_mb)
    );
    println!(
        "rows in Postgres          logs {}, blocks {}",
        run.rows, run.block_rows
    );
    println!(
        "Kafka topic               {} records, offsets {}..{} still held{}; sink offset resets: {}",
        run.kafka_high,
        run.kafka_low,
        run.kafka_high,
        if run.mock { " (mock broker)" } else { "" },
        run.offset_resets
    );
    let lost = run.offset_resets > 0 || run.rows as u64 != chain.logs;
    if args.staged && run.dropped_before_sink > 0 && run.offset_resets == 0 {
        println!(
            "NOTE: the broker dropped the first {} records before the sink started (mock \
             retention). The ingest rate is valid; the sink rate is measured over the {} logs it \
             could still read; nothing else is comparable.",
            run.dropped_before_sink, run.rows
        );
    } else if lost {
        println!(
            "WARNING: records were lost between Kafka and Postgres, so the rates above are not \
             valid.{}",
            if run.mock && run.offset_resets > 0 {
                " The librdkafka mock broker keeps only ~5 MiB (compressed) per partition and \
                 drops older records; the sink fell further behind than that and its consumer \
                 (auto.offset.reset = earliest) skipped ahead. Use a real broker (KAFKA_BROKERS) \
                 or a sink that keeps up with the ingest."
            } else {
                ""
            }
        );
    }
    println!("----------------------------------------------------------------");
    let mut checks: Vec<(String, Option<bool>)> = Vec::new();
    checks.push((
        format!(
            "all {} logs in Postgres, one block row per height",
            chain.logs
        ),
        Some(run.rows as u64 == chain.logs && run.block_rows as u64 == chain.head + 1),
    ));
    for (role, status) in &run.exit_ok {
        checks.push((
            format!(
                "{role} exited 0 on SIGTERM ({})",
                status.map_or("no status".into(), |s| s.to_string())
            ),
            Some(status.is_some_and(|s| s.success())),
        ));
    }
    checks.push((
        format!(
            "no record skipped by the sink ({} Kafka offset resets)",
            run.offset_resets
        ),
        Some(run.offset_resets == 0),
    ));
    let valid = if lost { " (invalid: records lost)" } else { "" };
    checks.push((
        format!("end to end >= {TARGET_LOGS_PER_S:.0} logs/s{valid}"),
        e2e.map(|e| !lost && e >= TARGET_LOGS_PER_S),
    ));
    checks.push((
        format!(
            "end to end >= {:.0}% of the ceiling{valid}",
            TARGET_CEILING_RATIO * 100.0
        ),
        e2e.zip(ceil)
            .map(|(e, c)| !lost && e >= TARGET_CEILING_RATIO * c),
    ));
    for (role, hwm, _) in &run.procs {
        checks.push((
            format!("peak RSS {role} < {TARGET_RSS_MB:.0} MB"),
            hwm.map(|m| m < TARGET_RSS_MB),
        ));
    }
    for (what, ok) in checks {
        match ok {
            Some(ok) => println!("{}  {what}", verdict(ok)),
            None => println!(
                "n/a   {what} (not measured in this mode{})",
                if args.staged { ": staged run" } else { "" }
            ),
        }
    }
    println!("================================================================");
}
