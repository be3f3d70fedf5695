//! The sink's background check that keeps `/health` true while it is idle: how far Postgres is
//! behind the chain head. The Postgres probe is the runtime's, the Kafka one `tripwire_kafka`'s.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::{Component, Health, Status};
use tripwire_runtime::probes::INTERVAL;

use crate::metrics::Probed;

/// Lag of Postgres behind the head, and the last synced block, per chain, from the
/// `indexer_state` view.
pub fn lag(pool: PgPool, health: Health, threshold: u64, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let metrics = Probed::family();
        while !shutdown.is_cancelled() {
            let rows = crate::status::read(&pool).await;
            if let Ok(rows) = rows {
                for row in rows {
                    let chain = row.chain;
                    let Some(head) = row.head_block else { continue };
                    let synced = row.last_synced_block.unwrap_or(0);
                    let gauges = metrics.get(&chain);
                    if let Some(indexed) = row.last_synced_block {
                        gauges.indexed.get().indexed_block.set(indexed as f64);
                    }
                    let lag = (head - synced).max(0) as u64;
                    gauges.lag.get().lag_blocks.set(lag as f64);
                    let component = Component::Lag(chain.clone());
                    if lag > threshold {
                        health.set(
                            component,
                            Status::Degraded,
                            format!("{lag} blocks behind the head (threshold {threshold})"),
                        );
                    } else {
                        health.healthy(component);
                    }
                }
            }
            tokio::select! { _ = shutdown.cancelled() => {}, _ = tokio::time::sleep(INTERVAL) => {} }
        }
    });
}
