//! The JSON-RPC client every [`Anvil`](super::Anvil) helper goes through: plain HTTP POSTs with
//! increasing ids, JSON-RPC errors surfaced as a typed [`RpcError`] so tests can match on the
//! code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{anyhow, Context};
use serde_json::{json, Value};

const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// A JSON-RPC error response, kept typed so tests can assert on the code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method}: JSON-RPC error {code}: {message}{}", data.as_ref().map(|d| format!(" (data: {d})")).unwrap_or_default())]
pub struct RpcError {
    pub method: String,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

#[derive(Debug, Clone)]
pub(super) struct RpcClient {
    pub(super) url: String,
    http: reqwest::Client,
    next_id: Arc<AtomicU64>,
}

impl RpcClient {
    pub(super) fn new(url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .build()
            .expect("reqwest client with static settings");
        Self {
            url,
            http,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    pub(super) async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method}: request to {} failed", self.url))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method}: reading response from {} failed", self.url))?;
        let mut reply: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{method}: HTTP {status}, non-JSON response: {}",
                truncate(&text, 500)
            )
        })?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(RpcError {
                method: method.to_owned(),
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
                data: err.get("data").cloned(),
            }
            .into());
        }
        match reply.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(anyhow!(
                "{method}: response has neither result nor error: {}",
                truncate(&text, 500)
            )),
        }
    }
}

pub(super) async fn fetch_accounts(client: &RpcClient) -> anyhow::Result<Vec<Address>> {
    let accounts = client.call("eth_accounts", json!([])).await?;
    serde_json::from_value(accounts).context("eth_accounts returned something other than addresses")
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
