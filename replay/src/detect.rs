//! `detect`: a back-test. The configured detectors run over the chain's history as stored in
//! Postgres (RPC fills blocks Postgres lacks), warmed on the blocks before `--from-block`, and the
//! incidents they would have opened in `[from, to]` are listed. Findings go through the same
//! incident book as the live watchdog (one incident per detector and series, hold, cooldown, storm
//! cap), on block time. Nothing is written anywhere, and no chain state is read: a node without
//! archive state serves the head and the logs and headers of blocks Postgres lacks. The report's
//! writers are in [`crate::report`].
//!
//! Stored transactions (the `transactions` table) are replayed as the stream carries them: a
//! block's transactions by index, then its logs, then its marker, so detectors on transactions are
//! back-tested too.

use std::collections::BTreeMap;

use alloy::primitives::{Address, Bytes, FixedBytes, B256, U256};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tripwire_config::watchdog::WatchdogConfig;
use tripwire_config::Settings;
use tripwire_detect::incidents::{IncidentBook, Policy};
use tripwire_detect::DetectorSet;
use tripwire_rpc::records;
use tripwire_rpc::ChainRpc;
use tripwire_schema::{
    BlockMarker, DecodedCall, DecodedEvent, LogRecord, StreamRecord, TransactionRecord, TxStatus,
};

use crate::plan::Plan;
use crate::progress::Progress;
use crate::ReplayError;

/// An incident the detectors would have opened. Its field names are the JSON report's keys and
/// the CSV report's columns, which scripts read: rename none.
#[derive(Debug, Clone, Serialize)]
pub struct Fired {
    /// The block time of the finding that opened it (RFC 3339 in the reports).
    pub time: DateTime<Utc>,
    /// The block of that finding.
    pub block: u64,
    /// `[[watchdog.detectors]] name`.
    pub detector: String,
    pub severity: String,
    /// What the detector counts separately, e.g. the contract, or contract and recipient.
    pub series: String,
    /// The decision statistic's name (a tail probability, a robust z, a CUSUM) and its value.
    pub score_name: String,
    pub score: f64,
    pub observed: f64,
    pub expected: f64,
    /// The transaction of the finding, if it has one (hex, `null` in JSON, empty in CSV).
    pub tx_hash: Option<B256>,
    pub summary: String,
}

type LogRow = (
    i64,
    Vec<u8>,
    DateTime<Utc>,
    Vec<u8>,
    i32,
    i32,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<u8>,
    Option<String>,
    Option<String>,
    Option<serde_json::Value>,
);

/// block number, block hash, block timestamp, tx hash, tx index, from, to, value, selector,
/// contract, function name, function signature, params, status, gas used, gas limit, effective gas
/// price (large integers as text).
type TxRow = (
    i64,
    Vec<u8>,
    DateTime<Utc>,
    Vec<u8>,
    i32,
    Vec<u8>,
    Vec<u8>,
    String,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<serde_json::Value>,
    String,
    i64,
    (i64, String),
);

/// number, hash, parent hash, timestamp, log count
type BlockRow = (i64, Vec<u8>, Vec<u8>, DateTime<Utc>, i32);

fn b256(v: &[u8]) -> B256 {
    B256::try_from(v).unwrap_or_default()
}

/// The stored transactions of canonical blocks `from..=to`, by block and index.
async fn stored_transactions(
    pool: &PgPool,
    chain_id: u64,
    from: u64,
    to: u64,
) -> Result<Vec<TransactionRecord>, ReplayError> {
    // Gas limit and price share a column of the row (a tuple type holds at most 16).
    let rows: Vec<TxRow> = sqlx::query_as(
        "SELECT block_number, block_hash, block_timestamp, tx_hash, tx_index, from_address,
                to_address, value::text, selector, contract, function_name, function_signature,
                params, status, gas_used, (gas_limit, effective_gas_price::text)
         FROM transactions t WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
           AND EXISTS (SELECT 1 FROM blocks b WHERE b.chain_id = t.chain_id
                       AND b.number = t.block_number AND b.hash = t.block_hash)
         ORDER BY block_number, tx_index",
    )
    .bind(chain_id as i64)
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await?;
    let amount = |s: &str| U256::from_str_radix(s, 10).unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|r| TransactionRecord {
            chain_id,
            block_number: r.0 as u64,
            block_hash: b256(&r.1),
            block_timestamp: r.2.timestamp().max(0) as u64,
            tx_hash: b256(&r.3),
            tx_index: r.4 as u64,
            from: Address::try_from(r.5.as_slice()).unwrap_or_default(),
            to: Address::try_from(r.6.as_slice()).unwrap_or_default(),
            value: amount(&r.7),
            selector: r
                .8
                .and_then(|s| FixedBytes::<4>::try_from(s.as_slice()).ok()),
            contract: r.9,
            function: match (r.10, r.12) {
                (Some(name), Some(serde_json::Value::Object(params))) => Some(DecodedCall {
                    name,
                    signature: r.11.unwrap_or_default(),
                    params,
                }),
                _ => None,
            },
            status: if r.13 == "reverted" {
                TxStatus::Reverted
            } else {
                TxStatus::Success
            },
            gas_used: r.14.max(0) as u64,
            gas_limit: r.15 .0.max(0) as u64,
            effective_gas_price: amount(&r.15 .1),
        })
        .collect())
}

