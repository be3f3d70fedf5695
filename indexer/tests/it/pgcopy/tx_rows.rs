//! `transactions` rows through the COPY writer: every field read back as pushed (wei amounts of
//! any size as `numeric`, the optional selector and decoded call, NUL in the free-form strings),
//! and replayed transactions stored once, whether the direct COPY or the staging merge takes them.

use alloy::primitives::{Address, FixedBytes, B256, U256};
use serde_json::{json, Value};
use sqlx::{Connection, PgPool, Row};
use tripwire_schema::{DecodedCall, TransactionRecord, TxStatus};
use tripwire_store::pgcopy::{flush_transactions, store_transactions, TransactionCopyBuffer};

use super::{migrated_db, params};

/// A call in block `block` at position `tx_index`, worth `value` wei.
pub(crate) fn call(chain_id: u64, block: u64, tx_index: u64, value: U256) -> TransactionRecord {
    TransactionRecord {
        chain_id,
        block_number: block,
        block_hash: B256::left_padding_from(&block.to_be_bytes()),
        block_timestamp: 1_700_000_000 + block * 12,
        tx_hash: B256::left_padding_from(&(block * 1_000 + tx_index).to_be_bytes()),
        tx_index,
        from: Address::repeat_byte(0x11),
        to: Address::repeat_byte(0x22),
        value,
        selector: Some(FixedBytes([0x2f, 0x2f, 0xf1, 0x5d])),
        function: Some(DecodedCall {
            name: "grantRole".into(),
            signature: "grantRole(bytes32,address)".into(),
            params: params(json!({
                "role": format!("0x{}", "00".repeat(32)),
                "account": "0x3333333333333333333333333333333333333333",
            })),
        }),
        status: if tx_index.is_multiple_of(3) {
            TxStatus::Reverted
        } else {
            TxStatus::Success
        },
        gas_used: 21_000 + tx_index * 1_000,
        gas_limit: 3_000_000,
        effective_gas_price: U256::from(1_875_000_000u64 + tx_index),
        contract: Some("vault".into()),
    }
}

/// One `transactions` row as read back, amounts as their decimal text.
#[derive(Debug, PartialEq)]
struct StoredTx {
    chain_id: i64,
    block_number: i64,
    block_hash: Vec<u8>,
    block_timestamp: i64,
    tx_hash: Vec<u8>,
    tx_index: i32,
    from: Vec<u8>,
    to: Vec<u8>,
    value: String,
    selector: Option<Vec<u8>>,
    contract: Option<String>,
    function_name: Option<String>,
    function_signature: Option<String>,
    params: Option<Value>,
    status: String,
    gas_used: i64,
    gas_limit: i64,
    effective_gas_price: String,
}

impl StoredTx {
    fn expected(t: &TransactionRecord) -> Self {
        StoredTx {
            chain_id: t.chain_id as i64,
            block_number: t.block_number as i64,
            block_hash: t.block_hash.to_vec(),
            block_timestamp: t.block_timestamp as i64,
            tx_hash: t.tx_hash.to_vec(),
            tx_index: t.tx_index as i32,
            from: t.from.to_vec(),
            to: t.to.to_vec(),
            value: t.value.to_string(),
            selector: t.selector.map(|s| s.to_vec()),
            contract: t.contract.clone(),
            function_name: t.function.as_ref().map(|f| f.name.clone()),
            function_signature: t.function.as_ref().map(|f| f.signature.clone()),
            params: t.function.as_ref().map(|f| Value::Object(f.params.clone())),
            status: t.status.as_str().to_owned(),
            gas_used: t.gas_used as i64,
            gas_limit: t.gas_limit as i64,
            effective_gas_price: t.effective_gas_price.to_string(),
        }
    }
}

async fn stored_txs(pool: &PgPool) -> Vec<StoredTx> {
    let rows = sqlx::query(
        "SELECT chain_id, block_number, block_hash,
                EXTRACT(EPOCH FROM block_timestamp)::int8 AS block_timestamp, tx_hash, tx_index,
                from_address, to_address, value::text AS value, selector, contract, function_name,
                function_signature, params, status, gas_used, gas_limit,
                effective_gas_price::text AS effective_gas_price
         FROM transactions ORDER BY chain_id, block_number, block_hash, tx_index",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| StoredTx {
            chain_id: r.get("chain_id"),
            block_number: r.get("block_number"),
            block_hash: r.get("block_hash"),
            block_timestamp: r.get("block_timestamp"),
            tx_hash: r.get("tx_hash"),
            tx_index: r.get("tx_index"),
            from: r.get("from_address"),
            to: r.get("to_address"),
            value: r.get("value"),
            selector: r.get("selector"),
            contract: r.get("contract"),
            function_name: r.get("function_name"),
            function_signature: r.get("function_signature"),
            params: r.get("params"),
            status: r.get("status"),
            gas_used: r.get("gas_used"),
            gas_limit: r.get("gas_limit"),
            effective_gas_price: r.get("effective_gas_price"),
        })
        .collect()
}

