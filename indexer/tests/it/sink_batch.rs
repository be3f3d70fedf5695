//! The sink's batch transaction against a real Postgres: stream order inside a batch (rows before a
//! retraction are written before its deletes), dead letters, offsets and cursors in the same
//! transaction, replays that change nothing, and a failed write that stores nothing and succeeds
//! later with the same batch.

use alloy::primitives::{Address, Bytes, B256};
use testkit::postgres::TestDb;
use tripwire_schema::{BlockMarker, BlockRef, DecodedEvent, LogRecord, Retraction, StreamRecord};
use tripwire_store::{write_batch, Batch, WriteError};

pub(crate) const CHAIN: u64 = 31337;
pub(crate) const TOPIC: &str = "tripwire.test.events";
pub(crate) const CONSUMER: &str = "test-sink";

pub(crate) async fn migrated_db() -> anyhow::Result<TestDb> {
    let db = TestDb::create().await?;
    tripwire_store::migrate(db.pool()).await?;
    Ok(db)
}

pub(crate) fn hash(block: u64, fork: u8) -> B256 {
    let mut h = B256::left_padding_from(&block.to_be_bytes());
    h.0[0] = fork;
    h
}

pub(crate) fn log(block: u64, fork: u8, log_index: u64) -> StreamRecord {
    StreamRecord::Log(LogRecord {
        chain_id: CHAIN,
        block_number: block,
        block_hash: hash(block, fork),
        block_timestamp: 1_700_000_000 + block,
        tx_hash: B256::repeat_byte(log_index as u8),
        tx_index: 0,
        log_index,
        address: Address::repeat_byte(0x22),
        topics: vec![B256::repeat_byte(0xdd)],
        data: Bytes::from(vec![fork; 32]),
        contract: Some("token".into()),
        event: Some(DecodedEvent {
            name: "Ping".into(),
            signature: "Ping(uint256)".into(),
            params: serde_json::json!({ "fork": fork.to_string() })
                .as_object()
                .unwrap()
                .clone(),
        }),
    })
}

pub(crate) fn marker(block: u64, fork: u8, log_count: u32) -> StreamRecord {
    StreamRecord::Block(BlockMarker {
        chain_id: CHAIN,
        number: block,
        hash: hash(block, fork),
        parent_hash: hash(block - 1, 0),
        timestamp: 1_700_000_000 + block,
        log_count,
    })
}

/// Logs and markers of blocks 10 (fork 0) and 11 (fork 1), a retraction of 11, then block 11 of
/// fork 2; an unreadable message and one without payload in between. Offsets 100.. of partition 0.
fn reorg_batch() -> Batch {
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
    let record = |r: StreamRecord| Some(r.to_json());
    let messages = [
        record(log(10, 0, 0)),
        record(log(10, 0, 1)),
        record(log(10, 0, 2)),
        record(marker(10, 0, 3)),
        record(log(11, 1, 0)),
        record(log(11, 1, 1)),
        record(marker(11, 1, 2)),
        record(retraction),
        Some(b"not a record".to_vec()),
        record(log(11, 2, 0)),
        None,
        record(marker(11, 2, 1)),
    ];
    let mut batch = Batch::new();
    for (i, payload) in messages.iter().enumerate() {
        batch.push(TOPIC, 0, 100 + i as i64, Some(b"31337"), payload.as_deref());
    }
    batch
}

/// (block_number, first byte of block_hash, log_index) of every stored log.
pub(crate) async fn stored_logs(db: &TestDb) -> anyhow::Result<Vec<(i64, u8, i32)>> {
    let rows: Vec<(i64, Vec<u8>, i32)> =
        sqlx::query_as("SELECT block_number, block_hash, log_index FROM logs ORDER BY 1, 2, 3")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(n, h, i)| (n, h[0], i)).collect())
}

pub(crate) async fn stored_blocks(db: &TestDb) -> anyhow::Result<Vec<(i64, u8)>> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT number, hash FROM blocks ORDER BY 1")
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(|(n, h)| (n, h[0])).collect())
}

pub(crate) async fn count(db: &TestDb, table: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(db.pool())
            .await?,
    )
}

