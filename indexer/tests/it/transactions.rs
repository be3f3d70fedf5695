//! Transactions end to end at the documented defaults: a contract with `transactions = true` on
//! anvil, its calls (a reverted one among them) through the ingest's proofs, Kafka and the sink
//! into `transactions`, one row per call, with the receipt's outcome.

use std::time::Duration;

use serde_json::json;
use testkit::abi;

use crate::common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_calls_reverted_or_not_land_once_in_the_transactions_table() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let me = env.anvil.accounts()[0];
    // Two successful calls in one block with logs of the other contracts.
    env.anvil.set_automine(false).await?;
    env.anvil
        .send(
            env.token,
            abi::call("mint(address,uint256)", &[abi::address(me), abi::uint(5)]),
        )
        .await?;
    env.anvil
        .send(env.vault, abi::call("burst(uint256)", &[abi::uint(3)]))
        .await?;
    env.anvil
        .send(env.token, abi::call("burst(uint256)", &[abi::uint(2)]))
        .await?;
    env.anvil.mine(1).await?;
    // A transfer of more than the balance reverts (checked arithmetic); an explicit gas limit,
    // since estimating a reverting call fails.
    let over = abi::call(
        "transfer(address,uint256)",
        &[abi::address(env.anvil.accounts()[1]), abi::uint(1_000)],
    );
    env.anvil
        .send_tx(json!({
            "to": format!("{:#x}", env.token),
            "data": format!("0x{}", alloy::primitives::hex::encode(&over)),
            "gas": "0x30000",
        }))
        .await?;
    env.anvil.mine(1).await?;
    env.anvil.set_automine(true).await?;
    env.anvil.mine(2).await?;

    let config = env.test_config().set("contracts.0.transactions", true);
    let path = config.write(env.dir.path().join("tripwire.toml"))?;
    let mut p = testkit::process::Proc::spawn(
        std::path::Path::new(crate::common::BIN),
        &path,
        "run",
        env.dir.path(),
        "info",
    )?;
    env.wait_synced_with(Duration::from_secs(120), &[&p])
        .await?;

    let rows: Vec<(i64, i32, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT block_number, tx_index, status, function_name, gas_used FROM transactions
         WHERE chain_id = 31337 ORDER BY block_number, tx_index",
    )
    .fetch_all(env.db.pool())
    .await?;
    let calls: Vec<(String, Option<String>)> =
        rows.iter().map(|r| (r.2.clone(), r.3.clone())).collect();
    assert_eq!(
        calls,
        [
            ("success".to_owned(), Some("mint".to_owned())),
            ("success".to_owned(), Some("burst".to_owned())),
            ("reverted".to_owned(), Some("transfer".to_owned())),
        ],
        "the token's three calls, not the vault's: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.4 > 21_000),
        "gas used from the receipts: {rows:?}"
    );
    // The reverted call is in the next block; the first block's two calls keep their order.
    assert_eq!(rows[0].0, rows[1].0);
    assert!(rows[0].1 < rows[1].1);
    assert_eq!(rows[2].0, rows[0].0 + 1);

    // A restart re-reads nothing twice: the rows stay exactly these.
    p.terminate(Duration::from_secs(30))?;
    let mut p = testkit::process::Proc::spawn(
        std::path::Path::new(crate::common::BIN),
        &path,
        "run",
        env.dir.path(),
        "info",
    )?;
    env.anvil.mine(3).await?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(env.db.pool())
        .await?;
    assert_eq!(again, 3);
    p.terminate(Duration::from_secs(30))?;
    Ok(())
}
