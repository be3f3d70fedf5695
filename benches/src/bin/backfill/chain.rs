//! Step 1: the chain. A fresh anvil with a `Spammer` contract whose `emitMany` transactions fill
//! every block with the requested number of `Ping` logs; generating it is not part of the
//! measurement.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use testkit::{
    abi,
    anvil::{parse_quantity, quantity, Anvil},
    Address,
};

use crate::cli::Args;

/// Logs per `emitMany` transaction at most: ~1,450 gas per log keeps a transaction well below the
/// per-transaction gas cap of recent hardforks (2^24).
const MAX_LOGS_PER_TX: u64 = 8_000;
pub(crate) const CHAIN_ID: u64 = 31337;
pub(crate) const PING: &str = "event Ping(uint256 indexed i, uint256 value)";

pub(crate) struct Chain {
    pub(crate) anvil: Anvil,
    pub(crate) spammer: Address,
    /// Head block number: the last block the indexer has to reach.
    pub(crate) head: u64,
    /// Blocks carrying Spammer logs.
    pub(crate) log_blocks: u64,
    pub(crate) logs: u64,
    pub(crate) logs_per_block: u64,
}

pub(crate) async fn generate(args: &Args, logs_per_block: u64) -> Result<Chain> {
    let started = Instant::now();
    let txs_per_block = logs_per_block.div_ceil(MAX_LOGS_PER_TX);
    let per_tx = logs_per_block.div_ceil(txs_per_block);
    // A generous upper bound of a transaction's gas: ~1,450 gas per log plus the base cost.
    let tx_gas_bound = per_tx * 2_000 + 100_000;
    let block_gas = (txs_per_block * tx_gas_bound + 1_000_000).max(30_000_000);
    let anvil = Anvil::builder()
        .no_mining(true)
        .block_gas_limit(Some(block_gas))
        // Logs and headers are all the indexer reads; without old states kept (and written to
        // disk, several GB per chain) anvil generates the chain faster.
        .arg("--prune-history")
        .spawn()
        .await
        .context("starting anvil")?;
    let (spammer, deployed) = anvil
        .deploy_with_receipt("Spammer", &[])
        .await
        .context("deploying Spammer")?;
    let from = format!("{:#x}", anvil.accounts()[0]);
    let to = format!("{spammer:#x}");
    let calldata =
        |n: u64| testkit::anvil::hex_bytes(&abi::call("emitMany(uint256)", &[abi::uint(n)]));
    // Estimated once (against the latest block, which is all emitMany depends on), with headroom.
    let est = parse_quantity(
        &anvil
            .rpc(
                "eth_estimateGas",
                json!([{"from": from, "to": to, "data": calldata(per_tx)}]),
            )
            .await
            .context("eth_estimateGas of emitMany")?,
    )?;
    let tx_gas = (est + est / 5 + 10_000).min(tx_gas_bound);
    println!(
        "anvil {} (block gas limit {block_gas}); Spammer at {to} (block {}); emitMany({per_tx}) \
         estimated at {est} gas ({:.0} gas/log), {txs_per_block} tx(s) per block",
        anvil.url(),
        deployed.block_number,
        est as f64 / per_tx as f64
    );

    let mut remaining = args.logs;
    let mut log_blocks = 0u64;
    let total_blocks = args.logs.div_ceil(logs_per_block);
    let mut next_report = Instant::now() + Duration::from_secs(5);
    while remaining > 0 {
        let in_block = remaining.min(logs_per_block);
        let mut left = in_block;
        while left > 0 {
            let n = left.min(per_tx);
            anvil
                .send_tx(
                    json!({"from": from, "to": to, "data": calldata(n), "gas": quantity(tx_gas)}),
                )
                .await
                .context("sending emitMany")?;
            left -= n;
        }
        // Mined with a separate call: in one batch anvil may mine before the pool has the tx.
        anvil.rpc("evm_mine", json!([])).await.context("evm_mine")?;
        remaining -= in_block;
        log_blocks += 1;
        if Instant::now() >= next_report {
            println!(
                "  {log_blocks}/{total_blocks} blocks, {} logs, {:.0} s",
                args.logs - remaining,
                started.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(5);
        }
    }
    let head = anvil.block_number().await?;
    // Spot check: the last block holds the expected number of logs (all transactions made it).
    let last = anvil
        .get_logs(json!({"fromBlock": quantity(head), "toBlock": quantity(head), "address": to}))
        .await?;
    let expected_last = match args.logs % logs_per_block {
        0 => logs_per_block,
        r => r,
    };
    if last.len() as u64 != expected_last {
        bail!(
            "block {head} has {} logs, expected {expected_last} (did a transaction revert or not fit?)",
            last.len()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} logs in {log_blocks} blocks (head {head}) in {secs:.1} s ({:.0} logs/s; not part of the measurement)",
        args.logs,
        args.logs as f64 / secs
    );
    Ok(Chain {
        anvil,
        spammer,
        head,
        log_blocks,
        logs: args.logs,
        logs_per_block,
    })
}
