//! Bulk writer for the `logs`, `transactions` and `blocks` tables built on Postgres binary `COPY`.
//!
//! Rows are encoded straight into a buffer in the binary `COPY` format ([`LogCopyBuffer`],
//! [`TransactionCopyBuffer`], [`BlockCopyBuffer`]) and written by [`store_logs`] /
//! [`store_transactions`] / [`store_blocks`], which leave the buffer as it is (so a failed
//! transaction can be retried with the same rows), or by the `flush_*` functions, which empty it
//! for reuse. `COPY` is the fastest way
//! into Postgres but cannot upsert, so the flushes go through a per-session temporary staging
//! table without indexes: `COPY` into staging, merge into the real table with `INSERT ... SELECT
//! ... ON CONFLICT`, empty staging again.
//!
//! Logs and transactions take a shortcut first: in the normal case none of them is stored yet, and a `COPY`
//! straight into the table costs about half of staging plus merge (the `ON CONFLICT` insert is the
//! expensive part). That `COPY` runs under a savepoint; if it hits a stored log (or a duplicate in
//! the batch) it is rolled back to the savepoint and the batch takes the staging route.
//!
//! Everything runs on the connection the caller passes in, so inside the caller's transaction: the
//! sink writes its Kafka offset in the same transaction and a rollback discards rows and offset
//! together. The writes are idempotent: a replayed log or transaction is skipped (`ON CONFLICT DO NOTHING` on the
//! natural key), a replayed block marker overwrites the one stored at its height.
//!
//! Postgres cannot store U+0000 in `text` or `jsonb`, and one such row would fail the whole `COPY`
//! (and with it the caller's transaction) on every retry. NUL characters in the contract name, the
//! event or function name and signature and the decoded parameters are therefore stored as U+FFFD.

mod encode;

use sqlx::{Connection, PgConnection};

pub use encode::{BlockCopyBuffer, LogCopyBuffer, TransactionCopyBuffer};
use encode::{CopyData, COPY_TRAILER, SEND_CHUNK};

/// `true` when all staging tables exist in this session. Checked rather than relying on
/// `CREATE ... IF NOT EXISTS` alone, which raises a notice (logged by sqlx) on every call.
const STAGING_EXISTS: &str = "SELECT to_regclass('pg_temp.tripwire_staging_logs') IS NOT NULL \
     AND to_regclass('pg_temp.tripwire_staging_blocks') IS NOT NULL \
     AND to_regclass('pg_temp.tripwire_staging_transactions') IS NOT NULL";

/// Staging tables: the shape of the real tables without keys or indexes, so `COPY` only appends.
/// `seq` orders block markers of one batch so that the last one for a height wins. `ON COMMIT
/// DELETE ROWS` empties them at the end of every transaction, even one that ends unusually.
const CREATE_STAGING: &str = "\
CREATE TEMP TABLE IF NOT EXISTS tripwire_staging_logs \
    (LIKE logs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS; \
CREATE TEMP TABLE IF NOT EXISTS tripwire_staging_blocks \
    (LIKE blocks INCLUDING DEFAULTS, seq BIGINT NOT NULL) ON COMMIT DELETE ROWS; \
CREATE TEMP TABLE IF NOT EXISTS tripwire_staging_transactions \
    (LIKE transactions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS";

/// Column order of the `COPY` statements; [`LogCopyBuffer::push`] and [`BlockCopyBuffer::push`]
/// write the fields in exactly this order.
const COPY_LOGS: &str = "COPY pg_temp.tripwire_staging_logs (chain_id, block_number, block_hash, \
     block_timestamp, tx_hash, tx_index, log_index, address, topic0, topic1, topic2, topic3, data, \
     contract, event_name, params) FROM STDIN (FORMAT binary)";
const LOG_FIELDS: i16 = 16;
/// The same straight into `logs`: the fast path of [`flush_logs`].
const COPY_LOGS_DIRECT: &str = "COPY logs (chain_id, block_number, block_hash, block_timestamp, \
     tx_hash, tx_index, log_index, address, topic0, topic1, topic2, topic3, data, contract, \
     event_name, params) FROM STDIN (FORMAT binary)";

