//! Transaction-level monitoring against anvil: the reverted calls of a watched contract come back
//! as records, and a provider that drops a receipt or flips a status (through the proxy) is caught
//! by the root checks while the honest provider's answer is used.

use std::path::Path;

use alloy::primitives::Address;
use anyhow::{ensure, Context, Result};
use serde_json::json;
use testkit::anvil::Anvil;
use testkit::rpc_proxy::{FaultProxy, Mode, Outcome, ReceiptLie};
use tripwire_config::Settings;
use tripwire_rpc::{records, ChainRpc};
use tripwire_schema::TxStatus;

/// Init code of a contract whose every call reverts (runtime `PUSH0 PUSH0 REVERT`).
const REVERTER: &str = "0x6460006000fd6000526005601bf3";

/// The chain behind `providers` (name, URL, weight), with the contract at `contract` watching
/// its transactions.
fn settings(contract: &str, providers: &[(&str, &str, u32)]) -> Result<Settings> {
    let mut text = String::from(
        r#"
[postgres]
url = "postgres://postgres@127.0.0.1/unused"
[kafka]
brokers = "embedded"
[[chains]]
name = "devnet"
chain_id = 31337
rpc_timeout_s = 5
"#,
    );
    for (name, url, weight) in providers {
        text.push_str(&format!(
            "[[chains.providers]]\nurl = \"{url}\"\nname = \"{name}\"\nweight = {weight}\n"
        ));
    }
    text.push_str(&format!(
        "[[contracts]]\nname = \"reverter\"\nchain = \"devnet\"\naddresses = [\"{contract}\"]\ntransactions = true\n"
    ));
    Ok(Settings::from_str_at(
        &text,
        Path::new("/tmp/tripwire-rpc-it.toml"),
    )?)
}

/// Anvil with a contract whose calls revert: three reverted calls and a transfer in one block,
/// then one more reverted call. Returns the node, the contract and the head.
async fn reverted_calls() -> Result<(Anvil, Address, u64)> {
    let anvil = Anvil::spawn().await?;
    let deployed = anvil.send_tx_and_mine(json!({ "data": REVERTER })).await?;
    let contract = deployed.contract_address.context("no contract address")?;
    anvil.set_automine(false).await?;
    for data in ["0xdeadbeef", "0x01", "0x"] {
        anvil
            .send_tx(json!({ "to": format!("{contract:#x}"), "data": data, "gas": "0x30000" }))
            .await?;
    }
    anvil
        .send_tx(json!({ "to": format!("{:#x}", anvil.accounts()[1]), "value": "0x1" }))
        .await?;
    anvil.mine(1).await?;
    anvil
        .send_tx(json!({ "to": format!("{contract:#x}"), "data": "0x12345678", "gas": "0x30000" }))
        .await?;
    anvil.mine(1).await?;
    let head = anvil.block_number().await?;
    Ok((anvil, contract, head))
}

/// The four reverted calls of [`reverted_calls`], by block then index.
fn ensure_the_calls(data: &tripwire_rpc::RangeData, contract: Address, head: u64) -> Result<()> {
    ensure!(data.transactions.len() == 4, "{:?}", data.transactions);
    ensure!(
        data.transactions
            .iter()
            .all(|t| t.status == TxStatus::Reverted && t.to == contract),
        "every call reverted: {:?}",
        data.transactions
    );
    let indexes: Vec<(u64, u64)> = data
        .transactions
        .iter()
        .map(|t| (t.block_number, t.tx_index))
        .collect();
    ensure!(
        indexes == [(head - 1, 0), (head - 1, 1), (head - 1, 2), (head, 0)],
        "by block, then index: {indexes:?}"
    );
    Ok(())
}