/// The stored records of blocks `from..=to`, per block: transactions by index, logs in order,
/// then the marker.
async fn stored(
    pool: &PgPool,
    chain_id: u64,
    from: u64,
    to: u64,
) -> Result<BTreeMap<u64, Vec<StreamRecord>>, ReplayError> {
    let mut out: BTreeMap<u64, Vec<StreamRecord>> = BTreeMap::new();
    let blocks: Vec<BlockRow> = sqlx::query_as(
        "SELECT number, hash, parent_hash, timestamp, log_count FROM blocks
         WHERE chain_id = $1 AND number BETWEEN $2 AND $3 ORDER BY number",
    )
    .bind(chain_id as i64)
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await?;
    let logs: Vec<LogRow> = sqlx::query_as(
        "SELECT block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, address,
                topic0, topic1, topic2, topic3, data, contract, event_name, params
         FROM logs l WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
           AND EXISTS (SELECT 1 FROM blocks b WHERE b.chain_id = l.chain_id
                       AND b.number = l.block_number AND b.hash = l.block_hash)
         ORDER BY block_number, log_index",
    )
    .bind(chain_id as i64)
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await?;
    // A block's transactions come before its logs, as on the stream.
    for t in stored_transactions(pool, chain_id, from, to).await? {
        out.entry(t.block_number)
            .or_default()
            .push(StreamRecord::Transaction(t));
    }
    for r in logs {
        let topics: Vec<B256> = [r.7, r.8, r.9, r.10]
            .into_iter()
            .flatten()
            .map(|t| b256(&t))
            .collect();
        let event = match (r.13, r.14) {
            (Some(name), Some(serde_json::Value::Object(params))) => Some(DecodedEvent {
                name,
                signature: String::new(),
                params,
            }),
            _ => None,
        };
        out.entry(r.0 as u64)
            .or_default()
            .push(StreamRecord::Log(LogRecord {
                chain_id,
                block_number: r.0 as u64,
                block_hash: b256(&r.1),
                block_timestamp: r.2.timestamp().max(0) as u64,
                tx_hash: b256(&r.3),
                tx_index: r.4 as u64,
                log_index: r.5 as u64,
                address: Address::try_from(r.6.as_slice()).unwrap_or_default(),
                topics,
                data: Bytes::from(r.11),
                contract: r.12,
                event,
            }));
    }
    for (n, hash, parent, ts, count) in blocks {
        out.entry(n as u64)
            .or_default()
            .push(StreamRecord::Block(BlockMarker {
                chain_id,
                number: n as u64,
                hash: b256(&hash),
                parent_hash: b256(&parent),
                timestamp: ts.timestamp().max(0) as u64,
                log_count: count as u32,
            }));
    }
    Ok(out)
}

