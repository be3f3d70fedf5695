//! D1, D2, D4 (D5 in `config.rs`, D3 and D6 in `service.rs`): pause proposals on real Safe v1.4.1 contracts (the npm artifacts) deployed on
//! anvil: a 2-of-3 Safe holding the treasuries' pauser role, the watchdog's key one owner.

use std::path::Path;
use std::time::{Duration, Instant};
use testkit::config::{Safe, SafeService};

use crate::common::{self, Env, SafeSetup, StoredProposal};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::{local::PrivateKeySigner, Signer};
use anyhow::{bail, Result};
use testkit::{abi, safe as tsafe, DynSolValue};

async fn wait_proposals(
    env: &Env,
    n: usize,
    wd: &testkit::process::Proc,
) -> Result<Vec<StoredProposal>> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let p = env.proposals().await?;
        if p.len() >= n {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!(
                "{} proposal(s), {n} expected; watchdog log:\n{}",
                p.len(),
                wd.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attack: the pauser role granted to an account nobody expects.
async fn attack(env: &Env, who: usize) -> Result<u64> {
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let r = env
        .anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(env.anvil.accounts()[who])],
            ),
        )
        .await?;
    Ok(r.block_number)
}

fn tx_args(p: &StoredProposal) -> Result<Vec<DynSolValue>> {
    Ok(vec![
        abi::address(p.to_address.parse()?),
        abi::uint(0),
        DynSolValue::Bytes(alloy::primitives::hex::decode(&p.data)?),
        DynSolValue::Uint(U256::from(p.operation as u64), 8),
        abi::uint(0),
        abi::uint(0),
        abi::uint(0),
        abi::address(Address::ZERO),
        abi::address(Address::ZERO),
    ])
}

/// Adds owner 2's signature to the proposer's and executes the Safe transaction.
async fn sign_and_execute(env: &Env, setup: &SafeSetup, p: &StoredProposal) -> Result<()> {
    let hash: B256 = p.safe_tx_hash.parse()?;
    let owner2: PrivateKeySigner = tsafe::OWNER_KEYS[1].parse()?;
    let sig2 = owner2.sign_hash(&hash).await?.as_bytes().to_vec();
    let proposer: PrivateKeySigner = tsafe::OWNER_KEYS[0].parse()?;
    let sigs = tripwire_watchdog::safe::tx::pack_signatures(vec![
        (
            proposer.address(),
            alloy::primitives::hex::decode(&p.signature)?,
        ),
        (owner2.address(), sig2),
    ]);
    let mut args = tx_args(p)?;
    args.push(DynSolValue::Bytes(sigs.to_vec()));
    let mut req = env.anvil.tx_request(
        setup.safe,
        &abi::call(
            "execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)",
            &args,
        ),
    );
    req["gas"] = serde_json::json!("0x1e8480");
    let receipt = env.anvil.send_tx_and_mine(req).await?;
    if !receipt.status {
        bail!("execTransaction reverted");
    }
    Ok(())
}

async fn paused(env: &Env, at: Address) -> Result<bool> {
    Ok(tsafe::call_word(&env.anvil, at, &abi::call("paused()", &[])).await? != B256::ZERO)
}

