//! Anvil harness tests: spawning, deploying, sending, mining modes and reorgs,
//! checked against raw `eth_getLogs` ground truth.

use serde_json::json;
use testkit::abi::{self, uint};
use testkit::anvil::{quantity, Anvil};
use testkit::Address;

fn all_logs(address: Address) -> serde_json::Value {
    json!({"fromBlock": "0x0", "toBlock": "latest", "address": format!("{address:#x}")})
}

#[tokio::test]
async fn burst_emits_the_requested_number_of_transfers() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().await?;
    assert_eq!(anvil.accounts().len(), 10);
    let token = anvil.deploy("DemoToken", &[]).await?;
    let receipt = anvil
        .send_and_mine(token, abi::call("burst(uint256)", &[uint(5)]))
        .await?;
    assert_eq!(receipt.logs.len(), 5);

    let logs = anvil.get_logs(all_logs(token)).await?;
    assert_eq!(logs.len(), 5);
    let transfer = format!(
        "{:#x}",
        abi::event_topic("Transfer(address,address,uint256)")
    );
    for log in &logs {
        assert_eq!(log["topics"][0], json!(transfer));
        assert_eq!(log["blockNumber"], json!(quantity(receipt.block_number)));
    }
    Ok(())
}

#[tokio::test]
async fn malformed_transfer_keeps_five_data_bytes() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().await?;
    let token = anvil.deploy("DemoToken", &[]).await?;
    anvil
        .send_and_mine(token, abi::call("emitMalformed()", &[]))
        .await?;
    let logs = anvil.get_logs(all_logs(token)).await?;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["data"], json!("0x0102030405"));
    assert_eq!(logs[0]["topics"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test]
async fn no_mining_mode_needs_explicit_blocks() -> anyhow::Result<()> {
    let anvil = Anvil::builder()
        .no_mining(true)
        .chain_id(4242)
        .spawn()
        .await?;
    assert_eq!(anvil.chain_id().await?, 4242);
    assert!(!anvil.automine().await?);

    // deploy mines by itself when automine is off.
    let vault = anvil.deploy("Vault", &[]).await?;
    let start = anvil.block_number().await?;

    let tx = anvil
        .send(vault, abi::call("burst(uint256)", &[uint(4)]))
        .await?;
    assert!(
        anvil.receipt(tx).await?.is_none(),
        "mined without being asked"
    );
    anvil.mine(1).await?;
    let receipt = anvil.wait_for_receipt(tx).await?;
    assert_eq!(receipt.block_number, start + 1);
    assert_eq!(receipt.logs.len(), 4);

    anvil.mine(3).await?;
    assert_eq!(anvil.block_number().await?, start + 4);
    Ok(())
}

#[tokio::test]
async fn reorg_replaces_blocks_and_their_logs() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().await?;
    let token = anvil.deploy("DemoToken", &[]).await?;
    anvil
        .send_and_mine(token, abi::call("burst(uint256)", &[uint(3)]))
        .await?;
    anvil.mine(2).await?;
    let head = anvil.block_number().await?;
    let old_hash = anvil.block_hash(head - 2).await?;
    assert_eq!(anvil.get_logs(all_logs(token)).await?.len(), 3);

    // Replace the burst's block and the two after it; put a smaller burst in
    // the second replacement block.
    let replacement = anvil.tx_request(token, &abi::call("burst(uint256)", &[uint(2)]));
    anvil.reorg(3, vec![(replacement, 1)]).await?;

    assert_eq!(anvil.block_number().await?, head, "reorg keeps the height");
    assert_ne!(anvil.block_hash(head - 2).await?, old_hash);
    let logs = anvil.get_logs(all_logs(token)).await?;
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["blockNumber"], json!(quantity(head - 1)));
    Ok(())
}

#[tokio::test]
async fn spammer_fits_ten_thousand_logs_in_one_transaction() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().await?;
    let spammer = anvil.deploy("Spammer", &[]).await?;
    let receipt = anvil
        .send_and_mine(spammer, abi::call("emitMany(uint256)", &[uint(10_000)]))
        .await?;
    assert_eq!(receipt.logs.len(), 10_000);
    assert!(
        receipt.gas_used < 30_000_000,
        "gas used {}",
        receipt.gas_used
    );
    Ok(())
}

#[tokio::test]
async fn rpc_errors_carry_the_node_message() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().await?;
    let err = anvil
        .rpc("anvil_reorg", json!([5, []]))
        .await
        .expect_err("reorg deeper than the chain must fail");
    let rpc = err
        .downcast_ref::<testkit::anvil::RpcError>()
        .expect("typed JSON-RPC error");
    assert!(
        err.to_string().contains(&rpc.message) && !rpc.message.is_empty(),
        "{err}"
    );
    Ok(())
}