/// Columns of the `transactions` `COPY` statements, in the order [`TransactionCopyBuffer::push`]
/// writes them.
macro_rules! tx_columns {
    () => {
        "chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, from_address, \
         to_address, value, selector, contract, function_name, function_signature, params, status, \
         gas_used, gas_limit, effective_gas_price"
    };
}
const COPY_TRANSACTIONS: &str = concat!(
    "COPY pg_temp.tripwire_staging_transactions (",
    tx_columns!(),
    ") FROM STDIN (FORMAT binary)"
);
const TX_FIELDS: i16 = 18;
/// The same straight into `transactions`, tried first as for logs.
const COPY_TRANSACTIONS_DIRECT: &str = concat!(
    "COPY transactions (",
    tx_columns!(),
    ") FROM STDIN (FORMAT binary)"
);
/// Merge into `transactions` (a stored transaction is skipped, like a stored log) and empty the
/// staging table; the affected-row count is the number of inserted rows.
const MERGE_TRANSACTIONS: &str = concat!(
    "INSERT INTO transactions (",
    tx_columns!(),
    ") SELECT ",
    tx_columns!(),
    " FROM pg_temp.tripwire_staging_transactions \
     ON CONFLICT (chain_id, block_number, block_hash, tx_index) DO NOTHING; \
     TRUNCATE pg_temp.tripwire_staging_transactions"
);

/// Bounds the direct `COPY` into `logs` or `transactions`, so that a conflict undoes only that attempt.
const SAVEPOINT: &str = "SAVEPOINT tripwire_pgcopy";
const RELEASE: &str = "RELEASE SAVEPOINT tripwire_pgcopy";
const ROLLBACK_AND_RELEASE: &str =
    "ROLLBACK TO SAVEPOINT tripwire_pgcopy; RELEASE SAVEPOINT tripwire_pgcopy";

const COPY_BLOCKS: &str = "COPY pg_temp.tripwire_staging_blocks (chain_id, number, hash, \
     parent_hash, \"timestamp\", log_count, seq) FROM STDIN (FORMAT binary)";
const BLOCK_FIELDS: i16 = 7;

/// Merge into `logs` and empty the staging table, in one round trip. The `TRUNCATE` reports no
/// rows, so the affected-row count of the whole string is the number of inserted logs.
const MERGE_LOGS: &str = "\
INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, \
    log_index, address, topic0, topic1, topic2, topic3, data, contract, event_name, params) \
SELECT chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, \
    address, topic0, topic1, topic2, topic3, data, contract, event_name, params \
FROM pg_temp.tripwire_staging_logs \
ON CONFLICT (chain_id, block_number, block_hash, log_index) DO NOTHING; \
TRUNCATE pg_temp.tripwire_staging_logs";

/// Upsert into `blocks`: the last marker of the batch per height, replacing a stored marker only
/// when it differs (so a replayed batch reports, and writes, nothing).
const MERGE_BLOCKS: &str = "\
INSERT INTO blocks (chain_id, number, hash, parent_hash, \"timestamp\", log_count) \
SELECT DISTINCT ON (chain_id, number) chain_id, number, hash, parent_hash, \"timestamp\", log_count \
FROM pg_temp.tripwire_staging_blocks \
ORDER BY chain_id, number, seq DESC \
ON CONFLICT (chain_id, number) DO UPDATE SET \
    hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash, \
    \"timestamp\" = EXCLUDED.\"timestamp\", log_count = EXCLUDED.log_count \
WHERE (blocks.hash, blocks.parent_hash, blocks.\"timestamp\", blocks.log_count) \
    IS DISTINCT FROM (EXCLUDED.hash, EXCLUDED.parent_hash, EXCLUDED.\"timestamp\", EXCLUDED.log_count); \
TRUNCATE pg_temp.tripwire_staging_blocks";

/// Before markers are merged: the heights whose block the batch replaces (a stored block of
/// another hash at that height, or two hashes for it within the batch), with the batch's final
/// block there. Normally a retraction removed the replaced block's rows already; this also covers
/// a block replaced without one (its records reached Kafka just before a crash that lost the
/// ingest's memory of them), so that no height keeps the logs of two blocks. It reads only the
/// staged markers and `blocks`; `logs` is touched only for the (rare) heights it returns.
const FIND_REPLACED: &str = "\
SELECT f.chain_id, f.number, f.hash FROM ( \
    SELECT DISTINCT ON (chain_id, number) chain_id, number, hash \
    FROM pg_temp.tripwire_staging_blocks ORDER BY chain_id, number, seq DESC \
) f \
WHERE EXISTS (SELECT 1 FROM blocks b \
              WHERE b.chain_id = f.chain_id AND b.number = f.number AND b.hash <> f.hash) \
   OR EXISTS (SELECT 1 FROM pg_temp.tripwire_staging_blocks s \
              WHERE s.chain_id = f.chain_id AND s.number = f.number AND s.hash <> f.hash)";

