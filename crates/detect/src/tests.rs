//! The detectors on synthetic streams: quiet on stationary traffic, one finding per attack,
//! no finding before warm-up, state that survives a snapshot, configs that name their mistakes.

use alloy_primitives::Address;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::stats::{CountModel, History};
use super::synth::{detector, log, marker};
use super::*;

const VAULT: Address = Address::repeat_byte(0x11);

fn set(body: &str) -> DetectorSet {
    DetectorSet::new(&[detector(body)]).expect("valid detector")
}

/// Exponential gap of a Poisson process with `rate` events per second.
fn gap(rng: &mut StdRng, rate: f64) -> f64 {
    -(1.0 - rng.random::<f64>()).ln() / rate
}

fn normal(rng: &mut StdRng) -> f64 {
    let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Feeds `events` Poisson events (`rate` per second) from `t0`, with one block every 2 s and its
/// marker; calls `amount` for each event's amount. Returns the findings and the end time.
fn stream(
    d: &mut DetectorSet,
    rng: &mut StdRng,
    t0: f64,
    events: usize,
    rate: f64,
    event: &str,
    mut amount: impl FnMut(&mut StdRng) -> f64,
) -> (Vec<Finding>, f64) {
    let mut out = Vec::new();
    let mut t = t0;
    let mut block_ts = (t0 as u64 / 2) * 2;
    for i in 0..events {
        t += gap(rng, rate);
        while (t as u64) >= block_ts + 2 {
            block_ts += 2;
            out.extend(d.observe_block(&marker(block_ts / 2, block_ts)));
        }
        let a = format!("{:.0}", amount(rng));
        let l = log(
            VAULT,
            "vault",
            event,
            &[("amount", &a)],
            block_ts / 2 + 1,
            block_ts + 2,
            i as u64 % 1000,
        );
        out.extend(d.observe_log(&l));
    }
    (out, t)
}

#[test]
fn thresholds_match_the_tails() {
    let m = CountModel::Poisson { lambda: 4.0 };
    let t = m.threshold(1e-6);
    assert!(m.tail(t) < 1e-6 && m.tail(t - 1) >= 1e-6, "threshold {t}");
    let nb = CountModel::NegBin { r: 2.0, p: 0.2 };
    let t = nb.threshold(1e-6);
    assert!(nb.tail(t) < 1e-6 && nb.tail(t - 1) >= 1e-6, "threshold {t}");
    assert!(t > m.threshold(1e-6), "overdispersion raises the bar");
    let mut h = History::new(100);
    for c in [0.0, 20.0, 1.0, 15.0, 0.0, 30.0, 2.0, 0.0] {
        h.push(c);
    }
    assert!(matches!(CountModel::fit(&h), CountModel::NegBin { .. }));
    let mut h = History::new(100);
    for c in [4.0, 5.0, 4.0, 6.0, 5.0, 4.0, 5.0] {
        h.push(c);
    }
    assert!(matches!(CountModel::fit(&h), CountModel::Poisson { .. }));
}

const RATE: &str = r#"
name = "withdraw-burst"
kind = "rate"
contract = "vault"
event = "Withdraw"
severity = "critical"
window_s = 10
warmup_windows = 20
"#;

#[test]
fn rate_quiet_on_stationary_traffic_then_one_finding_per_burst() {
    let mut d = set(RATE);
    let mut rng = StdRng::seed_from_u64(7);
    let (quiet, t) = stream(&mut d, &mut rng, 1e9, 20_000, 0.5, "Withdraw", |_| 1e18);
    assert!(
        quiet.is_empty(),
        "stationary traffic alerted: {:?}",
        quiet.first()
    );
    // 60 withdrawals in one block: about 5 per window expected.
    let block = t as u64 / 2 + 10;
    let mut found = Vec::new();
    for i in 0..60 {
        found.extend(d.observe_log(&log(
            VAULT,
            "vault",
            "Withdraw",
            &[],
            block,
            t as u64 + 20,
            i,
        )));
    }
    assert_eq!(found.len(), 1, "one finding per series and window");
    let f = &found[0];
    assert_eq!(
        (f.kind.as_str(), f.severity, f.series.as_str()),
        ("rate", Severity::Critical, "vault")
    );
    assert_eq!(f.block_number, block);
    assert!(
        f.score < 1e-6 && f.observed > 10.0 && f.expected < 10.0,
        "{f:?}"
    );
    // Other events of the contract are not this detector's.
    assert!(d
        .observe_log(&log(
            VAULT,
            "vault",
            "Deposit",
            &[],
            block,
            t as u64 + 20,
            99
        ))
        .is_empty());
}

#[test]
fn rate_never_alerts_during_warm_up() {
    let mut d = set(RATE);
    let mut found = Vec::new();
    // 19 quiet windows (markers only), then a burst: still warming up.
    for w in 0..19u64 {
        found.extend(d.observe_block(&marker(w, 1_000_000 + w * 10)));
    }
    for i in 0..500 {
        found.extend(d.observe_log(&log(VAULT, "vault", "Withdraw", &[], 19, 1_000_195, i)));
    }
    assert!(found.is_empty(), "alerted before warm-up");
    // A smaller burst once enough quiet windows passed: block markers alone advanced time.
    let mut d = set(RATE);
    for w in 0..60u64 {
        d.observe_block(&marker(w, 1_000_000 + w * 10));
    }
    for i in 0..20 {
        found.extend(d.observe_log(&log(VAULT, "vault", "Withdraw", &[], 61, 1_000_605, i)));
    }
    assert_eq!(found.len(), 1, "quiet windows made 20 events a spike");
}

#[test]
fn rate_overdispersed_traffic_uses_the_negative_binomial() {
    // Bursty but stationary: each window's rate is drawn from a wide distribution.
    let mut d = set(RATE);
    let mut rng = StdRng::seed_from_u64(3);
    let mut found = Vec::new();
    let mut n = 0u64;
    for w in 0..2_000u64 {
        let rate = if rng.random::<f64>() < 0.1 { 12.0 } else { 1.0 };
        let k = (rate * (0.5 + rng.random::<f64>())) as u64;
        for i in 0..k {
            found.extend(d.observe_log(&log(
                VAULT,
                "vault",
                "Withdraw",
                &[],
                w,
                5_000_000 + w * 10,
                i,
            )));
            n += 1;
        }
    }
    assert!(n > 2_000);
    assert!(
        found.is_empty(),
        "overdispersed traffic alerted: {:?}",
        found.first()
    );
}

#[test]
fn rate_series_split_by_field_share_alpha() {
    let mut d = set(&format!("{RATE}group_by = \"to\"\n"));
    let mut found = Vec::new();
    for w in 0..40u64 {
        for (j, to) in ["0xaa", "0xbb", "0xcc"].iter().enumerate() {
            found.extend(d.observe_log(&log(
                VAULT,
                "vault",
                "Withdraw",
                &[("to", to)],
                w,
                7_000_000 + w * 10,
                j as u64,
            )));
        }
    }
    assert!(found.is_empty());
    for i in 0..30 {
        found.extend(d.observe_log(&log(
            VAULT,
            "vault",
            "Withdraw",
            &[("to", "0xBB")],
            41,
            7_000_415,
            i,
        )));
    }
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].series, "vault/0xbb");
}

