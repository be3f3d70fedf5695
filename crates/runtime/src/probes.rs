//! Background checks that keep `/health` true while a process is idle; each process adds its
//! own (Kafka, lag) next to the Postgres one here.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::health::{Health, Status};

/// Between two probes.
pub const INTERVAL: Duration = Duration::from_secs(3);

/// `SELECT 1` every few seconds.
pub fn postgres(pool: PgPool, health: Health, shutdown: CancellationToken) {
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("SELECT 1").execute(&pool),
            )
            .await;
            match r {
                Ok(Ok(_)) => health.healthy(crate::health::Component::Postgres),
                Ok(Err(e)) => health.set(
                    crate::health::Component::Postgres,
                    Status::Unhealthy,
                    e.to_string(),
                ),
                Err(_) => health.set(
                    crate::health::Component::Postgres,
                    Status::Unhealthy,
                    "no answer within 2 s",
                ),
            }
            tokio::select! { _ = shutdown.cancelled() => {}, _ = tokio::time::sleep(INTERVAL) => {} }
        }
    });
}
