//! `tripwire-indexer status`: per chain the head, the last ingested and synced blocks and the lag,
//! read from the `indexer_state` view.

use sqlx::PgPool;

/// One chain's line of the status table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct ChainStatus {
    pub chain_id: i64,
    pub chain: String,
    pub head_block: Option<i64>,
    pub last_ingested_block: Option<i64>,
    pub last_synced_block: Option<i64>,
    pub lag_blocks: Option<i64>,
}

pub async fn read(pool: &PgPool) -> Result<Vec<ChainStatus>, sqlx::Error> {
    sqlx::query_as(
        "SELECT chain_id, chain, head_block, last_ingested_block, last_synced_block, lag_blocks
         FROM indexer_state ORDER BY chain_id",
    )
    .fetch_all(pool)
    .await
}

/// A fixed-width table for terminals.
pub fn render(rows: &[ChainStatus], lag_threshold: u64) -> String {
    let opt = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    let mut out = format!(
        "{:<16} {:>10} {:>12} {:>14} {:>12} {:>8}  {}\n",
        "CHAIN", "CHAIN_ID", "HEAD", "INGESTED", "SYNCED", "LAG", "STATE"
    );
    for r in rows {
        let state = match r.lag_blocks {
            Some(l) if l as u64 > lag_threshold => "LAGGING",
            Some(_) => "ok",
            None => "no data",
        };
        out.push_str(&format!(
            "{:<16} {:>10} {:>12} {:>14} {:>12} {:>8}  {}\n",
            r.chain,
            r.chain_id,
            opt(r.head_block),
            opt(r.last_ingested_block),
            opt(r.last_synced_block),
            opt(r.lag_blocks),
            state
        ));
    }
    if rows.is_empty() {
        out.push_str("(no chain has been indexed yet)\n");
    }
    out
}
