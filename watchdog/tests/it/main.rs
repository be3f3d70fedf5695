//! The watchdog's integration tests, one test binary (`it`) with a module per area: the live
//! detectors against anvil traffic through the real ingest, Kafka and Alertmanager
//! ([`detectors`], [`lifecycle`], [`catch_up`], [`delivery`], [`history`]), Safe pause proposals
//! ([`safe`]), the webhook receiver ([`receiver`], [`webhook`], [`hardening`]), secrets kept out of
//! every output ([`secrets`]) and `check-config` ([`check_config`]); [`common`] is their harness.
//!
//! Run one module with its path as the filter, e.g.
//! `cargo test -p tripwire-watchdog --test it safe::`, or one test by its name.

mod catch_up;
mod check_config;
mod common;
mod delivery;
mod detectors;
mod hardening;
mod history;
mod lifecycle;
mod receiver;
mod safe;
mod secrets;
mod transactions;
mod webhook;
