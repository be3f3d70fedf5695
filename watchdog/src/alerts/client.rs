//! Alertmanager's `POST /api/v2/alerts`, and the rendering of an incident as an alert: labels that
//! identify it (one label set per incident key), annotations with the numbers, `endsAt` in the
//! future while firing (so Alertmanager resolves it by itself if the watchdog dies) and in the past
//! once resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::incidents::{Incident, IncidentKind, State};

/// One alert as Alertmanager's API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt")]
    pub ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("alertmanager {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("alertmanager {url}: HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
}

impl DeliveryError {
    /// A 4xx other than 429 will fail again with the same alerts: do not retry them as they are.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Transport { .. } => true,
            DeliveryError::Rejected { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// How incidents are shown.
#[derive(Debug, Clone)]
pub struct Render {
    /// Chain names by id, for the `chain` label.
    pub chains: BTreeMap<u64, String>,
    /// Explorer link for a transaction: `{tx_hash}`, `{block}` and `{chain_id}` are replaced.
    pub explorer_tx_url: Option<String>,
    /// `generatorURL` of every alert: `{detector}` is replaced.
    pub generator_url: String,
    /// A firing alert's `endsAt` is this far ahead of each send.
    pub firing_ttl: Duration,
}

/// CamelCase alert name per detector kind.
fn alertname(kind: IncidentKind) -> String {
    match kind.as_str() {
        "storm" => "TripwireAlertStorm".into(),
        k => {
            let mut c = k.chars();
            match c.next() {
                Some(f) => format!("Tripwire{}{}", f.to_ascii_uppercase(), c.as_str()),
                None => "Tripwire".into(),
            }
        }
    }
}

impl Render {
    /// The alert for `incident` as of `now`.
    pub fn alert(&self, i: &Incident, now: DateTime<Utc>) -> Alert {
        let chain = self
            .chains
            .get(&i.chain_id)
            .cloned()
            .unwrap_or_else(|| i.chain_id.to_string());
        let labels: BTreeMap<String, String> = [
            ("alertname", alertname(i.kind)),
            ("severity", i.severity.to_string()),
            ("chain", chain),
            ("contract", i.contract.clone().unwrap_or_default()),
            ("detector", i.detector.clone()),
            ("event", i.event.clone().unwrap_or_default()),
            ("series", i.series.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut a = BTreeMap::new();
        a.insert("summary".to_string(), i.summary.clone());
        a.insert(
            "description".to_string(),
            format!(
                "{} detector {} on chain {}: observed {} vs expected {} ({} = {}) at block {}; {} finding(s) since {}",
                i.kind,
                i.detector,
                i.chain_id,
                fmt_num(i.observed),
                fmt_num(i.expected),
                i.score_name,
                fmt_num(i.score),
                i.block_number,
                i.findings,
                i.opened_at.to_rfc3339()
            ),
        );
        a.insert("observed".to_string(), fmt_num(i.observed));
        a.insert("expected".to_string(), fmt_num(i.expected));
        a.insert(i.score_name.clone(), fmt_num(i.score));
        a.insert("block".to_string(), i.block_number.to_string());
        a.insert("opened_block".to_string(), i.opening_block().to_string());
        a.insert("block_hash".to_string(), i.block_hash.to_string());
        a.insert("findings".to_string(), i.findings.to_string());
        if let Some(tx) = i.tx_hash {
            a.insert("tx_hash".to_string(), tx.to_string());
            if let Some(t) = &self.explorer_tx_url {
                a.insert(
                    "explorer".to_string(),
                    t.replace("{tx_hash}", &tx.to_string())
                        .replace("{block}", &i.block_number.to_string())
                        .replace("{chain_id}", &i.chain_id.to_string()),
                );
            }
        }
        if let Some(id) = i.id {
            a.insert("incident_id".to_string(), id.to_string());
        }
        if let Some(n) = &i.note {
            a.insert("note".to_string(), n.clone());
        }
        if !i.actions.is_empty() {
            let names: Vec<&str> = i.actions.iter().map(|a| a.as_str()).collect();
            a.insert("actions".to_string(), names.join(","));
        }
        // Incident times are block time, which a chain's clock (a test chain, a skewed
        // validator) may put ahead of ours: Alertmanager gets an alert that has started by now and
        // a resolution that has ended by now.
        let ends_at = match (i.state, i.resolved_at) {
            (State::Resolved, Some(r)) => r.min(now),
            (State::Resolved, None) => now,
            (State::Firing, _) => {
                now + chrono::Duration::from_std(self.firing_ttl)
                    .unwrap_or(chrono::Duration::minutes(5))
            }
        };
        Alert {
            labels,
            annotations: a,
            starts_at: i.opened_at.min(now),
            ends_at,
            generator_url: self.generator_url.replace("{detector}", &i.detector),
        }
    }
}

/// Numbers for humans: integers without a fraction, others with 4 significant digits.
fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e15) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// Posts alerts to every configured Alertmanager (an HA pair gets every alert).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    bearer: Option<String>,
}

impl Client {
    pub fn new(
        urls: Vec<String>,
        timeout: Duration,
        bearer: Option<String>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Client {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            bearer,
        })
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Sends `alerts` to every Alertmanager, one after the other; the errors of those that
    /// failed. (The watchdog's own alerts go through [`super::Deliveries`], a queue per URL.)
    pub async fn post(&self, alerts: &[Alert]) -> Vec<DeliveryError> {
        let mut errors = Vec::new();
        if alerts.is_empty() {
            return errors;
        }
        for url in &self.urls {
            if let Err(e) = self.post_to(url, alerts).await {
                errors.push(e);
            }
        }
        errors
    }

    /// Sends `alerts` to the Alertmanager at `url` (one of [`Client::urls`]).
    pub async fn post_to(&self, url: &str, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let endpoint = format!("{url}/api/v2/alerts");
        let mut req = self.http.post(&endpoint).json(alerts);
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                Err(DeliveryError::Rejected {
                    url: url.to_owned(),
                    status,
                    body: body.chars().take(300).collect(),
                })
            }
            Err(source) => Err(DeliveryError::Transport {
                url: url.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_and_numbers() {
        assert_eq!(
            alertname(IncidentKind::Detector(tripwire_detect::DetectorKind::Rate)),
            "TripwireRate"
        );
        assert_eq!(alertname(IncidentKind::Storm), "TripwireAlertStorm");
        assert_eq!(fmt_num(42.0), "42");
        assert_eq!(fmt_num(0.5), "0.5000");
        assert_eq!(fmt_num(1.5e-9), "1.500e-9");
    }
}
