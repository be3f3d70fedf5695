//! Per-process and system-wide figures from Linux `/proc`: resident memory and CPU time of a
//! process (what [`crate::process::Proc`] reads before it stops one), of every process of a name,
//! and of the whole system, for the benchmarks and for tests that bound what a process uses.

use std::collections::HashMap;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    /// Current resident set size (`VmRSS`).
    pub rss_kb: u64,
    /// Peak resident set size since the process started (`VmHWM`).
    pub hwm_kb: u64,
}

/// `VmRSS` and `VmHWM` of `pid`; `None` once the process is gone.
pub fn mem(pid: u32) -> Option<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// Parses the memory lines of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Option<Mem> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some(Mem {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

/// CPU time (user + system) `pid` has used, in clock ticks; `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks)
}

/// Parses `/proc/<pid>/stat` into (command name, utime + stime).
pub fn parse_stat(text: &str) -> Option<(String, u64)> {
    // The command name sits in parentheses and may itself contain spaces or parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the name: state (field 3) ... utime (field 14), stime (field 15).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of [`cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU ticks of every process whose command name is `comm` (e.g. all Postgres backends).
pub fn cpu_ticks_by_name(comm: &str) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_stat(&text) {
            if name == comm {
                out.insert(pid, ticks);
            }
        }
    }
    out
}

/// Ticks a group of processes used between two [`cpu_ticks_by_name`] snapshots (processes
/// that appeared in between count in full; those that exited in between are lost).
pub fn ticks_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// System-wide CPU ticks from the first line of `/proc/stat`: (busy, total), summed over all
/// cores. Busy excludes idle and iowait.
pub fn system_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_system(text.lines().next()?)
}

/// Parses the aggregate `cpu ...` line of `/proc/stat`.
pub fn parse_system(line: &str) -> Option<(u64, u64)> {
    let mut parts = line.split_whitespace();
    if parts.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user].
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Number of online cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_and_stat() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t  5120 kB\nVmRSS:\t  4096 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Mem {
                rss_kb: 4096,
                hwm_kb: 5120
            })
        );
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(stat), Some(("tokio (rt) x".into(), 10)));
        assert_eq!(parse_system("cpu  10 0 5 80 5 0 0 0 0 0"), Some((15, 100)));
        assert!(mem(std::process::id()).is_some());
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
