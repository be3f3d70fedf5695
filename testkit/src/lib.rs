//! Test harness shared by Tripwire's integration tests and the devnet demo.
//! [`config::TestConfig`] writes their configuration files, checked by the product's parser.
//!
//! Each module wraps one external dependency so tests can start it, break it and
//! inspect it without ceremony: [`anvil`] (a local EVM node), [`alertmanager`] (a real
//! Prometheus Alertmanager), [`postgres`]
//! (throwaway databases), [`kafka`] (a real broker or librdkafka's mock cluster), [`broker`]
//! (an Apache Kafka broker of the test's own, to kill and restart),
//! [`proxy`] (a TCP forwarder that can be cut to simulate outages), [`rpc_proxy`]
//! (a JSON-RPC proxy that injects the faults public providers produce), plus
//! [`contracts`] and [`abi`] for the demo contracts in `contracts/`, [`process`] for the child
//! processes of the binaries under test (their logs, signals, and memory and CPU from [`procfs`]).

pub mod abi;
pub mod alertmanager;
pub mod anvil;
pub mod broker;
pub mod config;
pub mod contracts;
pub mod kafka;
pub mod postgres;
pub mod process;
pub mod procfs;
pub mod prometheus;
pub mod proxy;
pub mod rpc_proxy;
pub mod safe;
pub mod safe_service;
pub mod silent;
pub mod wait;

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

/// Path of a workspace binary (`tripwire-indexer`, `tripwire-watchdog`, `tripwire-replay`,
/// `tripwire-devnet`) next to the running test: `cargo test --workspace` builds every package's
/// binaries before it runs any test, so a test of one package can run another package's program.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", exe.display()))?;
    let bin = dir.join(name);
    if !bin.is_file() {
        anyhow::bail!(
            "{} is not built: run `cargo build --workspace --bins` first (`cargo test --workspace` does it)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The local program a test runs for `name`: the workspace's binaries ([`workspace_bin`]), the
/// pinned npm tools (`anvil`, `cast` under `tools/`), otherwise `name` itself, found on `PATH`.
pub fn program(name: &str) -> anyhow::Result<PathBuf> {
    Ok(match name {
        "tripwire-indexer" | "tripwire-watchdog" | "tripwire-replay" | "tripwire-devnet" => {
            workspace_bin(name)?
        }
        "anvil" | "cast" => repo_root().join("tools/node_modules/.bin").join(name),
        other => PathBuf::from(other),
    })
}
