//! The `flow` detector at its defaults against [`traffic`](super::traffic): a simulated benign week
//! (daily seasonality, whales, heavy-tailed amounts, 12 s blocks) raises at most one incident, and
//! drains of 1, 2 and 4 hours at 10 % and 20 % of the balance per hour are each caught during the
//! drain or within 15 minutes of its end. Findings become incidents through the service's
//! [`IncidentBook`] at its default policy, with block time as the clock. The numbers are printed
//! (`cargo test -p tripwire-watchdog --lib drain -- --nocapture`), with those of the single-window
//! detector (`extra_windows_s = []`, the behaviour before several window lengths) beside them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::synth::detector;
use super::traffic::{Drain, Profile, Traffic, UNIT};
use super::{DetectorSet, Finding};
use crate::incidents::{IncidentBook, Policy};

const DAY: u64 = 86_400;
const HOUR: u64 = 3600;
/// How long after a drain's end a finding still counts as catching it.
const GRACE: u64 = 15 * 60;

/// The detector as a user writes it: nothing but what it watches.
const DEFAULTS: &str = r#"
name = "drain"
kind = "flow"
contract = "vault"
field = "amount"
inflow = ["Deposit"]
outflow = ["Withdraw"]
"#;

fn config(single_window: bool) -> String {
    if single_window {
        format!("{DEFAULTS}extra_windows_s = []\n")
    } else {
        DEFAULTS.to_owned()
    }
}

fn block_time(ts: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts as i64, 0).expect("block time in range")
}

/// The service's defaults (`resolve_after_s`, `cooldown_s`, `max_alerts_per_minute`).
fn book() -> IncidentBook {
    IncidentBook::new(Policy {
        hold: Duration::from_secs(300),
        cooldown: Duration::from_secs(600),
        max_per_minute: 10,
    })
}

/// Detectors, traffic and incident book fed together, block by block.
struct Run {
    detectors: DetectorSet,
    traffic: Traffic,
    book: IncidentBook,
    /// Every finding, with the block time it came at.
    findings: Vec<(u64, Finding)>,
    /// Block time of every incident opened.
    opened: Vec<u64>,
    /// Net flow (tokens) of each closed 15-minute window, for the noise level in the note.
    nets: Vec<f64>,
    net: (u64, f64),
}

impl Run {
    fn new(body: &str, traffic: Traffic) -> Run {
        Run {
            detectors: DetectorSet::new(&[detector(body)]).expect("valid detector"),
            net: (traffic.ts() / 900, 0.0),
            traffic,
            book: book(),
            findings: Vec::new(),
            opened: Vec::new(),
            nets: Vec::new(),
        }
    }

    /// A copy that continues from here: the detectors through their snapshot, as after a restart.
    fn fork(&self, body: &str) -> Run {
        let mut detectors = DetectorSet::new(&[detector(body)]).expect("valid detector");
        let reset = detectors
            .restore(self.detectors.snapshot())
            .expect("snapshot restores");
        assert!(reset.is_empty(), "state was reset: {reset:?}");
        Run {
            detectors,
            traffic: self.traffic.clone(),
            book: book(),
            findings: Vec::new(),
            opened: Vec::new(),
            nets: Vec::new(),
            net: self.net,
        }
    }

    /// Feeds blocks up to block time `until` (exclusive).
    fn until(&mut self, until: u64) {
        while self.traffic.ts() < until {
            let block = self.traffic.next_block();
            let ts = block.marker.timestamp;
            let now = block_time(ts);
            if ts / 900 > self.net.0 {
                self.nets.push(self.net.1);
                self.net = (ts / 900, 0.0);
            }
            let mut found = Vec::new();
            for log in &block.logs {
                if let Some(ev) = &log.event {
                    let amount = ev.params["amount"].as_str().unwrap_or("0");
                    let amount = amount.parse::<f64>().unwrap_or(0.0) / UNIT;
                    self.net.1 += if ev.name == "Deposit" {
                        amount
                    } else {
                        -amount
                    };
                }
                found.extend(self.detectors.observe_log(log));
            }
            found.extend(self.detectors.observe_block(&block.marker));
            self.book.tick(now);
            for f in found {
                let changes = self.book.on_finding(&f, &[], now);
                let new = changes
                    .changed
                    .iter()
                    .filter(|i| i.opened_at == now && i.findings <= 1)
                    .count();
                self.opened.extend(std::iter::repeat_n(ts, new));
                self.findings.push((ts, f));
            }
        }
    }
}

