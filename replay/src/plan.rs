//! The checks every mode runs before it writes anything: the chain and contracts exist, the range
//! is ordered, reaches no further than the head and starts no earlier than the contracts' first
//! block.
//!
//! The deployment check asks the chain for the contract's code *at* `--from-block`, which only a
//! node keeping that block's state (an archive node, for old blocks) can answer; it runs only
//! where a mode acts on the chain ([`DeploymentCheck`]), and a contract's `start_block` makes it
//! unnecessary.

use alloy::primitives::Address;

use tripwire_config::{ChainConfig, ContractSpec, Settings};
use tripwire_rpc::{At, ChainSource, RpcError};

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
    rpc: &impl ChainSource,
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
            && !has_code_at(rpc, &c.addresses, from)
                .await
                .map_err(|source| ReplayError::DeploymentCheck {
                    contract: c.name.clone(),
                    block: from,
                    source: Box::new(source),
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

/// Whether any of `addresses` has code in block `at`, through the chain's provider pool (its
/// failover and timeouts); the error says why no provider could tell.
async fn has_code_at(
    rpc: &impl ChainSource,
    addresses: &[Address],
    at: u64,
) -> Result<bool, RpcError> {
    for a in addresses {
        if !rpc.code(*a, At::Block(at)).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::config::{Chain, Contract, TestConfig};
    use tripwire_rpc::fake::FakeChain;

    const TOKEN: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

    fn settings() -> Settings {
        TestConfig::new("postgres://postgres@127.0.0.1/test", "embedded")
            .chain(Chain::new("devnet", 31337, "http://127.0.0.1:8545"))
            .contract(Contract::new("token", "devnet", [TOKEN]))
            .settings("/tripwire.toml")
            .expect("config")
    }

    /// A chain at block 20 whose token was deployed in block 10.
    fn chain() -> FakeChain {
        let chain = FakeChain::new();
        chain.extend_to(20);
        chain.deploy(TOKEN.parse().unwrap(), 10, vec![0x60, 0x80]);
        chain
    }

    #[tokio::test]
    async fn a_range_before_the_deployment_is_refused_where_the_mode_acts_on_the_chain() {
        let (settings, chain) = (settings(), chain());
        let early = plan(
            &settings,
            "devnet",
            &[],
            5,
            None,
            &chain,
            DeploymentCheck::AtFromBlock,
        );
        match early.await {
            Err(ReplayError::Invalid(m)) => {
                assert!(m.contains("before contract `token` was deployed"), "{m}")
            }
            other => panic!("expected a refusal, got {:?}", other.map(|p| p.from)),
        }
        let at = plan(
            &settings,
            "devnet",
            &[],
            10,
            None,
            &chain,
            DeploymentCheck::AtFromBlock,
        )
        .await
        .expect("deployed by block 10");
        assert_eq!((at.from, at.to, at.head), (10, 20, 20));
        // The back-test reads stored rows: an early start is harmless, and no code is asked for.
        let skip = plan(
            &settings,
            "devnet",
            &[],
            5,
            None,
            &chain,
            DeploymentCheck::Skip,
        )
        .await
        .expect("no deployment check");
        assert_eq!(skip.from, 5);
    }

    #[tokio::test]
    async fn a_range_past_the_head_is_refused() {
        let (settings, chain) = (settings(), chain());
        let r = plan(
            &settings,
            "devnet",
            &[],
            10,
            Some(21),
            &chain,
            DeploymentCheck::Skip,
        );
        match r.await {
            Err(ReplayError::Invalid(m)) => assert!(m.contains("beyond the head 20"), "{m}"),
            other => panic!("expected a refusal, got {:?}", other.map(|p| p.to)),
        }
    }
}
