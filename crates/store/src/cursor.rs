//! The ingest's resumable position: the last block whose records Kafka acknowledged, plus the
//! canonical hashes of the blocks below it (up to the maximum reorg depth), so that a reorg that
//! happened while the process was down is still detected and walked back after a restart.

use std::collections::VecDeque;

use alloy::primitives::B256;
use sqlx::PgPool;
use tripwire_schema::BlockRef;

/// The ingest's position on one chain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cursor {
    /// Canonical blocks already published, lowest first; the last one is the tip.
    pub recent: VecDeque<BlockRef>,
    /// Blocks beyond the tip whose records may be in Kafka: handed to the producer before a
    /// crash that left no cursor for them (`ingest_pending`). Empty once resolved.
    pub pending: Vec<BlockRef>,
}

impl Cursor {
    /// The highest published block, `None` before the first one.
    pub fn tip(&self) -> Option<BlockRef> {
        self.recent.back().copied()
    }

    /// Appends a newly published block and keeps at most `window` blocks.
    pub fn push(&mut self, block: BlockRef, window: usize) {
        self.recent.push_back(block);
        while self.recent.len() > window {
            self.recent.pop_front();
        }
    }

    /// Drops every block above `number` (after a reorg).
    pub fn truncate_above(&mut self, number: u64) {
        while self.recent.back().is_some_and(|b| b.number > number) {
            self.recent.pop_back();
        }
    }
}

/// Loads the cursor of `chain_id`; empty when the chain was never ingested.
pub async fn load(pool: &PgPool, chain_id: u64) -> Result<Cursor, sqlx::Error> {
    let row: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT recent FROM ingest_cursors WHERE chain_id = $1")
            .bind(chain_id as i64)
            .fetch_optional(pool)
            .await?;
    let recent: VecDeque<BlockRef> = match row {
        Some((recent,)) => serde_json::from_value(recent)
            .map_err(|e| sqlx::Error::Decode(format!("ingest_cursors.recent: {e}").into()))?,
        None => VecDeque::new(),
    };
    let pending: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT blocks FROM ingest_pending WHERE chain_id = $1")
            .bind(chain_id as i64)
            .fetch_optional(pool)
            .await?;
    let pending = match pending {
        Some((blocks,)) => serde_json::from_value(blocks)
            .map_err(|e| sqlx::Error::Decode(format!("ingest_pending.blocks: {e}").into()))?,
        None => Vec::new(),
    };
    Ok(Cursor { recent, pending })
}

/// Records the blocks about to be handed to Kafka, before any of their records is sent: after a
/// crash before [`save`], they tell the restarted ingest what Kafka may hold beyond its cursor.
pub async fn save_pending(
    pool: &PgPool,
    chain_id: u64,
    headers: &[tripwire_rpc::Header],
) -> Result<(), sqlx::Error> {
    let blocks: Vec<BlockRef> = headers
        .iter()
        .map(|h| BlockRef {
            number: h.number,
            hash: h.hash,
        })
        .collect();
    sqlx::query(
        "INSERT INTO ingest_pending (chain_id, blocks, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (chain_id) DO UPDATE SET blocks = EXCLUDED.blocks, updated_at = now()",
    )
    .bind(chain_id as i64)
    .bind(serde_json::to_value(&blocks).expect("block refs serialise"))
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores the cursor (only after Kafka acknowledged everything up to its tip) and, in the same
/// statement, forgets the pending blocks: the cursor now accounts for them.
pub async fn save(
    pool: &PgPool,
    chain_id: u64,
    cursor: &Cursor,
    head: u64,
) -> Result<(), sqlx::Error> {
    match cursor.tip() {
        Some(tip) => {
            sqlx::query(
                "WITH done AS (DELETE FROM ingest_pending WHERE chain_id = $1)
                 INSERT INTO ingest_cursors (chain_id, block_number, block_hash, recent, head_block, updated_at)
                 VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number,
                   block_hash = EXCLUDED.block_hash, recent = EXCLUDED.recent,
                   head_block = EXCLUDED.head_block, updated_at = now()",
            )
            .bind(chain_id as i64)
            .bind(tip.number as i64)
            .bind(tip.hash.as_slice())
            .bind(serde_json::to_value(&cursor.recent).expect("block refs serialise"))
            .bind(head as i64)
            .execute(pool)
            .await?;
        }
        None => {
            // Everything ingested was retracted down to before the start block.
            sqlx::query(
                "WITH done AS (DELETE FROM ingest_pending WHERE chain_id = $1)
                 DELETE FROM ingest_cursors WHERE chain_id = $1",
            )
            .bind(chain_id as i64)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Records the head without moving the cursor (while idle or while Kafka is unreachable).
pub async fn save_head(pool: &PgPool, chain_id: u64, head: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ingest_cursors SET head_block = $2, updated_at = now() WHERE chain_id = $1",
    )
    .bind(chain_id as i64)
    .bind(head as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Registers the chain's name (for the `indexer_state` view).
pub async fn register_chain(pool: &PgPool, chain_id: u64, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO chains (chain_id, name) VALUES ($1, $2)
         ON CONFLICT (chain_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()",
    )
    .bind(chain_id as i64)
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

/// The zero hash stands for "unknown" when a reorg reaches below the start block.
pub const UNKNOWN_HASH: B256 = B256::ZERO;

/// Replaces the chain's rows in `rpc_providers` with the pool's current state (providers removed
/// from the config disappear).
pub async fn save_providers(
    pool: &PgPool,
    chain_id: u64,
    providers: &[tripwire_rpc::ProviderStatus],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let names: Vec<String> = providers.iter().map(|p| p.provider.clone()).collect();
    sqlx::query("DELETE FROM rpc_providers WHERE chain_id = $1 AND provider <> ALL($2)")
        .bind(chain_id as i64)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    for p in providers {
        sqlx::query(
            "INSERT INTO rpc_providers
                 (chain_id, provider, weight, in_rotation, head_block, error_rate, latency_ms, reason,
                  inconsistent_answers, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
             ON CONFLICT (chain_id, provider) DO UPDATE SET
                 weight = EXCLUDED.weight, in_rotation = EXCLUDED.in_rotation,
                 head_block = EXCLUDED.head_block, error_rate = EXCLUDED.error_rate,
                 latency_ms = EXCLUDED.latency_ms, reason = EXCLUDED.reason,
                 inconsistent_answers = EXCLUDED.inconsistent_answers, updated_at = now()",
        )
        .bind(chain_id as i64)
        .bind(&p.provider)
        .bind(p.weight as i32)
        .bind(p.in_rotation)
        .bind(p.head.map(|h| h as i64))
        .bind(p.error_rate)
        .bind(p.latency_ms)
        // A provider's error text may quote its URL: stored scrubbed of its key.
        .bind(p.reason.as_deref().map(|r| tripwire_config::secrets::scrub(r).into_owned()))
        .bind(p.inconsistent_answers as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u64) -> BlockRef {
        BlockRef {
            number: n,
            hash: B256::with_last_byte(n as u8),
        }
    }

    #[test]
    fn window_and_truncate() {
        let mut c = Cursor::default();
        for n in 1..=10 {
            c.push(b(n), 4);
        }
        assert_eq!(c.recent.len(), 4);
        assert_eq!(c.recent.front().unwrap().number, 7);
        c.truncate_above(8);
        assert_eq!(c.tip(), Some(b(8)));
        c.truncate_above(0);
        assert_eq!(c.tip(), None);
    }
}
