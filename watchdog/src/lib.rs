//! The watchdog: reads the indexer's stream, runs statistical and rule detectors on it, and turns
//! their findings into Alertmanager alerts and, for critical incidents, Safe pause proposals.
//!
//! [`detect`] holds the detectors themselves: plain state machines fed one log or block marker at
//! a time, with no I/O, so they can be tested and benchmarked on in-memory events. [`alerts`] turns
//! findings into incidents and Alertmanager alerts; [`service`] runs it all on the Kafka stream
//! with its state in Postgres ([`store`]); [`safe`] prepares Safe pause proposals for critical
//! incidents.

pub mod alerts;
pub mod config;
pub mod metrics;
pub mod safe;
pub mod seen;
pub mod service;
pub mod store;
pub mod webhook;
