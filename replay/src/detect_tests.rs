//! The back-test reads stored transactions: on canonical blocks only, in the stream's order (a
//! block's transactions by index, then its logs, then its marker), with every field as stored.

use alloy::primitives::{Address, B256, U256};
use tripwire_schema::{StreamRecord, TxStatus};

use super::stored;

fn hash(n: u8) -> Vec<u8> {
    B256::repeat_byte(n).to_vec()
}

#[tokio::test]
async fn stored_transactions_come_before_the_logs_of_their_block_and_orphans_are_skipped(
) -> anyhow::Result<()> {
    let db = testkit::postgres::TestDb::create().await?;
    let pool = db.pool();
    tripwire_store::migrate(pool).await?;
    assert!(stored(pool, 1, 10, 10).await?.is_empty());
    sqlx::query(
        "INSERT INTO blocks (chain_id, number, hash, parent_hash, timestamp, log_count)
         VALUES (1, 10, $1, $2, to_timestamp(1000), 1)",
    )
    .bind(hash(0xa1))
    .bind(hash(0xa0))
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index,
                           log_index, address, data, contract, event_name, params)
         VALUES (1, 10, $1, to_timestamp(1000), $2, 0, 0, $3, ''::bytea, 'vault', 'Paused', '{}')",
    )
    .bind(hash(0xa1))
    .bind(hash(0x01))
    .bind(Address::repeat_byte(0x11).to_vec())
    .execute(pool)
    .await?;
    let insert = "INSERT INTO transactions (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, tx_index, from_address, to_address, value, selector, contract, function_name,
            function_signature, params, status, gas_used, gas_limit, effective_gas_price)
         VALUES (1, 10, $1, to_timestamp(1000), $2, $3, $4, $5,
                 123456789012345678901234567890, $6, 'vault', $7, $8, $9, $10, $11, 3000000,
                 1000000007)";
    // Inserted out of order, and one on an orphaned block (another hash at the same height).
    for (block, tx, idx, name, status, gas) in [
        (0xa1, 0x03u8, 2i32, Some("pause"), "reverted", 2_500_000i64),
        (0xa1, 0x02, 1, None, "success", 21_000),
        (0xb1, 0x04, 0, Some("pause"), "success", 40_000),
    ] {
        sqlx::query(insert)
            .bind(hash(block))
            .bind(hash(tx))
            .bind(idx)
            .bind(Address::repeat_byte(0x22).to_vec())
            .bind(Address::repeat_byte(0x11).to_vec())
            .bind(name.map(|_| vec![0x84u8, 0x56, 0xcb, 0x59]))
            .bind(name)
            .bind(name.map(|_| "pause()"))
            .bind(name.map(|_| serde_json::json!({})))
            .bind(status)
            .bind(gas)
            .execute(pool)
            .await?;
    }
    let recs = stored(pool, 1, 10, 10).await?;
    let kinds: Vec<&str> = recs[&10]
        .iter()
        .map(|r| match r {
            StreamRecord::Transaction(_) => "transaction",
            StreamRecord::Log(_) => "log",
            StreamRecord::Block(_) => "block",
            StreamRecord::Retraction(_) => "retraction",
        })
        .collect();
    assert_eq!(kinds, ["transaction", "transaction", "log", "block"]);
    let StreamRecord::Transaction(plain) = &recs[&10][0] else {
        unreachable!("checked above")
    };
    assert_eq!(plain.tx_index, 1);
    assert_eq!(plain.selector, None);
    assert_eq!(plain.function, None);
    assert_eq!(plain.status, TxStatus::Success);
    let StreamRecord::Transaction(t) = &recs[&10][1] else {
        unreachable!("checked above")
    };
    assert_eq!(t.tx_index, 2);
    assert_eq!(t.block_hash, B256::repeat_byte(0xa1));
    assert_eq!(t.tx_hash, B256::repeat_byte(0x03));
    assert_eq!(t.block_timestamp, 1000);
    assert_eq!(t.from, Address::repeat_byte(0x22));
    assert_eq!(t.to, Address::repeat_byte(0x11));
    assert_eq!(
        t.value,
        U256::from_str_radix("123456789012345678901234567890", 10)?
    );
    assert_eq!(t.selector.map(|s| s.0), Some([0x84, 0x56, 0xcb, 0x59]));
    assert_eq!(t.contract.as_deref(), Some("vault"));
    let call = t.function.as_ref().expect("decoded call");
    assert_eq!(
        (call.name.as_str(), call.signature.as_str()),
        ("pause", "pause()")
    );
    assert_eq!(t.status, TxStatus::Reverted);
    assert_eq!((t.gas_used, t.gas_limit), (2_500_000, 3_000_000));
    assert_eq!(t.effective_gas_price, U256::from(1_000_000_007u64));
    Ok(())
}
