//! Alertmanager's webhook payload, version 4. Newer releases add fields: unknown ones are
//! ignored. What is required is checked with errors that name the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    pub version: String,
    #[serde(rename = "groupKey", default)]
    pub group_key: Option<String>,
    pub status: String,
    #[serde(default)]
    pub receiver: Option<String>,
    pub alerts: Vec<AlertIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertIn {
    pub status: String,
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
        if !matches!(p.status.as_str(), "firing" | "resolved") {
            return Err(format!(
                "status `{}` is neither firing nor resolved",
                p.status
            ));
        }
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
            if !matches!(a.status.as_str(), "firing" | "resolved") {
                return Err(format!(
                    "alerts[{i}].status `{}` is neither firing nor resolved",
                    a.status
                ));
            }
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
