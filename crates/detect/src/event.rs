//! `event`: a rule, not a statistic. Every selected privileged event (role granted or revoked,
//! ownership transferred, proxy upgraded, admin changed, paused) is a finding, unless every actor
//! field it carries names an expected actor: routine operations by the team's own multisig stay
//! quiet, the same event by anyone else does not.
//!
//! On transactions the rule reads function calls: every call of a listed function (`functions`)
//! alerts, whether it succeeded or reverted (an attempt is news too), unless its actors (the
//! sender by default) are all allowed.

use alloy_primitives::Address;
use tripwire_schema::LogRecord;

use tripwire_config::watchdog::names_function;

use super::{Base, DetectorConfig, EventParams, Finding};

pub(crate) struct EventRule {
    p: EventParams,
    /// `allowed_actors`, parsed (validated with the config).
    allowed: Vec<Address>,
    /// The actor fields read (on transactions, `from` unless `actor_fields` was set).
    actor_fields: Vec<String>,
    /// Whether the rule reads calls (`functions`) rather than events.
    on_tx: bool,
}

impl EventRule {
    pub(crate) fn new(p: EventParams, on_tx: bool) -> EventRule {
        let allowed = p
            .allowed_actors
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let actor_fields = if on_tx {
            DetectorConfig::tx_actor_fields(&p)
        } else {
            p.actor_fields.clone()
        };
        EventRule {
            p,
            allowed,
            actor_fields,
            on_tx,
        }
    }

    pub(crate) fn observe_log(&mut self, base: &Base<'_>, log: &LogRecord, out: &mut Vec<Finding>) {
        let Some(ev) = &log.event else { return };
        let listed = if self.on_tx {
            // Without `functions`, the selector's `function` already chose the calls.
            self.p.functions.is_empty()
                || self
                    .p
                    .functions
                    .iter()
                    .any(|w| names_function(w, &ev.name, &ev.signature))
        } else {
            self.p.events.iter().any(|e| e == &ev.name)
        };
        if !listed {
            return;
        }
        let actors: Vec<(&str, Option<Address>)> = self
            .actor_fields
            .iter()
            .filter_map(|f| {
                let v = ev.params.get(f)?.as_str()?;
                Some((f.as_str(), v.parse::<Address>().ok()))
            })
            .collect();
        let expected = !self.allowed.is_empty()
            && !actors.is_empty()
            && actors
                .iter()
                .all(|(_, a)| a.is_some_and(|a| self.allowed.contains(&a)));
        if expected {
            return;
        }
        let label = log
            .contract
            .clone()
            .unwrap_or_else(|| log.address.to_string());
        let who = actors
            .iter()
            .map(|(f, a)| match a {
                Some(a) => format!("{f}={a}"),
                None => format!("{f}=?"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut f = base.at_log(log, &format!("{label}/{}", ev.name));
        f.observed = 1.0;
        f.expected = 0.0;
        f.score = 1.0;
        f.score_name = "rule";
        f.summary = if who.is_empty() {
            format!("{} on {}", ev.name, label)
        } else if self.allowed.is_empty() {
            format!("{} on {}: {}", ev.name, label, who)
        } else {
            format!(
                "{} on {}: {} (not all expected actors)",
                ev.name, label, who
            )
        };
        out.push(f);
    }
}
