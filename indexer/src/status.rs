//! `tripwire-indexer status`: per chain the head, the last ingested and synced blocks and the lag,
//! read from the `indexer_state` view, and each RPC provider's state as its ingest last stored it
//! (`rpc_providers`).

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
    /// The chain's RPC providers.
    #[sqlx(skip)]
    pub providers: Vec<ProviderRow>,
}

/// One RPC provider as the ingest last saw it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct ProviderRow {
    #[serde(skip)]
    pub chain_id: i64,
    pub provider: String,
    pub weight: i32,
    pub in_rotation: bool,
    pub head_block: Option<i64>,
    pub error_rate: f64,
    pub latency_ms: f64,
    pub reason: Option<String>,
    /// Answers caught contradicting the evidence since the ingest started.
    pub inconsistent_answers: i64,
    /// Seconds since the ingest stored this row (a large value: the ingest is not running).
    pub age_s: f64,
}

pub async fn read(pool: &PgPool) -> Result<Vec<ChainStatus>, sqlx::Error> {
    let mut chains: Vec<ChainStatus> = sqlx::query_as(
        "SELECT chain_id, chain, head_block, last_ingested_block, last_synced_block, lag_blocks
         FROM indexer_state ORDER BY chain_id",
    )
    .fetch_all(pool)
    .await?;
    let providers: Vec<ProviderRow> = sqlx::query_as(
        "SELECT chain_id, provider, weight, in_rotation, head_block, error_rate, latency_ms, reason,
                inconsistent_answers, extract(epoch FROM now() - updated_at)::float8 AS age_s
         FROM rpc_providers ORDER BY chain_id, provider",
    )
    .fetch_all(pool)
    .await?;
    for p in providers {
        if let Some(c) = chains.iter_mut().find(|c| c.chain_id == p.chain_id) {
            c.providers.push(p);
        }
    }
    Ok(chains)
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
    let providers: Vec<(&str, &ProviderRow)> = rows
        .iter()
        .flat_map(|c| c.providers.iter().map(move |p| (c.chain.as_str(), p)))
        .collect();
    if !providers.is_empty() {
        out.push_str(&format!(
            "\n{:<16} {:<32} {:>6} {:>12} {:>7} {:>9} {:>6}  {}\n",
            "CHAIN", "PROVIDER", "WEIGHT", "HEAD", "ERRORS", "LATENCY", "AGE", "STATE"
        ));
        for (chain, p) in providers {
            let mut state = if p.in_rotation {
                "in rotation".to_owned()
            } else {
                format!("OUT: {}", p.reason.as_deref().unwrap_or("-"))
            };
            if p.inconsistent_answers > 0 {
                state.push_str(&format!(
                    "; {} INCONSISTENT ANSWERS",
                    p.inconsistent_answers
                ));
            }
            out.push_str(&format!(
                "{:<16} {:<32} {:>6} {:>12} {:>6.0}% {:>7.0}ms {:>5.0}s  {}\n",
                chain,
                p.provider,
                p.weight,
                opt(p.head_block),
                p.error_rate * 100.0,
                p.latency_ms,
                p.age_s,
                state
            ));
        }
    }
    out
}
