//! C1 and C2: every detector kind against anvil traffic through the real ingest, Kafka, the
//! watchdog process and a real Alertmanager. Block times are chosen (`evm_mine [ts]`) so that
//! hours of traffic pass in seconds.

use std::time::Duration;
use testkit::config::Detector;

use crate::common::{
    self, benign_block, ether, flows_call, incidents, normal, poisson, Clock, Env,
};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use testkit::{abi, U256};

fn detectors(deployer: &str) -> Vec<Detector> {
    let mut detectors = common::rate_and_value();
    detectors.push(
        Detector::new("treasury-drain", "flow")
            .contract("treasury")
            .param("field", "amount")
            .param("inflow", vec!["Deposit"])
            .param("outflow", vec!["Withdraw"])
            .param("window_s", 10)
            .param("warmup_windows", 20)
            .param("baseline_windows", 60),
    );
    detectors.push(
        Detector::new("privileged", "event")
            .contract("treasury")
            .severity("critical")
            .param("allowed_actors", vec![deployer]),
    );
    detectors
}

fn labels(a: &Value) -> (&str, &str, &str, &str, &str) {
    let l = &a["labels"];
    (
        l["alertname"].as_str().unwrap_or(""),
        l["severity"].as_str().unwrap_or(""),
        l["chain"].as_str().unwrap_or(""),
        l["contract"].as_str().unwrap_or(""),
        l["event"].as_str().unwrap_or(""),
    )
}

