//! The ABI check of detectors: each way a detector could never fire is refused with the detector
//! and the key named, and the configs that can fire (any contract, the default event catalogue,
//! events several contracts share) pass.

use alloy_json_abi::Event;

use super::{check_against_abis, AbiMismatch, ContractEvents};

fn contract(name: &str, chain_id: u64, sigs: &[&str]) -> ContractEvents {
    ContractEvents {
        name: name.into(),
        chain_id,
        events: sigs
            .iter()
            .map(|s| Event::parse(s).expect("event signature"))
            .collect(),
        functions: Vec::new(),
        transactions: false,
    }
}

/// A token, a vault, a treasury with roles, a raw registry, and a token on a second chain whose
/// `Transfer` names its amount differently.
fn contracts() -> Vec<ContractEvents> {
    vec![
        contract(
            "token",
            1,
            &["event Transfer(address indexed from, address indexed to, uint256 value)"],
        ),
        contract(
            "vault",
            1,
            &[
                "event Deposit(address indexed user, uint256 amount)",
                "event Withdraw(address indexed user, uint256 amount)",
            ],
        ),
        contract(
            "treasury",
            1,
            &[
                "event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender)",
                "event OwnershipTransferred(address indexed previousOwner, address indexed newOwner)",
                "event Withdraw(address indexed user, uint256 amount)",
                "event Note(string sender, uint256)",
            ],
        ),
        contract("registry", 1, &[]),
        contract(
            "bridged",
            10,
            &["event Transfer(address indexed from, address indexed to, uint256 wad)"],
        ),
    ]
}

/// Checks detectors given as `[[d]]` TOML bodies separated by `---`.
fn check(bodies: &str) -> Result<(), AbiMismatch> {
    let ds: Vec<_> = bodies.split("---").map(detector).collect();
    check_against_abis(&ds, &contracts())
}

fn refused(bodies: &str) -> AbiMismatch {
    check(bodies).expect_err("refused")
}

