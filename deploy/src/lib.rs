//! The production stack described as data, for the tests that run it: the compose file
//! ([`compose`]), the Grafana dashboard's queries ([`dashboard`]) and the runbooks' commands
//! ([`runbook`]). The files themselves live next to this crate: `prometheus/`, `alertmanager/`,
//! `grafana/`, and `docker-compose.yml`, `Dockerfile` and `docs/runbooks/` at the root.

pub mod compose;
pub mod dashboard;
pub mod metrics;
pub mod runbook;

use std::path::PathBuf;

/// The repository root (the compose file's project directory).
pub fn repo_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent().map(PathBuf::from).unwrap_or(dir)
}
