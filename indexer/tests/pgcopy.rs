//! Integration tests of the binary COPY writer against a real Postgres. Every test works in a
//! database of its own, created through `TRIPWIRE_TEST_PG_ADMIN_URL` (as for the testkit; default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a database every cluster has) and dropped again when the test ends.
//!
//! `cargo test --release -p tripwire-indexer --test pgcopy -- --ignored --nocapture copy_throughput`
//! measures the write rate.

use std::str::FromStr;
use std::time::Instant;

use alloy::primitives::{Address, Bytes, B256};
use serde_json::{json, Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tripwire_schema::{BlockMarker, DecodedEvent, LogRecord};
use tripwire_store::pgcopy::{
    flush_blocks, flush_logs, prepare_staging, store_blocks, store_logs, BlockCopyBuffer,
    LogCopyBuffer,
};

fn admin_options() -> PgConnectOptions {
    let url = std::env::var("TRIPWIRE_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| testkit::postgres::DEFAULT_ADMIN_URL.into());
    PgConnectOptions::from_str(&url).expect("TRIPWIRE_TEST_PG_ADMIN_URL is a Postgres URL")
}

/// A migrated throwaway database, dropped when the value is (also when the test panics).
struct TestDb {
    name: String,
    pool: PgPool,
}

impl TestDb {
    async fn new() -> Self {
        let name = format!("tripwire_pgcopy_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect_with(&admin_options())
            .await
            .expect("connect to the test Postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(admin_options().database(&name))
            .await
            .expect("connect to the test database");
        tripwire_store::migrate(&pool).await.expect("migrate");
        TestDb { name, pool }
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect_with(&admin_options().database(&self.name))
            .await
            .expect("connect to the test database")
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop may run on a runtime thread (or while unwinding), so use a runtime of its own.
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect_with(&admin_options()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await
                    {
                        eprintln!("could not drop test database {name}: {err}");
                    }
                }
            });
        })
        .join()
        .ok();
    }
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().expect("params are an object").clone()
}

fn transfer(chain_id: u64, block: u64, log_index: u64) -> LogRecord {
    LogRecord {
        chain_id,
        block_number: block,
        block_hash: B256::left_padding_from(&block.to_be_bytes()),
        block_timestamp: 1_700_000_000 + block * 12,
        tx_hash: B256::repeat_byte((log_index % 251) as u8),
        tx_index: log_index / 4,
        log_index,
        address: Address::repeat_byte(0x22),
        topics: vec![
            B256::repeat_byte(0xdd),
            B256::left_padding_from(&[0x11; 20]),
            B256::left_padding_from(&[0x12; 20]),
        ],
        data: Bytes::from(vec![0xab; 32]),
        contract: Some("token".into()),
        event: Some(DecodedEvent {
            name: "Transfer".into(),
            signature: "Transfer(address,address,uint256)".into(),
            params: params(json!({
                "from": "0x1111111111111111111111111111111111111111",
                "to": "0x1212121212121212121212121212121212121212",
                "value": (log_index * 1_000_000_007).to_string(),
            })),
        }),
    }
}

fn marker(chain_id: u64, number: u64, hash: u8) -> BlockMarker {
    BlockMarker {
        chain_id,
        number,
        hash: B256::repeat_byte(hash),
        parent_hash: B256::repeat_byte(hash.wrapping_sub(1)),
        timestamp: 1_700_000_000 + number * 12,
        log_count: number as u32 % 7,
    }
}

/// One `logs` row as read back.
#[derive(Debug, PartialEq)]
struct StoredLog {
    chain_id: i64,
    block_number: i64,
    block_hash: Vec<u8>,
    block_timestamp: i64,
    tx_hash: Vec<u8>,
    tx_index: i32,
    log_index: i32,
    address: Vec<u8>,
    topics: [Option<Vec<u8>>; 4],
    data: Vec<u8>,
    contract: Option<String>,
    event_name: Option<String>,
    params: Option<Value>,
}

impl StoredLog {
    fn expected(log: &LogRecord) -> Self {
        StoredLog {
            chain_id: log.chain_id as i64,
            block_number: log.block_number as i64,
            block_hash: log.block_hash.to_vec(),
            block_timestamp: log.block_timestamp as i64,
            tx_hash: log.tx_hash.to_vec(),
            tx_index: log.tx_index as i32,
            log_index: log.log_index as i32,
            address: log.address.to_vec(),
            topics: std::array::from_fn(|i| log.topics.get(i).map(|t| t.to_vec())),
            data: log.data.to_vec(),
            contract: log.contract.clone(),
            event_name: log.event.as_ref().map(|e| e.name.clone()),
            params: log.event.as_ref().map(|e| Value::Object(e.params.clone())),
        }
    }
}

