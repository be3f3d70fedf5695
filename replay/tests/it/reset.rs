//! The cursor reset: `tripwire-replay --mode reset-cursor` needs `--yes` off a terminal, says what
//! it would do with `--dry-run`, records an audit row, and the ingest resyncs from the safe block.

use std::time::Duration;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::env::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_cursor_needs_confirmation_audits_and_the_ingest_resyncs_from_there() -> Result<()> {
    let mut env = Env::new().await?;
    let mut rng = StdRng::seed_from_u64(3);
    env.traffic(&mut rng, 30).await?;
    env.start_indexer().await?;
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    env.stop_indexer();
    let config = env.config("replay.toml");
    let before: i64 = env.count("SELECT block_number FROM ingest_cursors").await?;
    // Not on a terminal and no --yes: refused, nothing changed.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
        ],
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--yes"), "{out}");
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        before
    );
    // A dry run checks the block against the chain and says what it would do, changing nothing.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
            "--dry-run",
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("would move from {before} to block 10")),
        "{out}"
    );
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        before
    );
    assert_eq!(env.count("SELECT count(*) FROM cursor_resets").await?, 0);
    // Confirmed: cursor at 10 with an audit row.
    let (code, out) = env.replay(
        &config,
        &[
            "--chain",
            "devnet",
            "--from-block",
            "10",
            "--mode",
            "reset-cursor",
            "--yes",
        ],
    )?;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        env.count("SELECT block_number FROM ingest_cursors").await?,
        10
    );
    assert_eq!(
        env.count("SELECT count(*) FROM cursor_resets WHERE new_block = 10")
            .await?,
        1
    );
    // Rows above 10 lost meanwhile come back when the ingest resumes from the safe block.
    sqlx::query("DELETE FROM logs WHERE block_number > 10")
        .execute(env.db.pool())
        .await?;
    env.start_indexer().await?;
    env.wait_equal(&[env.treasury], Duration::from_secs(60))
        .await?;
    Ok(())
}
