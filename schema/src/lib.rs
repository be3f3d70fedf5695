//! The shared vocabulary of Tripwire: the records that travel on the Kafka stream and the Postgres
//! migrations. Every process (indexer, sink, watchdog, replay) depends on this crate and nothing else
//! defines the wire format. `README.md` beside this file documents the format for other languages.

pub mod record;

pub use record::{
    BlockMarker, BlockRef, DecodedEvent, EventView, LogRecord, LogView, RecordError, Retraction,
    StreamRecord, WIRE_VERSION,
};

/// The embedded SQL migrations (`schema/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies every pending migration. Safe to call from several processes at once: sqlx serialises
/// concurrent runs with an advisory lock.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
