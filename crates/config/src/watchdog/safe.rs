//! `[watchdog.safe]`: the Safe that can pause the protocol, the key that proposes (never
//! executes), the pause calls, and where proposals go. The key itself never appears in the file:
//! the config names the environment variable or file that holds it.

use std::path::PathBuf;

use alloy_primitives::Address;
use serde::Deserialize;

use super::Severity;

/// `MultiSendCallOnly` v1.4.1 at its canonical (deterministic deployment) address.
pub const CANONICAL_MULTISEND_CALL_ONLY: &str = "0x9641d764fc13c8B624c04430C7356C1C7C8102e2";

/// `[watchdog.safe]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeConfig {
    /// The `[[chains]]` name the Safe and the targets live on.
    pub chain: String,
    /// The Safe (v1.3.0 or later) that holds the pause rights.
    pub address: Address,
    /// Environment variable holding the proposer's private key (hex).
    #[serde(default)]
    pub proposer_key_env: Option<String>,
    /// File holding the proposer's private key (hex), e.g. a mounted secret.
    #[serde(default)]
    pub proposer_key_file: Option<PathBuf>,
    /// Incidents at least this severe, of detectors whose `actions` include `pause`, get a proposal.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// `MultiSendCallOnly` used when there are several targets (delegatecall from the Safe).
    #[serde(default = "default_multisend")]
    pub multisend: Address,
    /// The calls that pause the protocol (`[[watchdog.safe.targets]]`).
    pub targets: Vec<TargetConfig>,
    /// The Safe Transaction Service (`[watchdog.safe.service]`); without it proposals are only
    /// recorded in Postgres and shown by `tripwire-watchdog proposals`.
    #[serde(default)]
    pub service: Option<ServiceConfig>,
}

/// `[[watchdog.safe.targets]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A `[[contracts]]` name: every address of that contract on the Safe's chain.
    #[serde(default)]
    pub contract: Option<String>,
    /// Or one address.
    #[serde(default)]
    pub address: Option<Address>,
    /// The pause function's signature.
    #[serde(default = "default_function")]
    pub function: String,
    /// Its arguments, as text in ABI order (e.g. `["0x...", "1"]`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[watchdog.safe.service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Base URL, e.g. `https://safe-transaction-mainnet.safe.global` (or the hosted API's).
    pub url: String,
    /// Environment variable with the API key (sent as `Authorization: Bearer`), for the hosted API.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Submission attempts before a proposal is left `pending` for the next start.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Timeout of one request, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_min_severity() -> Severity {
    Severity::Critical
}
fn default_multisend() -> Address {
    CANONICAL_MULTISEND_CALL_ONLY
        .parse()
        .expect("static address")
}
fn default_function() -> String {
    "pause()".into()
}
fn default_attempts() -> u32 {
    5
}
fn default_timeout() -> u64 {
    10
}
