//! Why a proposal could not be prepared, checked, signed, recorded or submitted.

use super::chain::ChainError;
use super::service::ServiceError;

/// Why the `pause` action failed; each start-up refusal names the config field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    /// `[watchdog.safe]` says something that cannot work (the field, and why).
    #[error("{field}: {message}")]
    Config {
        /// The config key, e.g. `watchdog.safe.targets[0].contract`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A start-up check against the chain failed (the Safe's version, owners, a target's role).
    #[error("{0}")]
    Check(String),
    /// A read from the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Recording the proposal in Postgres failed.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// The proposer key could not sign (its message says why; never the key).
    #[error("signing: {0}")]
    Sign(String),
    /// The Safe Transaction Service refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A [`SafeError::Config`] for `field`.
pub(super) fn config_err(field: impl Into<String>, message: impl Into<String>) -> SafeError {
    SafeError::Config {
        field: field.into(),
        message: message.into(),
    }
}
