//! B3: providers' range and response-size limits, in each provider's own wording, against anvil
//! behind the fault-injecting proxy. The range adapts (to the suggested or stated span, or by
//! halving) and grows back; a single block that is still too large stops the indexer with a
//! message naming the block instead of looping.

use std::time::Duration;

use crate::common::{providers, Env};
use alloy::primitives::Address;
use anyhow::{ensure, Context, Result};
use testkit::{
    abi,
    anvil::Anvil,
    rpc_proxy::{FaultProxy, Mode, Outcome, RangeStyle},
};
use tripwire_config::ChainConfig;
use tripwire_rpc::{ChainRpc, Interest, RpcError};

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

/// One provider refuses every block of the range (a cap it cannot meet) while the other is
/// briefly out of rotation: the ingest waits for the other instead of stopping with "block N
/// alone holds more logs than any provider returns", and Postgres ends equal to the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_while_the_other_provider_is_benched_is_not_a_stop() -> Result<()> {
    let mut env = Env::new().await?;
    env.traffic(20, 6).await?;
    let capped = FaultProxy::start(&env.anvil.url()).await?;
    capped.set_mode(Mode::RangeLimit {
        max_blocks: 0,
        style: RangeStyle::QuickNode,
    });
    let other = FaultProxy::start(&env.anvil.url()).await?;
    other.set_mode(Mode::ServerError);
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 2;
    env.providers = providers(&[("capped", &capped, 5), ("other", &other, 1)]);
    let mut p = env.spawn("run")?;
    // The other provider fails for a while: every block is refused by one provider and not
    // answered by the other.
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(
        p.is_running(),
        "the ingest stopped although a provider never refused the block:\n{}",
        p.output()
    );
    ensure!(
        !p.output().contains("alone holds more logs"),
        "reported the block as too large:\n{}",
        p.output()
    );
    other.set_mode(Mode::Pass);
    let rows = env
        .wait_matches_chain(Duration::from_secs(60), &[&p])
        .await?;
    println!("capped + briefly benched provider: {rows} rows equal to the chain, no stop");
    Ok(())
}

/// A refusal in words no table knows, repeated on the same range, halves the range instead of
/// stopping progress for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_error_repeated_on_one_range_halves_it() -> Result<()> {
    let anvil = Anvil::spawn().await?;
    let (token, head) = history(&anvil).await?;
    let proxy = FaultProxy::start(&anvil.url()).await?;
    proxy.set_mode(Mode::RangeLimit {
        max_blocks: 5,
        style: RangeStyle::Unrecognised,
    });
    let rpc = ChainRpc::new(&chain(&[proxy.url()], 64)?)?;
    let interest = Interest::raw(&[token]);
    let mut failures = 0;
    let got = loop {
        match rpc.fetch_range(0, head, &interest).await {
            Ok(d) => break d,
            Err(e) => {
                ensure!(!e.is_fatal(), "{e}");
                failures += 1;
                ensure!(failures < 40, "never adapted: {e}");
                // The ingest's backoff; the provider's bench is short.
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
        }
    };
    ensure!(got.headers.len() as u64 == head + 1);
    ensure!(
        rpc.range_blocks() <= 5,
        "range {} after an unrecognised refusal of more than 5",
        rpc.range_blocks()
    );
    println!(
        "unrecognised wording: range 64 -> {} after {failures} failed attempts",
        rpc.range_blocks()
    );
    Ok(())
}

/// The same through the ingest, whose ranges in flight fail side by side: the range still
/// halves and Postgres ends equal to the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_adapts_to_an_unrecognised_refusal() -> Result<()> {
    let mut env = Env::new().await?;
    env.traffic(60, 2).await?;
    let proxy = FaultProxy::start(&env.anvil.url()).await?;
    proxy.set_mode(Mode::RangeLimit {
        max_blocks: 5,
        style: RangeStyle::Unrecognised,
    });
    env.rpc_urls = Some(vec![proxy.url()]);
    env.range_blocks = 40;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(90), &[&p]).await?;
    let rows = env
        .wait_matches_chain(Duration::from_secs(30), &[&p])
        .await?;
    let refused = proxy
        .events()
        .iter()
        .filter(|e| e.outcome == Outcome::Faulted("range_limit"))
        .count();
    ensure!(
        refused > 0,
        "the proxy never refused: the test exercises nothing"
    );
    println!("ingest with an unrecognised refusal: {rows} rows equal to the chain after {refused} refusals");
    Ok(())
}

/// A range sized for a quiet stretch that runs into a burst: the answer would be far larger than
/// `max_response_bytes`, so it is abandoned unread and the range halves until the answers fit;
/// every log still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_max_response_bytes_is_not_read_and_the_range_halves() -> Result<()> {
    let anvil = Anvil::spawn().await?;
    let token = anvil.deploy("DemoToken", &[]).await?;
    // 80 quiet blocks, then 40 blocks of 20 logs each (~10 kB of JSON per block).
    anvil.mine(80).await?;
    for _ in 0..40 {
        anvil
            .send_and_mine(token, abi::call("burst(uint256)", &[abi::uint(20)]))
            .await?;
    }
    let head = anvil.block_number().await?;
    let truth = ChainRpc::new(&chain(&[anvil.url()], 1000)?)?
        .fetch_range(0, head, &Interest::raw(&[token]))
        .await?;
    ensure!(truth.logs.len() == 800, "{} logs", truth.logs.len());

    let capped: ChainConfig = toml::from_str(&format!(
        "name = \"devnet\"\nchain_id = 31337\nrpc_urls = [\"{}\"]\nrange_blocks = 128\n\
         range_target_bytes = 30000\nmax_response_bytes = 30000\nrpc_timeout_s = 5\n",
        anvil.url()
    ))?;
    let rpc = ChainRpc::new(&capped)?;
    let mut logs = Vec::new();
    let mut from = 0;
    let mut spans = Vec::new();
    // As the ingest asks: range after range at the span learned so far.
    while from <= head {
        let span = rpc.range_blocks();
        spans.push(span);
        let to = head.min(from + span - 1);
        let got = rpc.fetch_range(from, to, &Interest::raw(&[token])).await?;
        ensure!(
            got.headers.len() as u64 == to - from + 1,
            "headers {from}..={to}"
        );
        logs.extend(got.logs);
        from = to + 1;
    }
    ensure!(keys(&logs) == keys(&truth.logs), "logs differ");
    ensure!(
        spans.iter().any(|s| *s >= 64),
        "the quiet stretch never grew the range: {spans:?}"
    );
    ensure!(
        rpc.range_blocks() * 10_000 <= 30_000 * 2,
        "range still {} blocks at ~10 kB per block against a 30 kB cap; spans {spans:?}",
        rpc.range_blocks()
    );
    println!("spans asked: {spans:?}");
    Ok(())
}
