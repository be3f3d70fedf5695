//! What the binary COPY encoding writes, read back from Postgres: every field variant exactly
//! (empty and full rows, large and nested parameters, Unicode, text that looks like an escape),
//! NUL characters replaced, batches larger than one send chunk, and the write rate
//! (`copy_throughput`, ignored by default).

use std::time::Instant;

use alloy::primitives::{Address, Bytes, B256};
use serde_json::{json, Map};
use sqlx::Connection;
use tripwire_schema::{DecodedEvent, LogRecord};
use tripwire_store::pgcopy::{flush_logs, prepare_staging, LogCopyBuffer};

use super::{migrated_db, params, stored_logs, transfer, StoredLog};

#[tokio::test]
async fn round_trips_every_field_variant() {
    let db = migrated_db().await;

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

    let mut tx = db.pool().begin().await.unwrap();
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
    let stored = stored_logs(db.pool()).await;
    assert_eq!(stored.len(), expected.len());
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!(got, want);
    }

    // A timestamp reads back as the same instant, not shifted by the 2000-01-01 epoch.
    let iso: String = sqlx::query_scalar(
        "SELECT to_char(block_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
         FROM logs WHERE block_number = 19000000",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(iso, "2023-11-14 22:15:23");
}

#[tokio::test]
async fn nul_characters_are_stored_as_replacement_characters() {
    let db = migrated_db().await;
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
    let mut conn = db.conn().await.unwrap();
    assert_eq!(flush_logs(&mut conn, &mut buf).await.unwrap(), 1);

    let stored = stored_logs(db.pool()).await;
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
async fn large_batches_span_several_send_chunks() {
    let db = migrated_db().await;
    let mut buf = LogCopyBuffer::new();
    let mut conn = db.conn().await.unwrap();
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
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!((rows, bytes), (6_000, 12_000_000));
}

/// Not a pass/fail test: prints the write rate of typical rows. Run with
/// `cargo test --release -p tripwire-indexer --test it -- --ignored --nocapture pgcopy::encoding::copy_throughput`.
#[tokio::test]
#[ignore]
async fn copy_throughput() {
    const ROWS: u64 = 200_000;
    const BATCH: u64 = 10_000;
    let db = migrated_db().await;
    let logs: Vec<LogRecord> = (0..ROWS)
        .map(|i| {
            let mut log = transfer(1, i / 200, i % 200);
            log.data = Bytes::from(vec![(i % 256) as u8; 32 + (i % 2) as usize * 32]);
            log
        })
        .collect();
    let mut conn = db.conn().await.unwrap();
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
