//! C3 and C4: the watchdog killed mid-stream keeps its baselines and does not alert twice; a
//! reorg that removes the triggering event resolves the alert with a note.

use std::time::Duration;
use testkit::config::Detector;

use crate::common::{self, benign_block, ether, incidents, mint, Clock, Env};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;
use testkit::abi;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c3_restart_mid_stream_keeps_baselines_and_alerts_once() -> Result<()> {
    let mut env = Env::new(common::rate_and_value()).await?;
    let mut clock = Clock::start(&env, 5, 10).await?;
    let mut rng = StdRng::seed_from_u64(9);
    env.start_ingest().await?;
    let mut wd = env.spawn_watchdog().await?;
    for _ in 0..120 {
        benign_block(&env, &mut clock, &mut rng, 0.0).await?;
    }
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;

    // An attack, and the watchdog killed right after alerting: what it read since its last
    // checkpoint is read again after the restart.
    mint(&env, ether(5e6)).await?;
    clock.mine(&env).await?;
    env.wait_alerts(Duration::from_secs(30), "huge-mint alert", |a| {
        a.iter().any(|x| x["labels"]["detector"] == "huge-mint")
    })
    .await?;
    wd.kill9();

    // Traffic goes on while it is down: five windows, far fewer than the warm-up of twenty.
    for _ in 0..10 {
        benign_block(&env, &mut clock, &mut rng, 0.0).await?;
    }
    let wd = env.spawn_watchdog().await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;
    let log = wd.output();
    assert!(
        log.contains("detector state restored") && log.contains("restored=2"),
        "{log}"
    );
    assert!(!log.contains("learns again"), "{log}");

    // A burst right after the restart: only a detector that kept its baseline can see it.
    env.anvil
        .send(
            env.treasury,
            abi::call(
                "withdrawMany(uint256,uint256)",
                &[abi::uint(40), abi::uint(1)],
            ),
        )
        .await?;
    clock.mine(&env).await?;
    env.wait_alerts(Duration::from_secs(30), "withdraw-burst alert", |a| {
        a.iter()
            .any(|x| x["labels"]["detector"] == "withdraw-burst")
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let alerts = env.am.alerts().await?;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let mint_incidents = incidents(&env, "huge-mint").await?;
    assert_eq!(mint_incidents.len(), 1, "{mint_incidents:?}");
    assert_eq!(mint_incidents[0].0, "firing");
    assert_eq!(incidents(&env, "withdraw-burst").await?.len(), 1);
    let fired = wd.metric("tripwire_watchdog_alerts_fired_total").await?;
    assert_eq!(
        fired, 1.0,
        "only the burst opened an incident after the restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c4_reorg_retracting_the_trigger_resolves_the_alert() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    env.detectors = vec![Detector::new("privileged", "event")
        .contract("treasury")
        .severity("critical")
        .param(
            "allowed_actors",
            vec![format!("{:#x}", env.anvil.accounts()[0])],
        )];
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let attacker = env.anvil.accounts()[6];
    let receipt = env
        .anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(attacker)],
            ),
        )
        .await?;
    env.anvil.mine(1).await?;
    let alerts = env
        .wait_alerts(Duration::from_secs(30), "privileged alert", |a| {
            a.iter().any(|x| x["labels"]["detector"] == "privileged")
        })
        .await?;
    let block = receipt.block_number;
    assert_eq!(alerts[0]["annotations"]["block"], block.to_string());

    // The grant's block and the one after are replaced by empty blocks.
    env.anvil.reorg(2, vec![]).await?;
    env.anvil.mine(1).await?;
    env.wait_alerts(Duration::from_secs(30), "the alert to resolve", |a| {
        !a.iter().any(|x| x["labels"]["detector"] == "privileged")
    })
    .await?;
    let inc = incidents(&env, "privileged").await?;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].0, "resolved");
    let note = inc[0].2.clone().unwrap_or_default();
    assert!(
        note.contains("retracted") && note.contains(&block.to_string()),
        "{note}"
    );
    assert!(wd.metric("tripwire_watchdog_alerts_resolved_total").await? >= 1.0);
    Ok(())
}

/// Alertmanager unreachable: the incident is stored at once, the alert waits, `/health` names
/// Alertmanager; once it is back the alert arrives by itself. SIGTERM then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alertmanager_outage_queues_the_alert_and_health_names_it() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    env.detectors = vec![Detector::new("privileged", "event")
        .contract("treasury")
        .param(
            "allowed_actors",
            vec![format!("{:#x}", env.anvil.accounts()[0])],
        )];
    let proxy = testkit::proxy::TcpProxy::start(("127.0.0.1", env.am.port())).await?;
    env.am_url = Some(format!("http://{}", proxy.addr()));
    env.start_ingest().await?;
    let mut wd = env.spawn_watchdog().await?;
    proxy.cut();
    env.anvil
        .send_and_mine(
            env.treasury,
            abi::call(
                "transferOwnership(address)",
                &[abi::address(env.anvil.accounts()[4])],
            ),
        )
        .await?;
    // Stored, not delivered, and health says why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stored = incidents(&env, "privileged").await?;
        let (code, body) = wd.get("/health").await?;
        if stored.len() == 1 && code == 503 && body.contains("alertmanager") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stored incident with an unhealthy alertmanager: {stored:?} {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(wd.metric("tripwire_watchdog_delivery_errors_total").await? >= 1.0);
    assert!(env.am.alerts().await?.is_empty());

    proxy.restore();
    let alerts = env
        .wait_alerts(Duration::from_secs(30), "the queued alert", |a| {
            a.iter()
                .any(|x| x["labels"]["event"] == "OwnershipTransferred")
        })
        .await?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wd.get("/health").await?.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "health did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = wd.terminate(Duration::from_secs(15))?;
    assert!(
        status.success(),
        "SIGTERM exit: {status}; log:\n{}",
        wd.output()
    );
    Ok(())
}