#[tokio::test]
async fn transaction_rows_hold_every_field_and_any_amount() {
    let db = migrated_db().await;
    // Amounts around the base-10000 digits of `numeric`: zero, single digits, trailing zero
    // groups, the largest uint256.
    let amounts = [
        U256::ZERO,
        U256::from(1u64),
        U256::from(9_999u64),
        U256::from(10_000u64),
        U256::from(100_000_000u64),
        U256::from(123_400_000_000u64),
        U256::from(10u64).pow(U256::from(21u64)),
        U256::from(10u64).pow(U256::from(77u64)),
        U256::MAX,
    ];
    let mut txs: Vec<TransactionRecord> = amounts
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut t = call(1, 50, i as u64, *v);
            t.effective_gas_price = amounts[amounts.len() - 1 - i];
            t
        })
        .collect();
    // A plain transfer: no selector, no decoded call, no contract name.
    let mut plain = call(1, 51, 0, U256::from(5u64));
    plain.selector = None;
    plain.function = None;
    plain.contract = None;
    txs.push(plain);
    // NUL in the free-form strings is stored as U+FFFD (Postgres text cannot hold it).
    let mut nul = call(1, 51, 1, U256::ZERO);
    nul.contract = Some("va\0ult".into());
    if let Some(f) = nul.function.as_mut() {
        f.name = "grant\0Role".into();
        f.params.insert("note".into(), json!("a\0b"));
    }
    txs.push(nul.clone());

    let mut buf = TransactionCopyBuffer::new();
    txs.iter().for_each(|t| buf.push(t));
    let mut conn = db.conn().await.unwrap();
    assert_eq!(
        flush_transactions(&mut conn, &mut buf).await.unwrap(),
        txs.len() as u64
    );
    assert!(buf.is_empty());

    let mut expected: Vec<StoredTx> = txs.iter().map(StoredTx::expected).collect();
    let last = expected.last_mut().unwrap();
    last.contract = Some("va\u{FFFD}ult".into());
    last.function_name = Some("grant\u{FFFD}Role".into());
    if let Some(Value::Object(p)) = last.params.as_mut() {
        p.insert("note".into(), json!("a\u{FFFD}b"));
    }
    assert_eq!(stored_txs(db.pool()).await, expected);
}

#[tokio::test]
async fn replayed_transactions_are_stored_once() {
    let db = migrated_db().await;
    let batch: Vec<TransactionRecord> = (0..300)
        .map(|i| call(1, 100 + i / 10, i % 10, U256::from(i)))
        .collect();
    let mut buf = TransactionCopyBuffer::new();

    // The same batch twice in one transaction; `store_*` keeps the rows for a second write.
    let mut tx = db.pool().begin().await.unwrap();
    batch.iter().for_each(|t| buf.push(t));
    assert_eq!(store_transactions(&mut tx, &buf).await.unwrap(), 300);
    assert_eq!(buf.len(), 300);
    assert_eq!(store_transactions(&mut tx, &buf).await.unwrap(), 0);
    tx.commit().await.unwrap();
    buf.clear();
    assert_eq!(db.count("transactions").await.unwrap(), 300);

    // Again in a later transaction, with duplicates inside the batch and some new rows placed
    // after the stored ones (the direct COPY meets the conflict first and is undone).
    let mut tx = db.pool().begin().await.unwrap();
    batch.iter().for_each(|t| buf.push(t));
    for i in 0..20 {
        let new = call(1, 900, i, U256::from(7u64));
        buf.push(&new);
        buf.push(&new);
    }
    assert_eq!(flush_transactions(&mut tx, &mut buf).await.unwrap(), 20);
    tx.commit().await.unwrap();
    assert_eq!(db.count("transactions").await.unwrap(), 320);

    // The same position in another block (or on another chain) is a different transaction.
    let mut other_block = call(1, 100, 0, U256::ZERO);
    other_block.block_hash = B256::repeat_byte(0x77);
    buf.push(&other_block);
    buf.push(&call(2, 100, 0, U256::ZERO));
    let mut conn = db.conn().await.unwrap();
    assert_eq!(flush_transactions(&mut conn, &mut buf).await.unwrap(), 2);
    assert_eq!(db.count("transactions").await.unwrap(), 322);

    // A rolled-back transaction leaves nothing behind.
    let mut tx = conn.begin().await.unwrap();
    buf.push(&call(1, 901, 0, U256::ZERO));
    assert_eq!(flush_transactions(&mut tx, &mut buf).await.unwrap(), 1);
    tx.rollback().await.unwrap();
    assert_eq!(db.count("transactions").await.unwrap(), 322);
}
