//! Provider failover against anvil behind fault-injecting proxies (`testkit::rpc_proxy`):
//! B1 providers switching between fault modes during backfill and live following, B2 the silent
//! loss of a node that answers empty logs beyond its head (and the same test with the proof check
//! off, which must lose rows), B4 every provider down and back.

use std::time::{Duration, Instant};

use crate::common::{providers, Env};
use anyhow::{ensure, Result};
use testkit::rpc_proxy::{FaultProxy, Mode, Outcome, ProxyEvent, RangeStyle};

/// A data request: one that carries `eth_getLogs` (the ingest's range batch).
fn is_data(e: &ProxyEvent) -> bool {
    e.methods.iter().any(|m| m == "eth_getLogs")
}

/// How long a flaky provider stays in one fault mode.
const FAULT_WINDOW: Duration = Duration::from_millis(2500);

/// How a provider's fault window went, seen from the proxies.
#[derive(Debug)]
enum Failover {
    /// A data request hit the fault; the same blocks were answered by another provider after
    /// this long (from the faulted request's arrival).
    Retried(Duration),
    /// A head probe hit the fault first, so no data request was sent to the provider; data came
    /// from another provider this long after the probe.
    CaughtByProbe(Duration),
    /// The provider was not asked anything while faulty (still benched, or a range limit wider
    /// than every range asked).
    NotAsked,
}

/// For each switch of `bad` into a fault mode at `at`, how the failover went.
fn failovers(
    switches: &[(usize, Instant, Mode)],
    proxies: &[&FaultProxy],
) -> Vec<(usize, Mode, Failover)> {
    let events: Vec<Vec<ProxyEvent>> = proxies.iter().map(|p| p.events()).collect();
    // The first answered data request that matches `pred`: from another provider, or from the
    // same one once it adapted its range to a range limit.
    let answered_elsewhere = |_bad: usize, pred: &dyn Fn(&ProxyEvent) -> bool| {
        events
            .iter()
            .flat_map(|evs| evs.iter())
            .filter(|e| e.outcome == Outcome::Forwarded && is_data(e) && pred(e))
            .map(|e| e.finished)
            .min()
    };
    switches
        .iter()
        .filter(|(_, _, mode)| *mode != Mode::Pass)
        .map(|(bad, at, mode)| {
            // Only faults of this window count (the provider is healthy again after it).
            let faulted: Vec<&ProxyEvent> = events[*bad]
                .iter()
                .filter(|e| {
                    e.arrived >= *at
                        && e.arrived < *at + FAULT_WINDOW
                        && matches!(e.outcome, Outcome::Faulted(_))
                })
                .collect();
            let first_data = faulted
                .iter()
                .filter(|e| is_data(e))
                .min_by_key(|e| e.arrived);
            let first_any = faulted.iter().min_by_key(|e| e.arrived);
            let how = match (first_data, first_any) {
                (Some(f), _) => {
                    let from = f.log_ranges.first().map(|r| r.0);
                    answered_elsewhere(*bad, &|e| {
                        e.arrived >= f.arrived && e.log_ranges.iter().any(|r| Some(r.0) == from)
                    })
                    .map(|t| Failover::Retried(t.duration_since(f.arrived)))
                }
                (None, Some(f)) => answered_elsewhere(*bad, &|e| e.arrived >= f.arrived)
                    .map(|t| Failover::CaughtByProbe(t.duration_since(f.arrived))),
                (None, None) => Some(Failover::NotAsked),
            };
            (*bad, mode.clone(), how.unwrap_or(Failover::NotAsked))
        })
        .collect()
}

