//! The incident book's rules, on synthetic findings and a controlled clock.

use std::time::Duration;

use alloy::primitives::B256;
use chrono::{DateTime, TimeZone, Utc};

use super::*;
use tripwire_detect::{Finding, Severity};

pub(super) fn policy() -> Policy {
    Policy {
        hold: Duration::from_secs(120),
        cooldown: Duration::from_secs(600),
        max_per_minute: 3,
    }
}

pub(super) fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .expect("valid time")
}

pub(super) fn finding(detector: &str, series: &str, block: u64) -> Finding {
    Finding {
        detector: detector.into(),
        kind: tripwire_detect::DetectorKind::Rate,
        severity: Severity::Warning,
        series: series.into(),
        chain_id: 31337,
        contract: Some("vault".into()),
        event: Some("Withdraw".into()),
        function: None,
        status: None,
        block_number: block,
        block_hash: B256::with_last_byte(block as u8),
        tx_hash: Some(B256::with_last_byte(0xee)),
        log_index: Some(0),
        observed: 40.0,
        expected: 2.0,
        score: 1e-12,
        score_name: "p_value",
        summary: format!("{detector} at {block}"),
    }
}

#[test]
fn one_incident_per_key_updated_not_repeated() {
    let mut book = IncidentBook::new(policy());
    let c = book.on_finding(&finding("burst", "a", 10), &[], at(0));
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].findings, 1);
    let c = book.on_finding(&finding("burst", "a", 11), &[], at(5));
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].findings, 2);
    assert_eq!(c.changed[0].block_number, 11);
    assert_eq!(
        c.changed[0].opened_at,
        at(0),
        "an update keeps the opening time"
    );
    assert_eq!(book.firing().count(), 1);
    // Another series of the same detector is another incident.
    book.on_finding(&finding("burst", "b", 11), &[], at(6));
    assert_eq!(book.firing().count(), 2);
}

#[test]
fn resolves_after_hold_and_cools_down() {
    let mut book = IncidentBook::new(policy());
    book.on_finding(&finding("burst", "a", 10), &[], at(0));
    assert!(book.tick(at(119)).changed.is_empty());
    let c = book.tick(at(120));
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].state, State::Resolved);
    assert_eq!(book.firing().count(), 0);
    // Within the cooldown: recorded on the resolved incident, nothing fires.
    let c = book.on_finding(&finding("burst", "a", 30), &[], at(300));
    assert_eq!(c.changed[0].state, State::Resolved);
    assert_eq!(c.changed[0].findings, 2);
    assert_eq!(book.firing().count(), 0);
    // After it: a new incident.
    let c = book.on_finding(&finding("burst", "a", 90), &[], at(120 + 601));
    assert_eq!(c.changed[0].state, State::Firing);
    assert_eq!(c.changed[0].findings, 1);
    assert_eq!(c.changed[0].id, None, "a new incident gets its own row");
}

#[test]
fn storm_cap_fires_one_summary() {
    let mut book = IncidentBook::new(policy());
    for s in 0..3 {
        let c = book.on_finding(&finding("noisy", &format!("s{s}"), 10), &[], at(s));
        assert_eq!(c.suppressed, 0);
    }
    for s in 3..10 {
        let c = book.on_finding(&finding("noisy", &format!("s{s}"), 10), &[], at(s));
        assert_eq!(c.suppressed, 1);
        assert_eq!(c.changed[0].key, "noisy/storm");
    }
    let storm = book.get("noisy/storm").expect("storm incident");
    assert_eq!(storm.findings, 7);
    assert_eq!(storm.kind.as_str(), "storm");
    assert!(
        storm.summary.contains("7 findings held back"),
        "{}",
        storm.summary
    );
    // 3 + the summary.
    assert_eq!(book.firing().count(), 4);
    // A minute later the cap has room again.
    let c = book.on_finding(&finding("noisy", "late", 12), &[], at(61));
    assert_eq!(c.suppressed, 0);
    assert_eq!(c.changed[0].key, "noisy/late");
    // Another detector is not capped by this one.
    let c = book.on_finding(&finding("quiet", "x", 12), &[], at(9));
    assert_eq!(c.suppressed, 0);
}

#[test]
fn retraction_resolves_or_annotates() {
    let mut book = IncidentBook::new(policy());
    book.on_finding(&finding("whale", "a", 10), &[], at(0));
    book.on_finding(&finding("burst", "b", 10), &[], at(0));
    book.on_finding(&finding("burst", "b", 11), &[], at(1));
    let orphaned = [(10u64, B256::with_last_byte(10))];
    let c = book.on_retraction(31337, &orphaned, at(2));
    assert_eq!(c.changed.len(), 2);
    let whale = book.get("whale/a").expect("whale");
    assert_eq!(whale.state, State::Resolved);
    assert!(whale.note.as_deref().unwrap_or("").starts_with("retracted"));
    let burst = book.get("burst/b").expect("burst");
    assert_eq!(burst.state, State::Firing);
    assert!(burst
        .note
        .as_deref()
        .unwrap_or("")
        .starts_with("partly retracted"));
    // Another chain, or another hash at the same height, changes nothing.
    assert!(book
        .on_retraction(1, &[(11, B256::with_last_byte(11))], at(3))
        .changed
        .is_empty());
    assert!(book
        .on_retraction(31337, &[(11, B256::with_last_byte(99))], at(3))
        .changed
        .is_empty());
}

#[test]
fn restart_updates_stored_incidents() {
    let mut first = IncidentBook::new(policy());
    first.on_finding(&finding("burst", "a", 10), &[], at(0));
    first.set_id("burst/a", 7);
    let stored: Vec<Incident> = first.firing().cloned().collect();
    let mut second = IncidentBook::new(policy());
    second.load(stored);
    let c = second.on_finding(&finding("burst", "a", 11), &[], at(5));
    assert_eq!(c.changed[0].id, Some(7));
    assert_eq!(c.changed[0].findings, 2);
}

