//! Tests of a contract's `transactions` key: its forms, the validation of listed functions, and
//! the decoding of calldata with the ABI's functions.

use alloy_primitives::{hex, FixedBytes};

use crate::tests::repo;
use crate::*;

fn contract(extra: &str) -> String {
    format!(
        r#"
[postgres]
url = "postgres://postgres@127.0.0.1/test"
[kafka]
brokers = "embedded"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_urls = ["http://127.0.0.1:8545"]
[[contracts]]
name = "treasury"
chain = "devnet"
addresses = ["0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"]
{extra}
"#
    )
}

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_str_at(text, &repo().join("examples/test.toml"))
}

fn selector(sig: &str) -> FixedBytes<4> {
    alloy_json_abi::Function::parse(sig).unwrap().selector()
}

#[test]
fn off_by_default_and_true_watches_every_call() {
    let s = parse(&contract("")).unwrap();
    assert_eq!(s.contracts[0].transactions, TxWatch::Off);
    assert!(!s.contracts[0].transactions.matches(None));
    let s = parse(&contract("transactions = false")).unwrap();
    assert!(!s.contracts[0].transactions.is_on());
    let s = parse(&contract("transactions = true")).unwrap();
    assert_eq!(s.contracts[0].transactions, TxWatch::All);
    assert!(s.contracts[0].transactions.matches(None));
}

#[test]
fn a_function_list_watches_those_selectors_and_decodes_them() {
    let s = parse(&contract(
        r#"transactions = ["pause()", "grantRole(bytes32,address)"]"#,
    ))
    .unwrap();
    let watch = &s.contracts[0].transactions;
    assert_eq!(
        *watch,
        TxWatch::Functions(vec![
            selector("pause()"),
            selector("grantRole(bytes32,address)")
        ])
    );
    assert!(watch.matches(Some(selector("pause()"))));
    assert!(!watch.matches(Some(selector("unpause()"))));
    assert!(!watch.matches(None), "a plain transfer calls no function");
    // Without an ABI file the listed signatures decode the calls (unnamed parameters).
    let mut data = selector("grantRole(bytes32,address)").to_vec();
    data.extend([0x11; 32]);
    data.extend([0u8; 12]);
    data.extend(hex!("cf7ed3acca5a467e9e704c703e8d87f634fb0fc9"));
    let call = s.contracts[0].abi.decode_call(&data).expect("decodes");
    assert_eq!(call.name, "grantRole");
    assert_eq!(call.signature, "grantRole(bytes32,address)");
    assert_eq!(call.params["arg0"], format!("0x{}", "11".repeat(32)));
    assert_eq!(
        call.params["arg1"],
        "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
    );
    assert!(s.contracts[0].abi.decode_call(&data[..40]).is_none());
}

#[test]
fn the_abi_files_functions_decode_with_their_names() {
    let s = parse(&contract(
        r#"abi = "../contracts/out/Treasury.json"
transactions = ["function pause()", "withdraw(uint256)"]"#,
    ))
    .unwrap();
    let abi = &s.contracts[0].abi;
    assert!(abi.functions().any(|f| f.name == "grantRole"));
    let mut data = selector("withdraw(uint256)").to_vec();
    data.extend(alloy_primitives::U256::from(7).to_be_bytes::<32>());
    let call = abi.decode_call(&data).expect("decodes");
    assert_eq!(call.name, "withdraw");
    let (name, value) = call.params.iter().next().unwrap();
    assert!(!name.starts_with("arg"), "named from the ABI: {name}");
    assert_eq!(value, "7");
}

#[test]
fn bad_transactions_values_name_the_field_and_value() {
    let e = parse(&contract(r#"transactions = ["pause("]"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("contracts[0] (treasury).transactions") && e.contains("`pause(`"),
        "{e}"
    );
    let e = parse(&contract(
        r#"abi = "../contracts/out/Treasury.json"
transactions = ["rescue(address)"]"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("contracts[0] (treasury).transactions")
            && e.contains("`rescue(address)`")
            && e.contains("not a function of the contract's ABI"),
        "{e}"
    );
    let e = parse(&contract("transactions = []"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("contracts[0] (treasury).transactions"), "{e}");
    let e = parse(&contract(r#"transactions = "yes""#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("true, false or a list of function signatures"),
        "{e}"
    );
}
