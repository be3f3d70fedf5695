//! D3, D6: the Safe Transaction Service as a peer: a validating one gets the proposal or its
//! refusal recorded with the reason, a silent one delays neither alerts nor the stream.

use super::*;

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
