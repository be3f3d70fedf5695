//! Alertmanager's webhook payload, version 4. Newer releases add fields: unknown ones are
//! ignored. What is required is checked with errors that name the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Whether a notification (or one alert in it) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AlertStatus {
    #[default]
    Firing,
    Resolved,
}

impl AlertStatus {
    fn parse(s: &str) -> Option<AlertStatus> {
        match s {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }

    /// As Alertmanager writes it (and as it is stored and labelled).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    pub version: String,
    #[serde(rename = "groupKey", default)]
    pub group_key: Option<String>,
    /// As sent; checked and parsed into `status` by [`Payload::parse`].
    #[serde(rename = "status")]
    pub status_text: String,
    #[serde(skip)]
    pub status: AlertStatus,
    #[serde(default)]
    pub receiver: Option<String>,
    pub alerts: Vec<AlertIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertIn {
    /// As sent; checked and parsed into `status` by [`Payload::parse`].
    #[serde(rename = "status")]
    pub status_text: String,
    #[serde(skip)]
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// As sent; checked and parsed into `starts_at` by [`Payload::parse`].
    #[serde(rename = "startsAt")]
    pub starts_at_text: String,
    #[serde(skip)]
    pub starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt", default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: Option<String>,
    pub fingerprint: String,
}

/// Alerts in one notification beyond which the payload is refused (Alertmanager truncates at
/// `max_alerts`; thousands means something else is talking).
const MAX_ALERTS: usize = 1000;

impl Payload {
    /// Parses and checks a body; the error is the reason given with the 400.
    pub fn parse(body: &[u8]) -> Result<Payload, String> {
        let mut p: Payload = serde_json::from_slice(body)
            .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
        if p.version != "4" {
            return Err(format!(
                "version `{}` is not supported (expected \"4\")",
                p.version
            ));
        }
        p.status = AlertStatus::parse(&p.status_text).ok_or_else(|| {
            format!(
                "status `{}` is neither firing nor resolved",
                p.status_text.chars().take(40).collect::<String>()
            )
        })?;
        // Postgres text cannot hold NUL: refuse it here rather than fail half-way through storing.
        let nul = |s: &str| s.contains('\0');
        if p.receiver.as_deref().is_some_and(nul) || p.group_key.as_deref().is_some_and(nul) {
            return Err("receiver or groupKey contains a NUL character".into());
        }
        for (i, a) in p.alerts.iter().enumerate() {
            for (what, map) in [("labels", &a.labels), ("annotations", &a.annotations)] {
                if map.iter().any(|(k, v)| nul(k) || nul(v)) {
                    return Err(format!("alerts[{i}].{what} contains a NUL character"));
                }
            }
        }
        if p.alerts.len() > MAX_ALERTS {
            return Err(format!(
                "{} alerts in one notification (at most {MAX_ALERTS})",
                p.alerts.len()
            ));
        }
        for (i, a) in p.alerts.iter_mut().enumerate() {
            a.starts_at = DateTime::parse_from_rfc3339(&a.starts_at_text)
                .map_err(|e| {
                    format!(
                        "alerts[{i}].startsAt `{}` is not an RFC 3339 time: {e}",
                        a.starts_at_text.chars().take(40).collect::<String>()
                    )
                })?
                .with_timezone(&Utc);
            a.status = AlertStatus::parse(&a.status_text).ok_or_else(|| {
                format!(
                    "alerts[{i}].status `{}` is neither firing nor resolved",
                    a.status_text.chars().take(40).collect::<String>()
                )
            })?;
            if a.fingerprint.is_empty()
                || a.fingerprint.len() > 64
                || !a.fingerprint.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "alerts[{i}].fingerprint `{}` is not a fingerprint",
                    a.fingerprint.chars().take(80).collect::<String>()
                ));
            }
            if a.labels.is_empty() {
                return Err(format!("alerts[{i}].labels is empty"));
            }
        }
        Ok(p)
    }
}
