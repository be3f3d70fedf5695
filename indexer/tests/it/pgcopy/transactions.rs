//! Conflicts and transaction boundaries of the COPY writer: replayed logs stored once (in one
//! transaction, in a later one, after thousands of new rows), block markers upserted with the last
//! of a batch winning, a rollback that discards everything and leaves the connection usable, a
//! failed flush that clears its buffer and stores nothing, and `store_*` keeping the rows for a
//! retry of the transaction.

use alloy::primitives::B256;
use sqlx::Connection;
use tripwire_schema::{BlockMarker, LogRecord};
use tripwire_store::pgcopy::{
    flush_blocks, flush_logs, store_blocks, store_logs, BlockCopyBuffer, LogCopyBuffer,
};

use super::{expected_block, marker, migrated_db, stored_blocks, stored_logs, transfer, StoredLog};

#[tokio::test]
async fn replayed_logs_are_stored_once() {
    let db = migrated_db().await;
    let batch: Vec<LogRecord> = (0..500)
        .map(|i| transfer(1, 100 + i / 10, i % 10))
        .collect();
    let mut buf = LogCopyBuffer::new();

    // The same batch twice in one transaction.
    let mut tx = db.pool().begin().await.unwrap();
    batch.iter().for_each(|l| buf.push(l));
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 500);
    batch.iter().for_each(|l| buf.push(l));
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 500);

    // Again in a later transaction, with duplicates inside the batch and some new rows.
    let mut tx = db.pool().begin().await.unwrap();
    batch.iter().for_each(|l| buf.push(l));
    batch.iter().for_each(|l| buf.push(l));
    for i in 0..25 {
        let new = transfer(1, 900, i);
        buf.push(&new);
        buf.push(&new);
    }
    assert_eq!(buf.len(), 1_050);
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 25);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 525);

    // A log with the same index in another block (or on another chain) is a different log.
    let mut other_block = transfer(1, 100, 0);
    other_block.block_hash = B256::repeat_byte(0x77);
    let other_chain = transfer(2, 100, 0);
    buf.push(&other_block);
    buf.push(&other_chain);
    let mut conn = db.conn().await.unwrap();
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 2);
    assert_eq!(db.count("logs").await.unwrap(), 527);

    // New rows first and a stored one last: the direct COPY writes thousands of rows before it
    // conflicts, and those must be undone before the batch is merged.
    let mut tx = db.pool().begin().await.unwrap();
    for i in 0..3_000 {
        buf.push(&transfer(3, 1 + i / 100, i % 100));
    }
    buf.push(&batch[0]);
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 3_000);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 3_527);

    // An empty buffer is a no-op, even without staging tables.
    let mut fresh = db.conn().await.unwrap();
    assert_eq!(flush_logs(&mut fresh, &mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn block_markers_upsert_and_the_last_of_a_batch_wins() {
    let db = migrated_db().await;
    let mut buf = BlockCopyBuffer::new();
    let mut conn = db.conn().await.unwrap();

    let first: Vec<BlockMarker> = (1..=3).map(|n| marker(1, n, 0x10 + n as u8)).collect();
    first.iter().for_each(|m| buf.push(m));
    assert_eq!(buf.len(), 3);
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(flush_blocks(&mut tx, &mut buf).await.unwrap(), 3);
    assert!(buf.is_empty());
    // Replaying identical markers changes nothing.
    first.iter().for_each(|m| buf.push(m));
    assert_eq!(flush_blocks(&mut tx, &mut buf).await.unwrap(), 0);
    tx.commit().await.unwrap();
    let want: Vec<_> = first.iter().map(expected_block).collect();
    assert_eq!(stored_blocks(db.pool()).await, want);

    // A reorg re-sends height 2 with another hash: it replaces the stored marker.
    let reorged = BlockMarker {
        log_count: 42,
        timestamp: 1_800_000_000,
        ..marker(1, 2, 0xf2)
    };
    buf.push(&reorged);
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(flush_blocks(&mut tx, &mut buf).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let want = vec![
        expected_block(&first[0]),
        expected_block(&reorged),
        expected_block(&first[2]),
    ];
    assert_eq!(stored_blocks(db.pool()).await, want);

    // Several markers per height in one batch: the last pushed wins, whatever the hashes. Height 3
    // is stored already, height 4 is new; another chain at the same height is separate.
    let batch = [
        marker(1, 4, 0x01),
        marker(1, 3, 0x90),
        marker(1, 4, 0xff),
        marker(2, 4, 0x55),
        marker(1, 3, 0x30),
        marker(1, 4, 0x44),
    ];
    batch.iter().for_each(|m| buf.push(m));
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(flush_blocks(&mut tx, &mut buf).await.unwrap(), 3);
    tx.commit().await.unwrap();
    let want = vec![
        expected_block(&first[0]),
        expected_block(&reorged),
        expected_block(&batch[4]),
        expected_block(&batch[5]),
        expected_block(&batch[3]),
    ];
    assert_eq!(stored_blocks(db.pool()).await, want);
}

#[tokio::test]
async fn rollback_discards_everything_and_the_connection_stays_usable() {
    let db = migrated_db().await;
    let mut conn = db.conn().await.unwrap();
    let mut logs = LogCopyBuffer::new();
    let mut blocks = BlockCopyBuffer::new();

    // The staging tables are created inside this transaction, so the rollback removes them too.
    let mut tx = conn.begin().await.unwrap();
    (0..100).for_each(|i| logs.push(&transfer(1, 7, i)));
    blocks.push(&marker(1, 7, 7));
    assert_eq!(flush_logs(&mut tx, &mut logs).await.unwrap(), 100);
    assert_eq!(flush_blocks(&mut tx, &mut blocks).await.unwrap(), 1);
    sqlx::query(
        "INSERT INTO sink_offsets (consumer, topic, partition, next_offset)
         VALUES ('sink', 'chain-1', 0, 101)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 0);
    assert_eq!(db.count("blocks").await.unwrap(), 0);
    assert_eq!(db.count("sink_offsets").await.unwrap(), 0);

    // The same connection writes the batch again.
    let mut tx = conn.begin().await.unwrap();
    (0..100).for_each(|i| logs.push(&transfer(1, 7, i)));
    blocks.push(&marker(1, 7, 7));
    assert_eq!(flush_logs(&mut tx, &mut logs).await.unwrap(), 100);
    assert_eq!(flush_blocks(&mut tx, &mut blocks).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 100);
    assert_eq!(db.count("blocks").await.unwrap(), 1);

    // Nothing lingers in staging between transactions.
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_temp.tripwire_staging_logs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn a_failed_flush_clears_the_buffer_and_leaves_nothing() {
    let db = migrated_db().await;
    sqlx::query("ALTER TABLE logs ADD CONSTRAINT below_1000 CHECK (block_number < 1000)")
        .execute(db.pool())
        .await
        .unwrap();
    let mut conn = db.conn().await.unwrap();
    let mut buf = LogCopyBuffer::new();

    let mut tx = conn.begin().await.unwrap();
    buf.push(&transfer(1, 1, 0));
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 1);
    buf.push(&transfer(1, 2, 0));
    buf.push(&transfer(1, 5_000, 0));
    let err = flush_logs(&mut tx, &mut buf).await.unwrap_err();
    assert!(err.to_string().contains("below_1000"), "{err}");
    assert!(buf.is_empty());
    tx.rollback().await.unwrap();
    assert_eq!(db.count("logs").await.unwrap(), 0);

    // Outside a transaction the flush runs in one of its own, which the failure rolls back.
    buf.push(&transfer(1, 3, 0));
    buf.push(&transfer(1, 6_000, 0));
    assert!(flush_logs(&mut conn, &mut buf).await.is_err());
    assert_eq!(db.count("logs").await.unwrap(), 0);

    buf.push(&transfer(1, 3, 0));
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 1);
    assert_eq!(db.count("logs").await.unwrap(), 1);
}

#[tokio::test]
async fn store_keeps_the_rows_for_a_retry_of_the_transaction() {
    let db = migrated_db().await;
    let mut conn = db.conn().await.unwrap();
    let mut logs = LogCopyBuffer::new();
    let mut blocks = BlockCopyBuffer::new();
    (0..50).for_each(|i| logs.push(&transfer(1, 8, i)));
    blocks.push(&marker(1, 8, 8));

    // Written, then rolled back (as when a later statement of the batch fails).
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(store_logs(&mut tx, &logs).await.unwrap(), 50);
    assert_eq!(store_blocks(&mut tx, &blocks).await.unwrap(), 1);
    tx.rollback().await.unwrap();
    assert_eq!((logs.len(), blocks.len()), (50, 1));
    assert_eq!(db.count("logs").await.unwrap(), 0);

    // The same buffers again, twice: the second time everything is a replay.
    for expected in [(50, 1), (0, 0)] {
        let mut tx = conn.begin().await.unwrap();
        let stored = (
            store_logs(&mut tx, &logs).await.unwrap(),
            store_blocks(&mut tx, &blocks).await.unwrap(),
        );
        tx.commit().await.unwrap();
        assert_eq!(stored, expected);
    }
    assert_eq!(db.count("logs").await.unwrap(), 50);
    assert_eq!(db.count("blocks").await.unwrap(), 1);
    let want: Vec<StoredLog> = (0..50)
        .map(|i| StoredLog::expected(&transfer(1, 8, i)))
        .collect();
    assert_eq!(stored_logs(db.pool()).await, want);
}
