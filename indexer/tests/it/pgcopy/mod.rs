//! Integration tests of the binary COPY writer against a real Postgres. Every test works in a
//! database of its own (`testkit::postgres::TestDb`, created through `TRIPWIRE_TEST_PG_ADMIN_URL`;
//! default `postgres://postgres@127.0.0.1:5432/postgres`, a database every cluster has), migrated,
//! and dropped again when the test ends.
//!
//! This module holds that database and the rows written and read back; the tests are in
//! `encoding` (what the rows hold), `transactions` (conflicts, rollbacks, failures, retries) and
//! `tx_rows` (the rows of `transaction` records).
//!
//! `cargo test --release -p tripwire-indexer --test it -- --ignored --nocapture pgcopy::encoding::copy_throughput`
//! measures the write rate.

mod encoding;
mod transactions;
mod tx_rows;

use alloy::primitives::{Address, Bytes, B256};
use serde_json::{json, Map, Value};
use sqlx::{PgPool, Row};
use testkit::postgres::TestDb;
use tripwire_schema::{BlockMarker, DecodedEvent, LogRecord};

/// A migrated throwaway database (`testkit`'s, dropped when the value is, also when the test
/// panics).
async fn migrated_db() -> TestDb {
    let db = TestDb::create().await.expect("create the test database");
    tripwire_store::migrate(db.pool()).await.expect("migrate");
    db
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
