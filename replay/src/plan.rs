//! The checks every mode runs before it writes anything: the chain and contracts exist, the range
//! is ordered, reaches no further than the head and starts no earlier than the contracts' first
//! block.
//!
//! The deployment check asks the chain for the contract's code *at* `--from-block`, which only a
//! node keeping that block's state (an archive node, for old blocks) can answer; it runs only
//! where a mode acts on the chain ([`DeploymentCheck`]), and a contract's `start_block` makes it
//! unnecessary.

use alloy::primitives::Address;
use serde_json::json;
use tripwire_config::{redact_url, ChainConfig, ContractSpec, Settings};
use tripwire_rpc::ChainRpc;

use crate::ReplayError;

/// A validated request.
pub struct Plan {
    pub chain: ChainConfig,
    pub contracts: Vec<ContractSpec>,
    /// Sorted names, comma-separated; empty when every contract of the chain is meant.
    pub contracts_key: String,
    pub from: u64,
    pub to: u64,
    pub head: u64,
}

/// Whether [`plan`] checks that a contract without a `start_block` was deployed by
/// `--from-block` (`eth_getCode` at that block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentCheck {
    /// Reindex and reset-cursor act on the chain from `--from-block`: a block before the deployment
    /// is a mistake worth refusing before anything is written.
    AtFromBlock,
    /// Detect only reads stored rows: a range reaching back before the deployment is harmless
    /// (nothing fires there), so it must not depend on the node keeping old state.
    Skip,
}

/// Why `eth_getCode` got no answer from a provider.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The request did not get through (the error keeps no URL: it may hold an API key).
    #[error("provider {provider}")]
    Transport {
        provider: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an error, e.g. a pruned node's "block height is 21601 but requested
    /// was 2" or a full node's "missing trie node".
    #[error("provider {provider} answered {error}")]
    Rpc { provider: String, error: String },
}

fn invalid(m: String) -> ReplayError {
    ReplayError::Invalid(m)
}

/// The `--chain` of the config, or an error listing the configured ones.
pub fn find_chain(settings: &Settings, chain: &str) -> Result<ChainConfig, ReplayError> {
    settings
        .config
        .chains
        .iter()
        .find(|c| c.name == chain)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = settings
                .config
                .chains
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            invalid(format!(
                "--chain `{chain}`: no such chain (configured: {})",
                names.join(", ")
            ))
        })
}

/// Resolves `--chain`, `--contracts`, `--from-block` and `--to-block` (default: the head); `check`
/// says whether the deployment of contracts without a `start_block` is checked at `--from-block`.
pub async fn plan(
    settings: &Settings,
    chain: &str,
    contracts: &[String],
    from: u64,
    to: Option<u64>,
    rpc: &ChainRpc,
    check: DeploymentCheck,
) -> Result<Plan, ReplayError> {
    let cfg = find_chain(settings, chain)?;
    let on_chain: Vec<&ContractSpec> = settings.contracts_of(chain).collect();
    let selected: Vec<ContractSpec> = if contracts.is_empty() {
        on_chain.iter().map(|c| (*c).clone()).collect()
    } else {
        let mut v = Vec::new();
        for name in contracts {
            let c = on_chain.iter().find(|c| &c.name == name).ok_or_else(|| {
                let names: Vec<&str> = on_chain.iter().map(|c| c.name.as_str()).collect();
                invalid(format!(
                    "--contracts `{name}`: not a contract of chain {chain} (configured: {})",
                    names.join(", ")
                ))
            })?;
            v.push((*c).clone());
        }
        v
    };
    if selected.is_empty() {
        return Err(invalid(format!("chain {chain} has no contracts to replay")));
    }
    let head = rpc.block_number().await?;
    let to = to.unwrap_or(head);
    if from > to {
        return Err(invalid(format!(
            "--from-block {from} is after --to-block {to}"
        )));
    }
    if to > head {
        return Err(invalid(format!(
            "--to-block {to} is beyond the head {head} of chain {chain}"
        )));
    }
    for c in &selected {
        if let Some(first) = c.start_block {
            if from < first {
                return Err(invalid(format!(
                    "--from-block {from} is before the first block {first} of contract `{}` (its start_block)",
                    c.name
                )));
            }
        } else if check == DeploymentCheck::AtFromBlock
            && !has_code_at(&cfg, &c.addresses, from)
                .await
                .map_err(|source| ReplayError::DeploymentCheck {
                    contract: c.name.clone(),
                    block: from,
                    source,
                })?
        {
            return Err(invalid(format!(
                "--from-block {from} is before contract `{}` was deployed (no code at {} in block {from})",
                c.name,
                c.addresses.first().map(|a| a.to_string()).unwrap_or_default()
            )));
        }
    }
    let mut names: Vec<String> = if contracts.is_empty() {
        Vec::new()
    } else {
        selected.iter().map(|c| c.name.clone()).collect()
    };
    names.sort();
    Ok(Plan {
        chain: cfg,
        contracts: selected,
        contracts_key: names.join(","),
        from,
        to,
        head,
    })
}

/// Whether any of `addresses` has code in block `at`, asked of the chain's providers in order; the
/// error is the last provider's.
async fn has_code_at(
    chain: &ChainConfig,
    addresses: &[Address],
    at: u64,
) -> Result<bool, CodeError> {
    let http = reqwest::Client::new();
    let mut last_error = None;
    'providers: for p in chain.all_providers() {
        let provider = p.name.clone().unwrap_or_else(|| redact_url(&p.url));
        let mut any = false;
        for a in addresses {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [a, format!("{at:#x}")]});
            let answer = match http.post(&p.url).json(&body).send().await {
                Ok(r) => r.json::<serde_json::Value>().await,
                Err(e) => Err(e),
            };
            let v = match answer {
                Ok(v) => v,
                Err(e) => {
                    last_error = Some(CodeError::Transport {
                        provider,
                        source: e.without_url(),
                    });
                    continue 'providers;
                }
            };
            match v["result"].as_str() {
                Some(code) => any |= code.len() > 2,
                None => {
                    last_error = Some(CodeError::Rpc {
                        provider,
                        error: v["error"]["message"]
                            .as_str()
                            .map_or_else(|| v["error"].to_string(), str::to_owned),
                    });
                    continue 'providers;
                }
            }
        }
        return Ok(any);
    }
    Err(last_error.unwrap_or(CodeError::Rpc {
        provider: "(none)".into(),
        error: "the chain has no RPC provider".into(),
    }))
}
