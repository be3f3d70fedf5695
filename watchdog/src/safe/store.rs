//! `safe_proposals`: one row per source, written before anything is submitted, so the same
//! incident never gets a second proposal, whatever restarts or re-deliveries happen.

use serde::Serialize;
use sqlx::PgPool;

/// A stored proposal.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Proposal {
    pub id: i64,
    pub source_key: String,
    pub chain_id: i64,
    pub safe: String,
    pub safe_tx_hash: String,
    pub nonce: String,
    pub to_address: String,
    pub value: String,
    pub data: String,
    pub operation: i16,
    pub calls: serde_json::Value,
    pub proposer: String,
    pub signature: String,
    pub state: String,
    pub error: Option<String>,
    pub attempts: i32,
    pub summary: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str =
    "id, source_key, chain_id, safe, safe_tx_hash, nonce, to_address, value, data, \
    operation, calls, proposer, signature, state, error, attempts, summary, created_at, updated_at";

/// A proposal to insert (no id yet).
pub struct NewProposal<'a> {
    pub source_key: &'a str,
    pub chain_id: u64,
    pub safe: String,
    pub safe_tx_hash: String,
    pub nonce: String,
    pub to_address: String,
    pub value: String,
    pub data: String,
    pub operation: u8,
    pub calls: serde_json::Value,
    pub proposer: String,
    pub signature: String,
    pub state: &'static str,
    pub summary: &'a str,
}

pub async fn by_source(pool: &PgPool, source_key: &str) -> Result<Option<Proposal>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM safe_proposals WHERE source_key = $1"
    )))
    .bind(source_key)
    .fetch_optional(pool)
    .await
}

/// Inserts `p` unless its source already has a proposal; returns the stored one either way and
/// whether it is new.
pub async fn insert(pool: &PgPool, p: &NewProposal<'_>) -> Result<(Proposal, bool), sqlx::Error> {
    let inserted: Option<Proposal> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO safe_proposals (source_key, chain_id, safe, safe_tx_hash, nonce, to_address, value,
             data, operation, calls, proposer, signature, state, summary)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (source_key) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(p.source_key)
    .bind(p.chain_id as i64)
    .bind(&p.safe)
    .bind(&p.safe_tx_hash)
    .bind(&p.nonce)
    .bind(&p.to_address)
    .bind(&p.value)
    .bind(&p.data)
    .bind(p.operation as i16)
    .bind(&p.calls)
    .bind(&p.proposer)
    .bind(&p.signature)
    .bind(p.state)
    .bind(p.summary)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(p) => Ok((p, true)),
        None => Ok((
            by_source(pool, p.source_key)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?,
            false,
        )),
    }
}

pub async fn set_state(
    pool: &PgPool,
    id: i64,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE safe_proposals SET state = $2, error = $3, attempts = attempts + 1, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    // The service's error text may quote its URL: stored scrubbed of its credentials.
    .bind(error.map(|e| tripwire_config::secrets::scrub(e).into_owned()))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn pending(pool: &PgPool) -> Result<Vec<Proposal>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM safe_proposals WHERE state = 'pending' ORDER BY id"
    )))
    .fetch_all(pool)
    .await
}

pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<Proposal>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM safe_proposals ORDER BY id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// By id, or by safeTxHash (any case).
pub async fn find(pool: &PgPool, key: &str) -> Result<Option<Proposal>, sqlx::Error> {
    let by_id = key.parse::<i64>().ok();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM safe_proposals WHERE id = $1 OR lower(safe_tx_hash) = lower($2)"
    )))
    .bind(by_id.unwrap_or(-1))
    .bind(key)
    .fetch_optional(pool)
    .await
}