/// The preferred provider lies about receipts as `lie` says: the root checks catch it, the honest
/// provider's answer is used, and only the liar is counted.
async fn caught_by_the_roots(lie: ReceiptLie) -> Result<()> {
    let (anvil, contract, head) = reverted_calls().await?;
    let liar = FaultProxy::start(&anvil.url()).await?;
    liar.set_mode(Mode::LyingReceipts(lie));
    let honest = FaultProxy::start(&anvil.url()).await?;
    let s = settings(
        &format!("{contract:#x}"),
        &[("liar", &liar.url(), 5), ("honest", &honest.url(), 1)],
    )?;
    let rpc = ChainRpc::new(&s.config.chains[0])?;
    rpc.verify_chain_id(31337).await?;
    rpc.heads().await?;
    let interest = records::interest(&s.contracts);
    let data = rpc.fetch_range(1, head, &interest).await?;
    let lies = liar
        .events()
        .iter()
        .filter(|e| e.outcome == Outcome::Faulted("lying_receipts"))
        .count();
    ensure!(lies > 0, "the liar never lied: the test exercises nothing");
    ensure_the_calls(&data, contract, head)?;
    let snapshot = rpc.snapshot();
    let of = |name: &str| {
        snapshot
            .iter()
            .find(|p| p.provider == name)
            .map(|p| p.inconsistent_answers)
            .unwrap_or_default()
    };
    ensure!(of("liar") >= 1, "the liar was not caught: {snapshot:?}");
    ensure!(
        of("honest") == 0,
        "the honest provider was blamed: {snapshot:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_receipt_is_caught_and_the_honest_answer_used() -> Result<()> {
    caught_by_the_roots(ReceiptLie::DropOne).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_status_is_caught_and_the_honest_answer_used() -> Result<()> {
    caught_by_the_roots(ReceiptLie::FlipStatus).await
}

/// A provider without `eth_getBlockReceipts` gives the receipts one transaction at a time, and
/// they are proven all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_block_receipts_the_receipts_come_one_by_one() -> Result<()> {
    let (anvil, contract, head) = reverted_calls().await?;
    let old = FaultProxy::start(&anvil.url()).await?;
    old.set_mode(Mode::MethodMissing {
        method: "eth_getBlockReceipts",
    });
    let s = settings(&format!("{contract:#x}"), &[("old", &old.url(), 1)])?;
    let rpc = ChainRpc::new(&s.config.chains[0])?;
    rpc.heads().await?;
    let data = rpc
        .fetch_range(1, head, &records::interest(&s.contracts))
        .await?;
    ensure_the_calls(&data, contract, head)?;
    let events = old.events();
    ensure!(
        events
            .iter()
            .any(|e| e.outcome == Outcome::Faulted("method_missing")),
        "eth_getBlockReceipts was never refused"
    );
    ensure!(
        events
            .iter()
            .any(|e| e.methods.iter().any(|m| m == "eth_getTransactionReceipt")),
        "no receipt was asked one by one"
    );
    ensure!(rpc.snapshot()[0].inconsistent_answers == 0);
    Ok(())
}

/// The only provider lies: every answer is refused, and after repeated contradictions the error
/// names the chain, the provider, the block and the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_lying_provider_ends_in_an_error_naming_the_block_and_root() -> Result<()> {
    let (anvil, contract, head) = reverted_calls().await?;
    let liar = FaultProxy::start(&anvil.url()).await?;
    liar.set_mode(Mode::LyingReceipts(ReceiptLie::FlipStatus));
    let s = settings(&format!("{contract:#x}"), &[("liar", &liar.url(), 1)])?;
    let rpc = ChainRpc::new(&s.config.chains[0])?;
    rpc.heads().await?;
    let interest = records::interest(&s.contracts);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        ensure!(
            std::time::Instant::now() < deadline,
            "never stopped on the liar"
        );
        match rpc.fetch_range(head, head, &interest).await {
            Ok(data) => anyhow::bail!("a lying answer was used: {:?}", data.transactions),
            Err(e @ tripwire_rpc::RpcError::Contradicted { .. }) => {
                let text = e.to_string();
                ensure!(
                    text.contains("chain devnet")
                        && text.contains(&format!("answered block {head}"))
                        && text.contains("receiptsRoot mismatch"),
                    "{text}"
                );
                return Ok(());
            }
            Err(e) => {
                let text = e.to_string();
                ensure!(
                    text.contains("receiptsRoot") || text.contains("back in"),
                    "an unexpected error: {text}"
                );
            }
        }
    }
}
