//! The watchdog's Postgres state, per scope (a chain topic): detector snapshots, recently seen
//! records and the stream position are saved in one transaction (a checkpoint), so after a restart,
//! or in the instance a rebalance gives the topic to, the detectors continue from exactly the
//! records they had counted; incidents are written as they change.

use std::collections::BTreeMap;

use sqlx::PgPool;

use crate::alerts::{Incident, State};

/// What earlier runs (of any instance) left for one scope: a chain topic.
#[derive(Debug, Default)]
pub struct Saved {
    pub detectors: Option<serde_json::Value>,
    pub seen: Option<serde_json::Value>,
    /// Next offset to read per partition of the topic.
    pub offsets: BTreeMap<i32, i64>,
    /// The newest incident of every key of the scope's chains.
    pub incidents: Vec<Incident>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("stored incident {id} cannot be read back")]
    Incident {
        id: i64,
        #[source]
        source: serde_json::Error,
    },
    /// Another instance stored a later position of the topic: it owns the topic now.
    #[error(
        "{topic}/{partition}: another instance stored position {stored}, past this one's {ours}"
    )]
    Fenced {
        topic: String,
        partition: i32,
        stored: i64,
        ours: i64,
    },
}

/// Loads the scope `topic` (whose records are those of `chains`). A scope that was never saved
/// starts from the single row of an earlier version when there is one (`legacy` says so).
pub async fn load(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    chains: &[u64],
) -> Result<(Saved, bool), StoreError> {
    let mut saved = Saved::default();
    let mut legacy = false;
    let rows: Vec<(String, serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "SELECT topic, detectors, seen FROM watchdog_state
         WHERE consumer = $1 AND topic IN ($2, '') ORDER BY topic DESC",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    if let Some((t, detectors, seen)) = rows.into_iter().next() {
        legacy = t.is_empty();
        saved.detectors = Some(detectors);
        saved.seen = Some(seen);
    }
    saved.offsets = tripwire_store::positions::of_topic(pool, consumer, topic).await?;
    let chains: Vec<i64> = chains.iter().map(|c| *c as i64).collect();
    let incidents: Vec<(i64, serde_json::Value)> = sqlx::query_as(
        "SELECT DISTINCT ON (key) id, detail FROM watchdog_incidents
         WHERE consumer = $1 AND chain_id = ANY($2) ORDER BY key, id DESC",
    )
    .bind(consumer)
    .bind(&chains)
    .fetch_all(pool)
    .await?;
    for (id, detail) in incidents {
        let mut i: Incident =
            serde_json::from_value(detail).map_err(|source| StoreError::Incident { id, source })?;
        i.id = Some(id);
        saved.incidents.push(i);
    }
    Ok((saved, legacy))
}

/// Saves a scope's detectors, seen records and position together. Fenced: when another instance
/// stored a later position of one of its partitions, nothing is saved.
pub async fn checkpoint(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    detectors: &serde_json::Value,
    seen: &serde_json::Value,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let stored = tripwire_store::positions::lock_topic(&mut tx, consumer, topic).await?;
    for (partition, stored) in stored {
        if let Some(&ours) = offsets.get(&partition) {
            if stored > ours {
                return Err(StoreError::Fenced {
                    topic: topic.to_owned(),
                    partition,
                    stored,
                    ours,
                });
            }
        }
    }
    sqlx::query(
        "INSERT INTO watchdog_state (consumer, topic, detectors, seen, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (consumer, topic) DO UPDATE SET
             detectors = EXCLUDED.detectors, seen = EXCLUDED.seen, updated_at = now()",
    )
    .bind(consumer)
    .bind(topic)
    .bind(detectors)
    .bind(seen)
    .execute(&mut *tx)
    .await?;
    for (&partition, &next) in offsets {
        tripwire_store::positions::save(&mut tx, consumer, topic, partition, next).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Inserts a new incident (returning its id) or updates a stored one.
pub async fn save_incident(pool: &PgPool, consumer: &str, i: &Incident) -> Result<i64, StoreError> {
    let detail = serde_json::to_value(i).map_err(|source| StoreError::Incident {
        id: i.id.unwrap_or(0),
        source,
    })?;
    let state = match i.state {
        State::Firing => "firing",
        State::Resolved => "resolved",
    };
    let tx_hash = i.tx_hash.map(|h| h.to_string());
    let span = i.trigger_span();
    let first_trigger = span.map(|(first, _)| first as i64);
    let last_trigger = span.map(|(_, last)| last as i64);
    let id = match i.id {
        Some(id) => {
            sqlx::query(
                "UPDATE watchdog_incidents SET severity = $2, state = $3, last_finding_at = $4,
                     resolved_at = $5, findings = $6, block_number = $7, tx_hash = $8,
                     observed = $9, expected = $10, score = $11, summary = $12, note = $13,
                     detail = $14, opened_at = $15, opened_block = $16,
                     first_trigger_block = $17, last_trigger_block = $18, updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .bind(i.severity.to_string())
            .bind(state)
            .bind(i.last_finding_at)
            .bind(i.resolved_at)
            .bind(i.findings as i64)
            .bind(i.block_number as i64)
            .bind(&tx_hash)
            .bind(i.observed)
            .bind(i.expected)
            .bind(i.score)
            .bind(&i.summary)
            .bind(&i.note)
            .bind(&detail)
            .bind(i.opened_at)
            .bind(i.opening_block() as i64)
            .bind(first_trigger)
            .bind(last_trigger)
            .execute(pool)
            .await?;
            id
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO watchdog_incidents
                     (consumer, key, detector, kind, severity, chain_id, contract, event, series,
                      state, opened_at, last_finding_at, resolved_at, findings, block_number,
                      tx_hash, observed, expected, score, score_name, summary, note, detail,
                      opened_block, first_trigger_block, last_trigger_block)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
                 RETURNING id",
            )
            .bind(consumer)
            .bind(&i.key)
            .bind(&i.detector)
            .bind(i.kind.as_str())
            .bind(i.severity.to_string())
            .bind(i.chain_id as i64)
            .bind(&i.contract)
            .bind(&i.event)
            .bind(&i.series)
            .bind(state)
            .bind(i.opened_at)
            .bind(i.last_finding_at)
            .bind(i.resolved_at)
            .bind(i.findings as i64)
            .bind(i.block_number as i64)
            .bind(&tx_hash)
            .bind(i.observed)
            .bind(i.expected)
            .bind(i.score)
            .bind(&i.score_name)
            .bind(&i.summary)
            .bind(&i.note)
            .bind(&detail)
            .bind(i.opening_block() as i64)
            .bind(first_trigger)
            .bind(last_trigger)
            .fetch_one(pool)
            .await?
        }
    };
    Ok(id)
}