#[test]
fn rate_hour_of_week_learns_busy_hours() {
    let mut d = set(
        "name = \"r\"\nkind = \"rate\"\nwindow_s = 600\nwarmup_windows = 6\nbaseline_windows = 12\nhour_of_week = true\n",
    );
    let week = 7 * 24 * 3600u64;
    let t0 = 1_700_000_000 - 1_700_000_000 % week;
    let mut found = Vec::new();
    // Two weeks: hour 10 of each day is busy (30 per window), the rest quiet (1 per window).
    for w in 0..(2 * week / 600) {
        let ts = t0 + w * 600;
        let busy = (ts / 3600) % 24 == 10;
        for i in 0..(if busy { 30 } else { 1 }) {
            found.extend(d.observe_log(&log(VAULT, "vault", "Withdraw", &[], w, ts, i)));
        }
    }
    assert!(found.is_empty(), "busy hours alerted: {:?}", found.first());
    // 30 events in a quiet hour is a spike.
    let ts = t0 + 2 * week + 3 * 3600;
    for i in 0..30 {
        found.extend(d.observe_log(&log(VAULT, "vault", "Withdraw", &[], 9_999, ts, i)));
    }
    assert_eq!(found.len(), 1);
}

const VALUE: &str = r#"
name = "huge-transfer"
kind = "value"
contract = "vault"
event = "Transfer"
field = "amount"
floor = 1e20
"#;

