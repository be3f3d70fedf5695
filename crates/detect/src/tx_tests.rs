//! The detectors on transactions: a burst of reverted calls raises the rate of failed
//! transactions, a call over the gas threshold fires the threshold rule, a privileged function
//! called by an unknown account fires whether it succeeded or reverted, and an allowed one stays
//! quiet; a detector on transactions ignores logs and one on logs ignores transactions.

use alloy_primitives::Address;
use tripwire_schema::TxStatus;

use super::synth::{detector, log, marker, transaction};
use super::*;

const VAULT: Address = Address::repeat_byte(0x11);
const USER: Address = Address::repeat_byte(0x22);
const TEAM: Address = Address::repeat_byte(0x33);

fn set(body: &str) -> DetectorSet {
    DetectorSet::new(&[detector(body)]).expect("valid detector")
}

#[test]
fn a_burst_of_reverted_calls_raises_the_failed_rate() {
    let mut d = set(
        "name = \"failed\"\nkind = \"rate\"\nsource = \"transactions\"\nstatus = \"reverted\"\n\
         window_s = 60\nwarmup_windows = 10\nbaseline_windows = 50\nmin_count = 5\n",
    );
    let mut found = Vec::new();
    let mut block = 1;
    // 30 quiet minutes: one reverted call every other minute among successful ones.
    for minute in 0..30u64 {
        let ts = 1_000_000 + minute * 60;
        for i in 0..4 {
            let status = if i == 0 && minute % 2 == 0 {
                TxStatus::Reverted
            } else {
                TxStatus::Success
            };
            let tx = transaction(
                VAULT,
                "vault",
                "withdraw(uint256)",
                USER,
                status,
                50_000,
                block,
                ts + i * 12,
                i,
            );
            found.extend(d.observe_transaction(&tx));
        }
        found.extend(d.observe_block(&marker(block, ts + 59)));
        block += 1;
    }
    assert!(found.is_empty(), "quiet traffic alerted: {found:?}");
    // One block with 20 reverted calls.
    let ts = 1_000_000 + 30 * 60;
    for i in 0..20 {
        let tx = transaction(
            VAULT,
            "vault",
            "withdraw(uint256)",
            USER,
            TxStatus::Reverted,
            30_000,
            block,
            ts,
            i,
        );
        found.extend(d.observe_transaction(&tx));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.kind, DetectorKind::Rate);
    assert_eq!(f.block_number, block);
    assert_eq!(f.function.as_deref(), Some("withdraw"));
    assert_eq!(f.status, Some(TxStatus::Reverted));
    assert!(f.tx_hash.is_some());
    assert_eq!(f.log_index, None);
    assert!(f.summary.contains("calls"), "{}", f.summary);
    assert!(f.summary.contains("reverted"), "{}", f.summary);
}

#[test]
fn threshold_on_gas_used_fires_for_each_call_above_it() {
    let mut d = set(
        "name = \"gas\"\nkind = \"threshold\"\nsource = \"transactions\"\nfield = \"gas_used\"\n\
         op = \">\"\nvalue = 2000000\nseverity = \"critical\"\n",
    );
    let at = |gas, i| {
        transaction(
            VAULT,
            "vault",
            "rebalance()",
            USER,
            TxStatus::Success,
            gas,
            7,
            1_000,
            i,
        )
    };
    assert!(d.observe_transaction(&at(1_999_999, 0)).is_empty());
    assert!(d.observe_transaction(&at(2_000_000, 1)).is_empty());
    let found = d.observe_transaction(&at(2_500_000, 2));
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(f.kind, DetectorKind::Threshold);
    assert_eq!(f.observed, 2_500_000.0);
    assert_eq!(f.expected, 2_000_000.0);
    assert_eq!(f.function.as_deref(), Some("rebalance"));
    assert_eq!(f.tx_hash, Some(at(2_500_000, 2).tx_hash));
    assert_eq!(d.observe_transaction(&at(3_000_000, 3)).len(), 1);
    // A rule on transactions ignores logs.
    let l = log(
        VAULT,
        "vault",
        "Rebalanced",
        &[("gas_used", "9000000")],
        7,
        1_000,
        0,
    );
    assert!(d.observe_log(&l).is_empty());
}

