//! CPU accounting over one measured window: the indexer processes, anvil, every Postgres backend
//! and this benchmark itself, against what the whole machine was busy with, so a slow run can be
//! told apart from a machine shared with something else.

use std::collections::HashMap;
use std::time::Instant;

use tripwire_benches::procfs;

/// CPU time of the processes involved over one measured window, against the machine's capacity.
pub(crate) struct CpuMeter {
    started: Instant,
    system: Option<(u64, u64)>,
    anvil_pid: Option<u32>,
    anvil: u64,
    this: u64,
    postgres: HashMap<u32, u64>,
}

pub(crate) struct CpuReport {
    wall: f64,
    /// (name, CPU seconds).
    parts: Vec<(String, f64)>,
    /// Busy CPU seconds of the whole machine in the window.
    system_busy: Option<f64>,
}

impl CpuMeter {
    pub(crate) fn start(anvil_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            system: procfs::system_ticks(),
            anvil_pid,
            anvil: anvil_pid.and_then(procfs::cpu_ticks).unwrap_or(0),
            this: procfs::cpu_ticks(std::process::id()).unwrap_or(0),
            postgres: procfs::cpu_ticks_by_name("postgres"),
        }
    }

    /// `children`: (label, CPU ticks since they started, all inside the window).
    pub(crate) fn finish(&self, children: &[(&str, u64)]) -> CpuReport {
        let tps = procfs::ticks_per_second() as f64;
        let secs = |t: u64| t as f64 / tps;
        let mut parts: Vec<(String, f64)> = children
            .iter()
            .map(|(l, t)| (format!("indexer {l}"), secs(*t)))
            .collect();
        if let Some(pid) = self.anvil_pid {
            let now = procfs::cpu_ticks(pid).unwrap_or(self.anvil);
            parts.push(("anvil".into(), secs(now.saturating_sub(self.anvil))));
        }
        let pg = procfs::ticks_between(&self.postgres, &procfs::cpu_ticks_by_name("postgres"));
        parts.push(("postgres (all backends)".into(), secs(pg)));
        let this = procfs::cpu_ticks(std::process::id()).unwrap_or(self.this);
        parts.push((
            "this benchmark (Kafka mock broker, polling)".into(),
            secs(this.saturating_sub(self.this)),
        ));
        let system_busy = match (self.system, procfs::system_ticks()) {
            (Some((b0, _)), Some((b1, _))) => Some(secs(b1.saturating_sub(b0))),
            _ => None,
        };
        CpuReport {
            wall: self.started.elapsed().as_secs_f64(),
            parts,
            system_busy,
        }
    }
}

impl CpuReport {
    /// CPU seconds of the first part whose name starts with `prefix`.
    pub(crate) fn part(&self, prefix: &str) -> Option<f64> {
        self.parts
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| *s)
    }

    pub(crate) fn print(&self, title: &str) {
        let cores = procfs::cores() as f64;
        println!(
            "  CPU during {title} ({:.1} s wall x {cores:.0} cores = {:.1} core-s):",
            self.wall,
            self.wall * cores
        );
        let mut ours = 0.0;
        for (name, s) in &self.parts {
            ours += s;
            println!(
                "    {name:<44} {s:>7.1} core-s  ({:>5.1}% of one core)",
                100.0 * s / self.wall
            );
        }
        if let Some(busy) = self.system_busy {
            println!(
                "    {:<44} {:>7.1} core-s  (machine busy {:.0}% of capacity)",
                "anything else on the machine",
                (busy - ours).max(0.0),
                100.0 * busy / (self.wall * cores)
            );
        }
    }
}
