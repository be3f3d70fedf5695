//! D1, D2, D4, D5: pause proposals on real Safe v1.4.1 contracts (the npm artifacts) deployed on
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

/// `[watchdog.safe]` for `setup` as text, pausing every `treasury` address: the misconfiguration
/// cases of d5 are edits of this text, which is what an operator gets wrong.
fn safe_toml(setup: &SafeSetup) -> String {
    format!(
        r#"
[watchdog.safe]
chain = "devnet"
address = "{safe}"
proposer_key_file = "{key}"
multisend = "{multisend}"
[[watchdog.safe.targets]]
contract = "treasury"
"#,
        safe = setup.safe,
        key = setup.key_file.display(),
        multisend = setup.singletons.multisend_call_only,
    )
}

/// Runs `tripwire-watchdog run` with `[watchdog.safe]` appended and returns its output once it
/// stopped (it must stop).
async fn start_fails(env: &Env, detectors_and_safe: String) -> Result<String> {
    let env_cfg = detectors_and_safe;
    let dir = env.dir.path().join(format!(
        "d5-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let text = std::fs::read_to_string(env.config())?;
    let path = dir.join("tripwire.toml");
    std::fs::write(&path, format!("{text}\n{env_cfg}"))?;
    let mut p = testkit::process::Proc::spawn(Path::new(common::BIN), &path, "run", &dir, "info")?;
    let status = p.wait(Duration::from_secs(30))?;
    assert!(!status.success(), "started despite: {}", p.output());
    Ok(p.output())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d5_each_misconfiguration_stops_start_up_with_its_name() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    let good = safe_toml(&setup);
    let other_key = env.dir.path().join("stranger.key");
    // anvil account 5: not an owner.
    std::fs::write(
        &other_key,
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    )?;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no contract",
            good.replace(
                &setup.safe.to_string(),
                &Address::repeat_byte(0x42).to_string(),
            ),
            "no contract at this address",
        ),
        (
            "not a Safe",
            good.replace(&setup.safe.to_string(), &env.token.to_string()),
            "is not a Safe",
        ),
        (
            "proposer not an owner",
            good.replace(
                &setup.key_file.display().to_string(),
                &other_key.display().to_string(),
            ),
            "is not an owner of the Safe",
        ),
        (
            "target without pause()",
            good.replace(
                "contract = \"treasury\"",
                &format!("address = \"{}\"", env.token),
            ),
            "has no function pause()",
        ),
        (
            "Safe without the pauser role",
            good.replace(
                "contract = \"treasury\"",
                &format!("address = \"{}\"", env.anvil.deploy("Treasury", &[]).await?),
            ),
            "does not hold PAUSER_ROLE",
        ),
        (
            "unpause",
            format!("{good}function = \"unpause()\"\n"),
            "never proposes an unpause",
        ),
        (
            "missing key file",
            good.replace(&setup.key_file.display().to_string(), "/nonexistent/key"),
            "watchdog.safe.proposer_key_file",
        ),
    ];
    for (what, safe_toml, expect) in cases {
        let out = start_fails(&env, safe_toml).await?;
        assert!(
            out.contains(expect),
            "{what}: expected `{expect}` in:\n{out}"
        );
        // The key never appears in what the process prints.
        assert!(
            !out.contains(&tsafe::OWNER_KEYS[0][2..]),
            "{what}: key leaked"
        );
        println!(
            "{what}: {}",
            out.lines()
                .rev()
                .find(|l| l.contains("error"))
                .unwrap_or("")
        );
    }
    Ok(())
}

