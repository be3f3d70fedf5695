//! The tables every Tripwire process shares, behind one set of functions: the pool
//! ([`connect`]), stored stream positions ([`positions`]), the ingest's cursors ([`cursor`]), and
//! the writer of logs, transactions and blocks with binary COPY ([`write`], [`pgcopy`]), and the
//! migrations of the schema (the SQL in `schema/migrations`) with [`migrate`].

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

pub mod connect;
pub mod cursor;
pub mod pgcopy;
pub mod pgsocket;
pub mod positions;
pub mod write;

pub use connect::{connect, ConnectError};
pub use write::{write_batch, Batch, BatchStats, WriteError};

/// The embedded SQL migrations (`schema/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../schema/migrations");

/// Applies every pending migration. Safe to call from several processes at once: sqlx serialises
/// concurrent runs with an advisory lock.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
