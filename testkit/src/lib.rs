//! Test harness shared by Tripwire's integration tests and the devnet demo.
//!
//! Each module wraps one external dependency so tests can start it, break it and
//! inspect it without ceremony: [`anvil`] (a local EVM node), [`alertmanager`] (a real
//! Prometheus Alertmanager), [`postgres`]
//! (throwaway databases), [`kafka`] (a real broker or librdkafka's mock cluster),
//! [`proxy`] (a TCP forwarder that can be cut to simulate outages), [`rpc_proxy`]
//! (a JSON-RPC proxy that injects the faults public providers produce), plus
//! [`contracts`] and [`abi`] for the demo contracts in `contracts/`.

pub mod abi;
pub mod alertmanager;
pub mod anvil;
pub mod contracts;
pub mod kafka;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod rpc_proxy;
pub mod safe;
pub mod safe_service;

use std::path::PathBuf;

pub use alloy::dyn_abi::DynSolValue;
pub use alloy::primitives::{Address, B256, U256};

/// The workspace root, so tests find `contracts/` and `tools/` regardless of
/// which crate's directory cargo runs them from.
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Random lowercase hex string of `len` characters, for names that must not
/// collide between concurrently running tests.
pub(crate) fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("digit below 16"))
        .collect()
}