#[test]
fn value_quiet_on_log_normal_amounts_then_flags_the_outlier() {
    let mut d = set(VALUE);
    let mut rng = StdRng::seed_from_u64(11);
    let (quiet, t) = stream(&mut d, &mut rng, 1e9, 20_000, 1.0, "Transfer", |r| {
        (42.0 + 1.5 * normal(r)).exp()
    });
    assert!(
        quiet.is_empty(),
        "log-normal amounts alerted: {:?}",
        quiet.first()
    );
    let huge = log(
        VAULT,
        "vault",
        "Transfer",
        &[("amount", "1000000000000000000000000000")],
        1,
        t as u64 + 4,
        0,
    );
    let found = d.observe_log(&huge);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].score_name, "robust_z");
    assert!(found[0].score > 6.0);
    // Above the z threshold but under the floor: dust never alerts.
    let mut d = set(&VALUE.replace("1e20", "1e30"));
    stream(&mut d, &mut rng, 1e9, 1_000, 1.0, "Transfer", |r| {
        (42.0 + 1.5 * normal(r)).exp()
    });
    assert!(d.observe_log(&huge).is_empty());
}

#[test]
fn value_never_alerts_during_warm_up() {
    let mut d = set(VALUE);
    let mut found = Vec::new();
    for i in 0..199 {
        found.extend(d.observe_log(&log(
            VAULT,
            "vault",
            "Transfer",
            &[("amount", "1000")],
            i,
            1_000 + i,
            0,
        )));
    }
    found.extend(d.observe_log(&log(
        VAULT,
        "vault",
        "Transfer",
        &[("amount", "1000000000000000000000000")],
        200,
        1_200,
        0,
    )));
    assert!(found.is_empty());
}

const FLOW: &str = r#"
name = "drain"
kind = "flow"
contract = "vault"
field = "amount"
inflow = ["Deposit"]
outflow = ["Withdraw"]
window_s = 60
warmup_windows = 20
"#;

/// One window of vault traffic: deposits and withdrawals of random size, `bias` extra withdrawn.
fn flow_window(d: &mut DetectorSet, rng: &mut StdRng, w: u64, bias: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    let ts = 2_000_000 + w * 60;
    for i in 0..6u64 {
        let (ev, amt) = if i % 2 == 0 {
            ("Deposit", 100.0 + 30.0 * normal(rng))
        } else {
            ("Withdraw", 100.0 + 30.0 * normal(rng) + bias)
        };
        let a = format!("{:.0}", amt.max(1.0) * 1e18);
        out.extend(d.observe_log(&log(
            VAULT,
            "vault",
            ev,
            &[("amount", &a)],
            w * 5 + i,
            ts + i * 5,
            i,
        )));
    }
    out.extend(d.observe_block(&marker(w * 5 + 4, ts + 59)));
    out
}

#[test]
fn flow_quiet_on_balanced_traffic_then_catches_a_slow_drain() {
    let mut d = set(FLOW);
    let mut rng = StdRng::seed_from_u64(5);
    let mut quiet = Vec::new();
    for w in 0..1_000 {
        quiet.extend(flow_window(&mut d, &mut rng, w, 0.0));
    }
    assert!(
        quiet.is_empty(),
        "balanced traffic alerted: {:?}",
        quiet.first()
    );
    // A drain of 40 extra per withdrawal (well inside one window's noise) adds up in a few windows.
    let mut found = Vec::new();
    let mut windows = 0;
    for w in 1_000..1_040 {
        found.extend(flow_window(&mut d, &mut rng, w, 40.0));
        windows += 1;
        if !found.is_empty() {
            break;
        }
    }
    assert_eq!(found.len(), 1, "the drain was not caught in 40 windows");
    assert!(
        windows > 1,
        "a single window of the slow drain should not be enough"
    );
    assert_eq!(found[0].score_name, "cusum");
    assert_eq!(found[0].event.as_deref(), Some("Withdraw"));
}

#[test]
fn flow_never_alerts_during_warm_up() {
    let mut d = set(FLOW);
    let mut rng = StdRng::seed_from_u64(8);
    let mut found = Vec::new();
    // 19 windows of heavy draining: still learning (warm-up is 20 windows).
    for w in 0..19 {
        found.extend(flow_window(&mut d, &mut rng, w, 500.0));
    }
    assert!(
        found.is_empty(),
        "alerted during warm-up: {:?}",
        found.first()
    );
}

#[test]
fn flow_balance_rule_fires_once_per_window() {
    let mut d = set(&format!(
        "{FLOW}max_outflow_pct = 50.0\ninitial_balance = 1000.0\n"
    ));
    let mut found = Vec::new();
    found.extend(d.observe_block(&marker(1, 2_000_000)));
    found.extend(d.observe_log(&log(
        VAULT,
        "vault",
        "Withdraw",
        &[("amount", "300")],
        2,
        2_000_001,
        0,
    )));
    assert!(found.is_empty(), "30 % is under the limit");
    found.extend(d.observe_log(&log(
        VAULT,
        "vault",
        "Withdraw",
        &[("amount", "300")],
        2,
        2_000_001,
        1,
    )));
    found.extend(d.observe_log(&log(
        VAULT,
        "vault",
        "Withdraw",
        &[("amount", "300")],
        3,
        2_000_002,
        0,
    )));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].score_name, "outflow_pct");
    assert!((found[0].score - 60.0).abs() < 1e-9);
}

