//! `transaction` records through the sink's batch transaction against a real Postgres: written
//! with the logs of their block, stored once when the batch is replayed, removed by a retraction
//! of their block and by a marker that replaces their block, exactly as the block's logs are.

use alloy::primitives::{Address, FixedBytes, B256, U256};
use testkit::postgres::TestDb;
use tripwire_schema::{BlockRef, Retraction, StreamRecord, TransactionRecord, TxStatus};
use tripwire_store::{write_batch, Batch};

use crate::sink_batch::{
    count, hash, log, marker, migrated_db, stored_blocks, stored_logs, stored_offset, CHAIN,
    CONSUMER, TOPIC,
};

/// A call at position `tx_index` of block `block` of fork `fork` (reverted when `tx_index` is odd).
pub(crate) fn call(block: u64, fork: u8, tx_index: u64) -> StreamRecord {
    StreamRecord::Transaction(TransactionRecord {
        chain_id: CHAIN,
        block_number: block,
        block_hash: hash(block, fork),
        block_timestamp: 1_700_000_000 + block,
        tx_hash: B256::repeat_byte(0x40 + tx_index as u8),
        tx_index,
        from: Address::repeat_byte(0x11),
        to: Address::repeat_byte(0x22),
        value: U256::from(10u64).pow(U256::from(20u64)),
        selector: Some(FixedBytes([0x84, 0x56, 0xcb, 0x59])),
        function: None,
        status: if tx_index % 2 == 1 {
            TxStatus::Reverted
        } else {
            TxStatus::Success
        },
        gas_used: 2_500_000,
        gas_limit: 3_000_000,
        effective_gas_price: U256::from(1_000_000_007u64),
        contract: Some("token".into()),
    })
}

fn batch_of(first: i64, records: &[StreamRecord]) -> Batch {
    let mut batch = Batch::new();
    for (i, r) in records.iter().enumerate() {
        let payload = r.to_json();
        batch.push(TOPIC, 0, first + i as i64, Some(b"31337"), Some(&payload));
    }
    batch
}

/// (block_number, first byte of block_hash, tx_index) of every stored transaction.
pub(crate) async fn stored_txs(db: &TestDb) -> anyhow::Result<Vec<(i64, u8, i32)>> {
    let rows: Vec<(i64, Vec<u8>, i32)> = sqlx::query_as(
        "SELECT block_number, block_hash, tx_index FROM transactions ORDER BY 1, 2, 3",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(n, h, i)| (n, h[0], i)).collect())
}

#[tokio::test]
async fn transactions_are_written_with_their_block_retracted_with_it_and_stored_once(
) -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let retraction = StreamRecord::Retraction(Retraction {
        chain_id: CHAIN,
        common_ancestor: BlockRef {
            number: 10,
            hash: hash(10, 0),
        },
        orphaned: vec![BlockRef {
            number: 11,
            hash: hash(11, 1),
        }],
    });
    // Stream order: a block's transactions, its logs, its marker; then a reorg of block 11.
    let records = [
        call(10, 0, 0),
        call(10, 0, 1),
        log(10, 0, 0),
        marker(10, 0, 1),
        call(11, 1, 0),
        call(11, 1, 3),
        log(11, 1, 0),
        marker(11, 1, 1),
        retraction,
        call(11, 2, 2),
        marker(11, 2, 0),
    ];
    let batch = batch_of(0, &records);
    let stats = write_batch(db.pool(), CONSUMER, &batch).await?;
    // The orphaned block's transactions were written before the retraction removed them again.
    assert_eq!(stats.transactions_inserted, 5);
    assert_eq!(stats.logs_inserted, 2);
    assert_eq!(stats.dead_letters, 0);
    let txs = vec![(10, 0, 0), (10, 0, 1), (11, 2, 2)];
    assert_eq!(stored_txs(&db).await?, txs);
    assert_eq!(stored_logs(&db).await?, vec![(10, 0, 0)]);
    assert_eq!(stored_blocks(&db).await?, vec![(10, 0), (11, 2)]);
    assert_eq!(stored_offset(&db).await?, Some(11));
    let (status, value, gas): (String, String, i64) = sqlx::query_as(
        "SELECT status, value::text, gas_used FROM transactions WHERE block_number = 10 AND tx_index = 1",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!(
        (status.as_str(), value.as_str(), gas),
        ("reverted", "100000000000000000000", 2_500_000)
    );

    // The same batch again from an older position (a replay of the topic): nothing new, and the
    // retraction, keyed by hash, leaves the replacing fork's transactions alone.
    sqlx::query("UPDATE sink_offsets SET next_offset = 0")
        .execute(db.pool())
        .await?;
    let stats = write_batch(db.pool(), CONSUMER, &batch).await?;
    assert_eq!(stored_txs(&db).await?, txs);
    assert_eq!(count(&db, "dead_letters").await?, 0);
    assert_eq!(count(&db, "reorgs").await?, 1);
    // Block 10's rows are skipped. The orphaned block's two are written and removed again, and
    // its marker replaced fork 2 at height 11 for a moment, which took fork 2's transaction
    // with it until the rows after the retraction wrote it again: 3, as for the logs.
    assert_eq!(stats.transactions_inserted, 3);

    // A later retraction of block 11's fork 2 takes its transactions; block 10's stay.
    let retract_11 = StreamRecord::Retraction(Retraction {
        chain_id: CHAIN,
        common_ancestor: BlockRef {
            number: 10,
            hash: hash(10, 0),
        },
        orphaned: vec![BlockRef {
            number: 11,
            hash: hash(11, 2),
        }],
    });
    write_batch(db.pool(), CONSUMER, &batch_of(11, &[retract_11])).await?;
    assert_eq!(stored_txs(&db).await?, vec![(10, 0, 0), (10, 0, 1)]);
    assert_eq!(stored_blocks(&db).await?, vec![(10, 0)]);
    Ok(())
}

/// A block replaced without a retraction (see `sink_batch`): the replacing marker takes the
/// replaced block's transactions with it, in one batch or across two.
#[tokio::test]
async fn a_marker_that_replaces_a_block_removes_the_replaced_blocks_transactions(
) -> anyhow::Result<()> {
    let db = migrated_db().await?;
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(0, &[call(11, 1, 0), call(11, 1, 1), marker(11, 1, 0)]),
    )
    .await?;
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(3, &[call(11, 2, 5), marker(11, 2, 0)]),
    )
    .await?;
    assert_eq!(stored_txs(&db).await?, vec![(11, 2, 5)]);
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(
            5,
            &[
                call(12, 3, 0),
                marker(12, 3, 0),
                call(12, 4, 1),
                marker(12, 4, 0),
            ],
        ),
    )
    .await?;
    assert_eq!(stored_txs(&db).await?, vec![(11, 2, 5), (12, 4, 1)]);
    assert_eq!(stored_blocks(&db).await?, vec![(11, 2), (12, 4)]);
    Ok(())
}