/// The logs at those heights that are not of the final block.
const DELETE_REPLACED_LOGS: &str = "\
DELETE FROM logs l USING unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS r (chain_id, number, hash) \
WHERE l.chain_id = r.chain_id AND l.block_number = r.number AND l.block_hash <> r.hash";

/// The transactions at those heights that are not of the final block.
const DELETE_REPLACED_TRANSACTIONS: &str = "\
DELETE FROM transactions t USING unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS r (chain_id, number, hash) \
WHERE t.chain_id = r.chain_id AND t.block_number = r.number AND t.block_hash <> r.hash";

/// Creates the temporary staging tables of this session unless they exist. Safe to call
/// repeatedly and inside a transaction. Optional: the flush functions call it themselves, because
/// a staging table created in a transaction that later rolled back is gone again.
pub async fn prepare_staging(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let exists: bool = sqlx::query_scalar(STAGING_EXISTS)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        sqlx::raw_sql(CREATE_STAGING).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes the buffered rows into `logs`, skipping logs already stored (`ON CONFLICT (chain_id,
/// block_number, block_hash, log_index) DO NOTHING`; duplicates within the batch are fine too).
/// Returns the number of rows actually inserted. The buffer is left as it is, so the same rows can
/// be written again after a failed transaction.
///
/// Tries a `COPY` straight into `logs` under a savepoint first and falls back to staging and merge
/// when that meets a unique violation (see the module documentation). The savepoint is released
/// again, but each call still adds a subtransaction to the caller's transaction: keep the number of
/// calls per transaction well below 64, beyond which Postgres snapshots get slower.
///
/// Runs in the caller's transaction; without one it opens and commits its own. The transaction
/// must have been opened through sqlx (`begin()`), which is how a write recognises it.
pub async fn store_logs(
    conn: &mut sqlx::PgConnection,
    buf: &LogCopyBuffer,
) -> Result<u64, sqlx::Error> {
    store(conn, &buf.data, &LOGS).await
}

/// Writes the buffered rows into `transactions`, skipping transactions already stored (`ON
/// CONFLICT (chain_id, block_number, block_hash, tx_index) DO NOTHING`; duplicates within the
/// batch are fine too). Returns the number of rows actually inserted.
///
/// Direct `COPY` first, staging on a conflict, transaction and buffer behaviour: as for
/// [`store_logs`].
pub async fn store_transactions(
    conn: &mut sqlx::PgConnection,
    buf: &TransactionCopyBuffer,
) -> Result<u64, sqlx::Error> {
    store(conn, &buf.data, &TRANSACTIONS).await
}

/// COPYs the buffered markers into staging and upserts them into `blocks`: a marker replaces the
/// stored one at its height (`ON CONFLICT (chain_id, number) DO UPDATE`), and of several markers
/// for one height in the batch the last pushed wins. Returns the number of rows inserted or
/// changed; a marker identical to the stored one is not rewritten and not counted.
///
/// Transaction and buffer behaviour as for [`store_logs`].
pub async fn store_blocks(
    conn: &mut sqlx::PgConnection,
    buf: &BlockCopyBuffer,
) -> Result<u64, sqlx::Error> {
    store(conn, &buf.data, &BLOCKS).await
}

/// [`store_logs`], then empties the buffer (keeping its allocation) for the next rows. The buffer
/// is cleared whether or not the write succeeds: after an error the transaction is aborted and the
/// rows must be pushed again from their source.
pub async fn flush_logs(
    conn: &mut sqlx::PgConnection,
    buf: &mut LogCopyBuffer,
) -> Result<u64, sqlx::Error> {
    let result = store_logs(conn, buf).await;
    buf.clear();
    result
}

/// [`store_transactions`], then empties the buffer as [`flush_logs`] does.
pub async fn flush_transactions(
    conn: &mut sqlx::PgConnection,
    buf: &mut TransactionCopyBuffer,
) -> Result<u64, sqlx::Error> {
    let result = store_transactions(conn, buf).await;
    buf.clear();
    result
}

/// [`store_blocks`], then empties the buffer as [`flush_logs`] does.
pub async fn flush_blocks(
    conn: &mut sqlx::PgConnection,
    buf: &mut BlockCopyBuffer,
) -> Result<u64, sqlx::Error> {
    let result = store_blocks(conn, buf).await;
    buf.clear();
    result
}

/// Which table a flush writes and how.
struct Target {
    /// `COPY` into the real table, tried first when set (see [`store_logs`]).
    copy_direct: Option<&'static str>,
    /// `COPY` into the staging table.
    copy_staging: &'static str,
    /// The staged rows are block markers: a replaced block's logs and transactions go before the
    /// merge.
    markers: bool,
    /// Merge of the staging table into the real table, emptying the staging table.
    merge: &'static str,
}

const LOGS: Target = Target {
    copy_direct: Some(COPY_LOGS_DIRECT),
    copy_staging: COPY_LOGS,
    markers: false,
    merge: MERGE_LOGS,
};

const TRANSACTIONS: Target = Target {
    copy_direct: Some(COPY_TRANSACTIONS_DIRECT),
    copy_staging: COPY_TRANSACTIONS,
    markers: false,
    merge: MERGE_TRANSACTIONS,
};

const BLOCKS: Target = Target {
    copy_direct: None,
    copy_staging: COPY_BLOCKS,
    markers: true,
    merge: MERGE_BLOCKS,
};

async fn store(
    conn: &mut PgConnection,
    data: &CopyData,
    target: &Target,
) -> Result<u64, sqlx::Error> {
    if data.rows == 0 {
        return Ok(0);
    }
    let rows = data.rows as u64;
    let stream = data.buf.as_slice();
    if conn.is_in_transaction() {
        write(conn, stream, rows, target).await
    } else {
        // The staging tables empty themselves on commit, so COPY and merge must share a
        // transaction.
        let mut tx = conn.begin().await?;
        let written = write(&mut tx, stream, rows, target).await?;
        tx.commit().await?;
        Ok(written)
    }
}

async fn write(
    conn: &mut PgConnection,
    stream: &[u8],
    rows: u64,
    target: &Target,
) -> Result<u64, sqlx::Error> {
    if let Some(copy_direct) = target.copy_direct {
        sqlx::raw_sql(SAVEPOINT).execute(&mut *conn).await?;
        match copy_in(conn, copy_direct, stream).await {
            Ok(copied) => {
                sqlx::raw_sql(RELEASE).execute(&mut *conn).await?;
                debug_assert_eq!(copied, rows, "COPY stored a different number of rows");
                return Ok(copied);
            }
            Err(err) if is_unique_violation(&err) => {
                sqlx::raw_sql(ROLLBACK_AND_RELEASE)
                    .execute(&mut *conn)
                    .await?;
            }
            Err(err) => return Err(err),
        }
    }
    prepare_staging(conn).await?;
    let copied = copy_in(conn, target.copy_staging, stream).await?;
    debug_assert_eq!(copied, rows, "COPY stored a different number of rows");
    if target.markers {
        delete_replaced_logs(conn).await?;
    }
    let merged = sqlx::raw_sql(target.merge).execute(&mut *conn).await?;
    Ok(merged.rows_affected())
}

/// See [`FIND_REPLACED`].
async fn delete_replaced_logs(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let replaced: Vec<(i64, i64, Vec<u8>)> =
        sqlx::query_as(FIND_REPLACED).fetch_all(&mut *conn).await?;
    if replaced.is_empty() {
        return Ok(());
    }
    let chains: Vec<i64> = replaced.iter().map(|r| r.0).collect();
    let numbers: Vec<i64> = replaced.iter().map(|r| r.1).collect();
    let hashes: Vec<&[u8]> = replaced.iter().map(|r| r.2.as_slice()).collect();
    let removed = sqlx::query(DELETE_REPLACED_LOGS)
        .bind(&chains)
        .bind(&numbers)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    let removed_txs = sqlx::query(DELETE_REPLACED_TRANSACTIONS)
        .bind(&chains)
        .bind(&numbers)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    tracing::warn!(
        blocks = replaced.len(),
        logs = removed.rows_affected(),
        transactions = removed_txs.rows_affected(),
        first = numbers.iter().min(),
        "blocks replaced without a retraction: the replaced blocks' logs and transactions removed"
    );
    Ok(())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Streams `data` (a binary `COPY` stream without its trailer) and the trailer through
/// `statement`; returns the rows copied.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: &[u8],
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    for chunk in data.chunks(SEND_CHUNK).chain([&COPY_TRAILER[..]]) {
        let sent = copy.send(chunk).await.map(|_| ());
        if let Err(err) = sent {
            // End the COPY so the connection stays in a known state; the send error is the one
            // worth reporting.
            let _ = copy.abort("tripwire: sending COPY data failed").await;
            return Err(err);
        }
    }
    copy.finish().await
}

#[cfg(test)]
#[path = "../pgcopy_tests.rs"]
mod tests;