/// Benign traffic of the default profile over 8 days (the first is the detector's warm-up).
fn benign_week(seed: u64, single_window: bool) -> Run {
    let traffic = Traffic::new(Profile::default(), seed);
    let end = traffic.ts() + 8 * DAY;
    let mut run = Run::new(&config(single_window), traffic);
    run.until(end);
    run
}

fn sd(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[test]
fn drain_benign_week_raises_at_most_one_incident_at_defaults() {
    for seed in [1, 2, 3] {
        let before = benign_week(seed, true);
        let after = benign_week(seed, false);
        let hourly: Vec<f64> = after.nets.chunks(4).map(|c| c.iter().sum()).collect();
        println!(
            "benign week, seed {seed}: {} blocks, balance {:.0} at the end; net flow sd {:.2} % of the \
             balance per 15 min, {:.2} % per hour; incidents: {} hourly only (findings {}), {} \
             15 min + 1 h + 4 h (findings {})",
            8 * DAY / 12,
            after.traffic.balance(),
            100.0 * sd(&after.nets) / Profile::default().balance,
            100.0 * sd(&hourly) / Profile::default().balance,
            before.opened.len(),
            before.findings.len(),
            after.opened.len(),
            after.findings.len(),
        );
        for (ts, f) in &after.findings {
            println!(
                "  false alert at day {:.2}: {}",
                (ts - Profile::default().start_ts) as f64 / DAY as f64,
                f.summary
            );
        }
        assert!(
            after.opened.len() <= 1,
            "seed {seed}: {} incidents on benign traffic",
            after.opened.len()
        );
        assert!(after.opened.len() <= before.opened.len().max(1));
    }
}

/// When each drain starts: a quiet night, the busiest hour, an evening; off the window grid.
const STARTS: [u64; 3] = [
    2 * DAY + 3 * HOUR + 7 * 60,
    2 * DAY + 14 * HOUR + 41 * 60,
    3 * DAY + 20 * HOUR + 23 * 60,
];

/// Plants each drain (1, 2 and 4 h at 10 % and 20 % per hour, at each of [`STARTS`]) in its own
/// copy of one benign run; the first finding's delay from the drain's start, if in time.
fn drains(single_window: bool) -> Vec<(f64, u64, u64, Option<u64>)> {
    let profile = Profile::default();
    let t0 = profile.start_ts;
    let body = config(single_window);
    let mut base = Run::new(&body, Traffic::new(profile, 7));
    let mut out = Vec::new();
    for start in STARTS {
        base.until(t0 + start);
        for pct in [10.0, 20.0] {
            for hours in [1, 2, 4] {
                let mut run = base.fork(&body);
                let d = Drain::new(t0 + start, hours * HOUR, pct);
                let (from, to) = (d.start_ts, d.end_ts() + GRACE);
                run.traffic.plant(d);
                run.until(to + HOUR);
                let first = run
                    .findings
                    .iter()
                    .map(|(ts, _)| *ts)
                    .find(|ts| (from..=to).contains(ts));
                out.push((pct, hours, start, first.map(|ts| ts - from)));
            }
        }
    }
    assert!(
        base.findings.is_empty(),
        "benign run before the drains alerted"
    );
    out
}

#[test]
fn drain_of_one_two_and_four_hours_is_caught_at_defaults() {
    let before = drains(true);
    let after = drains(false);
    let mut missed = Vec::new();
    for ((pct, hours, start, old), (_, _, _, new)) in before.iter().zip(&after) {
        let show = |d: &Option<u64>| match d {
            Some(s) => format!("caught after {:>3} min", s / 60),
            None => "missed".to_owned(),
        };
        println!(
            "drain {pct:>4.0} %/h for {hours} h from day {} {:02}:{:02}: hourly only {}, 15 min + 1 h + 4 h {}",
            start / DAY,
            start % DAY / HOUR,
            start % HOUR / 60,
            show(old),
            show(new)
        );
        if new.is_none() {
            missed.push((pct, hours, start));
        }
    }
    assert!(missed.is_empty(), "drains missed: {missed:?}");
}

/// Keys of a series in the state the single-window detector saved.
const OLD_SERIES_KEYS: [&str; 11] = [
    "address",
    "balance",
    "balance_at_open",
    "closed",
    "history",
    "inflow",
    "label",
    "last_outflow",
    "outflow",
    "pct_alerted",
    "stat",
];

#[test]
fn drain_state_saved_by_the_single_window_version_still_loads() {
    let mut run = Run::new(DEFAULTS, Traffic::new(Profile::default(), 11));
    run.until(Profile::default().start_ts + 2 * DAY);
    let mut snap = run.detectors.snapshot();
    let entry = &mut snap["detectors"]["drain"];
    // A default config has the fingerprint it had before `extra_windows_s` existed.
    let fp = entry["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    assert!(!fp.contains("extra_windows_s"), "{fp}");
    // The state as the single-window version wrote it: no `extra` in chains and series.
    let mut hourly = Vec::new();
    for chain in entry["state"]["chains"]
        .as_object_mut()
        .expect("chains")
        .values_mut()
    {
        let chain = chain.as_object_mut().expect("chain");
        assert!(chain.remove("extra").is_some());
        for series in chain["series"].as_array_mut().expect("series") {
            let series = series.as_object_mut().expect("series");
            assert!(series.remove("extra").is_some());
            let keys: Vec<&str> = series.keys().map(String::as_str).collect();
            assert_eq!(keys, OLD_SERIES_KEYS);
            hourly.push(series["history"].clone());
        }
    }
    assert_eq!(hourly.len(), 1);
    let mut restored = DetectorSet::new(&[detector(DEFAULTS)]).expect("valid detector");
    let reset = restored.restore(snap).expect("restores");
    assert!(reset.is_empty(), "the saved state was dropped: {reset:?}");
    let again = restored.snapshot();
    let series = &again["detectors"]["drain"]["state"]["chains"]["31337"]["series"][0];
    assert_eq!(series["history"], hourly[0], "the hourly baseline was kept");
    let extra = series["extra"].as_array().expect("extra tracks");
    assert_eq!(extra.len(), 2);
    assert!(extra.iter().all(|t| t["closed"] == 0));

    // The kept hourly baseline judges at once; the new lengths are still warming up.
    let mut cont = run.fork(DEFAULTS);
    cont.detectors = restored;
    let start = cont.traffic.ts();
    cont.traffic.plant(Drain::new(start, 6 * HOUR, 20.0));
    cont.until(start + 6 * HOUR);
    let (_, f) = cont
        .findings
        .first()
        .expect("the hourly statistic caught the drain");
    assert!(f.summary.contains("over 3600 s windows"), "{}", f.summary);
}

/// The shape of the end-to-end C2 check (stationary traffic, one block a minute, about 48 hours,
/// log-normal amounts, no whales): not a single finding at the defaults, CUSUM or EWMA.
#[test]
fn drain_stationary_traffic_raises_no_finding() {
    let profile = Profile {
        block_s: 60,
        per_hour: 230.0,
        rate_swing: 0.0,
        withdraw_lead_h: 0.0,
        median: 7.4,
        size_swing: 0.0,
        whales_per_day: 0.0,
        ..Profile::default()
    };
    let ewma = format!("{DEFAULTS}method = \"ewma\"\n");
    for body in [DEFAULTS, &ewma] {
        for seed in 1..=10 {
            let traffic = Traffic::new(profile.clone(), seed);
            let end = traffic.ts() + 2 * DAY;
            let mut run = Run::new(body, traffic);
            run.until(end);
            assert!(
                run.findings.is_empty(),
                "seed {seed}, {body}: {:?}",
                run.findings.first().map(|(_, f)| &f.summary)
            );
        }
    }
}

#[test]
fn drain_extra_windows_parse_and_reject_zero() {
    let single = detector(&config(true));
    let super::Params::Flow(p) = &single.params else {
        panic!("a flow detector")
    };
    assert_eq!(p.extra_windows_s.as_deref(), Some(&[][..]));
    let listed = detector(&format!("{DEFAULTS}extra_windows_s = [900, 14400]\n"));
    let super::Params::Flow(p) = &listed.params else {
        panic!("a flow detector")
    };
    let lengths: Vec<u64> = p
        .extra_windows_s
        .iter()
        .flatten()
        .map(|w| w.get())
        .collect();
    assert_eq!(lengths, [900, 14400]);
    let zero = toml::from_str::<toml::Table>(&format!("{DEFAULTS}extra_windows_s = [0]\n"))
        .expect("toml")
        .try_into::<super::DetectorConfig>();
    let err = zero
        .expect_err("a zero-length window is refused")
        .to_string();
    assert!(
        err.contains("extra_windows_s") || err.contains("zero"),
        "{err}"
    );
}
