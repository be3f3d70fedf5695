//! The `pause` action: for a critical incident, a Safe transaction that pauses every configured
//! target (one call, or a `MultiSendCallOnly` batch), at the Safe's current nonce, signed by the
//! proposer key, recorded once per incident and put where the owners sign (the Safe Transaction
//! Service, when configured). Humans stay in control: the proposer never executes, and no
//! unpause is ever proposed. Start-up checks refuse a Safe, key or target that could not work.
//!
//! `proposer.rs` holds the [`Proposer`] (checks, then build, sign, record, submit), `tx.rs` the
//! SafeTx and its EIP-712 hash, `chain.rs` the typed reads of the Safe and its targets, `key.rs`
//! the proposer key, `store.rs` the `safe_proposals` rows, `service.rs` the Transaction Service
//! client, `error.rs` what can fail.

pub mod chain;
mod error;
mod key;
mod proposer;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;
pub mod tx;

pub use error::SafeError;
pub use key::{load_local_signer, ProposalSigner};
pub use proposer::{check_offline, stored_tx, Proposer};
pub use store::Proposal;
pub use tripwire_config::watchdog::SafeConfig;

// `service.rs` reads its section's model as `super::config`.
use tripwire_config::watchdog as config;

use error::config_err;
use key::{key_text, parse_key, KeyText};
