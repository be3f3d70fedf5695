//! What every Tripwire process runs on: logging that never shows a secret ([`logging`]),
//! SIGTERM handling ([`signals`]), the hardened HTTP server of `/metrics` and `/health`
//! ([`server`]) with its health registry ([`health`]) and probes ([`probes`]), typed
//! confirmation prompts ([`prompt`]), control characters escaped in CLI output ([`text`]), and
//! the deterministic fault points of the crash tests ([`faults`]).

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

pub mod faults;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod probes;
pub mod prompt;
pub mod report;
pub mod server;
pub mod signals;
pub mod text;

pub use health::{Component, Health, Status};
pub use logging::{init_tracing, LogFormat};
pub use report::report;