async fn stored_logs(pool: &PgPool) -> Vec<StoredLog> {
    let rows = sqlx::query(
        "SELECT chain_id, block_number, block_hash,
                EXTRACT(EPOCH FROM block_timestamp)::int8 AS block_timestamp,
                tx_hash, tx_index, log_index, address, topic0, topic1, topic2, topic3, data,
                contract, event_name, params
         FROM logs ORDER BY chain_id, block_number, log_index",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| StoredLog {
            chain_id: r.get("chain_id"),
            block_number: r.get("block_number"),
            block_hash: r.get("block_hash"),
            block_timestamp: r.get("block_timestamp"),
            tx_hash: r.get("tx_hash"),
            tx_index: r.get("tx_index"),
            log_index: r.get("log_index"),
            address: r.get("address"),
            topics: [
                r.get("topic0"),
                r.get("topic1"),
                r.get("topic2"),
                r.get("topic3"),
            ],
            data: r.get("data"),
            contract: r.get("contract"),
            event_name: r.get("event_name"),
            params: r.get("params"),
        })
        .collect()
}

/// (number, hash, parent_hash, unix timestamp, log_count) of every stored block, by height.
async fn stored_blocks(pool: &PgPool) -> Vec<(i64, Vec<u8>, Vec<u8>, i64, i32)> {
    sqlx::query_as(
        "SELECT number, hash, parent_hash, EXTRACT(EPOCH FROM \"timestamp\")::int8, log_count
         FROM blocks ORDER BY chain_id, number",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn expected_block(m: &BlockMarker) -> (i64, Vec<u8>, Vec<u8>, i64, i32) {
    (
        m.number as i64,
        m.hash.to_vec(),
        m.parent_hash.to_vec(),
        m.timestamp as i64,
        m.log_count as i32,
    )
}

#[tokio::test]
async fn round_trips_every_field_variant() {
    let db = TestDb::new().await;

    let bare = LogRecord {
        chain_id: 1,
        block_number: 0,
        block_hash: B256::repeat_byte(0x01),
        block_timestamp: 0,
        tx_hash: B256::repeat_byte(0x02),
        tx_index: 0,
        log_index: 0,
        address: Address::repeat_byte(0x03),
        topics: vec![],
        data: Bytes::new(),
        contract: None,
        event: None,
    };
    let big_params = {
        let mut map = Map::new();
        for i in 0..2_000 {
            map.insert(format!("arg{i}"), json!(format!("{}", u128::MAX - i)));
        }
        map.insert("blob".into(), json!(format!("0x{}", "ab".repeat(100_000))));
        map.insert(
            "nested".into(),
            json!({"list": [1, 2.5, -3, null, true, "ü"], "deep": {"x": {"y": []}}}),
        );
        map
    };
    let full = LogRecord {
        chain_id: i64::MAX as u64,
        block_number: 19_000_000,
        block_hash: B256::repeat_byte(0xfe),
        block_timestamp: 1_700_000_123,
        tx_hash: B256::repeat_byte(0xee),
        tx_index: 812,
        log_index: i32::MAX as u64,
        address: Address::repeat_byte(0xcc),
        topics: vec![
            B256::repeat_byte(0xa0),
            B256::repeat_byte(0xa1),
            B256::repeat_byte(0xa2),
            B256::repeat_byte(0xa3),
        ],
        data: Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<_>>()),
        contract: Some("Jetón «Ünïcode» 🚀 токен".into()),
        event: Some(DecodedEvent {
            name: "Überweisung_事件".into(),
            signature: "Überweisung_事件(uint256)".into(),
            params: big_params,
        }),
    };
    // Event decoded but without parameters, a contract without a decoded event, two topics.
    let mut empty_params = transfer(1, 5, 1);
    empty_params.event.as_mut().unwrap().params = Map::new();
    empty_params.topics.truncate(2);
    let mut undecoded = transfer(1, 5, 2);
    undecoded.event = None;
    undecoded.topics.truncate(1);
    // Text that merely looks like an escape must survive unchanged.
    let mut escapes = transfer(1, 6, 0);
    escapes.event.as_mut().unwrap().params = params(json!({
        "quote": "a \"b\" \\ c \\u0000 d",
        "control": "\t\n\u{1}",
    }));

    let logs = vec![
        bare,
        full,
        transfer(1, 5, 0),
        empty_params,
        undecoded,
        escapes,
    ];
    let mut buf = LogCopyBuffer::new();
    assert!(buf.is_empty());
    for log in &logs {
        buf.push(log);
    }
    assert_eq!(buf.len(), logs.len());

    let mut tx = db.pool.begin().await.unwrap();
    prepare_staging(&mut tx).await.unwrap();
    prepare_staging(&mut tx).await.unwrap();
    assert_eq!(
        flush_logs(&mut tx, &mut buf).await.unwrap(),
        logs.len() as u64
    );
    assert!(buf.is_empty());
    tx.commit().await.unwrap();

    let mut expected: Vec<StoredLog> = logs.iter().map(StoredLog::expected).collect();
    expected.sort_by_key(|l| (l.chain_id, l.block_number, l.log_index));
    let stored = stored_logs(&db.pool).await;
    assert_eq!(stored.len(), expected.len());
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!(got, want);
    }

    // A timestamp reads back as the same instant, not shifted by the 2000-01-01 epoch.
    let iso: String = sqlx::query_scalar(
        "SELECT to_char(block_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
         FROM logs WHERE block_number = 19000000",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(iso, "2023-11-14 22:15:23");
}

