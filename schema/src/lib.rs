//! The shared vocabulary of Tripwire: the records that travel on the Kafka stream. Every process
//! (indexer, sink, watchdog, replay) depends on this crate and nothing else defines the wire
//! format. `README.md` beside this file documents the format for other languages. The Postgres
//! schema is the SQL in `migrations/` beside it, which `tripwire_store::migrate` applies; this
//! crate itself does no I/O.

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

pub mod order;
pub mod record;

pub use record::{
    BlockMarker, BlockRef, DecodedCall, DecodedEvent, EventView, LogRecord, LogView, RecordError,
    Retraction, StreamRecord, TransactionRecord, TxStatus, BASE_WIRE_VERSION,
    TRANSACTION_WIRE_VERSION, WIRE_VERSION,
};
