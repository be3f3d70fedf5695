//! The health registry behind `/health`: each part of a process (an RPC pool, Kafka, Postgres, a
//! chain's lag) reports its own state; the process is as healthy as its worst part.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use serde::Serialize;

/// State of a component or of the whole process, in increasing order of badness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// What `/health` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    /// `component: reason` for every component that is not healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, (Status, String)>>>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a component's state. Logs transitions once, not every call.
    pub fn set(&self, component: &str, status: Status, reason: impl Into<String>) {
        // Reasons quote peers' errors, which quote URLs: never a secret in `/health`.
        let reason = tripwire_config::secrets::scrub(&reason.into()).into_owned();
        let mut map = self.inner.lock().expect("health lock");
        let previous = map.get(component).map(|(s, _)| *s);
        if previous != Some(status) {
            match status {
                Status::Healthy if previous.is_some() => {
                    tracing::info!(component, "component recovered")
                }
                Status::Healthy => {}
                _ => tracing::warn!(component, ?status, reason = %reason, "component not healthy"),
            }
        }
        map.insert(component.to_owned(), (status, reason));
    }

    pub fn healthy(&self, component: &str) {
        self.set(component, Status::Healthy, "");
    }

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
        h.healthy("postgres");
        assert_eq!(h.report().status, Status::Healthy);
        h.set("lag:devnet", Status::Degraded, "lag 1500 blocks > 1000");
        h.set("kafka", Status::Unhealthy, "all brokers down");
        let r = h.report();
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.reasons.len(), 2);
        h.healthy("kafka");
        assert_eq!(h.report().status, Status::Degraded);
    }
}