#[test]
fn rendered_alert_carries_labels_and_numbers() {
    let mut book = IncidentBook::new(policy());
    book.on_finding(
        &finding("burst", "0xabc", 10),
        &[tripwire_detect::Action::Pause],
        at(0),
    );
    let render = Render {
        chains: [(31337, "devnet".to_string())].into_iter().collect(),
        explorer_tx_url: Some("https://explorer.example/tx/{tx_hash}".into()),
        generator_url: "http://watchdog.example/detectors/{detector}".into(),
        firing_ttl: Duration::from_secs(180),
    };
    let i = book.get("burst/0xabc").expect("incident");
    let a = render.alert(i, at(10));
    assert_eq!(a.labels["alertname"], "TripwireRate");
    assert_eq!(a.labels["chain"], "devnet");
    assert_eq!(a.labels["contract"], "vault");
    assert_eq!(a.labels["event"], "Withdraw");
    assert_eq!(a.labels["detector"], "burst");
    assert_eq!(a.labels["severity"], "warning");
    assert_eq!(a.annotations["observed"], "40");
    assert_eq!(a.annotations["expected"], "2");
    assert_eq!(a.annotations["p_value"], "1.000e-12");
    assert_eq!(a.annotations["block"], "10");
    assert_eq!(a.annotations["actions"], "pause");
    assert!(a.annotations["explorer"].starts_with("https://explorer.example/tx/0x"));
    assert_eq!(a.generator_url, "http://watchdog.example/detectors/burst");
    assert_eq!(a.ends_at, at(190));
    let json = serde_json::to_value(&a).expect("serializes");
    assert!(json.get("startsAt").is_some() && json.get("generatorURL").is_some());
}

#[test]
fn incidents_resolve_by_their_chains_block_time() {
    let mut book = IncidentBook::new(policy());
    book.on_finding(&finding("burst", "a", 10), &[], at(0));
    // Another chain's blocks, however late, do not move this chain's clock.
    assert!(book.advance(1, at(10_000)).changed.is_empty());
    assert!(book.advance(31337, at(119)).changed.is_empty());
    let c = book.advance(31337, at(120));
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].state, State::Resolved);
    assert_eq!(
        c.changed[0].resolved_at,
        Some(at(120)),
        "resolved at block time"
    );
    // A block of a replaced fork with an earlier time does not move the clock back.
    book.advance(31337, at(50));
    assert_eq!(book.clock(31337), Some(at(120)));
    // Cooldown by the chain's clock too: forgotten only once its blocks are past it.
    book.forget_old();
    assert!(book.get("burst/a").is_some(), "still cooling down at 120 s");
    book.advance(31337, at(120 + 600));
    book.forget_old();
    assert!(book.get("burst/a").is_none());
}

#[test]
fn separate_attacks_hours_apart_are_separate_incidents() {
    let mut book = IncidentBook::new(policy());
    let c = book.on_finding(&finding("whale", "a", 100), &[], at(0));
    let first = c.changed[0].clone();
    // The blocks that follow resolve it after the hold; an hour of blocks later (read a moment
    // later in wall time, as when catching up) the next attack is past the cooldown too.
    let resolved = book.advance(31337, at(120));
    assert_eq!(resolved.changed.len(), 1);
    assert!(book.advance(31337, at(3_600)).changed.is_empty());
    let c = book.on_finding(&finding("whale", "a", 400), &[], at(3_600));
    assert_eq!(c.changed.len(), 1);
    let second = &c.changed[0];
    assert_eq!(second.findings, 1, "a new incident, not a second finding");
    assert_eq!(second.opened_block, 400);
    assert_eq!(first.opened_block, 100);
}

#[test]
fn an_incident_keeps_its_opening_block() {
    let mut book = IncidentBook::new(policy());
    book.on_finding(&finding("burst", "a", 10), &[], at(0));
    book.on_finding(&finding("burst", "a", 11), &[], at(1));
    let c = book.on_finding(&finding("burst", "a", 12), &[], at(2));
    let i = &c.changed[0];
    assert_eq!((i.opening_block(), i.block_number), (10, 12));
    assert_eq!(i.trigger_span(), Some((10, 12)));
    let c = book.on_retraction(31337, &[(10, B256::with_last_byte(10))], at(3));
    let i = &c.changed[0];
    assert_eq!(i.opening_block(), 10, "the opening block stays what it was");
    assert_eq!(i.trigger_span(), Some((11, 12)));
    // An incident stored before the opening block was kept: its oldest trigger stands in.
    let mut old = i.clone();
    old.opened_block = 0;
    assert_eq!(old.opening_block(), 11);
}

#[test]
fn a_chain_clock_ahead_of_ours_still_gives_alertmanager_a_started_alert() {
    // Block time 10 minutes ahead of the wall clock (a test chain, a skewed validator).
    let mut book = IncidentBook::new(policy());
    book.on_finding(&finding("burst", "a", 10), &[], at(600));
    let render = Render {
        chains: Default::default(),
        explorer_tx_url: None,
        generator_url: String::new(),
        firing_ttl: Duration::from_secs(15),
    };
    let now = at(0);
    let a = render.alert(book.get("burst/a").expect("incident"), now);
    assert_eq!(a.starts_at, now, "started by now, not in 10 minutes");
    assert!(a.ends_at > a.starts_at);
    let resolved = book.advance(31337, at(600 + 120)).changed.remove(0);
    let a = render.alert(&resolved, now);
    assert_eq!(a.ends_at, now, "a resolution has ended by now");
}
