//! Delivery apart from detection: an Alertmanager that accepts connections and never answers,
//! listed before a live one, delays neither the live one nor the stream.

use std::time::{Duration, Instant};
use testkit::config::Detector;

use crate::common::{self, Env};
use anyhow::{bail, Result};
use testkit::abi;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_alertmanager_delays_neither_the_live_one_nor_the_stream() -> Result<()> {
    // Latency is measured: no other test of this binary runs meanwhile.
    let mut env = Env::new_alone(vec![]).await?;
    // Every role grant by anyone but a nobody address is a finding (no warm-up).
    env.detectors = vec![Detector::new("role-change", "event")
        .contract("treasury")
        .param("events", vec!["RoleGranted"])
        .param(
            "allowed_actors",
            vec!["0x000000000000000000000000000000000000dEaD"],
        )];
    let silent = testkit::silent::SilentServer::start().await?;
    env.am_urls_before = vec![silent.url().to_owned()];
    env.start_ingest().await?;
    let wd = env.spawn_watchdog().await?;
    // Assigned and reading before the clock starts (joining the group takes a few seconds).
    env.token_transfer(common::ether(1.0)).await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;

    let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut max_lag = 0.0f64;
    let mut round = 0u64;
    // 90 s of one block a second, a role grant every tenth: the silent member's every post
    // waits its whole timeout (10 s) the whole time.
    while started.elapsed() < Duration::from_secs(90) {
        let tick = Instant::now();
        if round.is_multiple_of(10) {
            // A role each account gets once (a second grant emits nothing): nine of them.
            let grantee = env.anvil.accounts()[(1 + round / 10 % 9) as usize];
            env.anvil
                .send_and_mine(
                    env.treasury,
                    abi::call(
                        "grantRole(bytes32,address)",
                        &[abi::bytes32(role), abi::address(grantee)],
                    ),
                )
                .await?;
            let block = env.anvil.block_number().await?;
            let mined = Instant::now();
            loop {
                let alerts = env.alerts_of("role-change").await?;
                let got = alerts.iter().any(|a| {
                    a["annotations"]["block"].as_str() == Some(block.to_string().as_str())
                });
                if got {
                    latencies.push(mined.elapsed());
                    break;
                }
                if mined.elapsed() > Duration::from_secs(10) {
                    bail!(
                        "block {block}'s finding not at the live Alertmanager after 10 s: {alerts:#?}\n{}",
                        wd.output()
                    );
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        } else {
            env.token_transfer(common::ether(1.0)).await?;
        }
        max_lag = max_lag.max(wd.metric("tripwire_watchdog_consumer_lag_records").await?);
        round += 1;
        if let Some(rest) = Duration::from_secs(1).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "{} findings through a {} s hang of the other member: live Alertmanager had each after {:?}; worst {worst:?}; consumer lag at most {max_lag} records",
        latencies.len(),
        started.elapsed().as_secs(),
        latencies
    );
    assert!(latencies.len() >= 9, "{latencies:?}");
    assert!(
        worst < Duration::from_secs(1),
        "the live member waited for the silent one: {latencies:?}"
    );
    // A block here is two or three records (the token's log, a marker, a grant's log): under
    // one block behind whenever the gauge was read.
    assert!(max_lag <= 3.0, "consumer lag reached {max_lag} records");
    // The silent member's queue holds the incident, the live member's is empty.
    let body = wd.get("/metrics").await?.1;
    let depth = |url_part: &str| {
        body.lines()
            .find(|l| {
                l.starts_with("tripwire_watchdog_delivery_queue_incidents{") && l.contains(url_part)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let live = env.am.url();
    let live_port = live.rsplit(':').next().unwrap_or_default().to_owned();
    assert_eq!(depth(&format!(":{live_port}")), Some(0.0), "{body}");
    let (code, health) = wd.get("/health").await?;
    assert!(
        code == 200 && health.contains("degraded") && health.contains("alertmanager"),
        "one member failing is degraded, not down: {code} {health}"
    );
    Ok(())
}
