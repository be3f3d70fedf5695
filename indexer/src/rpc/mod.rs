//! JSON-RPC access to a chain through alloy's `RpcClient`. The one operation the ingest builds on is
//! [`ChainRpc::fetch_range`]: the headers of a block range and its logs, asked from **one provider in
//! one JSON-RPC batch**, so that an empty log list is only believed together with that same provider's
//! header of the range's last block (a lagging node would answer `null` there, not a hash).

mod types;

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, U64},
    rpc::{
        client::{BatchRequest, RpcClient, Waiter},
        json_rpc::RpcError as AlloyRpcError,
        types::{Filter, Log},
    },
    transports::TransportErrorKind,
};
use metrics::{counter, histogram};

pub use types::Header;

use crate::config::{redact_url, ChainConfig};

/// What went wrong with an RPC call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{provider}: {method} timed out after {after:?}")]
    Timeout {
        provider: String,
        method: &'static str,
        after: Duration,
    },
    #[error("{provider}: {method}: transport error: {message}")]
    Transport {
        provider: String,
        method: &'static str,
        message: String,
    },
    #[error("{provider}: {method}: JSON-RPC error {code}: {message}")]
    Response {
        provider: String,
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("{provider}: {method}: {message}")]
    Invalid {
        provider: String,
        method: &'static str,
        message: String,
    },
    #[error("chain {chain}: eth_chainId of {provider} is {actual}, the config says {expected}")]
    WrongChain {
        chain: String,
        provider: String,
        expected: u64,
        actual: u64,
    },
    #[error("chain {chain}: no RPC provider answered: {errors}")]
    AllFailed { chain: String, errors: String },
}

impl RpcError {
    /// A later attempt may succeed (every error but a misconfiguration).
    pub fn is_retryable(&self) -> bool {
        !self.is_fatal()
    }

    /// Retrying cannot help: the configuration points at the wrong chain.
    pub fn is_fatal(&self) -> bool {
        matches!(self, RpcError::WrongChain { .. })
    }

    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Timeout { .. } => "timeout",
            RpcError::Transport { .. } => "transport",
            RpcError::Response { .. } => "response",
            RpcError::Invalid { .. } => "invalid",
            RpcError::WrongChain { .. } => "wrong_chain",
            RpcError::AllFailed { .. } => "all_failed",
        }
    }
}

/// The headers and logs of an inclusive block range, as one provider saw them.
#[derive(Debug)]
pub struct RangeData {
    pub headers: Vec<Header>,
    pub logs: Vec<Log>,
}

struct Provider {
    label: String,
    client: RpcClient,
}

/// The RPC endpoints of one chain, tried in order: a failing provider makes the call move on to
/// the next within the same call.
pub struct ChainRpc {
    chain: String,
    providers: Vec<Provider>,
    timeout: Duration,
}

