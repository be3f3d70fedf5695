//! The receiver's routes: authentication first, then the payload's checks, then per alert the
//! rules' actions, once per fingerprint, `startsAt` and status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::auth::{authenticated, authenticated_headers};
use super::payload::{AlertIn, AlertStatus, Payload};
use super::store;
use super::{Rule, WebhookAction, WebhookConfig};
use crate::alerts;
use crate::metrics::webhook as metrics;
use crate::safe::Proposer;

/// Marks alerts the receiver re-posted, so a route that sends them back is not a loop.
pub const RELABELLED: &str = "tripwire_relabelled";

/// What the receiver needs at run time.
pub struct Receiver {
    pub rules: Vec<Rule>,
    pub token: Option<String>,
    pub hmac_secret: Option<String>,
    pub max_body: usize,
    pub pool: PgPool,
    pub proposer: Option<Arc<Proposer>>,
    pub alertmanager: Option<alerts::Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{field}: {message}")]
    Config { field: String, message: String },
}

impl Receiver {
    /// Reads the secrets the config names and checks the rules.
    pub fn new(
        cfg: &WebhookConfig,
        pool: PgPool,
        proposer: Option<Arc<Proposer>>,
        alertmanager: Option<alerts::Client>,
    ) -> Result<Receiver, WebhookError> {
        let rules = cfg
            .rules(proposer.is_some())
            .map_err(|(field, message)| WebhookError::Config { field, message })?;
        let secret = |field: &str, env: &Option<String>| -> Result<Option<String>, WebhookError> {
            match env {
                None => Ok(None),
                Some(name) => match std::env::var(name) {
                    Ok(v) if !v.is_empty() => {
                        tripwire_config::secrets::register(&v);
                        Ok(Some(v))
                    }
                    _ => Err(WebhookError::Config {
                        field: format!("watchdog.webhook.{field}"),
                        message: format!("{name} is not set"),
                    }),
                },
            }
        };
        Ok(Receiver {
            rules,
            token: secret("bearer_token_env", &cfg.bearer_token_env)?,
            hmac_secret: secret("hmac_secret_env", &cfg.hmac_secret_env)?,
            max_body: cfg.max_body_bytes,
            pool,
            proposer,
            alertmanager,
        })
    }

    /// The route, to merge into the process's HTTP server. The token (and the presence of the
    /// HMAC header) is checked from the headers before any byte of the body is read, so an
    /// unauthenticated client is answered 401 at once and costs no memory; the body limit holds
    /// while the body streams in. Every answer is counted by status, the framework's own 400s
    /// and 413s included.
    pub fn router(self, path: &str) -> Router {
        let max = self.max_body;
        let state = Arc::new(self);
        Router::new()
            .route(path, post(receive))
            .route_layer(middleware::from_fn_with_state(state.clone(), headers_first))
            .layer(DefaultBodyLimit::max(max))
            .layer(middleware::from_fn(count_answers))
            .with_state(state)
    }
}

/// Marks an answer whose rejection was counted with its reason already.
#[derive(Clone, Copy)]
struct Counted;

fn reject(status: StatusCode, reason: &'static str, detail: String) -> Response {
    let rejected = metrics().rejected.get(&reason);
    rejected.webhook_rejected_total.increment(1);
    let mut r = (status, Json(json!({ "error": detail }))).into_response();
    r.extensions_mut().insert(Counted);
    r
}

/// Authentication from the headers alone, before the body is read (the HMAC itself needs the
/// body and is verified by the handler).
async fn headers_first(State(r): State<Arc<Receiver>>, req: Request, next: Next) -> Response {
    if let Err(reason) = authenticated_headers(&r, req.headers()) {
        return reject(
            StatusCode::UNAUTHORIZED,
            reason,
            "authentication failed".into(),
        );
    }
    next.run(req).await
}

/// Counts every answer of the route by status; a client error the handler did not produce (a
/// body over the limit, a body that could not be read) also by its reason.
async fn count_answers(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let requests = metrics().requests.get(&status.as_u16());
    requests.webhook_requests_total.increment(1);
    if status.is_client_error() && r.extensions().get::<Counted>().is_none() {
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            _ => "unreadable",
        };
        let rejected = metrics().rejected.get(&reason);
        rejected.webhook_rejected_total.increment(1);
    }
    r
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(reason) = authenticated(&r, &headers, &body) {
        return reject(
            StatusCode::UNAUTHORIZED,
            reason,
            "authentication failed".into(),
        );
    }
    let payload = match Payload::parse(&body) {
        Ok(p) => p,
        Err(e) => return reject(StatusCode::BAD_REQUEST, "malformed", e),
    };
    let mut outcome = Vec::new();
    for a in &payload.alerts {
        let alerts = metrics().alerts.get(&a.status.as_str());
        alerts.webhook_alerts_total.increment(1);
        match handle(&r, &payload, a).await {
            Ok(o) => outcome.push(o),
            Err(e) => {
                // Alertmanager retries a 5xx: nothing is lost while Postgres is away.
                tracing::error!(error = %e, fingerprint = %a.fingerprint, "webhook alert not stored");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": format!("storing the receipt failed: {e}") })),
                )
                    .into_response();
            }
        }
    }
    (StatusCode::OK, Json(json!({ "alerts": outcome }))).into_response()
}

