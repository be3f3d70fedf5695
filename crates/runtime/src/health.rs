//! The health registry behind `/health`: each part of a process (an RPC pool, Kafka, Postgres, a
//! chain's lag) reports its own state; the process is as healthy as its worst part.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
};

use serde::Serialize;

/// State of a component or of the whole process, in increasing order of badness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Working as it should.
    Healthy,
    /// Working, but not fully; `/health` still answers 200.
    Degraded,
    /// Not working; `/health` answers 503.
    Unhealthy,
}

/// A part of a process that reports its own state. Its name in `/health` is `postgres`,
/// `kafka`, ... or `rpc:<chain>`, `lag:<chain>`, ... for the parts that exist per chain or topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The Postgres pool.
    Postgres,
    /// The Kafka clients.
    Kafka,
    /// The Alertmanagers alerts go to.
    Alertmanager,
    /// The Safe pause proposals.
    Safe,
    /// The RPC providers of a chain.
    Rpc(String),
    /// A chain's ingest, when it stopped.
    Ingest(String),
    /// A chain's ingest held back by its lead over the sink.
    Backpressure(String),
    /// How far Postgres is behind a chain's head.
    Lag(String),
    /// Records of a topic lost before they were read.
    History(String),
    /// A reorganisation deeper than the configured depth.
    Reorg,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Postgres => f.write_str("postgres"),
            Component::Kafka => f.write_str("kafka"),
            Component::Alertmanager => f.write_str("alertmanager"),
            Component::Safe => f.write_str("safe"),
            Component::Reorg => f.write_str("reorg"),
            Component::Rpc(c) => write!(f, "rpc:{c}"),
            Component::Ingest(c) => write!(f, "ingest:{c}"),
            Component::Backpressure(c) => write!(f, "backpressure:{c}"),
            Component::Lag(c) => write!(f, "lag:{c}"),
            Component::History(t) => write!(f, "history:{t}"),
        }
    }
}

/// What `/health` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The worst status of all components (`healthy` when none reported).
    pub status: Status,
    /// `component: reason` for every component that is not healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<Component, (Status, String)>>>,
}

impl Health {
    /// An empty registry: the process reports healthy until a component says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a component's state. Logs transitions once, not every call.
    pub fn set(&self, component: Component, status: Status, reason: impl Into<String>) {
        // Reasons quote peers' errors, which quote URLs: never a secret in `/health`.
        let reason = tripwire_config::secrets::scrub(&reason.into()).into_owned();
        let mut map = self.inner.lock().expect("health lock");
        let previous = map.get(&component).map(|(s, _)| *s);
        if previous != Some(status) {
            match status {
                Status::Healthy if previous.is_some() => {
                    tracing::info!(%component, "component recovered")
                }
                Status::Healthy => {}
                _ => tracing::warn!(%component, ?status, reason = %reason, "component not healthy"),
            }
        }
        map.insert(component, (status, reason));
    }

    /// Records that `component` is healthy, clearing its reason.
    pub fn healthy(&self, component: Component) {
        self.set(component, Status::Healthy, "");
    }

    /// The process's status (its worst component's) with the reasons of every unhealthy part.
    pub fn report(&self) -> Report {
        let map = self.inner.lock().expect("health lock");
        let status = map
            .values()
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(Status::Healthy);
        let reasons = map
            .iter()
            .filter(|(_, (s, _))| *s != Status::Healthy)
            .map(|(c, (_, r))| format!("{c}: {r}"))
            .collect();
        Report { status, reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_component_wins_and_recovers() {
        let h = Health::new();
        h.healthy(Component::Postgres);
        assert_eq!(h.report().status, Status::Healthy);
        h.set(
            Component::Lag("devnet".into()),
            Status::Degraded,
            "lag 1500 blocks > 1000",
        );
        h.set(Component::Kafka, Status::Unhealthy, "all brokers down");
        let r = h.report();
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(
            r.reasons,
            [
                "kafka: all brokers down",
                "lag:devnet: lag 1500 blocks > 1000"
            ]
        );
        h.healthy(Component::Kafka);
        assert_eq!(h.report().status, Status::Degraded);
    }
}
