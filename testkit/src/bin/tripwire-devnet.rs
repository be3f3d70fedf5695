//! Demo driver for a local anvil: deploys the demo contracts and then keeps
//! producing a varied, plausible stream of events for the indexer to follow.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use testkit::abi::{self, address, bytes32, string, uint};
use testkit::anvil::Anvil;
use testkit::{Address, B256};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "tripwire-devnet",
    about = "Deploy demo contracts and generate traffic on a dev chain"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Deploy DemoToken, Vault, Registry, Treasury and a 2-of-3 Safe (owners: anvil accounts
    /// 1-3) holding the treasury's pauser role, and write their addresses as JSON.
    Deploy {
        /// JSON-RPC URL of the node (anvil, with its default unlocked accounts).
        #[arg(long, env = "TRIPWIRE_DEVNET_RPC")]
        rpc: String,
        /// Where to write `{"token", "vault", "registry", "treasury", "safe", "multisend", "deploy_block"}`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Send random calls to the deployed contracts and mine a block per round.
    Traffic {
        #[arg(long, env = "TRIPWIRE_DEVNET_RPC")]
        rpc: String,
        /// The file written by `deploy`.
        #[arg(long)]
        contracts: PathBuf,
        /// Pause between blocks.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many blocks (default: run until interrupted).
        #[arg(long)]
        max_blocks: Option<u64>,
        /// RNG seed, for a reproducible sequence of calls.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The planted attack of the demo: the treasury's pauser role granted to an unknown account,
    /// then a burst of withdrawals, mined in one block.
    Attack {
        #[arg(long, env = "TRIPWIRE_DEVNET_RPC")]
        rpc: String,
        /// The file written by `deploy`.
        #[arg(long)]
        contracts: PathBuf,
    },
}

/// Gas limit for each generated call; the largest (a burst of 8) needs far less.
const CALL_GAS: u64 = 300_000;

/// The contract of the `--out`/`--contracts` file; field order is the file's key order.
#[derive(Debug, Serialize, Deserialize)]
struct Deployment {
    token: String,
    vault: String,
    registry: String,
    treasury: String,
    safe: String,
    multisend: String,
    deploy_block: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match Cli::parse().command {
        Cmd::Deploy { rpc, out } => deploy(&rpc, &out).await,
        Cmd::Traffic {
            rpc,
            contracts,
            interval_ms,
            max_blocks,
            seed,
        } => traffic(&rpc, &contracts, interval_ms, max_blocks, seed).await,
        Cmd::Attack { rpc, contracts } => attack(&rpc, &contracts).await,
    }
}

async fn deploy(rpc: &str, out: &PathBuf) -> anyhow::Result<()> {
    let node = Anvil::connect(rpc).await?;
    let (token, receipt) = node.deploy_with_receipt("DemoToken", &[]).await?;
    let deploy_block = receipt.block_number;
    let vault = node.deploy("Vault", &[]).await?;
    let registry = node.deploy("Registry", &[]).await?;
    let treasury = node.deploy("Treasury", &[]).await?;
    // The Safe v1.4.1 contracts from the npm package, a 2-of-3 Safe, and the pauser role for it.
    let singletons = testkit::safe::SafeSingletons::deploy(&node).await?;
    let safe = singletons
        .create_safe(&node, &node.accounts()[1..4], 2, 0)
        .await?;
    let role = testkit::abi::event_topic("PAUSER_ROLE");
    node.send_and_mine(
        treasury,
        abi::call(
            "grantRole(bytes32,address)",
            &[bytes32(role), address(safe)],
        ),
    )
    .await?;
    // The token goes first, so the block it landed in is the earliest one an
    // indexer needs to scan.
    let deployment = Deployment {
        token: format!("{token:#x}"),
        vault: format!("{vault:#x}"),
        registry: format!("{registry:#x}"),
        treasury: format!("{treasury:#x}"),
        safe: format!("{safe:#x}"),
        multisend: format!("{:#x}", singletons.multisend_call_only),
        deploy_block,
    };
    let json = serde_json::to_string_pretty(&deployment)? + "\n";
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    tracing::info!(
        token = %deployment.token,
        vault = %deployment.vault,
        registry = %deployment.registry,
        treasury = %deployment.treasury,
        safe = %deployment.safe,
        deploy_block,
        "deployed demo contracts to {}",
        out.display()
    );
    Ok(())
}

struct Targets {
    token: Address,
    vault: Address,
    registry: Address,
    treasury: Address,
}

fn read_deployment(contracts: &PathBuf) -> anyhow::Result<Targets> {
    let text = std::fs::read_to_string(contracts)
        .with_context(|| format!("reading {}", contracts.display()))?;
    let d: Deployment = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a deploy output", contracts.display()))?;
    Ok(Targets {
        token: d.token.parse().context("token address")?,
        vault: d.vault.parse().context("vault address")?,
        registry: d.registry.parse().context("registry address")?,
        treasury: d.treasury.parse().context("treasury address")?,
    })
}

/// The account the demo's attacker uses: the last of anvil's dev accounts, which the demo
/// traffic never touches.
fn attacker(node: &Anvil) -> Address {
    node.accounts().last().copied().unwrap_or(Address::ZERO)
}

async fn attack(rpc: &str, contracts: &PathBuf) -> anyhow::Result<()> {
    let t = read_deployment(contracts)?;
    let node = Anvil::connect(rpc).await?;
    let thief = attacker(&node);
    let role = testkit::abi::event_topic("PAUSER_ROLE");
    // Both calls from account 0, the treasury's admin: a leaked admin key is the scenario.
    let calls = [
        abi::call(
            "grantRole(bytes32,address)",
            &[bytes32(role), address(thief)],
        ),
        abi::call(
            "withdrawMany(uint256,uint256)",
            &[uint(60), uint(1_000_000)],
        ),
    ];
    for data in calls {
        let mut request = node.tx_request(t.treasury, &data);
        request["gas"] = serde_json::json!(testkit::anvil::quantity(CALL_GAS * 4));
        node.send_tx(request).await?;
    }
    if !node.automine().await? {
        node.rpc("evm_mine", serde_json::json!([])).await?;
    }
    let number = node.block_number().await?;
    tracing::info!(
        block = number,
        attacker = %thief,
        "attack sent: PAUSER_ROLE granted to the attacker and 60 withdrawals"
    );
    println!("attack sent around block {number}: PAUSER_ROLE granted to {thief:#x}, 60 withdrawals from the treasury");
    Ok(())
}

async fn traffic(
    rpc: &str,
    contracts: &PathBuf,
    interval_ms: u64,
    max_blocks: Option<u64>,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let targets = read_deployment(contracts)?;
    let node = Anvil::connect(rpc).await?;
    let mut rng = match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    };

    // One block per round only works with automine off; put the node back the
    // way we found it on exit so a shared dev node is not left frozen.
    let was_automine = node.automine().await?;
    if was_automine {
        node.set_automine(false).await?;
    }

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut state = Bookkeeping::default();
    let mut blocks = 0u64;
    let result = loop {
        if *stop_rx.borrow() || max_blocks.is_some_and(|max| blocks >= max) {
            break Ok(());
        }
        if let Err(e) = round(&node, &targets, &mut rng, &mut state).await {
            break Err(e);
        }
        blocks += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = stop_rx.changed() => {}
        }
    };

    if was_automine {
        if let Err(e) = node.set_automine(true).await {
            tracing::warn!(error = %e, "could not re-enable automine");
        }
    }
    tracing::info!(blocks, "traffic stopped");
    result
}