#[test]
fn detectors_that_can_fire_pass() {
    let ok = [
        // The detectors, spelt right.
        "name = \"t\"\nkind = \"value\"\ncontract = \"token\"\nevent = \"Transfer\"\nfield = \"value\"",
        // Any contract: Transfer on the token (value) and on the bridge (wad); the bridge is
        // skipped, which is what naming no contract means.
        "name = \"t\"\nkind = \"value\"\nevent = \"Transfer\"\nfield = \"value\"",
        // No event named: every event with an `amount` (vault and treasury) feeds it.
        "name = \"t\"\nkind = \"value\"\nfield = \"amount\"\ngroup_by = \"user\"",
        // A rate on a raw contract counts its logs: no name or field needed.
        "name = \"t\"\nkind = \"rate\"\ncontract = \"registry\"",
        "name = \"t\"\nkind = \"rate\"\nevent = \"Withdraw\"\ngroup_by = \"user\"\nfilters = { user = \"0x0000000000000000000000000000000000000001\" }",
        "name = \"t\"\nkind = \"flow\"\ncontract = \"vault\"\nfield = \"amount\"\ninflow = [\"Deposit\"]\noutflow = [\"Withdraw\"]",
        // Default catalogue and actor fields: the treasury has two of the events; `sender` of its
        // `Note` is a string but Note is not an event it reads.
        "name = \"t\"\nkind = \"event\"",
        "name = \"t\"\nkind = \"event\"\ncontract = \"treasury\"\nevents = [\"RoleGranted\"]\nactor_fields = [\"sender\"]",
        "name = \"t\"\nkind = \"event\"\nevent = \"OwnershipTransferred\"\nevents = [\"OwnershipTransferred\"]",
        "name = \"t\"\nkind = \"value\"\nchain_id = 10\nevent = \"Transfer\"\nfield = \"wad\"",
    ];
    for body in ok {
        check(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

#[test]
fn unknown_event_is_named_with_what_the_contract_has() {
    let e = refused(
        "name = \"a\"\nkind = \"rate\"\n---\nname = \"big-transfers\"\nkind = \"value\"\ncontract = \"token\"\nevent = \"Transferr\"\nfield = \"value\"",
    );
    assert_eq!(
        e.to_string(),
        "watchdog.detectors[1] \"big-transfers\": event = \"Transferr\": token has no event \"Transferr\" (it has Transfer)"
    );
    // No contract named: every contract is listed, a raw one as raw.
    let e = refused("name = \"r\"\nkind = \"rate\"\nevent = \"Mint\"").to_string();
    assert!(
        e.starts_with("watchdog.detectors[0] \"r\": event = \"Mint\": no contract in scope")
            && e.contains("vault: Deposit, Withdraw")
            && e.contains("registry: none: it is indexed raw"),
        "{e}"
    );
    let e = refused(
        "name = \"f\"\nkind = \"flow\"\ncontract = \"vault\"\nfield = \"amount\"\ninflow = [\"Deposit\"]\noutflow = [\"Withdrawal\"]",
    );
    assert_eq!(e.key, "outflow[0] = \"Withdrawal\"");
    let e = refused(
        "name = \"p\"\nkind = \"event\"\ncontract = \"treasury\"\nevents = [\"RoleGranted\", \"Upgraded\"]",
    );
    assert_eq!((e.index, e.key.as_str()), (0, "events[1] = \"Upgraded\""));
    assert!(
        e.problem.contains("treasury has no event \"Upgraded\""),
        "{e}"
    );
}

#[test]
fn unknown_field_is_named_with_the_parameters_there_are() {
    let e = refused(
        "name = \"big-transfers\"\nkind = \"value\"\ncontract = \"token\"\nevent = \"Transfer\"\nfield = \"amount\"",
    );
    assert_eq!(
        e.to_string(),
        "watchdog.detectors[0] \"big-transfers\": field = \"amount\": Transfer has no parameter \"amount\" (it has from, to, value)"
    );
    let e = refused(
        "name = \"g\"\nkind = \"rate\"\ncontract = \"vault\"\nevent = \"Deposit\"\ngroup_by = \"usr\"",
    );
    assert_eq!(e.key, "group_by = \"usr\"");
    let e = refused(
        "name = \"x\"\nkind = \"rate\"\ncontract = \"token\"\nfilters = { too = \"0x0000000000000000000000000000000000000001\" }",
    );
    assert!(e.key.starts_with("filters.too = "), "{e}");
    // A flow reads `field` from each inflow and outflow event.
    let e = refused(
        "name = \"f\"\nkind = \"flow\"\nfield = \"amount\"\ninflow = [\"Deposit\"]\noutflow = [\"Transfer\"]",
    );
    assert_eq!(e.key, "field = \"amount\"");
    assert!(
        e.problem
            .contains("none of the events it reads has a parameter \"amount\""),
        "{e}"
    );
    // A named actor field the events lack.
    let e = refused(
        "name = \"p\"\nkind = \"event\"\ncontract = \"treasury\"\nactor_fields = [\"account\", \"caller\"]",
    );
    assert_eq!(e.key, "actor_fields[1] = \"caller\"");
    // A raw contract's logs have no fields.
    let e = refused("name = \"v\"\nkind = \"value\"\ncontract = \"registry\"\nfield = \"value\"");
    assert!(e.problem.contains("indexed raw"), "{e}");
}

#[test]
fn wrong_types_are_refused() {
    let e = refused(
        "name = \"v\"\nkind = \"value\"\ncontract = \"token\"\nevent = \"Transfer\"\nfield = \"to\"",
    );
    assert_eq!(e.key, "field = \"to\"");
    assert!(e.problem.contains("is address, not an integer"), "{e}");
    let e = refused(
        "name = \"f\"\nkind = \"flow\"\ncontract = \"vault\"\nfield = \"user\"\ninflow = [\"Deposit\"]\noutflow = [\"Withdraw\"]",
    );
    assert!(e.problem.contains("is address, not an integer"), "{e}");
    let e = refused(
        "name = \"p\"\nkind = \"event\"\ncontract = \"treasury\"\nevents = [\"RoleGranted\"]\nactor_fields = [\"role\"]",
    );
    assert_eq!(e.key, "actor_fields[0] = \"role\"");
    assert!(e.problem.contains("is bytes32, not an address"), "{e}");
    // A default actor field of the wrong type in an event read is refused too.
    let e = refused("name = \"p\"\nkind = \"event\"\ncontract = \"treasury\"\nevents = [\"Note\"]");
    assert_eq!(e.key, "actor_fields[1] = \"sender\" (default)");
}

#[test]
fn scopes_that_select_nothing_are_refused() {
    let e = refused("name = \"c\"\nkind = \"rate\"\ncontract = \"vault\"\nchain_id = 10");
    assert_eq!(e.key, "chain_id = 10");
    // The default catalogue, none of whose events the contract has.
    let e = refused("name = \"p\"\nkind = \"event\"\ncontract = \"vault\"");
    assert_eq!(e.key, "events (default)");
    let e = refused(
        "name = \"p\"\nkind = \"event\"\ncontract = \"treasury\"\nevent = \"Withdraw\"\nevents = [\"RoleGranted\"]",
    );
    assert_eq!(e.key, "event = \"Withdraw\"");
    let e = check_against_abis(&[detector("name = \"r\"\nkind = \"rate\"")], &[]).unwrap_err();
    assert_eq!(e.key, "contract");
}

/// Parses one `[[watchdog.detectors]]` table body.
fn detector(toml_body: &str) -> super::DetectorConfig {
    #[derive(serde::Deserialize)]
    struct One {
        d: super::DetectorConfig,
    }
    let one: One = toml::from_str(&format!("[d]\n{toml_body}")).expect("detector config parses");
    one.d
}
