//! The replay's integration tests, one test binary (`it`) against anvil, Kafka (librdkafka's mock
//! or `KAFKA_BROKERS`) and Postgres, with the indexer (ingest and sink) and the live watchdog as
//! child processes, as in production: re-indexing ([`reindex`]: F1, F2, F4, Ctrl-C), the back-test
//! ([`back_test`]: F3; [`detect_output`]: no archive state, every report format) and the cursor
//! reset ([`reset`]); [`env`] is the harness the first three share.
//!
//! Run one module with its path as the filter, e.g.
//! `cargo test -p tripwire-replay --test it reindex::`, or one test by its name.

mod back_test;
mod detect_output;
mod env;
mod reindex;
mod reset;