/// Waits until `detector` has an alert, then checks it is the only new one and returns it.
async fn expect_one(env: &Env, detector: &str, total: usize) -> Result<Value> {
    let alerts = env
        .wait_alerts(Duration::from_secs(30), detector, |a| {
            a.iter().any(|x| x["labels"]["detector"] == detector)
        })
        .await?;
    // Give a wrong second alert the time to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = env.am.alerts().await.unwrap_or(alerts);
    let mine: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["labels"]["detector"] == detector)
        .collect();
    assert_eq!(mine.len(), 1, "one alert for {detector}: {alerts:#?}");
    assert_eq!(alerts.len(), total, "alerts so far: {alerts:#?}");
    let inc = incidents(env, detector).await?;
    assert_eq!(inc.len(), 1, "one incident for {detector}: {inc:?}");
    Ok(mine[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c1_each_kind_alerts_once_per_attack_and_never_on_benign_traffic() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    env.detectors = detectors(&format!("{:#x}", env.anvil.accounts()[0]));
    let mut clock = Clock::start(&env, 5, 10).await?;
    let mut rng = StdRng::seed_from_u64(42);
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;

    // Benign phase: 60 windows of 10 s, two blocks each.
    for _ in 0..120 {
        benign_block(&env, &mut clock, &mut rng, 0.0).await?;
    }
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;
    let quiet = env.am.alerts().await?;
    assert!(quiet.is_empty(), "benign traffic raised {quiet:#?}");
    assert!(wd.metric("tripwire_watchdog_evaluations_total").await? >= 600.0);

    // Rate: 40 withdrawals of 1 wei in one block (the count is the attack, not the amount).
    env.anvil
        .send(
            env.treasury,
            abi::call(
                "withdrawMany(uint256,uint256)",
                &[abi::uint(40), abi::uint(1)],
            ),
        )
        .await?;
    let burst_block = benign_block(&env, &mut clock, &mut rng, 0.0).await?;
    let a = expect_one(&env, "withdraw-burst", 1).await?;
    assert_eq!(
        labels(&a),
        ("TripwireRate", "critical", "devnet", "treasury", "Withdraw")
    );
    assert_eq!(a["annotations"]["block"], burst_block.to_string());
    assert!(a["annotations"]["p_value"].is_string(), "{a:#}");
    assert!(a["annotations"]["explorer"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://explorer.invalid/tx/0x")));

    // Value: one mint a million times the usual size.
    for _ in 0..4 {
        benign_block(&env, &mut clock, &mut rng, 0.0).await?;
    }
    let to = env.anvil.accounts()[2];
    env.anvil
        .send(
            env.token,
            abi::call(
                "mint(address,uint256)",
                &[abi::address(to), abi::uint256(ether(2e7))],
            ),
        )
        .await?;
    let mint_block = clock.mine(&env).await?;
    let a = expect_one(&env, "huge-mint", 2).await?;
    assert_eq!(
        labels(&a),
        ("TripwireValue", "warning", "devnet", "token", "Transfer")
    );
    assert_eq!(a["annotations"]["block"], mint_block.to_string());
    assert!(a["annotations"]["robust_z"].is_string(), "{a:#}");

    // Flow: every withdrawal 30 larger than usual, well inside one window's noise; the CUSUM
    // adds it up over a few windows.
    let mut drained = 0;
    loop {
        benign_block(&env, &mut clock, &mut rng, 30.0).await?;
        drained += 1;
        let seen = env.alerts_of("treasury-drain").await?;
        if !seen.is_empty() || drained >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let a = expect_one(&env, "treasury-drain", 3).await?;
    assert_eq!(
        labels(&a),
        ("TripwireFlow", "warning", "devnet", "treasury", "Withdraw")
    );
    assert!(
        drained > 2,
        "a slow drain should need several windows, took {drained} blocks"
    );
    println!("slow drain of 30/withdrawal caught after {drained} blocks");

    // Event: the pauser role granted to an account the team does not know.
    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let attacker = env.anvil.accounts()[7];
    env.anvil
        .send(
            env.treasury,
            abi::call(
                "grantRole(bytes32,address)",
                &[abi::bytes32(role), abi::address(attacker)],
            ),
        )
        .await?;
    clock.mine(&env).await?;
    let a = expect_one(&env, "privileged", 4).await?;
    assert_eq!(
        labels(&a),
        (
            "TripwireEvent",
            "critical",
            "devnet",
            "treasury",
            "RoleGranted"
        )
    );
    assert!(a["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.to_lowercase().contains(&format!("{attacker:#x}"))));
    Ok(())
}

/// C2: over 20,000 events of random but stationary traffic (counts drawn from a mixture, amounts
/// log-normal), every detector kind at its default settings stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c2_stationary_traffic_over_20k_events_raises_nothing_at_defaults() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let deployer = format!("{:#x}", env.anvil.accounts()[0]);
    let flow = |name: &str| {
        Detector::new(name, "flow")
            .contract("treasury")
            .param("field", "amount")
            .param("inflow", vec!["Deposit"])
            .param("outflow", vec!["Withdraw"])
    };
    env.detectors = vec![
        Detector::new("withdraw-rate", "rate")
            .contract("treasury")
            .event("Withdraw"),
        Detector::new("deposit-rate-by-user", "rate")
            .contract("treasury")
            .event("Deposit")
            .param("group_by", "user"),
        Detector::new("big-withdrawal", "value")
            .contract("treasury")
            .event("Withdraw")
            .param("field", "amount"),
        Detector::new("big-deposit", "value")
            .contract("treasury")
            .event("Deposit")
            .param("field", "amount"),
        flow("drain"),
        flow("drain-ewma").param("method", "ewma"),
        Detector::new("privileged", "event").param("allowed_actors", vec![deployer]),
    ];
    // One block a minute: 20,000 events take about 48 hours of block time, enough for the
    // hourly flow windows to pass their warm-up.
    let mut clock = Clock::start(&env, 60, 60).await?;
    let mut rng = StdRng::seed_from_u64(2026);
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;
    let mut events = 0usize;
    let mut blocks = 0u64;
    let draw = |rng: &mut StdRng| {
        let mean = [2.0, 3.5, 6.0][rng.random_range(0..3)];
        (0..poisson(rng, mean))
            .map(|_| ether((2.0 + 1.2 * normal(rng)).exp()))
            .collect::<Vec<U256>>()
    };
    while events < 20_000 {
        let ins = draw(&mut rng);
        let outs = draw(&mut rng);
        events += ins.len() + outs.len();
        if !ins.is_empty() || !outs.is_empty() {
            env.anvil
                .send(env.treasury, flows_call(&ins, &outs))
                .await?;
        }
        clock.mine(&env).await?;
        blocks += 1;
    }
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(120))
        .await?;
    // A checkpoint and a resend interval later, still nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let evaluations = wd.metric("tripwire_watchdog_evaluations_total").await?;
    let findings = wd.metric("tripwire_watchdog_findings_total").await?;
    let alerts = env.am.alerts().await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM watchdog_incidents")
        .fetch_one(env.db.pool())
        .await?;
    println!(
        "C2: {events} events over {blocks} blocks ({:.1} h of block time): {evaluations} logs evaluated, {} findings, {} alerts, {stored} incidents",
        blocks as f64 / 60.0,
        findings.abs(),
        alerts.len()
    );
    assert!(events >= 20_000);
    assert!(
        evaluations >= 20_000.0,
        "the watchdog saw {evaluations} logs"
    );
    assert_eq!(findings, 0.0);
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert_eq!(stored, 0);
    Ok(())
}