/// Runs the back-test; `warmup_from` is where learning starts (default: the first stored block).
pub async fn run(
    settings: &Settings,
    watchdog: &WatchdogConfig,
    plan: &Plan,
    rpc: &ChainRpc,
    pool: &PgPool,
    warmup_from: Option<u64>,
) -> Result<(Vec<Fired>, u64), ReplayError> {
    let chain_id = plan.chain.chain_id;
    let mut detectors = DetectorSet::new(&watchdog.detectors)
        .map_err(|e| ReplayError::Invalid(format!("[watchdog] detectors: {e}")))?;
    if detectors.is_empty() {
        return Err(ReplayError::Invalid(
            "the config has no [[watchdog.detectors]] to back-test".into(),
        ));
    }
    let actions: BTreeMap<String, Vec<tripwire_detect::Action>> = watchdog
        .detectors
        .iter()
        .map(|d| (d.name.clone(), d.actions.clone()))
        .collect();
    let am = &watchdog.alertmanager;
    let mut book = IncidentBook::new(Policy {
        hold: std::time::Duration::from_secs(am.resolve_after_s),
        cooldown: std::time::Duration::from_secs(am.cooldown_s),
        max_per_minute: am.max_alerts_per_minute,
    });
    let first_stored: Option<i64> =
        sqlx::query_scalar("SELECT min(number) FROM blocks WHERE chain_id = $1")
            .bind(chain_id as i64)
            .fetch_one(pool)
            .await?;
    let start = warmup_from
        .or(first_stored.map(|n| n as u64))
        .unwrap_or(plan.from)
        .min(plan.from);
    let book_map = records::address_book(&plan.contracts);
    let all_contracts: Vec<_> = settings.contracts_of(&plan.chain.name).cloned().collect();
    let interest = records::interest(&all_contracts);
    let mut fired = Vec::new();
    let mut evaluated = 0u64;
    let mut progress = Progress::new(plan.to - start + 1, 0, "detect");
    let chunk = 2_000u64;
    let mut next = start;
    while next <= plan.to {
        let end = plan.to.min(next + chunk - 1);
        let mut recs = stored(pool, chain_id, next, end).await?;
        // Blocks Postgres does not hold come from RPC, proven like the ingest's.
        let missing: Vec<u64> = (next..=end).filter(|n| !recs.contains_key(n)).collect();
        if let (Some(&lo), Some(&hi)) = (missing.first(), missing.last()) {
            let data = rpc.fetch_range(lo, hi, &interest).await.map_err(|source| {
                ReplayError::NotStored {
                    from: lo,
                    to: hi,
                    source: Box::new(source),
                }
            })?;
            let built = records::build(
                chain_id,
                &plan.chain.name,
                &data.headers,
                data.logs,
                &data.transactions,
                &all_contracts,
                &book_map,
            )
            .map_err(|e| ReplayError::Range(format!("blocks {lo}..={hi}: {e}")))?;
            for r in built {
                let n = match &r {
                    StreamRecord::Log(l) => l.block_number,
                    StreamRecord::Block(b) => b.number,
                    StreamRecord::Transaction(t) => t.block_number,
                    StreamRecord::Retraction(_) => continue,
                };
                if !recs.contains_key(&n) || missing.binary_search(&n).is_ok() {
                    recs.entry(n).or_default().push(r);
                }
            }
        }
        for (n, records) in recs {
            for r in records {
                let (findings, ts) = match &r {
                    StreamRecord::Log(l) => {
                        evaluated += 1;
                        (detectors.observe_log(l), l.block_timestamp)
                    }
                    // `evaluated` counts logs, as the report's line says.
                    StreamRecord::Transaction(t) => {
                        (detectors.observe_transaction(t), t.block_timestamp)
                    }
                    StreamRecord::Block(b) => (detectors.observe_block(b), b.timestamp),
                    StreamRecord::Retraction(_) => continue,
                };
                let now = Utc
                    .timestamp_opt(ts as i64, 0)
                    .single()
                    .unwrap_or_else(Utc::now);
                book.tick(now);
                for f in findings {
                    let acts = actions.get(&f.detector).cloned().unwrap_or_default();
                    let changes = book.on_finding(&f, &acts, now);
                    if n < plan.from {
                        continue;
                    }
                    for i in changes.changed {
                        if i.findings == 1 && i.resolved_at.is_none() {
                            fired.push(Fired {
                                time: now,
                                block: i.opening_block(),
                                detector: i.detector.clone(),
                                severity: i.severity.to_string(),
                                series: i.series.clone(),
                                score_name: i.score_name.clone(),
                                score: i.score,
                                observed: i.observed,
                                expected: i.expected,
                                tx_hash: i.tx_hash,
                                summary: i.summary.clone(),
                            });
                        }
                    }
                }
            }
        }
        progress.advance(end - next + 1, &format!("{} would have fired", fired.len()));
        next = end + 1;
    }
    progress.finish();
    Ok((fired, evaluated))
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
