//! The root checks on a block anvil mined (a legacy transfer, EIP-1559 transfers and calls, two
//! of them reverted): the honest answer is proven, every altered one is refused.

use alloy::primitives::{address, Address, U256};
use tripwire_config::{ContractAbi, ContractSpec, TxWatch};
use tripwire_schema::TxStatus;

use super::*;

const FIXTURE: &str = include_str!("testdata/anvil_block.json");
/// The contract the fixture's calls went to (it reverts every call).
const REVERTER: Address = address!("5fbdb2315678afecb367f032d93f642f64180aa3");

fn fixture() -> (Header, TxBlock, Vec<TransactionReceipt>) {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    (
        serde_json::from_value(v["header"].clone()).unwrap(),
        serde_json::from_value(v["block"].clone()).unwrap(),
        serde_json::from_value(v["receipts"].clone()).unwrap(),
    )
}

fn spec(watch: TxWatch) -> ContractSpec {
    ContractSpec {
        name: "reverter".into(),
        chain: "devnet".into(),
        addresses: vec![REVERTER],
        abi: ContractAbi::default(),
        start_block: None,
        transactions: watch,
    }
}

#[test]
fn an_anvil_block_with_typed_transactions_is_proven() {
    let (header, block, receipts) = fixture();
    let types: Vec<u8> = block
        .transactions
        .iter()
        .map(|t| t.inner.inner().tx_type() as u8)
        .collect();
    assert_eq!(types, [0, 2, 2, 2], "legacy and EIP-1559 transactions");
    let proven = prove(&header, block, receipts.clone()).expect("honest answer");
    let interest = TxInterest::new([&spec(TxWatch::All)]).unwrap();
    let records = proven.records(31337, &header, &interest).unwrap();
    // The two calls to the contract; the transfers to an unwatched address are not kept.
    assert_eq!(records.len(), 2);
    for (r, receipt) in records.iter().zip([&receipts[1], &receipts[3]]) {
        assert_eq!(r.to, REVERTER);
        assert_eq!(r.status, TxStatus::Reverted);
        assert_eq!(r.tx_hash, receipt.transaction_hash);
        assert_eq!(r.gas_used, receipt.gas_used, "derived from cumulative gas");
        assert_eq!(
            r.effective_gas_price,
            U256::from(receipt.effective_gas_price),
            "derived from the fee fields and the base fee"
        );
        assert_eq!(r.from, receipt.from);
        assert_eq!(r.block_hash, header.hash);
        assert_eq!(r.contract.as_deref(), Some("reverter"));
    }
    assert_eq!(records[0].tx_index, 1);
    assert_eq!(
        records[0].selector.unwrap().as_slice(),
        [0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(records[0].gas_limit, 100_000);
    // A one-byte calldata carries no selector.
    assert_eq!(records[1].selector, None);
    assert!(records[0].function.is_none(), "no ABI: not decoded");
}

#[test]
fn a_function_list_keeps_only_its_calls() {
    let (header, block, receipts) = fixture();
    let proven = prove(&header, block, receipts).unwrap();
    let selector = FixedBytes::<4>::from([0xde, 0xad, 0xbe, 0xef]);
    let interest = TxInterest::new([&spec(TxWatch::Functions(vec![selector]))]).unwrap();
    let records = proven.records(31337, &header, &interest).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].tx_index, 1);
    assert!(TxInterest::new([&spec(TxWatch::Off)]).is_none());
}

#[test]
fn a_dropped_receipt_is_refused() {
    let (header, block, mut receipts) = fixture();
    receipts.remove(1);
    assert!(matches!(
        prove(&header, block, receipts),
        Err(ProofError::ReceiptsRoot { count: 3, .. })
    ));
}

#[test]
fn an_altered_status_is_refused() {
    let (header, block, receipts) = fixture();
    let mut json: Vec<serde_json::Value> = serde_json::to_value(&receipts)
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    assert_eq!(json[1]["status"], "0x0");
    json[1]["status"] = "0x1".into();
    let lied: Vec<TransactionReceipt> =
        serde_json::from_value(serde_json::Value::Array(json)).unwrap();
    assert!(lied[1].inner.status());
    let e = prove(&header, block, lied).unwrap_err();
    assert!(
        matches!(e, ProofError::ReceiptsRoot { count: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("receiptsRoot"), "{e}");
}

#[test]
fn a_dropped_or_altered_transaction_is_refused() {
    let (header, mut block, mut receipts) = fixture();
    block.transactions.remove(1);
    receipts.remove(1);
    let e = prove(&header, block, receipts).unwrap_err();
    assert!(
        matches!(e, ProofError::TransactionsRoot { count: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("transactionsRoot"), "{e}");

    // Another gas limit than the signed one: the encoding, hence the root, differs.
    let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let mut b = v["block"].clone();
    b["transactions"][1]["gas"] = "0x1".into();
    let altered: TxBlock = serde_json::from_value(b).unwrap();
    let (header, _, receipts) = fixture();
    assert!(matches!(
        prove(&header, altered, receipts),
        Err(ProofError::TransactionsRoot { count: 4, .. })
    ));
}

#[test]
fn another_block_or_shuffled_receipts_are_refused() {
    let (mut header, block, receipts) = fixture();
    let honest = header;
    header.hash = B256::repeat_byte(7);
    assert!(matches!(
        prove(&header, block.clone(), receipts.clone()),
        Err(ProofError::OtherBlock { .. })
    ));
    let mut header = honest;
    header.receipts_root = Some(B256::repeat_byte(9));
    assert!(matches!(
        prove(&header, block.clone(), receipts.clone()),
        Err(ProofError::HeaderRoots { .. })
    ));
    // The receipts of the right block but renamed: the root holds, the order check does not.
    let mut renamed = receipts;
    renamed[0].transaction_hash = B256::repeat_byte(1);
    assert!(matches!(
        prove(&honest, block, renamed),
        Err(ProofError::ReceiptOrder { index: 0, .. })
    ));
}
