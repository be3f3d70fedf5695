//! The Alertmanager webhook receiver: Prometheus rules (indexer lag, a TVL drop from another
//! exporter) reach the watchdog through Alertmanager and become actions: a recorded receipt, a
//! Safe pause proposal, a re-labelled alert. Requests are authenticated (bearer token compared
//! in constant time, optional HMAC of the body) before anything is parsed; a payload that is not
//! Alertmanager's version 4 is answered 400 with the reason, and nothing of a rejected request is
//! stored. Alertmanager re-sends groups every interval, so each alert is acted on once per
//! fingerprint, `startsAt` and status; resolved notifications are recorded and never unpause.
//!
//! `auth.rs` checks who posts, `payload.rs` what was posted, `receiver.rs` routes and acts,
//! `store.rs` keeps the receipts.

mod auth;
mod payload;
mod receiver;
pub mod store;
#[cfg(test)]
mod tests;

pub use config::{Rule, WebhookAction, WebhookConfig};
pub use payload::{AlertIn, AlertStatus, Payload};
pub use receiver::{Receiver, WebhookError, RELABELLED};

use tripwire_config::watchdog as config;
