//! Client of the Safe Transaction Service: proposes a signed SafeTx to the Safe wallet's queue
//! (`POST /api/v2/safes/{safe}/multisig-transactions/`), checks delegates, reads confirmations.
//! Transport errors, 429 and 5xx are retried with jittered exponential backoff; a 4xx refusal is
//! final and its reasons are kept.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use backon::{ExponentialBuilder, Retryable};
use serde_json::{json, Value};

use super::config::ServiceConfig;
use super::tx::SafeTx;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{env} (watchdog.safe.service.api_key_env) is not set")]
    MissingKey { env: String },
}

impl ServiceError {
    /// Worth asking again: the service or the network may recover.
    pub fn is_retryable(&self) -> bool {
        match self {
            ServiceError::Transport { .. } => true,
            ServiceError::Status { status, .. } => *status == 429 || *status >= 500,
            ServiceError::MissingKey { .. } => false,
        }
    }
}

pub struct ServiceClient {
    base: String,
    http: reqwest::Client,
    api_key: Option<String>,
    attempts: u32,
}

impl ServiceClient {
    pub fn new(cfg: &ServiceConfig) -> Result<ServiceClient, ServiceError> {
        let api_key = match &cfg.api_key_env {
            Some(env) => Some(
                std::env::var(env)
                    .map_err(|_| ServiceError::MissingKey { env: env.clone() })
                    .inspect(|k| tripwire_config::secrets::register(k))?,
            ),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_s.max(1)))
            .build()
            .map_err(|e| ServiceError::Transport {
                url: cfg.url.clone(),
                message: e.to_string(),
            })?;
        Ok(ServiceClient {
            base: cfg.url.trim_end_matches('/').to_owned(),
            http,
            api_key,
            attempts: cfg.attempts.max(1),
        })
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn send_once(&self, url: &str, body: Option<&Value>) -> Result<Value, ServiceError> {
        let r = match body {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url),
        };
        let resp = self
            .auth(r)
            .send()
            .await
            .map_err(|e| ServiceError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(ServiceError::Status {
                url: url.to_owned(),
                status,
                body: text.chars().take(2000).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn send(&self, url: &str, body: Option<&Value>) -> Result<Value, ServiceError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_jitter();
        (|| self.send_once(url, body))
            .retry(backoff)
            .when(ServiceError::is_retryable)
            .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "Safe Transaction Service request failed"))
            .await
    }

    /// Proposes `tx`, signed by `sender`.
    pub async fn propose(
        &self,
        safe: Address,
        tx: &SafeTx,
        safe_tx_hash: B256,
        sender: Address,
        signature: &[u8],
    ) -> Result<(), ServiceError> {
        let url = format!(
            "{}/api/v2/safes/{}/multisig-transactions/",
            self.base,
            safe.to_checksum(None)
        );
        let body = json!({
            "to": tx.to.to_checksum(None),
            "value": tx.value.to_string(),
            "data": if tx.data.is_empty() { Value::Null } else { json!(tx.data.to_string()) },
            "operation": tx.operation,
            "safeTxGas": tx.safeTxGas.to_string(),
            "baseGas": tx.baseGas.to_string(),
            "gasPrice": tx.gasPrice.to_string(),
            "gasToken": tx.gasToken.to_checksum(None),
            "refundReceiver": tx.refundReceiver.to_checksum(None),
            "nonce": tx.nonce.to::<u64>(),
            "contractTransactionHash": safe_tx_hash.to_string(),
            "sender": sender.to_checksum(None),
            "signature": alloy::primitives::hex::encode_prefixed(signature),
            "origin": "tripwire-watchdog",
        });
        self.send(&url, Some(&body)).await.map(|_| ())
    }

    /// Whether `delegate` is registered as a delegate (proposer) for `safe`.
    pub async fn is_delegate(
        &self,
        safe: Address,
        delegate: Address,
    ) -> Result<bool, ServiceError> {
        let url = format!(
            "{}/api/v2/delegates/?safe={}&delegate={}",
            self.base,
            safe.to_checksum(None),
            delegate.to_checksum(None)
        );
        let v = self.send(&url, None).await?;
        Ok(v["count"].as_u64().unwrap_or(0) > 0
            || v["results"].as_array().is_some_and(|r| !r.is_empty()))
    }

    /// Owners who confirmed `safe_tx_hash`, as the service knows them.
    pub async fn confirmations(
        &self,
        safe_tx_hash: B256,
    ) -> Result<Vec<(Address, String)>, ServiceError> {
        let url = format!(
            "{}/api/v1/multisig-transactions/{}/",
            self.base, safe_tx_hash
        );
        let v = self.send_once(&url, None).await?;
        Ok(v["confirmations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let owner = c["owner"].as_str()?.parse().ok()?;
                Some((owner, c["signature"].as_str().unwrap_or("").to_owned()))
            })
            .collect())
    }
}
