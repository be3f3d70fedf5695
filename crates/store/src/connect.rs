//! The Postgres pool of every process: patient at start (a database starting next to us), with
//! `TCP_NODELAY` on its sockets (see `pgsocket`), and an error that never shows the URL's
//! credentials.

use std::time::Duration;

use sqlx::{postgres::PgPoolOptions, PgPool};
use tripwire_config::{redact_url, Settings};

/// Postgres could not be reached within the patience given.
#[derive(Debug, thiserror::Error)]
#[error("postgres {url} is not reachable")]
pub struct ConnectError {
    /// The URL, redacted.
    pub url: String,
    #[source]
    /// The last connection error.
    pub source: sqlx::Error,
}

/// Connects to Postgres, retrying for up to `patience` (a database starting next to us).
pub async fn connect(settings: &Settings, patience: Duration) -> Result<PgPool, ConnectError> {
    let url = &settings.config.postgres.url;
    let deadline = tokio::time::Instant::now() + patience;
    let port = crate::pgsocket::port_of(url);
    loop {
        let r = PgPoolOptions::new()
            .max_connections(settings.config.postgres.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |_, _| {
                Box::pin(async move {
                    if let Some(port) = port {
                        crate::pgsocket::set_nodelay_towards(port);
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await;
        match r {
            Ok(pool) => return Ok(pool),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(ConnectError {
                    url: redact_url(url),
                    source: e,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "postgres not reachable yet, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