async fn start(env: &mut Env) -> Result<(SafeSetup, testkit::process::Proc)> {
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    env.safe = Some(env.safe(&setup));
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !wd.output().contains("Safe pause proposals ready") {
        if Instant::now() > deadline {
            bail!("watchdog did not pass its Safe checks:\n{}", wd.output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((setup, wd))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d1_d2_proposal_hash_and_signature_hold_on_chain_and_two_owners_pause() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let (setup, wd) = start(&mut env).await?;
    attack(&env, 7).await?;
    env.wait_alerts(Duration::from_secs(30), "the attack's alert", |a| {
        a.iter().any(|x| x["labels"]["detector"] == "privileged")
    })
    .await?;
    let p = wait_proposals(&env, 1, &wd).await?.remove(0);
    assert_eq!(p.state, "recorded", "no service configured: {p:?}");
    assert_eq!(p.operation, 0, "one target: a direct call");
    assert_eq!(p.to_address.parse::<Address>()?, env.treasury);
    assert_eq!(
        p.nonce,
        tsafe::nonce(&env.anvil, setup.safe).await?.to_string()
    );

    // D1: the Safe's own hash of the stored transaction, and its verdict on the signature.
    let mut args = tx_args(&p)?;
    args.push(abi::uint256(p.nonce.parse::<U256>()?));
    let theirs = tsafe::call_word(
        &env.anvil,
        setup.safe,
        &abi::call(
            "getTransactionHash(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,uint256)",
            &args,
        ),
    )
    .await?;
    assert_eq!(theirs.to_string(), p.safe_tx_hash);
    let check = abi::call(
        "checkNSignatures(bytes32,bytes,bytes,uint256)",
        &[
            abi::bytes32(theirs),
            DynSolValue::Bytes(Vec::new()),
            DynSolValue::Bytes(alloy::primitives::hex::decode(&p.signature)?),
            abi::uint(1),
        ],
    );
    tsafe::call(&env.anvil, setup.safe, &check)
        .await
        .map_err(|e| anyhow::anyhow!("the Safe rejects the proposer's signature: {e}"))?;
    // A signature over another hash is refused by the same check (the check can fail).
    let wrong = abi::call(
        "checkNSignatures(bytes32,bytes,bytes,uint256)",
        &[
            abi::bytes32(B256::with_last_byte(1)),
            DynSolValue::Bytes(Vec::new()),
            DynSolValue::Bytes(alloy::primitives::hex::decode(&p.signature)?),
            abi::uint(1),
        ],
    );
    assert!(tsafe::call(&env.anvil, setup.safe, &wrong).await.is_err());

    // D2: a second owner signs, anyone executes, the treasury is paused.
    assert!(!paused(&env, env.treasury).await?);
    sign_and_execute(&env, &setup, &p).await?;
    assert!(paused(&env, env.treasury).await?);

    // `proposals show` prints the hash and the commands an owner runs.
    let (ok, out) = env.watchdog_command(&["proposals", "show", &p.id.to_string()])?;
    assert!(ok, "{out}");
    assert!(
        out.contains(&p.safe_tx_hash) && out.contains("cast wallet sign --no-hash"),
        "{out}"
    );
    assert!(out.contains("execTransaction"), "{out}");
    // Stored text with terminal escape sequences (a summary from an attacker's event) is shown
    // escaped by `proposals show` and `list`.
    sqlx::query("UPDATE safe_proposals SET summary = $2, error = $3 WHERE id = $1")
        .bind(p.id)
        .bind("drain \u{1b}[2J\u{1b}]0;owned\u{7}")
        .bind("peer said \u{1b}[31mred")
        .execute(env.db.pool())
        .await?;
    for args in [
        vec!["proposals", "show", &*p.id.to_string()],
        vec!["proposals", "list"],
    ] {
        let (ok, out) = env.watchdog_command(&args)?;
        assert!(ok, "{out}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
    }
    let (_, out) = env.watchdog_command(&["proposals", "show", &p.id.to_string()])?;
    assert!(out.contains("drain \\u{1b}[2J"), "{out}");
    // With the second owner's signature the printed execution carries both, lower address first.
    let owner2: PrivateKeySigner = tsafe::OWNER_KEYS[1].parse()?;
    let hash: B256 = p.safe_tx_hash.parse()?;
    let sig2 = alloy::primitives::hex::encode_prefixed(owner2.sign_hash(&hash).await?.as_bytes());
    let (ok, out) =
        env.watchdog_command(&["proposals", "show", &p.safe_tx_hash, "--signature", &sig2])?;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "{}  (--signature)",
            owner2.address().to_checksum(None)
        )),
        "{out}"
    );
    let proposer: PrivateKeySigner = tsafe::OWNER_KEYS[0].parse()?;
    let mut both = [
        (
            format!("{:#x}", proposer.address()),
            p.signature.trim_start_matches("0x").to_string(),
        ),
        (
            format!("{:#x}", owner2.address()),
            sig2.trim_start_matches("0x").to_string(),
        ),
    ];
    both.sort();
    let packed = format!("0x{}{}", both[0].1, both[1].1);
    assert!(out.contains(&packed), "{out}");
    // A non-owner's signature is refused with the Safe's owners, before the Safe would.
    let stranger: PrivateKeySigner =
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a".parse()?;
    let sig = alloy::primitives::hex::encode_prefixed(stranger.sign_hash(&hash).await?.as_bytes());
    let (ok, out) =
        env.watchdog_command(&["proposals", "show", &p.safe_tx_hash, "--signature", &sig])?;
    assert!(
        !ok && out.contains(&format!(
            "signed by {}, which is not an owner",
            stranger.address().to_checksum(None)
        )),
        "{out}"
    );
    // A signature that is not one is refused, naming it.
    let (ok, out) = env.watchdog_command(&["proposals", "show", "1", "--signature", "0x1234"])?;
    assert!(!ok && out.contains("--signature 0x1234: 2 bytes"), "{out}");
    let (ok, out) = env.watchdog_command(&["proposals", "list"])?;
    assert!(ok && out.contains(&p.safe_tx_hash), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d2_three_targets_pause_in_one_multisend_batch() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    for _ in 0..2 {
        let t = env.anvil.deploy("Treasury", &[]).await?;
        env.extra_treasuries.push(t);
    }
    let (setup, wd) = start(&mut env).await?;
    attack(&env, 7).await?;
    let p = wait_proposals(&env, 1, &wd).await?.remove(0);
    assert_eq!(p.operation, 1, "several targets: delegatecall");
    assert_eq!(
        p.to_address.parse::<Address>()?,
        setup.singletons.multisend_call_only
    );
    let targets: Vec<Address> = std::iter::once(env.treasury)
        .chain(env.extra_treasuries.iter().copied())
        .collect();
    for t in &targets {
        assert!(!paused(&env, *t).await?);
    }
    sign_and_execute(&env, &setup, &p).await?;
    for t in &targets {
        assert!(paused(&env, *t).await?, "{t} not paused");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d4_one_proposal_per_incident_across_repeats_and_restarts() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let (_setup, mut wd) = start(&mut env).await?;
    attack(&env, 7).await?;
    wait_proposals(&env, 1, &wd).await?;
    // Killed at once: the stream since the last checkpoint is read again after the restart.
    wd.kill9();
    // The same incident again while it is down (another grant: same detector and series).
    attack(&env, 8).await?;
    let wd = env.spawn_watchdog().await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inc = common::incidents(&env, "privileged").await?;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert!(
        inc[0].1 >= 2,
        "the second grant updated the incident: {inc:?}"
    );
    let props = env.proposals().await?;
    assert_eq!(props.len(), 1, "{props:?}");
    Ok(())
}

mod config;
mod service;
