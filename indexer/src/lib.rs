//! Tripwire's indexer: follows EVM chains over JSON-RPC (ingest), publishes contract logs, block
//! markers and reorg retractions to Kafka, and writes them into Postgres (sink). See
//! `ARCHITECTURE.md` at the repository root for the data flow.

pub mod app;
pub mod ingest;
pub mod metrics;
pub mod offsets;
pub mod probes;
pub mod sink;
pub mod status;