impl ChainRpc {
    /// Builds clients for every URL of the chain (no network traffic yet).
    pub fn new(chain: &ChainConfig) -> Result<ChainRpc, RpcError> {
        let timeout = Duration::from_secs(chain.rpc_timeout_s);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RpcError::Invalid {
                provider: "-".into(),
                method: "connect",
                message: e.to_string(),
            })?;
        let providers = chain
            .rpc_urls
            .iter()
            .map(|url| {
                let parsed = url
                    .parse()
                    .map_err(|e: url::ParseError| RpcError::Invalid {
                        provider: redact_url(url),
                        method: "connect",
                        message: e.to_string(),
                    })?;
                Ok(Provider {
                    label: redact_url(url),
                    client: RpcClient::new_http_with_client(http.clone(), parsed),
                })
            })
            .collect::<Result<Vec<_>, RpcError>>()?;
        Ok(ChainRpc {
            chain: chain.name.clone(),
            providers,
            timeout,
        })
    }

    /// Checks that at least one provider answers and that every answering one serves `expected`.
    pub async fn verify_chain_id(&self, expected: u64) -> Result<(), RpcError> {
        let mut errors = Vec::new();
        let mut reachable = 0;
        for p in &self.providers {
            match self.call::<(), U64>(p, "eth_chainId", ()).await {
                Ok(id) if id.to::<u64>() == expected => reachable += 1,
                Ok(id) => {
                    return Err(RpcError::WrongChain {
                        chain: self.chain.clone(),
                        provider: p.label.clone(),
                        expected,
                        actual: id.to(),
                    })
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if reachable == 0 {
            return Err(RpcError::AllFailed {
                chain: self.chain.clone(),
                errors: errors.join("; "),
            });
        }
        Ok(())
    }

    /// The head block number.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        self.with_failover(|p| async move {
            self.call::<(), U64>(p, "eth_blockNumber", ())
                .await
                .map(|n| n.to::<u64>())
        })
        .await
    }

    /// The header at `number`, `None` when the provider does not have it.
    pub async fn header(&self, number: u64) -> Result<Option<Header>, RpcError> {
        self.with_failover(|p| async move {
            self.call::<_, Option<Header>>(p, "eth_getBlockByNumber", (U64::from(number), false))
                .await
        })
        .await
    }

    /// Headers of `from..=to` from one provider in one batch; `None` where it lacks a block.
    pub async fn headers(&self, from: u64, to: u64) -> Result<Vec<Option<Header>>, RpcError> {
        self.with_failover(|p| async move {
            let started = Instant::now();
            let mut batch = p.client.new_batch();
            let waiters = self.add_header_calls(p, &mut batch, from, to)?;
            self.send_batch(p, batch, "eth_getBlockByNumber", waiters.len())
                .await?;
            let out = self.await_headers(p, waiters).await?;
            self.observe(p, "batch", started);
            Ok(out)
        })
        .await
    }

    /// Headers and logs of `from..=to` for `addresses`, from one provider in one batch. Every header
    /// must be present: a provider missing one has not reached the range and its (possibly empty)
    /// log list is not evidence of anything. With no address nothing is asked for logs (an
    /// unfiltered `eth_getLogs` would return every log of the chain).
    pub async fn fetch_range(
        &self,
        from: u64,
        to: u64,
        addresses: &[Address],
    ) -> Result<RangeData, RpcError> {
        self.with_failover(|p| async move {
            let started = Instant::now();
            let mut batch = p.client.new_batch();
            let header_waiters = self.add_header_calls(p, &mut batch, from, to)?;
            let logs_waiter = if addresses.is_empty() {
                None
            } else {
                let filter = Filter::new()
                    .from_block(from)
                    .to_block(to)
                    .address(addresses.to_vec());
                Some(
                    batch
                        .add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))
                        .map_err(|e| self.convert(p, "eth_getLogs", e))?,
                )
            };
            let calls = header_waiters.len() + usize::from(logs_waiter.is_some());
            self.send_batch(p, batch, "eth_getLogs", calls).await?;
            let mut headers = Vec::with_capacity(header_waiters.len());
            for (h, n) in self
                .await_headers(p, header_waiters)
                .await?
                .into_iter()
                .zip(from..)
            {
                headers.push(h.ok_or_else(|| RpcError::Invalid {
                    provider: p.label.clone(),
                    method: "eth_getBlockByNumber",
                    message: format!("block {n} is not available (provider behind?)"),
                })?);
            }
            let logs = match logs_waiter {
                Some(w) => w.await.map_err(|e| self.convert(p, "eth_getLogs", e))?,
                None => Vec::new(),
            };
            self.observe(p, "batch", started);
            Ok(RangeData { headers, logs })
        })
        .await
    }

    fn add_header_calls(
        &self,
        p: &Provider,
        batch: &mut BatchRequest<'_>,
        from: u64,
        to: u64,
    ) -> Result<Vec<Waiter<Option<Header>>>, RpcError> {
        (from..=to)
            .map(|n| {
                batch
                    .add_call("eth_getBlockByNumber", &(U64::from(n), false))
                    .map_err(|e| self.convert(p, "eth_getBlockByNumber", e))
            })
            .collect()
    }

    async fn await_headers(
        &self,
        p: &Provider,
        waiters: Vec<Waiter<Option<Header>>>,
    ) -> Result<Vec<Option<Header>>, RpcError> {
        let mut out = Vec::with_capacity(waiters.len());
        for w in waiters {
            out.push(
                w.await
                    .map_err(|e| self.convert(p, "eth_getBlockByNumber", e))?,
            );
        }
        Ok(out)
    }

    async fn send_batch(
        &self,
        p: &Provider,
        batch: BatchRequest<'_>,
        method: &'static str,
        calls: usize,
    ) -> Result<(), RpcError> {
        counter!("tripwire_rpc_requests_total", "chain" => self.chain.clone(), "method" => method)
            .increment(calls as u64);
        match tokio::time::timeout(self.timeout, batch.send()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.convert(p, method, e)),
            Err(_) => Err(self.timeout_error(p, method)),
        }
    }

    async fn call<P, R>(&self, p: &Provider, method: &'static str, params: P) -> Result<R, RpcError>
    where
        P: alloy::rpc::json_rpc::RpcSend,
        R: alloy::rpc::json_rpc::RpcRecv,
    {
        let started = Instant::now();
        counter!("tripwire_rpc_requests_total", "chain" => self.chain.clone(), "method" => method)
            .increment(1);
        let result =
            match tokio::time::timeout(self.timeout, p.client.request(method, params)).await {
                Ok(r) => r.map_err(|e| self.convert(p, method, e)),
                Err(_) => Err(self.timeout_error(p, method)),
            };
        self.observe(p, method, started);
        result
    }

    fn observe(&self, p: &Provider, method: &'static str, started: Instant) {
        histogram!("tripwire_rpc_latency_seconds", "chain" => self.chain.clone(), "provider" => p.label.clone(), "method" => method)
            .record(started.elapsed().as_secs_f64());
    }

    fn timeout_error(&self, p: &Provider, method: &'static str) -> RpcError {
        let e = RpcError::Timeout {
            provider: p.label.clone(),
            method,
            after: self.timeout,
        };
        self.count_error(method, &e);
        e
    }

    fn convert(
        &self,
        p: &Provider,
        method: &'static str,
        e: AlloyRpcError<TransportErrorKind>,
    ) -> RpcError {
        let provider = p.label.clone();
        let err = match e {
            AlloyRpcError::ErrorResp(payload) => RpcError::Response {
                provider,
                method,
                code: payload.code,
                message: payload.message.to_string(),
            },
            AlloyRpcError::Transport(kind) => RpcError::Transport {
                provider,
                method,
                message: kind.to_string(),
            },
            other => RpcError::Invalid {
                provider,
                method,
                message: other.to_string(),
            },
        };
        self.count_error(method, &err);
        err
    }

    fn count_error(&self, method: &'static str, e: &RpcError) {
        counter!("tripwire_rpc_errors_total", "chain" => self.chain.clone(), "method" => method, "kind" => e.kind())
            .increment(1);
    }

    /// Runs `op` against each provider in turn until one succeeds.
    async fn with_failover<'a, T, F, Fut>(&'a self, op: F) -> Result<T, RpcError>
    where
        F: Fn(&'a Provider) -> Fut,
        Fut: std::future::Future<Output = Result<T, RpcError>>,
    {
        let mut errors = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            match op(p).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if i + 1 < self.providers.len() {
                        tracing::warn!(chain = %self.chain, error = %e, "RPC provider failed, trying the next");
                        counter!("tripwire_rpc_failovers_total", "chain" => self.chain.clone())
                            .increment(1);
                    }
                    errors.push(e);
                }
            }
        }
        if errors.len() == 1 {
            return Err(errors.pop().expect("one error"));
        }
        Err(RpcError::AllFailed {
            chain: self.chain.clone(),
            errors: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}
