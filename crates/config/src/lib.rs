//! The configuration file: one TOML document shared by every Tripwire process, parsed once. The
//! structs of [`model`] and [`watchdog`] are its documentation: every field has a doc comment,
//! unknown keys are rejected, `${ENV}` is expanded in the parsed string values (see `env.rs`), and
//! validation turns every semantic mistake into an error that names the field and the value.
//! [`secrets`] keeps what must never leave a process.

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

mod abi;
mod env;
mod error;
pub mod flow;
#[cfg(test)]
mod keys_tests;
mod model;
pub mod secrets;
mod settings;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tx_tests;
pub mod watchdog;

pub use abi::{ContractAbi, EventAbi};
pub use env::interpolate;
pub use error::ConfigError;
pub use flow::{Flow, LeadLimit};
pub use model::*;
pub use settings::{redact_url, ContractSpec, Settings, TxWatch};