/// B1: three providers; two of them (the preferred ones) cycle through every fault mode every
/// few seconds while the indexer backfills and then follows new blocks. Postgres must equal the
/// chain with no gap; the failover times are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_providers_cycling_through_faults_lose_nothing() -> Result<()> {
    let mut env = Env::new().await?;
    // History to backfill, long enough for the faults to start during the backfill: 10000 empty
    // blocks, then 300 blocks of 4 logs.
    for _ in 0..2 {
        env.anvil.mine(5000).await?;
    }
    env.traffic(300, 4).await?;
    let steady = FaultProxy::start(&env.anvil.url()).await?;
    let flaky_a = FaultProxy::start(&env.anvil.url()).await?;
    let flaky_b = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 1;
    env.range_blocks = 20;
    env.providers = providers(&[
        ("flaky-a", &flaky_a, 3),
        ("flaky-b", &flaky_b, 2),
        ("steady", &steady, 1),
    ]);
    env.max_provider_lag_blocks = Some(4);
    let ingest = env.spawn("ingest")?;
    let sink = env.spawn("sink")?;

    let modes = [
        Mode::RateLimited { retry_after_s: 2 },
        Mode::ServerError,
        Mode::Reset,
        Mode::Hang,
        Mode::StaleHead { behind: 8 },
        Mode::EmptyLogsBeyondHead { behind: 3 },
        Mode::RangeLimit {
            max_blocks: 5,
            style: RangeStyle::Alchemy,
        },
        Mode::WrongHash,
        Mode::RangeLimit {
            max_blocks: 3,
            style: RangeStyle::Ankr,
        },
    ];
    let proxies = [&steady, &flaky_a, &flaky_b];
    let mut switches = Vec::new();
    // Let the first ranges land on honest answers: with an empty cursor there is nothing to
    // check a first range's hashes against.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let faults_done = std::sync::atomic::AtomicBool::new(false);
    let live = async {
        // Live traffic while the faults go on: a block with logs every ~150 ms.
        let mut n = 0u64;
        while !faults_done.load(std::sync::atomic::Ordering::Relaxed) {
            env.traffic(1, 3).await?;
            // Now and then a burst of blocks, so live ranges are wide enough to meet range limits.
            n += 1;
            if n.is_multiple_of(8) {
                env.anvil.mine(12).await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    };
    let faults = async {
        // Ticks of 1.25 s. flaky-a takes mode k at tick 4k and is healthy again from tick 4k+2,
        // so it earns its way back into rotation; flaky-b takes mode k+4 from tick 4k+1 to 4k+3,
        // while flaky-a is already out and it is the one serving. Every mode hits both.
        let tick_len = FAULT_WINDOW / 2;
        for tick in 0..4 * modes.len() {
            let k = tick / 4;
            let at = Instant::now();
            match tick % 4 {
                0 => {
                    flaky_a.set_mode(modes[k].clone());
                    switches.push((1, at, modes[k].clone()));
                }
                1 => {
                    let m = modes[(k + 4) % modes.len()].clone();
                    flaky_b.set_mode(m.clone());
                    switches.push((2, at, m));
                }
                2 => flaky_a.set_mode(Mode::Pass),
                _ => flaky_b.set_mode(Mode::Pass),
            }
            tokio::time::sleep(tick_len).await;
        }
        flaky_a.set_mode(Mode::Pass);
        flaky_b.set_mode(Mode::Pass);
        faults_done.store(true, std::sync::atomic::Ordering::Relaxed);
        anyhow::Ok(())
    };
    let (l, f) = tokio::join!(live, faults);
    l?;
    f?;
    let rows = env
        .wait_matches_chain(Duration::from_secs(90), &[&ingest, &sink])
        .await?;
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks WHERE chain_id = 31337")
        .fetch_one(env.db.pool())
        .await?;
    let head = env.anvil.block_number().await?;
    ensure!(
        blocks as u64 == head + 1,
        "{blocks} block rows for head {head}"
    );

    println!("B1: {rows} rows, {blocks} blocks equal the chain");
    println!("B1 failovers (provider going bad -> the same blocks answered again):");
    let mut took = Vec::new();
    let mut probed = Vec::new();
    for (bad, mode, how) in failovers(&switches, &proxies) {
        match how {
            Failover::Retried(d) => {
                println!(
                    "  provider {bad} {mode:?}: data request failed over in {} ms",
                    d.as_millis()
                );
                took.push(d);
            }
            Failover::CaughtByProbe(d) => {
                println!(
                    "  provider {bad} {mode:?}: head probe caught it first; next data from another provider after {} ms",
                    d.as_millis()
                );
                probed.push(d);
            }
            Failover::NotAsked => println!("  provider {bad} {mode:?}: not asked while faulty"),
        }
    }
    for (what, list) in [
        ("data-request failovers", &mut took),
        ("probe-first detections", &mut probed),
    ] {
        list.sort();
        if let (Some(max), Some(median)) = (list.last(), list.get(list.len() / 2)) {
            println!(
                "B1 {what}: {} measured, median {} ms, max {} ms (target < 2000 ms)",
                list.len(),
                median.as_millis(),
                max.as_millis()
            );
        }
    }
    ensure!(!took.is_empty(), "no failover was exercised");
    let failovers = ingest.metric("tripwire_rpc_failovers_total").await?;
    ensure!(failovers > 0.0, "no failover counted");
    let (code, body) = ingest.get("/health").await?;
    ensure!(code == 200, "health after recovery: {code} {body}");
    Ok(())
}

/// Runs the silent-loss scenario and returns how many rows of the chain are missing from
/// Postgres. The preferred provider answers `eth_getLogs` with nothing for its last 3 blocks
/// while reporting the true head (a load balancer in front of a lagging node).
async fn silent_loss_missing_rows(verify_ranges: bool) -> Result<usize> {
    let mut env = Env::new().await?;
    let lagging = FaultProxy::start(&env.anvil.url()).await?;
    lagging.set_mode(Mode::EmptyLogsBeyondHead { behind: 3 });
    let honest = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 2;
    env.providers = providers(&[("lagging", &lagging, 5), ("honest", &honest, 1)]);
    env.verify_ranges = Some(verify_ranges);
    env.traffic(30, 2).await?;
    let p = env.spawn("run")?;
    // Live: every block carries logs the lagging node does not return yet.
    for _ in 0..60 {
        env.traffic(1, 2).await?;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let truth = env.ground_truth().await?;
    let stored = env.db_rows().await?;
    let missing = truth.iter().filter(|r| !stored.contains(r)).count();
    ensure!(
        lagging
            .events()
            .iter()
            .any(|e| e.outcome == Outcome::Faulted("empty_logs")),
        "the lagging provider never hid anything"
    );
    if verify_ranges {
        env.assert_matches_chain().await?;
    }
    Ok(missing)
}

/// B2: with the proof check, an empty answer beyond the provider's head never costs a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_empty_logs_beyond_a_providers_head_never_lose_a_row() -> Result<()> {
    let missing = silent_loss_missing_rows(true).await?;
    ensure!(
        missing == 0,
        "{missing} rows missing with the proof check on"
    );
    Ok(())
}

/// B2, negative control: the same scenario with `verify_ranges = false` loses rows, which shows
/// that the proof check is what prevents the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_without_the_proof_check_rows_are_lost() -> Result<()> {
    let missing = silent_loss_missing_rows(false).await?;
    println!("B2 negative control: {missing} rows lost with verify_ranges = false");
    ensure!(
        missing > 0,
        "no row was lost with the proof check off: the scenario does not exercise it"
    );
    Ok(())
}