async fn wait_state(
    env: &Env,
    id: i64,
    state: &str,
    wd: &testkit::process::Proc,
) -> Result<StoredProposal> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = env.proposals().await?.into_iter().find(|p| p.id == id) {
            // `pending` is also the state before the first attempt: wait for its outcome.
            if p.state == state && (state != "pending" || p.error.is_some()) {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!(
                    "proposal {id} is {p:?}, not {state}; watchdog log:\n{}",
                    wd.output()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d3_submission_to_a_validating_service_retried_or_recorded_with_its_reason() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let svc = testkit::safe_service::SafeService::start(&env.anvil.url()).await?;
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    let base = env.safe(&setup);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    env.safe = Some(Safe {
        service: Some(SafeService {
            url: format!("http://{closed}"),
            attempts: Some(2),
            timeout_s: Some(2),
            ..SafeService::default()
        }),
        ..base.clone()
    });
    env.start_ingest().await?;

    // The service unreachable: the proposal is recorded as pending with the network error.
    let mut wd = env.spawn_watchdog().await?;
    attack(&env, 7).await?;
    let p = wait_proposals(&env, 1, &wd).await?.remove(0);
    let p = wait_state(&env, p.id, "pending", &wd).await?;
    let why = p.error.clone().unwrap_or_default();
    assert!(why.contains(&closed.to_string()), "{why}");
    assert!(svc.requests().is_empty());

    // Restarted with the service reachable but busy twice: retried until accepted.
    wd.terminate(Duration::from_secs(15))?;
    svc.fail_next(503, serde_json::json!({"detail": "Service Unavailable"}));
    svc.fail_next(503, serde_json::json!({"detail": "Service Unavailable"}));
    env.safe = Some(Safe {
        service: Some(SafeService {
            url: svc.url(),
            attempts: Some(4),
            ..SafeService::default()
        }),
        ..base
    });
    let wd = env.spawn_watchdog().await?;
    let p = wait_state(&env, p.id, "submitted", &wd).await?;
    let requests = svc.requests();
    assert_eq!(
        requests.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![503, 503, 201],
        "{requests:#?}"
    );
    let accepted = svc.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["contractTransactionHash"], p.safe_tx_hash);
    assert_eq!(
        accepted[0]["sender"],
        env.anvil.accounts()[1].to_checksum(None)
    );

    // Refused (422): recorded as rejected with the service's reasons, not retried.
    svc.fail_next(
        422,
        serde_json::json!({"nonFieldErrors": ["Tx with nonce=0 for safe already executed"]}),
    );
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    env.anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "revokeRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(env.anvil.accounts()[7])],
            ),
        )
        .await?;
    let second = wait_proposals(&env, 2, &wd).await?.remove(1);
    let second = wait_state(&env, second.id, "rejected", &wd).await?;
    let why = second.error.unwrap_or_default();
    assert!(
        why.contains("422") && why.contains("already executed"),
        "{why}"
    );
    assert_eq!(svc.requests().len(), 4, "a refusal is not retried");

    // The real validation refuses what is wrong: a signature by someone else.
    let mut forged = accepted[0].clone();
    let stranger: PrivateKeySigner =
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba".parse()?;
    let hash: B256 = p.safe_tx_hash.parse()?;
    forged["signature"] = serde_json::json!(alloy::primitives::hex::encode_prefixed(
        stranger.sign_hash(&hash).await?.as_bytes()
    ));
    let url = format!(
        "{}/api/v2/safes/{}/multisig-transactions/",
        svc.url(),
        setup.safe.to_checksum(None)
    );
    let r = reqwest::Client::new()
        .post(&url)
        .json(&forged)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await?.contains("does not match sender"));
    let mut lower = accepted[0].clone();
    lower["to"] = serde_json::json!(lower["to"].as_str().unwrap_or("").to_lowercase());
    let r = reqwest::Client::new()
        .post(&url)
        .json(&lower)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await?.contains("checksum"));
    Ok(())
}

/// A Safe Transaction Service that accepts connections and never answers: the proposal waits in
/// its own task; the alerts of the same incident and of later blocks reach Alertmanager at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d6_a_silent_safe_service_delays_neither_alerts_nor_the_stream() -> Result<()> {
    // Latency is measured: no other test of this binary runs meanwhile.
    let mut env = Env::new_alone(vec![]).await?;
    let silent = testkit::silent::SilentServer::start().await?;
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    env.safe = Some(Safe {
        service: Some(SafeService {
            url: silent.url().to_owned(),
            ..SafeService::default()
        }),
        ..env.safe(&setup)
    });
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;
    env.token_transfer(common::ether(1.0)).await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;

    let mut latencies = Vec::new();
    for who in [5, 6, 7] {
        let block = attack(&env, who).await?;
        let mined = Instant::now();
        loop {
            let alerts = env.alerts_of("privileged").await?;
            if alerts
                .iter()
                .any(|a| a["annotations"]["block"].as_str() == Some(block.to_string().as_str()))
            {
                latencies.push(mined.elapsed());
                break;
            }
            if mined.elapsed() > Duration::from_secs(10) {
                bail!(
                    "block {block}'s alert not delivered while the Safe service hangs: {alerts:#?}\n{}",
                    wd.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("alerts while the Safe service hangs, after {latencies:?}");
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(1)),
        "{latencies:?}"
    );
    // One incident, one proposal, prepared and stored; its submission is what waits.
    let proposals = wait_proposals(&env, 1, &wd).await?;
    assert_eq!(proposals.len(), 1, "{proposals:#?}");
    assert_eq!(
        wd.metric("tripwire_watchdog_consumer_lag_records").await?,
        0.0
    );
    Ok(())
}
