//! Step 2: the ceiling. How fast anvil itself serves the chain's logs over `eth_getLogs`, with
//! a client that counts logs without parsing them, so the indexer's rate can be judged against
//! what the node can deliver at all.

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc,
};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use testkit::anvil::quantity;
use tripwire_benches::rpc;

use crate::chain::Chain;
use crate::cli::Args;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    logs: u64,
    secs: f64,
    bytes: u64,
}

impl Rate {
    pub(crate) fn per_s(&self) -> f64 {
        self.logs as f64 / self.secs
    }
}

pub(crate) struct Ceiling {
    /// Plain `eth_getLogs`, one request at a time, the indexer's range size: THE ceiling.
    pub(crate) sequential: Rate,
    /// Plain `eth_getLogs` with several concurrent fetchers.
    pub(crate) concurrent: Rate,
    /// The indexer's request shape: `range_blocks` headers plus the logs in one JSON-RPC batch.
    pub(crate) batch_shaped: Rate,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Logs,
    HeadersAndLogs,
}

pub(crate) async fn measure_ceiling(args: &Args, chain: &Chain) -> Result<Ceiling> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let span = ceiling_span(args, chain);
    let ranges: Vec<(u64, u64)> = (0..=chain.head)
        .step_by(span as usize)
        .map(|from| (from, (from + span - 1).min(chain.head)))
        .collect();
    let runs = [
        ("sequential eth_getLogs", 1, Shape::Logs),
        ("concurrent eth_getLogs", args.fetchers.max(1), Shape::Logs),
        ("sequential headers+logs batch", 1, Shape::HeadersAndLogs),
    ];
    let mut out = Vec::new();
    for (label, fetchers, shape) in runs {
        let rate = fetch_all(&client, chain, &ranges, fetchers, shape).await?;
        if rate.logs != chain.logs {
            bail!(
                "{label}: counted {} logs, the chain has {}",
                rate.logs,
                chain.logs
            );
        }
        println!(
            "  {label:<32} {fetchers} fetcher(s), {} requests of {} blocks: {:>9.0} logs/s ({:.2} s, {:.0} MB/s, {:.2} MB per request)",
            ranges.len(),
            span,
            rate.per_s(),
            rate.secs,
            rate.bytes as f64 / 1e6 / rate.secs,
            rate.bytes as f64 / 1e6 / ranges.len() as f64
        );
        out.push(rate);
    }
    Ok(Ceiling {
        sequential: out[0],
        concurrent: out[1],
        batch_shaped: out[2],
    })
}

/// Blocks per request of the ceiling: `--ceiling-range-blocks`, else about 5,000 logs' worth.
pub(crate) fn ceiling_span(args: &Args, chain: &Chain) -> u64 {
    args.ceiling_range_blocks
        .unwrap_or_else(|| (5_000 / chain.logs_per_block).max(1))
}

/// Fetches every range with `fetchers` concurrent clients and counts the logs.
async fn fetch_all(
    client: &reqwest::Client,
    chain: &Chain,
    ranges: &[(u64, u64)],
    fetchers: usize,
    shape: Shape,
) -> Result<Rate> {
    let ranges = Arc::new(ranges.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let logs = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let url = chain.anvil.url();
    let address = format!("{:#x}", chain.spammer);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..fetchers {
        let (client, ranges, next, logs, bytes, url, address) = (
            client.clone(),
            ranges.clone(),
            next.clone(),
            logs.clone(),
            bytes.clone(),
            url.clone(),
            address.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(from, to)) = ranges.get(i) else {
                    return anyhow::Ok(());
                };
                let get_logs = json!({
                    "jsonrpc": "2.0", "id": 0, "method": "eth_getLogs",
                    "params": [{"fromBlock": quantity(from), "toBlock": quantity(to), "address": [address]}],
                });
                let body = match shape {
                    Shape::Logs => get_logs,
                    Shape::HeadersAndLogs => {
                        let mut batch: Vec<Value> = (from..=to)
                            .map(|n| {
                                json!({"jsonrpc": "2.0", "id": n + 1, "method": "eth_getBlockByNumber",
                                       "params": [quantity(n), false]})
                            })
                            .collect();
                        batch.push(get_logs);
                        Value::Array(batch)
                    }
                };
                let response = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("eth_getLogs {from}..={to}"))?;
                let status = response.status();
                let body = response.bytes().await?;
                if !status.is_success() {
                    bail!("eth_getLogs {from}..={to}: HTTP {status}");
                }
                let n = rpc::count_logs(&body)
                    .with_context(|| format!("eth_getLogs {from}..={to}"))?;
                logs.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.context("fetcher panicked")??;
    }
    Ok(Rate {
        logs: logs.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
        bytes: bytes.load(Ordering::Relaxed),
    })
}