pub(crate) async fn stored_offset(db: &TestDb) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2 AND partition = 0",
    )
    .bind(CONSUMER)
    .bind(TOPIC)
    .fetch_optional(db.pool())
    .await?)
}

#[tokio::test]
async fn a_batch_applies_its_records_in_stream_order_and_a_replay_changes_nothing(
) -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let batch = reorg_batch();
    assert_eq!(batch.len(), 12);
    assert_eq!(batch.next_offsets().collect::<Vec<_>>(), [(TOPIC, 0, 112)]);

    let stats = write_batch(db.pool(), CONSUMER, &batch).await?;
    // The orphaned block's logs were written before the retraction removed them again.
    assert_eq!(stats.logs_inserted, 6);
    assert_eq!(stats.retractions, 1);
    assert_eq!(stats.dead_letters, 2);
    assert_eq!(
        stats.cursors.get(&CHAIN),
        Some(&BlockRef {
            number: 11,
            hash: hash(11, 2)
        })
    );
    let logs = vec![(10, 0, 0), (10, 0, 1), (10, 0, 2), (11, 2, 0)];
    let blocks = vec![(10, 0), (11, 2)];
    assert_eq!(stored_logs(&db).await?, logs);
    assert_eq!(stored_blocks(&db).await?, blocks);
    assert_eq!(count(&db, "reorgs").await?, 1);
    assert_eq!(count(&db, "dead_letters").await?, 2);
    assert_eq!(stored_offset(&db).await?, Some(112));
    let cursor: (i64, Vec<u8>) =
        sqlx::query_as("SELECT block_number, block_hash FROM sink_cursors WHERE chain_id = $1")
            .bind(CHAIN as i64)
            .fetch_one(db.pool())
            .await?;
    assert_eq!(cursor, (11, hash(11, 2).to_vec()));
    let reason: String =
        sqlx::query_scalar("SELECT error FROM dead_letters WHERE kafka_offset = 108")
            .fetch_one(db.pool())
            .await?;
    assert!(reason.contains("not valid JSON"), "{reason}");

    // The same batch again under the stored position (a retry after a commit whose answer was
    // lost, or a second instance that read it too): fenced, nothing written.
    let err = write_batch(db.pool(), CONSUMER, &batch).await.unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::Fenced {
                stored: 112,
                first: 100,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(stored_logs(&db).await?, logs);
    assert_eq!(stored_offset(&db).await?, Some(112));

    // After the position was moved back (`offsets reset --to earliest`, a replay of the topic):
    // the retraction, keyed by hash, leaves the fork that replaced the orphaned block alone.
    sqlx::query("UPDATE sink_offsets SET next_offset = 0")
        .execute(db.pool())
        .await?;
    write_batch(db.pool(), CONSUMER, &batch).await?;
    assert_eq!(stored_logs(&db).await?, logs);
    assert_eq!(stored_blocks(&db).await?, blocks);
    assert_eq!(count(&db, "reorgs").await?, 1);
    assert_eq!(count(&db, "dead_letters").await?, 2);
    assert_eq!(stored_offset(&db).await?, Some(112));
    Ok(())
}

#[tokio::test]
async fn a_failed_write_stores_nothing_and_the_same_batch_is_stored_later() -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let batch = reorg_batch();
    // Storing the offsets is the last statement of the transaction: everything before it
    // succeeds (the fence only reads them).
    sqlx::query(
        "ALTER TABLE sink_offsets ADD CONSTRAINT refuse_all CHECK (next_offset < 0) NOT VALID",
    )
    .execute(db.pool())
    .await?;
    let err = write_batch(db.pool(), CONSUMER, &batch).await.unwrap_err();
    assert!(err.to_string().contains("sink_offsets"), "{err}");
    for table in ["logs", "blocks", "reorgs", "dead_letters", "sink_cursors"] {
        assert_eq!(count(&db, table).await?, 0, "{table} after a failed write");
    }

    sqlx::query("ALTER TABLE sink_offsets DROP CONSTRAINT refuse_all")
        .execute(db.pool())
        .await?;
    let stats = write_batch(db.pool(), CONSUMER, &batch).await?;
    assert_eq!(stats.logs_inserted, 6);
    assert_eq!(stored_logs(&db).await?.len(), 4);
    assert_eq!(stored_blocks(&db).await?, vec![(10, 0), (11, 2)]);
    assert_eq!(stored_offset(&db).await?, Some(112));
    Ok(())
}

