//! The tables every Tripwire process shares, behind one set of functions: the pool
//! ([`connect`]), stored stream positions ([`positions`]), the ingest's cursors ([`cursor`]), and
//! the writer of logs and blocks with binary COPY ([`write`], [`pgcopy`]). The schema and its
//! migrations are `tripwire_schema`'s.

pub mod connect;
pub mod cursor;
pub mod pgcopy;
pub mod pgsocket;
pub mod positions;
pub mod write;

pub use connect::{connect, ConnectError};
pub use write::{write_batch, Batch, BatchStats, WriteError};
