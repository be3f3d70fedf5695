//! The live watchdog catching up over history and the back-test over the same blocks list the
//! same incidents, and separate attacks stay separate incidents.
//!
//! Two days of block time (one block a minute, each with a few deposits, withdrawals and a
//! mint) are mined in seconds with several attacks hours of block time apart: three huge mints
//! (the third followed four minutes later by a second one, the same attack), two withdrawal bursts
//! and a role granted to an unknown account. The ingest publishes the chain and the sink stores
//! it; only then does the watchdog start, so it reads the two days within seconds of wall time. An
//! incident book on wall time (as before) merged everything read within its 5-minute hold into one
//! incident per detector; on block time each attack opens its own incident, and one more huge mint
//! after the watchdog caught up opens another. Then `tripwire-replay --mode detect` back-tests the
//! same blocks from Postgres: the incidents stored by the live watchdog (detector, series, opening
//! block) are exactly the ones the back-test reports. Each stored incident also keeps its opening
//! block and its first and last trigger blocks.
//!
//! Needs the `tripwire-replay` binary (`cargo build -p tripwire-replay`; `cargo test --workspace`
//! builds it first).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use testkit::config::Detector;

use crate::common::{benign_block, ether, mint, Clock, Env};
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use testkit::abi;

/// Block time per block: two days are 2,880 blocks, light enough to mine in well under a minute.
const SPACING: u64 = 60;
/// Blocks of history before the watchdog starts: two days.
const HISTORY_BLOCKS: u64 = 2 * 24 * 3600 / SPACING;
/// Resolve after 5 minutes without a finding, then 10 minutes of cooldown (the defaults, written
/// out because the test depends on them): attacks 2 hours apart can only merge on wall time.
const HOLD_S: u64 = 300;
const COOLDOWN_S: u64 = 600;

/// A burst `rate` detector on 20-minute windows (twenty blocks, forty withdrawals) with a
/// 20-hour baseline (so the second burst, a day after the first, is judged against benign windows
/// only), a huge-mint `value` detector and a privileged-event rule; their warm-ups end within the
/// first 7 hours.
fn detectors(deployer: &str) -> Vec<Detector> {
    vec![
        Detector::new("withdraw-burst", "rate")
            .contract("treasury")
            .event("Withdraw")
            .severity("critical")
            .param("window_s", 1200)
            .param("warmup_windows", 20)
            .param("baseline_windows", 60),
        Detector::new("huge-mint", "value")
            .contract("token")
            .event("Transfer")
            .param("field", "value")
            .param("warmup", 40)
            .param("history", 200)
            .param("floor", 1e18),
        Detector::new("privileged", "event")
            .contract("treasury")
            .severity("critical")
            .param("allowed_actors", vec![deployer]),
    ]
}

/// What to plant in the block with this index (0 = the first block of the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    HugeMint,
    Burst,
    RoleGrant,
}

/// The attacks of the history, by minute of block time since the first block: hours apart, each
/// well after the detectors' warm-ups. The mint at 32 h 4 min comes 4 minutes after the one at
/// 32 h, inside the hold: it belongs to the same incident.
const HISTORY_ATTACKS: [(u64, Attack); 7] = [
    (10 * 60, Attack::HugeMint),
    (16 * 60, Attack::Burst),
    (20 * 60, Attack::HugeMint),
    (26 * 60, Attack::RoleGrant),
    (32 * 60, Attack::HugeMint),
    (32 * 60 + FOLLOW_UP_MIN, Attack::HugeMint),
    (40 * 60, Attack::Burst),
];
/// Minutes between the two mints of one attack.
const FOLLOW_UP_MIN: u64 = 4;

/// Live blocks after the watchdog caught up, and the index among them of one more huge mint.
const LIVE_BLOCKS: u64 = 40;
const LIVE_MINT: u64 = 30;

/// The block index of minute `m` of block time.
const fn at_minute(m: u64) -> u64 {
    m * 60 / SPACING
}