/// What the generator must remember so it never sends a call that reverts.
#[derive(Default)]
struct Bookkeeping {
    token_balance: u64,
    vault_balance: u64,
}

async fn round(
    node: &Anvil,
    t: &Targets,
    rng: &mut StdRng,
    state: &mut Bookkeeping,
) -> anyhow::Result<()> {
    let accounts = node.accounts().to_vec();
    let calls = rng.random_range(1..=4);
    let mut labels = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (to, data, label) = pick_call(t, rng, state, &accounts);
        let mut request = node.tx_request(to, &data);
        // A fixed limit instead of an estimate: estimates run against the last
        // mined block, so a transfer funded by a mint earlier in this same
        // round would fail to estimate.
        request["gas"] = serde_json::json!(testkit::anvil::quantity(CALL_GAS));
        node.send_tx(request).await?;
        labels.push(label);
    }
    node.rpc("evm_mine", serde_json::json!([])).await?;
    let number = node.block_number().await?;
    let logs = node
        .get_logs(serde_json::json!({
            "fromBlock": testkit::anvil::quantity(number),
            "toBlock": testkit::anvil::quantity(number),
        }))
        .await?;
    tracing::info!(
        "block {number}: {} txs, {} logs [{}]",
        labels.len(),
        logs.len(),
        labels.join(", ")
    );
    Ok(())
}