/// Stores one alert's receipt and, the first time, takes the actions of the rules it matches.
async fn handle(r: &Receiver, p: &Payload, a: &AlertIn) -> Result<Value, sqlx::Error> {
    let matched: Vec<&Rule> = r
        .rules
        .iter()
        .filter(|rule| rule.matchers.iter().all(|m| m.matches(&a.labels)))
        .collect();
    let names: Vec<String> = matched.iter().map(|r| r.name.clone()).collect();
    let (id, first) = store::receive(&r.pool, p, a, &names).await?;
    if !first {
        metrics().counters.webhook_redeliveries_total.increment(1);
        return Ok(json!({ "fingerprint": a.fingerprint, "receipt": id, "repeat": true }));
    }
    let mut taken = Vec::new();
    for rule in matched {
        for action in &rule.actions {
            let result = act(r, a, rule, *action).await;
            let ok = result.is_ok();
            let key = (rule.name.clone(), action.as_str(), ok);
            let actions = metrics().actions.get(&key);
            actions.webhook_actions_total.increment(1);
            taken.push(json!({
                "rule": rule.name,
                "action": action.as_str(),
                "result": match result { Ok(v) => v, Err(e) => json!({ "error": e }) },
            }));
        }
    }
    store::set_actions(&r.pool, id, &Value::Array(taken.clone())).await?;
    let answer = json!({ "fingerprint": a.fingerprint, "receipt": id, "actions": taken });
    // The answer goes back to the caller: no secret of a peer's error in it.
    Ok(
        serde_json::from_str(&tripwire_config::secrets::scrub(&answer.to_string()))
            .unwrap_or(answer),
    )
}

async fn act(
    r: &Receiver,
    a: &AlertIn,
    rule: &Rule,
    action: WebhookAction,
) -> Result<Value, String> {
    match action {
        WebhookAction::Record => {
            tracing::warn!(
                rule = %rule.name,
                alertname = a.labels.get("alertname").map(String::as_str).unwrap_or(""),
                status = %a.status,
                fingerprint = %a.fingerprint,
                "Alertmanager alert recorded"
            );
            Ok(json!("recorded"))
        }
        WebhookAction::Pause if a.status != AlertStatus::Firing => {
            Ok(json!("not for a resolved alert: nothing is unpaused"))
        }
        WebhookAction::Pause => {
            let Some(p) = &r.proposer else {
                return Err("no [watchdog.safe]".into());
            };
            let key = format!("webhook:{}:{}", a.fingerprint, a.starts_at.to_rfc3339());
            let summary = format!(
                "Alertmanager alert {} ({}): {}",
                a.labels.get("alertname").map(String::as_str).unwrap_or("?"),
                rule.name,
                a.annotations
                    .get("summary")
                    .or_else(|| a.annotations.get("description"))
                    .map(String::as_str)
                    .unwrap_or("")
            );
            p.propose(&key, &summary)
                .await
                .map(|prop| json!({ "proposal": prop.id, "safe_tx_hash": prop.safe_tx_hash, "state": prop.state }))
                .map_err(|e| e.to_string())
        }
        WebhookAction::Alert => {
            if a.labels.contains_key(RELABELLED) {
                return Ok(json!("already re-labelled: not re-posted"));
            }
            let Some(client) = &r.alertmanager else {
                return Err("no Alertmanager configured".into());
            };
            let mut labels = a.labels.clone();
            labels.extend(rule.labels.clone());
            labels.insert(RELABELLED.into(), "true".into());
            let now = Utc::now();
            let ends_at = if a.status == AlertStatus::Firing {
                now + chrono::Duration::minutes(5)
            } else {
                now
            };
            let alert = alerts::Alert {
                labels,
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                ends_at,
                generator_url: a.generator_url.clone().unwrap_or_default(),
            };
            let errors = client.post(&[alert]).await;
            if errors.is_empty() {
                Ok(json!("re-posted"))
            } else {
                Err(errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        }
    }
}
