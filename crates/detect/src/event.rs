//! `event`: a rule, not a statistic. Every selected privileged event (role granted or revoked,
//! ownership transferred, proxy upgraded, admin changed, paused) is a finding, unless every actor
//! field it carries names an expected actor: routine operations by the team's own multisig stay
//! quiet, the same event by anyone else does not.

use alloy_primitives::Address;
use tripwire_schema::LogRecord;

use super::{Base, EventParams, Finding};

pub(crate) struct EventRule {
    p: EventParams,
    /// `allowed_actors`, parsed (validated with the config).
    allowed: Vec<Address>,
}

impl EventRule {
    pub(crate) fn new(p: EventParams) -> EventRule {
        let allowed = p
            .allowed_actors
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        EventRule { p, allowed }
    }

    pub(crate) fn observe_log(&mut self, base: &Base<'_>, log: &LogRecord, out: &mut Vec<Finding>) {
        let Some(ev) = &log.event else { return };
        if !self.p.events.iter().any(|e| e == &ev.name) {
            return;
        }
        let actors: Vec<(&str, Option<Address>)> = self
            .p
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