fn pick_call(
    t: &Targets,
    rng: &mut StdRng,
    state: &mut Bookkeeping,
    accounts: &[Address],
) -> (Address, Vec<u8>, String) {
    let someone = accounts
        .get(rng.random_range(0..accounts.len().max(1)))
        .copied()
        .unwrap_or(Address::ZERO);
    match rng.random_range(0..11) {
        0 => {
            let amount = rng.random_range(1..1_000u64);
            let sender = accounts.first().copied().unwrap_or(someone);
            // Minting to the sender (account 0) funds later transfers, which all come from it.
            let to = if rng.random_bool(0.5) {
                sender
            } else {
                someone
            };
            if to == sender {
                state.token_balance += amount;
            }
            let data = abi::call("mint(address,uint256)", &[address(to), uint(amount)]);
            (t.token, data, format!("mint({amount})"))
        }
        1 if state.token_balance > 0 => {
            let amount = rng.random_range(1..=state.token_balance.min(500));
            state.token_balance -= amount;
            let data = abi::call(
                "transfer(address,uint256)",
                &[address(someone), uint(amount)],
            );
            (t.token, data, format!("transfer({amount})"))
        }
        2 => {
            let amount = rng.random_range(1..1_000u64);
            state.vault_balance += amount;
            let data = abi::call("deposit(uint256)", &[uint(amount)]);
            (t.vault, data, format!("deposit({amount})"))
        }
        3 if state.vault_balance > 0 => {
            let amount = rng.random_range(1..=state.vault_balance);
            state.vault_balance -= amount;
            let data = abi::call("withdraw(uint256)", &[uint(amount)]);
            (t.vault, data, format!("withdraw({amount})"))
        }
        4 => {
            let id = B256::from(rng.random::<[u8; 32]>());
            let name = format!("name-{}", rng.random_range(0..10_000u32));
            let data = abi::call("register(bytes32,string)", &[bytes32(id), string(&name)]);
            (t.registry, data, format!("register({name})"))
        }
        5 => {
            let n = rng.random_range(1..=5);
            let data = abi::call("burst(uint256)", &[uint(n)]);
            (t.vault, data, format!("vault.burst({n})"))
        }
        6 => {
            let n = rng.random_range(1..=5);
            let data = abi::call("burst(uint256)", &[uint(n)]);
            (t.registry, data, format!("registry.burst({n})"))
        }
        9 => {
            let amount = rng.random_range(100..10_000u64);
            let data = abi::call("deposit(uint256)", &[uint(amount)]);
            (t.treasury, data, format!("treasury.deposit({amount})"))
        }
        10 => {
            let amount = rng.random_range(100..10_000u64);
            let data = abi::call("withdraw(uint256)", &[uint(amount)]);
            (t.treasury, data, format!("treasury.withdraw({amount})"))
        }
        _ => {
            let n = rng.random_range(1..=8);
            let data = abi::call("burst(uint256)", &[uint(n)]);
            (t.token, data, format!("token.burst({n})"))
        }
    }
}

async fn wait_for_shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested, finishing the current block");
}
