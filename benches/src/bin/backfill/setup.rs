//! What the benchmark needs before it starts: the release `tripwire-indexer` it runs (built
//! first when run through `cargo run`, so a stale binary is not measured by accident) and the
//! run folder that keeps each run's configuration and process logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The release `tripwire-indexer`: `explicit` if given; else, under `cargo run` (which sets
/// `CARGO`), built with `cargo build --release -p tripwire-indexer` first (a no-op when up to
/// date), then found in the `release` folder of the target directory this binary runs from.
pub(crate) fn indexer_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--indexer-bin {} does not exist", p.display());
        }
        return Ok(p.to_owned());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let profile_dir = exe.parent().context("executable has no folder")?;
    let target_dir = profile_dir
        .parent()
        .context("executable is not inside a target folder")?;
    let candidate = target_dir.join("release").join("tripwire-indexer");
    if let Some(cargo) = std::env::var_os("CARGO") {
        println!(
            "building the release tripwire-indexer (cargo build --release -p tripwire-indexer)"
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "tripwire-indexer"])
            .current_dir(testkit::repo_root())
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p tripwire-indexer failed ({status})");
        }
    }
    if std::env::var_os("CARGO").is_none() && candidate.is_file() {
        let built = std::fs::metadata(&candidate)
            .and_then(|m| m.modified())
            .ok();
        let root = testkit::repo_root();
        let newest = ["indexer/src", "crates", "schema/src", "schema/migrations"]
            .iter()
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max();
        if let (Some(built), Some(newest)) = (built, newest) {
            if newest > built {
                println!(
                    "WARNING: {} is older than the indexer sources; rebuild it with `cargo build \
                     --release -p tripwire-indexer` (or run this benchmark through `cargo run`)",
                    candidate.display()
                );
            }
        }
    }
    if !candidate.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p tripwire-indexer`, run this \
             benchmark through `cargo run --release -p tripwire-benches --bin \
             tripwire-bench-backfill`, or pass --indexer-bin",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// Latest modification time of any file below `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// `<target>/bench-backfill/<unix time>-<pid>`, next to the binaries.
pub(crate) fn run_dir(indexer: &Path) -> Result<PathBuf> {
    let base = indexer
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("bench-backfill"))
        .unwrap_or_else(|| std::env::temp_dir().join("tripwire-bench-backfill"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = base.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
