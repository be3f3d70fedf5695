//! `[watchdog.webhook]`: where Alertmanager delivers, how it proves itself, and which alerts
//! become which actions. Matchers use Alertmanager's own syntax (`name="v"`, `!=`, `=~`, `!~`,
//! regexes anchored at both ends), so a rule reads like the route that sends the alert.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

/// `[watchdog.webhook]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Path of the receiver on the watchdog's HTTP address (`watchdog.listen`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Environment variable holding the bearer token Alertmanager sends
    /// (`http_config.authorization.credentials`). Required unless `allow_unauthenticated`.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Environment variable holding a secret for an HMAC-SHA256 of the body, checked in the
    /// `X-Tripwire-Signature: sha256=<hex>` header (for a relay that signs what it forwards).
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// Accept requests without a token (a receiver reachable only from a trusted network).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Largest body accepted, in bytes; larger is answered 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The rules (`[[watchdog.webhook.rules]]`), all applied to every alert.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// `[[watchdog.webhook.rules]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name, recorded with the actions it took.
    pub name: String,
    /// Label matchers that must all hold, e.g. `['alertname="IndexerLagging"', 'severity=~"critical|page"']`.
    pub matchers: Vec<String>,
    /// `record` (store the alert as an incident), `pause` (a Safe pause proposal through
    /// `[watchdog.safe]`, for firing alerts only), `alert` (re-post to Alertmanager with `labels`).
    pub actions: Vec<WebhookAction>,
    /// Labels added to the re-posted alert (`alert` action).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_path() -> String {
    "/alertmanager/webhook".into()
}
fn default_max_body() -> usize {
    1 << 20
}

/// What a webhook rule does with a matching alert.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum WebhookAction {
    /// Store it as an incident (every alert received is stored once per fingerprint anyway).
    Record,
    /// Prepare the Safe pause proposal of `[watchdog.safe]` (firing alerts only).
    Pause,
    /// Re-post it to Alertmanager with the rule's `labels` added.
    Alert,
}

impl WebhookAction {
    /// Every action, as written in the file.
    pub const ALL: &'static [WebhookAction] = &[
        WebhookAction::Record,
        WebhookAction::Pause,
        WebhookAction::Alert,
    ];

    /// The name in the file and in the stored receipt.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookAction::Record => "record",
            WebhookAction::Pause => "pause",
            WebhookAction::Alert => "alert",
        }
    }
}

impl std::fmt::Display for WebhookAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for WebhookAction {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        super::named_action(&s, WebhookAction::ALL, WebhookAction::as_str)
    }
}

/// One parsed matcher.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `name="value"`: the label equals the value.
    Eq(String, String),
    /// `name!="value"`: the label differs from the value.
    Ne(String, String),
    /// `name=~"re"`: the label matches the regex as a whole (anchored).
    Re(String, Regex),
    /// `name!~"re"`: the label does not match the regex as a whole.
    NotRe(String, Regex),
}

impl Matcher {
    /// Parses `name="value"` with `=`, `!=`, `=~` or `!~` (quotes optional).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let t = text.trim();
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("`{text}` has no operator (=, !=, =~, !~)"))?;
        let (name, rest) = t.split_at(end);
        if name.is_empty() {
            return Err(format!("`{text}` has no label name"));
        }
        let rest = rest.trim_start();
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
            .ok_or_else(|| format!("`{text}`: unknown operator (use =, !=, =~ or !~)"))?;
        let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value[1..value.len() - 1].replace("\\\"", "\"")
        } else {
            value.to_owned()
        };
        let re = || {
            Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("`{text}`: bad regex: {e}"))
        };
        Ok(match op {
            "=" => Matcher::Eq(name.into(), value),
            "!=" => Matcher::Ne(name.into(), value),
            "=~" => Matcher::Re(name.into(), re()?),
            _ => Matcher::NotRe(name.into(), re()?),
        })
    }

    /// Whether `labels` satisfy it (a missing label reads as empty, as in Alertmanager).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |n: &str| labels.get(n).map(String::as_str).unwrap_or("");
        match self {
            Matcher::Eq(n, v) => get(n) == v,
            Matcher::Ne(n, v) => get(n) != v,
            Matcher::Re(n, r) => r.is_match(get(n)),
            Matcher::NotRe(n, r) => !r.is_match(get(n)),
        }
    }
}

/// A rule ready to apply.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's `name`, recorded with the actions it took.
    pub name: String,
    /// Label matchers that must all hold for the rule to apply.
    pub matchers: Vec<Matcher>,
    /// What to do with a matching alert (`record`, `pause`, `alert`).
    pub actions: Vec<WebhookAction>,
    /// Labels added to the re-posted alert (`alert` action).
    pub labels: BTreeMap<String, String>,
}

impl WebhookConfig {
    /// Parses the matchers and checks everything; errors name the field.
    pub fn rules(&self, has_safe: bool) -> Result<Vec<Rule>, (String, String)> {
        if !self.path.starts_with('/') {
            return Err((
                "watchdog.webhook.path".into(),
                format!("`{}` must start with /", self.path),
            ));
        }
        if self.bearer_token_env.is_none() && !self.allow_unauthenticated {
            return Err((
                "watchdog.webhook.bearer_token_env".into(),
                "is required (or set allow_unauthenticated = true)".into(),
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let field = |f: &str| format!("watchdog.webhook.rules[{i}].{f}");
            if r.matchers.is_empty() {
                return Err((
                    field("matchers"),
                    "lists no matcher (a rule for every alert must say so: `alertname=~\".+\"`)"
                        .into(),
                ));
            }
            let matchers = r
                .matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (field("matchers"), e))?;
            if r.actions.is_empty() {
                return Err((field("actions"), "lists no action".into()));
            }
            if r.actions.contains(&WebhookAction::Pause) && !has_safe {
                return Err((field("actions"), "`pause` needs [watchdog.safe]".into()));
            }
            rules.push(Rule {
                name: r.name.clone(),
                matchers,
                actions: r.actions.clone(),
                labels: r.labels.clone(),
            });
        }
        Ok(rules)
    }
}