#[tokio::test]
async fn nul_characters_are_stored_as_replacement_characters() {
    let db = TestDb::new().await;
    let mut log = transfer(1, 1, 0);
    log.contract = Some("tok\0en".into());
    log.event = Some(DecodedEvent {
        name: "Na\0me".into(),
        signature: "Name(string)".into(),
        params: params(json!({
            "s": "a\0b",
            "lit": "\\u0000",
            "k\0ey": ["x\0", {"y": "\0"}],
        })),
    });
    let mut buf = LogCopyBuffer::new();
    buf.push(&log);
    let mut conn = db.conn().await;
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 1);

    let stored = stored_logs(&db.pool).await;
    assert_eq!(stored[0].contract.as_deref(), Some("tok\u{FFFD}en"));
    assert_eq!(stored[0].event_name.as_deref(), Some("Na\u{FFFD}me"));
    assert_eq!(
        stored[0].params,
        Some(json!({
            "s": "a\u{FFFD}b",
            "lit": "\\u0000",
            "k\u{FFFD}ey": ["x\u{FFFD}", {"y": "\u{FFFD}"}],
        }))
    );
}

#[tokio::test]
async fn replayed_logs_are_stored_once() {
    let db = TestDb::new().await;
    let batch: Vec<LogRecord> = (0..500)
        .map(|i| transfer(1, 100 + i / 10, i % 10))
        .collect();
    let mut buf = LogCopyBuffer::new();

    // The same batch twice in one transaction.
    let mut tx = db.pool.begin().await.unwrap();
    batch.iter().for_each(|l| buf.push(l));
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 500);
    batch.iter().for_each(|l| buf.push(l));
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await, 500);

    // Again in a later transaction, with duplicates inside the batch and some new rows.
    let mut tx = db.pool.begin().await.unwrap();
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
    assert_eq!(db.count("logs").await, 525);

    // A log with the same index in another block (or on another chain) is a different log.
    let mut other_block = transfer(1, 100, 0);
    other_block.block_hash = B256::repeat_byte(0x77);
    let other_chain = transfer(2, 100, 0);
    buf.push(&other_block);
    buf.push(&other_chain);
    let mut conn = db.conn().await;
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 2);
    assert_eq!(db.count("logs").await, 527);

    // New rows first and a stored one last: the direct COPY writes thousands of rows before it
    // conflicts, and those must be undone before the batch is merged.
    let mut tx = db.pool.begin().await.unwrap();
    for i in 0..3_000 {
        buf.push(&transfer(3, 1 + i / 100, i % 100));
    }
    buf.push(&batch[0]);
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 3_000);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await, 3_527);

    // An empty buffer is a no-op, even without staging tables.
    let mut fresh = db.conn().await;
    assert_eq!(flush_logs(&mut fresh, &mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn block_markers_upsert_and_the_last_of_a_batch_wins() {
    let db = TestDb::new().await;
    let mut buf = BlockCopyBuffer::new();
    let mut conn = db.conn().await;

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
    assert_eq!(stored_blocks(&db.pool).await, want);

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
    assert_eq!(stored_blocks(&db.pool).await, want);

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
    assert_eq!(stored_blocks(&db.pool).await, want);
}

#[tokio::test]
async fn rollback_discards_everything_and_the_connection_stays_usable() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
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
    assert_eq!(db.count("logs").await, 0);
    assert_eq!(db.count("blocks").await, 0);
    assert_eq!(db.count("sink_offsets").await, 0);

    // The same connection writes the batch again.
    let mut tx = conn.begin().await.unwrap();
    (0..100).for_each(|i| logs.push(&transfer(1, 7, i)));
    blocks.push(&marker(1, 7, 7));
    assert_eq!(flush_logs(&mut tx, &mut logs).await.unwrap(), 100);
    assert_eq!(flush_blocks(&mut tx, &mut blocks).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(db.count("logs").await, 100);
    assert_eq!(db.count("blocks").await, 1);

    // Nothing lingers in staging between transactions.
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_temp.tripwire_staging_logs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn a_failed_flush_clears_the_buffer_and_leaves_nothing() {
    let db = TestDb::new().await;
    sqlx::query("ALTER TABLE logs ADD CONSTRAINT below_1000 CHECK (block_number < 1000)")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut conn = db.conn().await;
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
    assert_eq!(db.count("logs").await, 0);

    // Outside a transaction the flush runs in one of its own, which the failure rolls back.
    buf.push(&transfer(1, 3, 0));
    buf.push(&transfer(1, 6_000, 0));
    assert!(flush_logs(&mut conn, &mut buf).await.is_err());
    assert_eq!(db.count("logs").await, 0);

    buf.push(&transfer(1, 3, 0));
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 1);
    assert_eq!(db.count("logs").await, 1);
}

#[tokio::test]
async fn store_keeps_the_rows_for_a_retry_of_the_transaction() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
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
    assert_eq!(db.count("logs").await, 0);

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
    assert_eq!(db.count("logs").await, 50);
    assert_eq!(db.count("blocks").await, 1);
    let want: Vec<StoredLog> = (0..50)
        .map(|i| StoredLog::expected(&transfer(1, 8, i)))
        .collect();
    assert_eq!(stored_logs(&db.pool).await, want);
}

#[tokio::test]
async fn large_batches_span_several_send_chunks() {
    let db = TestDb::new().await;
    let mut buf = LogCopyBuffer::new();
    let mut conn = db.conn().await;
    // About 12 MB of COPY data.
    for i in 0..6_000u64 {
        let mut log = transfer(5, i / 100, i % 100);
        log.data = Bytes::from(vec![(i % 256) as u8; 2_000]);
        buf.push(&log);
    }
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 6_000);
    tx.commit().await.unwrap();
    let (rows, bytes): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(length(data))::int8 FROM logs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((rows, bytes), (6_000, 12_000_000));
}