#[tokio::test]
async fn offsets_are_kept_per_partition() -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let mut batch = Batch::new();
    // Two partitions interleaved; blocks arrive in height order, as the ingest publishes them.
    for block in 1..=200u64 {
        let partition = (block % 2) as i32;
        for i in 0..5 {
            let payload = log(block, 0, i).to_json();
            batch.push(
                TOPIC,
                partition,
                block as i64 * 10 + i as i64,
                None,
                Some(&payload),
            );
        }
    }
    let mut offsets: Vec<_> = batch.next_offsets().collect();
    offsets.sort();
    assert_eq!(offsets, [(TOPIC, 0, 2005), (TOPIC, 1, 1995)]);
    let stats = write_batch(db.pool(), CONSUMER, &batch).await?;
    assert_eq!(stats.logs_inserted, 1000);
    assert!(stats.cursors.is_empty(), "no block marker, no cursor");

    // The primary key leads with (chain_id, block_number): no separate index by block.
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname FROM pg_indexes WHERE tablename = 'logs' ORDER BY 1")
            .fetch_all(db.pool())
            .await?;
    assert_eq!(indexes, ["logs_by_event", "logs_pkey"]);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM logs WHERE chain_id = 31337 AND block_number BETWEEN 5 AND 9",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!(rows, 25);
    Ok(())
}

/// A block replaced without a retraction before it (its records reached Kafka just before a
/// crash the ingest could not account for): the replacing marker takes the replaced block's logs
/// with it, whether the two are in one batch or in two, and a block of the same hash again (a
/// replay) removes nothing.
#[tokio::test]
async fn a_marker_that_replaces_a_block_removes_the_replaced_blocks_logs() -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let batch_of = |first: i64, records: Vec<StreamRecord>| {
        let mut batch = Batch::new();
        for (i, r) in records.iter().enumerate() {
            let payload = r.to_json();
            batch.push(TOPIC, 0, first + i as i64, Some(b"31337"), Some(&payload));
        }
        batch
    };
    // Two batches: fork 1 of block 11, then fork 2 of it.
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(
            0,
            vec![
                log(10, 0, 0),
                marker(10, 0, 1),
                log(11, 1, 0),
                log(11, 1, 1),
                marker(11, 1, 2),
            ],
        ),
    )
    .await?;
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(5, vec![log(11, 2, 0), marker(11, 2, 1)]),
    )
    .await?;
    assert_eq!(stored_logs(&db).await?, vec![(10, 0, 0), (11, 2, 0)]);
    assert_eq!(stored_blocks(&db).await?, vec![(10, 0), (11, 2)]);

    // One batch: fork 3 of block 12 and its replacement, fork 4, with no marker stored before.
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(
            7,
            vec![
                log(12, 3, 0),
                log(12, 3, 1),
                marker(12, 3, 2),
                log(12, 4, 0),
                marker(12, 4, 1),
            ],
        ),
    )
    .await?;
    assert_eq!(
        stored_logs(&db).await?,
        vec![(10, 0, 0), (11, 2, 0), (12, 4, 0)]
    );
    assert_eq!(stored_blocks(&db).await?, vec![(10, 0), (11, 2), (12, 4)]);

    // The canonical blocks again (a replay): nothing removed.
    write_batch(
        db.pool(),
        CONSUMER,
        &batch_of(
            12,
            vec![
                log(11, 2, 0),
                marker(11, 2, 1),
                log(12, 4, 0),
                marker(12, 4, 1),
            ],
        ),
    )
    .await?;
    assert_eq!(
        stored_logs(&db).await?,
        vec![(10, 0, 0), (11, 2, 0), (12, 4, 0)]
    );
    Ok(())
}