#[test]
fn threshold_reads_decoded_params_of_logs() {
    let mut d = set("name = \"big\"\nkind = \"threshold\"\nevent = \"Withdraw\"\nfield = \"amount\"\nop = \">=\"\nvalue = \"1000000000000000000000\"\n");
    let w = |amount: &str| log(VAULT, "vault", "Withdraw", &[("amount", amount)], 3, 100, 0);
    assert!(d.observe_log(&w("999000000000000000000")).is_empty());
    let found = d.observe_log(&w("1000000000000000000000"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event.as_deref(), Some("Withdraw"));
    assert_eq!(found[0].function, None);
}

const PRIVILEGED: &str = "name = \"privileged\"\nkind = \"event\"\nsource = \"transactions\"\n\
    functions = [\"pause()\", \"grantRole\"]\nseverity = \"critical\"\nactions = [\"pause\"]\n\
    allowed_actors = [\"0x3333333333333333333333333333333333333333\"]\n";

#[test]
fn a_privileged_call_by_an_unknown_account_fires_on_success_and_on_revert() {
    let mut d = set(PRIVILEGED);
    for (i, status) in [TxStatus::Success, TxStatus::Reverted]
        .into_iter()
        .enumerate()
    {
        let tx = transaction(
            VAULT, "vault", "pause()", USER, status, 40_000, 9, 900, i as u64,
        );
        let found = d.observe_transaction(&tx);
        assert_eq!(found.len(), 1, "{status:?}: {found:?}");
        let f = &found[0];
        assert_eq!(f.kind, DetectorKind::Event);
        assert_eq!(f.function.as_deref(), Some("pause"));
        assert_eq!(f.status, Some(status));
        assert_eq!(f.tx_hash, Some(tx.tx_hash));
        assert!(f.summary.contains(&USER.to_string()), "{}", f.summary);
    }
    let grant = transaction(
        VAULT,
        "vault",
        "grantRole(bytes32,address)",
        USER,
        TxStatus::Reverted,
        40_000,
        9,
        900,
        2,
    );
    assert_eq!(d.observe_transaction(&grant).len(), 1);
}

#[test]
fn a_privileged_call_by_an_allowed_account_or_an_unlisted_call_is_quiet() {
    let mut d = set(PRIVILEGED);
    for status in [TxStatus::Success, TxStatus::Reverted] {
        let tx = transaction(VAULT, "vault", "pause()", TEAM, status, 40_000, 9, 900, 0);
        assert!(d.observe_transaction(&tx).is_empty());
    }
    let other = transaction(
        VAULT,
        "vault",
        "deposit(uint256)",
        USER,
        TxStatus::Success,
        40_000,
        9,
        900,
        1,
    );
    assert!(d.observe_transaction(&other).is_empty());
    // A signature names one overload only.
    let overload = transaction(
        VAULT,
        "vault",
        "pause(uint256)",
        USER,
        TxStatus::Success,
        40_000,
        9,
        900,
        2,
    );
    assert!(d.observe_transaction(&overload).is_empty());
}

#[test]
fn a_detector_on_logs_ignores_transactions() {
    let mut d =
        set("name = \"gas\"\nkind = \"threshold\"\nfield = \"gas_used\"\nop = \">\"\nvalue = 1\n");
    let tx = transaction(
        VAULT,
        "vault",
        "pause()",
        USER,
        TxStatus::Success,
        5_000_000,
        9,
        900,
        0,
    );
    assert!(d.observe_transaction(&tx).is_empty());
}

fn refused(body: &str) -> InvalidDetector {
    match DetectorSet::new(&[detector(body)]) {
        Err(DetectError::Invalid(e)) => e,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted: {body}"),
    }
}

#[test]
fn keys_of_the_wrong_source_are_refused_naming_them() {
    let gas = "kind = \"threshold\"\nfield = \"gas_used\"\nop = \">\"\nvalue = 1\n";
    assert_eq!(
        refused(&format!("name = \"a\"\n{gas}function = \"pause()\"\n")).field,
        "function"
    );
    assert_eq!(
        refused(&format!("name = \"a\"\n{gas}status = \"reverted\"\n")).field,
        "status"
    );
    assert_eq!(
        refused(&format!(
            "name = \"a\"\n{gas}source = \"transactions\"\nevent = \"Paused\"\n"
        ))
        .field,
        "event"
    );
    let flow = "name = \"f\"\nkind = \"flow\"\nsource = \"transactions\"\nfield = \"amount\"\ninflow = [\"Deposit\"]\noutflow = [\"Withdraw\"]\n";
    assert_eq!(refused(flow).field, "source");
    assert_eq!(
        refused("name = \"e\"\nkind = \"event\"\nsource = \"transactions\"\n").field,
        "functions"
    );
    assert_eq!(
        refused("name = \"e\"\nkind = \"event\"\nfunctions = [\"pause()\"]\n").field,
        "functions"
    );
    assert_eq!(
        refused("name = \"e\"\nkind = \"event\"\nsource = \"transactions\"\nfunctions = [\"pause()\"]\nevents = [\"Paused\"]\n").field,
        "events"
    );
    assert_eq!(
        refused("name = \"v\"\nkind = \"value\"\nsource = \"transactions\"\nfield = \"status\"\n")
            .field,
        "field"
    );
}

#[test]
fn a_privileged_call_opens_an_incident_with_its_actions_and_a_retraction_resolves_it() {
    use super::incidents::{IncidentBook, Policy, State};
    let mut d = set(PRIVILEGED);
    let tx = transaction(
        VAULT,
        "vault",
        "pause()",
        USER,
        TxStatus::Reverted,
        40_000,
        9,
        900,
        0,
    );
    let found = d.observe_transaction(&tx);
    assert_eq!(found.len(), 1);
    let mut book = IncidentBook::new(Policy {
        hold: std::time::Duration::from_secs(300),
        cooldown: std::time::Duration::from_secs(600),
        max_per_minute: 10,
    });
    let now = chrono::DateTime::from_timestamp(900, 0).expect("valid time");
    let opened = book.on_finding(&found[0], &[Action::Pause], now);
    assert_eq!(opened.changed.len(), 1);
    let i = &opened.changed[0];
    assert_eq!(i.actions, vec![Action::Pause]);
    assert_eq!(i.tx_hash, Some(tx.tx_hash));
    assert_eq!(i.block_hash, tx.block_hash);
    // The block leaves the chain: the incident resolves with a note, as for a log's.
    let gone = book.on_retraction(tx.chain_id, &[(tx.block_number, tx.block_hash)], now);
    assert_eq!(gone.changed.len(), 1);
    assert_eq!(gone.changed[0].state, State::Resolved);
    assert!(gone.changed[0]
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("retracted")));
}
