//! The checks every mode runs before it writes anything: the chain and contracts exist, the range
//! is ordered, reaches no further than the head and starts no earlier than the contracts' first
//! block.

use alloy::primitives::Address;
use serde_json::json;
use tripwire_indexer::config::{ChainConfig, ContractSpec, Settings};
use tripwire_indexer::rpc::ChainRpc;

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

/// Resolves `--chain`, `--contracts`, `--from-block` and `--to-block` (default: the head).
pub async fn plan(
    settings: &Settings,
    chain: &str,
    contracts: &[String],
    from: u64,
    to: Option<u64>,
    rpc: &ChainRpc,
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
        } else if !has_code_at(&cfg, &c.addresses, from).await? {
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

/// Whether any of `addresses` has code in block `at` (asked of the chain's providers in order).
async fn has_code_at(
    chain: &ChainConfig,
    addresses: &[Address],
    at: u64,
) -> Result<bool, ReplayError> {
    let http = reqwest::Client::new();
    let mut last_error = String::new();
    for p in chain.all_providers() {
        let mut any = false;
        let mut ok = true;
        for a in addresses {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [a, format!("{at:#x}")]});
            match http.post(&p.url).json(&body).send().await {
                Ok(r) => match r.json::<serde_json::Value>().await {
                    Ok(v) => match v["result"].as_str() {
                        Some(code) => any |= code.len() > 2,
                        None => {
                            ok = false;
                            last_error = v["error"].to_string();
                        }
                    },
                    Err(e) => {
                        ok = false;
                        last_error = e.to_string();
                    }
                },
                Err(e) => {
                    ok = false;
                    last_error = e.to_string();
                }
            }
        }
        if ok {
            return Ok(any);
        }
    }
    Err(ReplayError::Range(format!(
        "eth_getCode failed on every provider: {last_error}"
    )))
}
