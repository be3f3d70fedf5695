//! `reset-cursor`: the runbook's "resync from a safe block". The ingest cursor of the chain moves
//! to the block (with the canonical hashes of the blocks below it, for reorg detection), and an
//! audit row records who did it and from where. The ingest must be stopped: it keeps its cursor in
//! memory and would write its own back. Blocks above are fetched and published again on restart;
//! the sink writes them idempotently.

use alloy::primitives::B256;
use sqlx::PgPool;
use tripwire_rpc::ChainRpc;
use tripwire_schema::BlockRef;

use crate::plan::Plan;
use crate::ReplayError;

/// The cursor before the reset, to show in the confirmation.
pub async fn current(pool: &PgPool, chain_id: u64) -> Result<Option<u64>, ReplayError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM ingest_cursors WHERE chain_id = $1")
            .bind(chain_id as i64)
            .fetch_optional(pool)
            .await?;
    Ok(v.map(|v| v as u64))
}

/// The canonical blocks the cursor at `plan.from` keeps (up to the reorg depth below it, the
/// block itself last), checked against the chain before anything is asked or written.
pub async fn window(plan: &Plan, rpc: &ChainRpc) -> Result<Vec<BlockRef>, ReplayError> {
    let to = plan.from;
    let window = plan.chain.max_reorg_depth.max(1);
    let from = to.saturating_sub(window - 1);
    let (headers, _) = rpc.headers(from, to, None).await?;
    let recent: Vec<BlockRef> = headers
        .iter()
        .flatten()
        .map(|h| BlockRef {
            number: h.number,
            hash: h.hash,
        })
        .collect();
    let tip = recent
        .last()
        .copied()
        .ok_or_else(|| ReplayError::Range(format!("no header for block {to}")))?;
    if tip.number != to {
        return Err(ReplayError::Range(format!(
            "headers end at {}, not {to}",
            tip.number
        )));
    }
    Ok(recent)
}

/// Moves the cursor to the last block of `recent` (from [`window`]); returns its hash.
pub async fn reset(
    pool: &PgPool,
    plan: &Plan,
    recent: &[BlockRef],
    who: &str,
) -> Result<B256, ReplayError> {
    let tip = *recent
        .last()
        .ok_or_else(|| ReplayError::Range("no block to reset to".into()))?;
    let old = current(pool, plan.chain.chain_id).await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO ingest_cursors (chain_id, block_number, block_hash, recent, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number,
           block_hash = EXCLUDED.block_hash, recent = EXCLUDED.recent, updated_at = now()",
    )
    .bind(plan.chain.chain_id as i64)
    .bind(tip.number as i64)
    .bind(tip.hash.as_slice())
    .bind(serde_json::to_value(recent).unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO cursor_resets (chain_id, old_block, new_block, new_hash, requested_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(plan.chain.chain_id as i64)
    .bind(old.map(|o| o as i64))
    .bind(tip.number as i64)
    .bind(tip.hash.as_slice())
    .bind(who)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(tip.hash)
}