/// B4: every provider down. Health turns unhealthy naming the chain's RPC, retries stay capped,
/// the head age and lag keep being reported, and indexing resumes alone when a provider is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b4_all_providers_down_then_back() -> Result<()> {
    let mut env = Env::new().await?;
    let a = FaultProxy::start(&env.anvil.url()).await?;
    let b = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![a.url(), b.url()]);
    env.rpc_timeout_s = 1;
    env.traffic(20, 2).await?;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;

    a.set_mode(Mode::ServerError);
    b.set_mode(Mode::Reset);
    let down_at = Instant::now();
    let before = a.requests() + b.requests();
    // The chain moves on while nobody can see it.
    for _ in 0..30 {
        env.traffic(1, 2).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let outage = down_at.elapsed();
    let during = a.requests() + b.requests() - before;
    let (code, body) = p.get("/health").await?;
    println!(
        "B4: {during} requests to the providers during a {:.0} s outage; health {code}: {body}",
        outage.as_secs_f64()
    );
    ensure!(code == 503, "health during the outage: {code} {body}");
    ensure!(body.contains("rpc:devnet"), "health names the RPC: {body}");
    ensure!(during >= 3, "gave up retrying: {during} requests");
    // Capped: the ingest's backoff tops out at 10 s and benched providers are probed one at a
    // time, so a 15 s outage costs a few dozen requests, not hundreds.
    ensure!(
        during <= 60,
        "retries not capped: {during} requests in {outage:?}"
    );
    let age = p.metric("tripwire_chain_head_age_seconds").await?;
    ensure!(age >= 10.0, "head age not growing: {age}");
    // Gauges are refreshed by the ingest's steps and probes: read them over a few seconds of the
    // continuing outage, not at one instant.
    let exported = |m: &str| {
        m.contains("tripwire_lag_blocks{")
            && m.contains("tripwire_rpc_providers_in_rotation{chain=\"devnet\"} 0")
    };
    let mut metrics = p.get("/metrics").await?.1;
    for _ in 0..25 {
        if exported(&metrics) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = p.get("/metrics").await?.1;
    }
    ensure!(
        exported(&metrics),
        "lag and rotation gauges must stay exported:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("tripwire_lag_blocks")
                || l.starts_with("tripwire_rpc_providers_in_rotation"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    a.set_mode(Mode::Pass);
    b.set_mode(Mode::Pass);
    let back = Instant::now();
    env.wait_matches_chain(Duration::from_secs(60), &[&p])
        .await?;
    println!(
        "B4: caught up {:.1} s after the providers came back",
        back.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = p.get("/health").await?;
        if code == 200 {
            break;
        }
        ensure!(Instant::now() < deadline, "still unhealthy: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// B6: health names the fault each provider showed (a hang is a timeout, a reset a reset, not
/// "lagging"), and after an outage it stays degraded until the ingest has stored something again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b6_health_names_the_fault_and_recovers_only_after_a_write() -> Result<()> {
    let mut env = Env::new().await?;
    let hung = FaultProxy::start(&env.anvil.url()).await?;
    let reset = FaultProxy::start(&env.anvil.url()).await?;
    let steady = FaultProxy::start(&env.anvil.url()).await?;
    env.rpc_urls = Some(vec![]);
    env.rpc_timeout_s = 1;
    env.providers = providers(&[
        ("hung", &hung, 3),
        ("reset", &reset, 2),
        ("steady", &steady, 1),
    ]);
    env.max_provider_lag_blocks = Some(2);
    env.traffic(10, 2).await?;
    let p = env.spawn("run")?;
    env.wait_synced_with(Duration::from_secs(60), &[&p]).await?;
    hung.set_mode(Mode::Hang);
    reset.set_mode(Mode::Reset);
    // The chain moves on, so that the two silent providers' last heads fall behind.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        env.traffic(1, 1).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, body) = p.get("/health").await?;
        if body.contains("hung out of rotation") && body.contains("reset out of rotation") {
            break body;
        }
        ensure!(Instant::now() < deadline, "faults never named: {body}");
    };
    println!("B6 health while one provider hangs and one resets: {body}");
    ensure!(
        body.contains("timeout"),
        "the hang is not named a timeout: {body}"
    );
    ensure!(
        body.contains("connection reset"),
        "the reset is not named: {body}"
    );
    ensure!(
        !body.contains("lagging"),
        "silent providers blamed for lag: {body}"
    );

    // Every provider down, then back: healthy only once a range was stored after the return.
    steady.set_mode(Mode::ServerError);
    hung.set_mode(Mode::ServerError);
    reset.set_mode(Mode::ServerError);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        env.traffic(1, 1).await?;
        let (code, _) = p.get("/health").await?;
        if code == 503 {
            break;
        }
        ensure!(Instant::now() < deadline, "the outage never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..5 {
        env.traffic(1, 1).await?;
    }
    for proxy in [&steady, &hung, &reset] {
        proxy.set_mode(Mode::Pass);
    }
    let back: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(env.db.pool())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let (_, body) = p.get("/health").await?;
        if body.contains("\"status\":\"healthy\"") {
            let stored: f64 = sqlx::query_scalar(
                "SELECT extract(epoch FROM updated_at)::float8 FROM ingest_cursors WHERE chain_id = 31337",
            )
            .fetch_one(env.db.pool())
            .await?;
            ensure!(
                stored > back,
                "healthy before anything was stored after the outage (cursor stored at \
                 {stored}, providers back at {back}); states seen: {seen:#?}"
            );
            break;
        }
        if seen.last() != Some(&body) {
            seen.push(body.clone());
        }
        ensure!(Instant::now() < deadline, "never healthy again: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("B6 states between the return and healthy: {seen:#?}");
    env.wait_matches_chain(Duration::from_secs(60), &[&p])
        .await?;
    Ok(())
}