const EVENT: &str = r#"
name = "privileged"
kind = "event"
contract = "vault"
severity = "critical"
allowed_actors = ["0x00000000000000000000000000000000000000aa"]
"#;

#[test]
fn event_rule_flags_privileged_events_of_unexpected_actors() {
    let mut d = set(EVENT);
    let ops = "0x00000000000000000000000000000000000000AA";
    let thief = "0x00000000000000000000000000000000000000bb";
    let grant = |acct: &str, by: &str| {
        log(
            VAULT,
            "vault",
            "RoleGranted",
            &[("role", "0x01"), ("account", acct), ("sender", by)],
            5,
            100,
            0,
        )
    };
    assert!(
        d.observe_log(&grant(ops, ops)).is_empty(),
        "the team's own grant"
    );
    let f = d.observe_log(&grant(thief, ops));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].series, "vault/RoleGranted");
    assert!(
        f[0].summary
            .to_lowercase()
            .contains(&format!("account={thief}")),
        "{}",
        f[0].summary
    );
    assert!(d
        .observe_log(&log(VAULT, "vault", "Transfer", &[], 5, 100, 1))
        .is_empty());
}

#[test]
fn snapshot_restores_baselines_and_config_changes_reset_them() {
    let mut a = set(RATE);
    let mut rng = StdRng::seed_from_u64(1);
    let (_, t) = stream(&mut a, &mut rng, 1e9, 2_000, 0.5, "Withdraw", |_| 1.0);
    let snap = a.snapshot();
    let text = serde_json::to_string(&snap).expect("serializes");
    let mut b = set(RATE);
    let reset = b
        .restore(serde_json::from_str(&text).expect("json"))
        .expect("restores");
    assert!(reset.is_empty());
    // Both react the same way to the same burst: the restored one did not re-warm.
    let burst = |d: &mut DetectorSet| {
        (0..40)
            .flat_map(|i| d.observe_log(&log(VAULT, "vault", "Withdraw", &[], 1, t as u64 + 30, i)))
            .count()
    };
    assert_eq!(burst(&mut a), 1);
    assert_eq!(burst(&mut b), 1);
    // A changed window makes the old state meaningless: it is dropped and named.
    let mut c = set(&RATE.replace("window_s = 10", "window_s = 20"));
    assert_eq!(
        c.restore(snap).expect("restores"),
        vec!["withdraw-burst".to_string()]
    );
    assert_eq!(burst(&mut c), 0, "fresh detector is warming up");
}

#[test]
fn configs_name_their_mistakes() {
    let parse = |body: &str| -> String {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct One {
            d: DetectorConfig,
        }
        match toml::from_str::<One>(&format!("[d]\n{body}")) {
            Ok(o) => {
                o.d.validate()
                    .map(|_| String::from("ok"))
                    .unwrap_or_else(|e| e.to_string())
            }
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(parse(RATE), "ok");
    assert_eq!(parse(VALUE), "ok");
    assert_eq!(parse(FLOW), "ok");
    assert_eq!(parse(EVENT), "ok");
    let e = parse(&format!("{RATE}windw_s = 3\n"));
    assert!(e.contains("withdraw-burst") && e.contains("windw_s"), "{e}");
    let e = parse("name = \"x\"\nevent = \"A\"\n");
    assert!(e.contains("missing field `kind`"), "{e}");
    let e = parse("name = \"x\"\nkind = \"spike\"\n");
    assert!(e.contains("spike"), "{e}");
    let e = parse(&RATE.replace("warmup_windows = 20", "warmup_windows = 500"));
    assert!(e.contains("warmup_windows") && e.contains("500"), "{e}");
    let e = parse(&format!("{RATE}alpha = 2.0\n"));
    assert!(e.contains("alpha"), "{e}");
    let e = parse(&format!("{EVENT}actions = [\"unpause\"]\n"));
    assert!(e.contains("actions") && e.contains("unpause"), "{e}");
    let e = parse("name = \"x\"\nkind = \"value\"\n");
    assert!(e.contains("field"), "{e}");
    let e = parse(&format!("{FLOW}event = \"Withdraw\"\n"));
    assert!(e.contains("event"), "{e}");
    let e = parse(&EVENT.replace("0x00000000000000000000000000000000000000aa", "0xnope"));
    assert!(e.contains("allowed_actors") && e.contains("0xnope"), "{e}");
}
