//! The ABI check of detectors on transactions: the functions they name and the parameters they
//! read must exist in the contracts in scope; a transaction's own fields always do.

use alloy_json_abi::Function;

use super::{check_against_abis, AbiMismatch, ContractEvents};

fn contracts() -> Vec<ContractEvents> {
    let functions = [
        "function pause()",
        "function withdraw(uint256 amount)",
        "function grantRole(bytes32 role, address account)",
        "function note(string who)",
    ]
    .iter()
    .map(|s| Function::parse(s).expect("function signature"))
    .collect();
    vec![
        ContractEvents {
            name: "treasury".into(),
            chain_id: 1,
            events: Vec::new(),
            functions,
            transactions: true,
        },
        ContractEvents {
            name: "registry".into(),
            chain_id: 1,
            events: Vec::new(),
            functions: Vec::new(),
            transactions: true,
        },
        // Its logs are indexed, its transactions not.
        ContractEvents {
            name: "vault".into(),
            chain_id: 1,
            events: Vec::new(),
            functions: vec![Function::parse("function pause()").expect("function signature")],
            transactions: false,
        },
    ]
}

fn detector(toml_body: &str) -> super::DetectorConfig {
    #[derive(serde::Deserialize)]
    struct One {
        d: super::DetectorConfig,
    }
    let one: One = toml::from_str(&format!("[d]\nsource = \"transactions\"\n{toml_body}"))
        .expect("detector config parses");
    one.d
}

fn check(body: &str) -> Result<(), AbiMismatch> {
    check_against_abis(&[detector(body)], &contracts())
}

#[test]
fn detectors_on_transactions_that_can_fire_pass() {
    for body in [
        "name = \"t\"\nkind = \"rate\"\ncontract = \"treasury\"\nstatus = \"reverted\"",
        "name = \"t\"\nkind = \"rate\"\ncontract = \"treasury\"\nfunction = \"withdraw\"\ngroup_by = \"from\"",
        "name = \"t\"\nkind = \"threshold\"\ncontract = \"treasury\"\nfield = \"gas_used\"\nop = \">\"\nvalue = 2000000",
        "name = \"t\"\nkind = \"value\"\ncontract = \"treasury\"\nfunction = \"withdraw(uint256)\"\nfield = \"amount\"",
        "name = \"t\"\nkind = \"event\"\ncontract = \"treasury\"\nfunctions = [\"pause()\", \"grantRole\"]",
        "name = \"t\"\nkind = \"event\"\ncontract = \"treasury\"\nfunctions = [\"grantRole\"]\nactor_fields = [\"from\", \"account\"]",
        // A raw contract's calls can be counted and measured without an ABI.
        "name = \"t\"\nkind = \"threshold\"\ncontract = \"registry\"\nfield = \"gas_used\"\nop = \">=\"\nvalue = 1",
    ] {
        check(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

#[test]
fn functions_and_parameters_missing_from_the_abi_are_named() {
    let e = check("name = \"t\"\nkind = \"rate\"\ncontract = \"treasury\"\nfunction = \"unpause\"")
        .expect_err("refused");
    assert_eq!(e.key, "function = \"unpause\"");
    assert!(e.problem.contains("pause()"), "{}", e.problem);
    let e = check("name = \"t\"\nkind = \"event\"\ncontract = \"treasury\"\nfunctions = [\"pause()\", \"pause(uint256)\"]")
        .expect_err("refused");
    assert_eq!(e.key, "functions[1] = \"pause(uint256)\"");
    let e =
        check("name = \"t\"\nkind = \"event\"\ncontract = \"registry\"\nfunctions = [\"pause()\"]")
            .expect_err("refused");
    assert!(e.problem.contains("abi"), "{}", e.problem);
    let e = check("name = \"t\"\nkind = \"value\"\ncontract = \"treasury\"\nfunction = \"withdraw\"\nfield = \"amt\"")
        .expect_err("refused");
    assert_eq!(e.key, "field = \"amt\"");
    let e = check("name = \"t\"\nkind = \"threshold\"\ncontract = \"treasury\"\nfunction = \"note\"\nfield = \"who\"\nop = \">\"\nvalue = 1")
        .expect_err("refused");
    assert_eq!(e.key, "field = \"who\"");
    let e = check("name = \"t\"\nkind = \"event\"\ncontract = \"treasury\"\nfunctions = [\"grantRole\"]\nactor_fields = [\"role\"]")
        .expect_err("refused");
    assert_eq!(e.key, "actor_fields[0] = \"role\"");
    let e = check(
        "name = \"t\"\nkind = \"rate\"\ncontract = \"treasury\"\nfilters = { nobody = \"x\" }",
    )
    .expect_err("refused");
    assert_eq!(e.key, "filters.nobody = \"x\"");
}

#[test]
fn a_detector_on_transactions_needs_a_contract_in_scope_that_indexes_them() {
    let e = check("name = \"t\"\nkind = \"rate\"\ncontract = \"vault\"\nstatus = \"reverted\"")
        .expect_err("refused");
    assert_eq!(e.key, "source = \"transactions\"");
    assert!(e.problem.contains("`transactions` on"), "{}", e.problem);
    // Without `contract`, the contracts that index transactions are enough.
    check("name = \"t\"\nkind = \"rate\"\nstatus = \"reverted\"").expect("passes");
}
