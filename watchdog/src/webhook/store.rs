//! `webhook_receipts`: every alert received, once per fingerprint, `startsAt` and status, with
//! how many times Alertmanager delivered it and the actions taken the first time.

use serde_json::Value;
use sqlx::PgPool;

use super::payload::{AlertIn, Payload};

/// Stores the receipt (or counts a re-delivery); returns its id and whether it is new.
pub async fn receive(
    pool: &PgPool,
    p: &Payload,
    a: &AlertIn,
    rules: &[String],
) -> Result<(i64, bool), sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO webhook_receipts
             (fingerprint, starts_at, status, labels, annotations, receiver, group_key, rules, actions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]'::jsonb)
         ON CONFLICT (fingerprint, starts_at, status)
         DO UPDATE SET deliveries = webhook_receipts.deliveries + 1, last_received_at = now()
         RETURNING id, (xmax = 0)",
    )
    .bind(&a.fingerprint)
    .bind(a.starts_at)
    .bind(a.status.as_str())
    .bind(serde_json::to_value(&a.labels).unwrap_or_default())
    .bind(serde_json::to_value(&a.annotations).unwrap_or_default())
    .bind(&p.receiver)
    .bind(&p.group_key)
    .bind(rules)
    .fetch_one(pool)
    .await
}

pub async fn set_actions(pool: &PgPool, id: i64, actions: &Value) -> Result<(), sqlx::Error> {
    // Actions' results quote peers' errors (an Alertmanager's URL among them): stored scrubbed.
    let actions: Value =
        serde_json::from_str(&tripwire_config::secrets::scrub(&actions.to_string()))
            .unwrap_or_else(|_| actions.clone());
    sqlx::query("UPDATE webhook_receipts SET actions = $2 WHERE id = $1")
        .bind(id)
        .bind(&actions)
        .execute(pool)
        .await?;
    Ok(())
}