/// Not a pass/fail test: prints the write rate of typical rows. Run with
/// `cargo test --release -p tripwire-indexer --test pgcopy -- --ignored --nocapture copy_throughput`.
#[tokio::test]
#[ignore]
async fn copy_throughput() {
    const ROWS: u64 = 200_000;
    const BATCH: u64 = 10_000;
    let db = TestDb::new().await;
    let logs: Vec<LogRecord> = (0..ROWS)
        .map(|i| {
            let mut log = transfer(1, i / 200, i % 200);
            log.data = Bytes::from(vec![(i % 256) as u8; 32 + (i % 2) as usize * 32]);
            log
        })
        .collect();
    let mut conn = db.conn().await;
    let mut buf = LogCopyBuffer::new();

    let started = Instant::now();
    logs.iter().for_each(|l| buf.push(l));
    let encoded = started.elapsed();
    buf.clear();

    let started = Instant::now();
    let mut inserted = 0;
    for batch in logs.chunks(BATCH as usize) {
        let mut tx = conn.begin().await.unwrap();
        batch.iter().for_each(|l| buf.push(l));
        inserted += flush_logs(&mut tx, &mut buf).await.unwrap();
        tx.commit().await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(inserted, ROWS);

    let started = Instant::now();
    logs.iter().for_each(|l| buf.push(l));
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(flush_logs(&mut tx, &mut buf).await.unwrap(), 0);
    tx.commit().await.unwrap();
    let replayed = started.elapsed();

    let rate = |d: std::time::Duration| ROWS as f64 / d.as_secs_f64();
    println!(
        "encode only: {:.0} rows/s; insert ({} transactions of {BATCH}): {:.0} rows/s ({:.2?}); \
         replay of all {ROWS} as one batch: {:.0} rows/s",
        rate(encoded),
        ROWS / BATCH,
        rate(elapsed),
        elapsed,
        rate(replayed),
    );
}
