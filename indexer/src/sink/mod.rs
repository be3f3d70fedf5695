//! Sink (Kafka -> Postgres): reads the chain topics from the position stored in Postgres, writes
//! logs and blocks with binary COPY, applies retractions, and stores the new position in the same
//! transaction, so a crash at any moment neither loses nor duplicates a row.

mod service;

pub use service::{Sink, SinkError};
pub use tripwire_store::{write_batch, Batch, BatchStats, WriteError};
