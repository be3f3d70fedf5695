//! The indexer's integration tests, in one test binary (`it`) so that the package is linked once
//! instead of once per file: end-to-end tests of `tripwire-indexer` as child processes against
//! anvil, Postgres and Kafka (the harness is `common`), and the sink's COPY writer and batch
//! transaction against a real Postgres (`pgcopy`, `sink_batch`, `sink_transactions`). Each module
//! was a test file of its own; a test is now named `<module>::<test>`.
//!
//! Every test of the binary: `cargo test -p tripwire-indexer --test it`. The tests of one module
//! (a filter on the name's prefix): `cargo test -p tripwire-indexer --test it reorg::`.

mod common;

mod backfill;
mod backpressure;
mod crash;
mod crash_windows;
mod defaults;
mod lag;
mod lying_logs;
mod offsets;
mod outage;
mod pgcopy;
mod providers;
mod range_limits;
mod reorg;
mod retention;
mod sink_batch;
mod sink_transactions;
mod startup;
mod transactions;