/// Sends the attack's transaction; the next `benign_block` mines it with the block's traffic.
async fn plant(env: &Env, attack: Attack) -> Result<()> {
    match attack {
        Attack::HugeMint => mint(env, ether(5e6)).await?,
        Attack::Burst => {
            // 100 withdrawals of 1 wei in one block, 2.5 times a whole window's usual count: the
            // count is the attack, not the amount, and it crosses the threshold in this block.
            env.anvil
                .send(
                    env.treasury,
                    abi::call(
                        "withdrawMany(uint256,uint256)",
                        &[abi::uint(100), abi::uint(1)],
                    ),
                )
                .await?;
        }
        Attack::RoleGrant => {
            let role = alloy::primitives::keccak256(b"PAUSER_ROLE");
            env.anvil
                .send(
                    env.treasury,
                    abi::call(
                        "grantRole(bytes32,address)",
                        &[abi::bytes32(role), abi::address(env.anvil.accounts()[7])],
                    ),
                )
                .await?;
        }
    }
    Ok(())
}

fn detector_of(attack: Attack) -> &'static str {
    match attack {
        Attack::HugeMint => "huge-mint",
        Attack::Burst => "withdraw-burst",
        Attack::RoleGrant => "privileged",
    }
}

/// Waits until the ingest's cursor and the sink's rows reach the head: every block and every log
/// of both contracts stored (the back-test reads them; the watchdog reads what the ingest
/// published).
async fn wait_indexed(env: &Env, timeout: Duration) -> Result<u64> {
    let head = env.anvil.block_number().await?;
    let want_logs = env
        .anvil
        .get_logs(json!({
            "fromBlock": "0x0",
            "toBlock": format!("{head:#x}"),
            "address": [env.treasury, env.token],
        }))
        .await?
        .len() as i64;
    let deadline = Instant::now() + timeout;
    loop {
        let cursor: Option<i64> = sqlx::query_scalar(
            "SELECT max(block_number) FROM ingest_cursors WHERE chain_id = 31337",
        )
        .fetch_optional(env.db.pool())
        .await
        .ok()
        .flatten();
        let blocks: Option<i64> =
            sqlx::query_scalar("SELECT max(number) FROM blocks WHERE chain_id = 31337")
                .fetch_optional(env.db.pool())
                .await
                .ok()
                .flatten();
        let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE chain_id = 31337")
            .fetch_one(env.db.pool())
            .await
            .unwrap_or(-1);
        if cursor == Some(head as i64) && blocks == Some(head as i64) && logs == want_logs {
            return Ok(head);
        }
        if Instant::now() > deadline {
            bail!(
                "not indexed: cursor {cursor:?}, blocks up to {blocks:?} of {head}, {logs} of {want_logs} logs"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `tripwire-replay --mode detect --format json` over `from..=to`: the incidents it would have
/// opened.
fn back_test(env: &Env, bin: &std::path::Path, from: u64, to: u64) -> Result<Vec<Value>> {
    let out = std::process::Command::new(bin)
        .arg("--config")
        .arg(env.config())
        .args(["--chain", "devnet", "--mode", "detect", "--format", "json"])
        .args([
            "--from-block",
            &from.to_string(),
            "--to-block",
            &to.to_string(),
        ])
        .env("RUST_LOG", "info")
        .output()
        .context("run tripwire-replay")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "tripwire-replay failed: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        );
    }
    serde_json::from_str(&stdout)
        .with_context(|| format!("replay stdout is not a JSON array:\n{stdout}\n{stderr}"))
}

/// (detector, series, opening block) of the back-test's incidents.
fn keys_of(fired: &[Value]) -> BTreeSet<(String, String, u64)> {
    fired
        .iter()
        .map(|f| {
            (
                f["detector"].as_str().unwrap_or_default().to_owned(),
                f["series"].as_str().unwrap_or_default().to_owned(),
                f["block"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// An incident as stored by the live watchdog.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Stored {
    detector: String,
    series: String,
    state: String,
    findings: i64,
    opened_block: i64,
    first_trigger_block: Option<i64>,
    last_trigger_block: Option<i64>,
    opened_at: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_catch_up_and_back_test_list_the_same_separate_incidents() -> Result<()> {
    let started = Instant::now();
    let replay_bin = testkit::workspace_bin("tripwire-replay")?;
    let mut env = Env::new(vec![]).await?;
    env.detectors = detectors(&format!("{:#x}", env.anvil.accounts()[0]));
    env.alertmanager.resolve_after_s = Some(HOLD_S);
    env.alertmanager.cooldown_s = Some(COOLDOWN_S);
    // Windows aligned to the clock: each 20-minute window holds exactly twenty blocks.
    let mut clock = Clock::start(&env, SPACING, 1200).await?;
    let mut rng = StdRng::seed_from_u64(20260);
    env.start_indexer(true).await?;

    // Two days of history, nobody watching. `expected` collects (detector, opening block) and,
    // per incident, the block of its last finding.
    let mut expected: Vec<(&str, u64, u64)> = Vec::new();
    let first_block = env.anvil.block_number().await? + 1;
    for i in 0..HISTORY_BLOCKS {
        let attack = HISTORY_ATTACKS
            .iter()
            .find(|(m, _)| at_minute(*m) == i)
            .map(|(_, a)| *a);
        if let Some(a) = attack {
            plant(&env, a).await?;
        }
        let n = benign_block(&env, &mut clock, &mut rng, 0.0).await?;
        match attack {
            // The mint 4 minutes after the previous one is a finding of the same incident.
            Some(Attack::HugeMint) if i == at_minute(32 * 60 + FOLLOW_UP_MIN) => {
                let last = expected.last_mut().context("the attack at 32 h")?;
                assert_eq!(last.0, "huge-mint");
                last.2 = n;
            }
            Some(a) => expected.push((detector_of(a), n, n)),
            None => {}
        }
    }
    let history_head = wait_indexed(&env, Duration::from_secs(120)).await?;
    println!(
        "history: blocks {first_block}..={history_head} ({:.1} h of block time) mined and indexed in {:.1?}",
        (history_head - first_block + 1) as f64 * SPACING as f64 / 3600.0,
        started.elapsed()
    );

    // Only now the watchdog: it reads the two days as fast as Kafka serves them.
    let caught_up_from = Instant::now();
    let wd = env.spawn_watchdog().await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(120))
        .await?;
    println!(
        "watchdog caught up over the history in {:.1?}",
        caught_up_from.elapsed()
    );

    // A little live traffic with one more huge mint, an hour of block time after the last attack
    // of the history but within seconds of wall time of the catch-up's findings.
    for i in 0..LIVE_BLOCKS {
        if i == LIVE_MINT {
            plant(&env, Attack::HugeMint).await?;
        }
        let n = benign_block(&env, &mut clock, &mut rng, 0.0).await?;
        if i == LIVE_MINT {
            expected.push(("huge-mint", n, n));
        }
    }
    let head = wait_indexed(&env, Duration::from_secs(60)).await?;
    env.wait_watchdog_caught_up(&wd, Duration::from_secs(60))
        .await?;
    let head_time = testkit::anvil::parse_quantity(&env.anvil.block(head).await?["timestamp"])?;

    // What the live watchdog stored.
    let stored: Vec<Stored> = sqlx::query_as(
        "SELECT detector, series, state, findings, opened_block, first_trigger_block,
                last_trigger_block, extract(epoch FROM opened_at)::bigint AS opened_at
         FROM watchdog_incidents ORDER BY opened_block, detector, series",
    )
    .fetch_all(env.db.pool())
    .await?;
    println!("live watchdog stored {} incidents:", stored.len());
    for s in &stored {
        println!(
            "  {:<15} {:<40} opened {} (t={}) triggers {:?}..{:?} findings {} {}",
            s.detector,
            s.series,
            s.opened_block,
            s.opened_at,
            s.first_trigger_block,
            s.last_trigger_block,
            s.findings,
            s.state
        );
    }

    // The back-test over the same blocks, from the first one stored (it warms up from there too,
    // as the watchdog did from the start of the topic).
    let fired = back_test(&env, &replay_bin, 0, head)?;
    println!("back-test would have fired {} incidents:", fired.len());
    for f in &fired {
        println!(
            "  {:<15} {:<40} opened {} ({})",
            f["detector"].as_str().unwrap_or("?"),
            f["series"].as_str().unwrap_or("?"),
            f["block"],
            f["time"].as_str().unwrap_or("?"),
        );
    }

    // 1. The same incidents, ids aside: detector, series and opening block.
    let live: BTreeSet<(String, String, u64)> = stored
        .iter()
        .map(|s| (s.detector.clone(), s.series.clone(), s.opened_block as u64))
        .collect();
    assert_eq!(live.len(), stored.len(), "two stored incidents alike");
    let back = keys_of(&fired);
    assert_eq!(back.len(), fired.len(), "two back-test incidents alike");
    assert_eq!(
        live,
        back,
        "live watchdog and back-test disagree (live - back: {:?}, back - live: {:?})",
        live.difference(&back).collect::<Vec<_>>(),
        back.difference(&live).collect::<Vec<_>>()
    );

    // 2. One incident per attack, opened by the attack's block: the three huge mints of the
    // history and the live one are four incidents, not one.
    let opened: Vec<(&str, u64)> = stored
        .iter()
        .map(|s| (s.detector.as_str(), s.opened_block as u64))
        .collect();
    let mut want: Vec<(&str, u64)> = expected.iter().map(|(d, b, _)| (*d, *b)).collect();
    want.sort_by_key(|(d, b)| (*b, *d));
    assert_eq!(opened, want, "incidents and attacks differ");
    let mints = stored.iter().filter(|s| s.detector == "huge-mint").count();
    assert_eq!(mints, 4, "one huge-mint incident per planted attack");

    // 3. Each incident keeps its opening block and its first and last trigger blocks: the
    // attack's block, and for the double mint the block of the second one.
    for (s, (detector, opening, last)) in stored.iter().zip({
        let mut e = expected.clone();
        e.sort_by_key(|(d, b, _)| (*b, *d));
        e
    }) {
        assert_eq!(s.detector, detector);
        let (first_t, last_t) = (
            s.first_trigger_block.context("no first trigger block")? as u64,
            s.last_trigger_block.context("no last trigger block")? as u64,
        );
        assert!(
            s.opened_block as u64 <= first_t && first_t <= last_t && last_t <= head,
            "{s:?}: trigger blocks outside [opened_block, head {head}]"
        );
        assert_eq!(
            (s.opened_block as u64, first_t, last_t),
            (opening, opening, last),
            "{s:?}"
        );
        assert_eq!(s.findings, if last == opening { 1 } else { 2 }, "{s:?}");
        // Resolved by block time, however fast the blocks were read: every incident whose hold
        // ended before the head's time.
        let last_time = s.opened_at as u64 + (last - opening) * SPACING;
        if last_time + HOLD_S <= head_time {
            assert_eq!(s.state, "resolved", "{s:?}");
        }
    }
    // The back-test's times are the opening blocks' times too.
    for f in &fired {
        let block = f["block"].as_u64().unwrap_or_default();
        let s = stored
            .iter()
            .find(|s| s.opened_block as u64 == block && s.detector == f["detector"])
            .context("matched above")?;
        let t = chrono::DateTime::parse_from_rfc3339(f["time"].as_str().unwrap_or_default())?;
        assert_eq!(t.timestamp(), s.opened_at, "{f}");
    }

    // 4. A back-test of a part of the span (from the third attack to the fifth, warmed on the
    // blocks before it) lists that part of the live list: where a back-test starts changes
    // neither the baselines nor the incident book's state at that block.
    let (part_from, part_to) = (expected[2].1, expected[4].1);
    let part = keys_of(&back_test(&env, &replay_bin, part_from, part_to)?);
    let live_part: BTreeSet<_> = live
        .iter()
        .filter(|(_, _, b)| (part_from..=part_to).contains(b))
        .cloned()
        .collect();
    println!("back-test of blocks {part_from}..={part_to}: {part:?}");
    assert_eq!(part, live_part, "back-test of {part_from}..={part_to}");
    println!(
        "{} incidents agree; {} blocks, wall time {:.1?}",
        stored.len(),
        head - first_block + 1,
        started.elapsed()
    );
    Ok(())
}
