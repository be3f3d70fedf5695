//! B3: providers' range and response-size limits, in each provider's own wording, against anvil
//! behind the fault-injecting proxy. The range adapts (to the suggested or stated span, or by
//! halving) and grows back; a single block that is still too large stops the indexer with a
//! message naming the block instead of looping.

mod common;

use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{ensure, Context, Result};
use common::Env;
use testkit::{
    abi,
    anvil::Anvil,
    rpc_proxy::{FaultProxy, Mode, Outcome, RangeStyle},
};
use tripwire_indexer::{
    config::ChainConfig,
    rpc::{ChainRpc, Interest, RpcError},
};

fn chain(urls: &[String], range_blocks: u64) -> Result<ChainConfig> {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    Ok(toml::from_str(&format!(
        "name = \"devnet\"\nchain_id = 31337\nrpc_urls = [{}]\nrange_blocks = {range_blocks}\nrpc_timeout_s = 5\n",
        urls.join(", ")
    ))?)
}

/// `(block, log index)` of every log, the identity the comparison needs.
fn keys(logs: &[alloy::rpc::types::Log]) -> Vec<(u64, u64)> {
    logs.iter()
        .map(|l| (l.block_number.unwrap_or(0), l.log_index.unwrap_or(0)))
        .collect()
}

async fn history(anvil: &Anvil) -> Result<(Address, u64)> {
    let token = anvil.deploy("DemoToken", &[]).await?;
    for _ in 0..60 {
        anvil
            .send_and_mine(token, abi::call("burst(uint256)", &[abi::uint(3)]))
            .await?;
    }
    Ok((token, anvil.block_number().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_every_providers_wording_adapts_the_range() -> Result<()> {
    let anvil = Anvil::spawn().await?;
    let (token, head) = history(&anvil).await?;
    let direct = ChainRpc::new(&chain(&[anvil.url()], 1000)?)?;
    let truth = direct
        .fetch_range(0, head, &Interest::raw(&[token]))
        .await?;
    ensure!(truth.logs.len() >= 180, "only {} logs", truth.logs.len());

    let mut recognised = 0;
    for style in RangeStyle::ALL {
        let proxy = FaultProxy::start(&anvil.url()).await?;
        proxy.set_mode(Mode::RangeLimit {
            max_blocks: 5,
            style,
        });
        let rpc = ChainRpc::new(&chain(&[proxy.url()], 64)?)?;
        let got = rpc
            .fetch_range(0, head, &Interest::raw(&[token]))
            .await
            .with_context(|| format!("{style:?}"))?;
        ensure!(
            got.headers.len() as u64 == head + 1,
            "{style:?}: {} headers",
            got.headers.len()
        );
        ensure!(
            keys(&got.logs) == keys(&truth.logs),
            "{style:?}: logs differ"
        );
        let limited = proxy
            .events()
            .iter()
            .filter(|e| e.outcome == Outcome::Faulted("range_limit"))
            .count();
        ensure!(limited > 0, "{style:?}: the proxy never refused a range");
        ensure!(
            rpc.range_blocks() <= 5,
            "{style:?}: range still {} blocks after the provider refused more than 5",
            rpc.range_blocks()
        );
        println!(
            "B3 {style:?}: recognised (code, message) = {:?}; range 64 -> {} after {limited} refusals",
            style.error(5, 0),
            rpc.range_blocks()
        );
        recognised += 1;

        // Grows back once the provider stops refusing: at once up to just below the smallest
        // span that failed, beyond it only after a long run of successes.
        proxy.set_mode(Mode::Pass);
        let before = rpc.range_blocks();
        let mut fetches = 0;
        while fetches < 300 && rpc.range_blocks() <= before * 4 {
            let span = rpc.range_blocks();
            rpc.fetch_range(0, (span - 1).min(head), &Interest::raw(&[token]))
                .await?;
            fetches += 1;
        }
        ensure!(
            rpc.range_blocks() > before * 4,
            "{style:?}: range did not grow back: {before} -> {} in {fetches} fetches",
            rpc.range_blocks()
        );
        println!(
            "    grew back {before} -> {} in {fetches} fetches",
            rpc.range_blocks()
        );
    }
    ensure!(recognised >= 6);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_a_single_block_too_large_is_reported_not_retried_forever() -> Result<()> {
    let anvil = Anvil::spawn().await?;
    let (token, head) = history(&anvil).await?;
    let proxy = FaultProxy::start(&anvil.url()).await?;
    proxy.set_mode(Mode::RangeLimit {
        max_blocks: 0,
        style: RangeStyle::Infura,
    });
    let rpc = ChainRpc::new(&chain(&[proxy.url()], 16)?)?;
    let err = rpc
        .fetch_range(head - 3, head, &Interest::raw(&[token]))
        .await
        .expect_err("no provider can serve the block");
    ensure!(
        matches!(err, RpcError::BlockTooLarge { .. }) && err.is_fatal(),
        "{err}"
    );
    let text = err.to_string();
    ensure!(
        text.contains(&format!("block {}", head - 3)) && text.contains(&token.to_string()),
        "{text}"
    );

    // The indexer stops with that message rather than looping.
    let mut env = Env::with_anvil(anvil).await?;
    let proxy = FaultProxy::start(&env.anvil.url()).await?;
    proxy.set_mode(Mode::RangeLimit {
        max_blocks: 0,
        style: RangeStyle::QuickNode,
    });
    env.rpc_urls = Some(vec![proxy.url()]);
    let mut p = env.spawn("ingest")?;
    let status = tokio::task::block_in_place(|| p.wait(Duration::from_secs(60)))?;
    let log = p.output();
    ensure!(!status.success(), "ingest kept running:\n{log}");
    ensure!(
        log.contains("alone holds more logs")
            && log.contains("eth_getLogs is limited to a 0 range"),
        "{log}"
    );
    Ok(())
}
