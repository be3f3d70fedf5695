//! JSON-RPC access to a chain through a pool of providers (`pool.rs`), each an alloy `RpcClient`
//! over a layered HTTP transport (`layers.rs`, `http.rs`: answers larger than
//! `max_response_bytes` are not read). The operation the ingest builds on is
//! [`ChainRpc::fetch_range`]: the headers of a block range and its logs, asked from **one provider
//! in one JSON-RPC batch**, so that an empty log list is only believed together with that same
//! provider's header of every block of the range (a node that has not reached a block answers
//! `null` there, not a hash). Ranges are sized by what the previous answers held and shrink on
//! range limits (`range.rs`, `limits.rs`); provider faults bench the provider and move the call to
//! the next one.

mod error;
pub mod evidence;
mod http;
mod layers;
pub mod limits;
pub mod metrics;
mod pool;
pub mod range;
pub mod records;
mod settle;
mod split;
mod types;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ::metrics::{counter, gauge};
use alloy::{
    primitives::U64,
    rpc::{
        client::{BatchRequest, ClientBuilder, Waiter},
        types::{Filter, Log},
    },
    transports::layers::ThrottleLayer,
};

pub use error::RpcError;
pub use evidence::Interest;
pub use pool::ProviderStatus;
pub use types::Header;

use pool::{Pool, Provider};
use tripwire_config::{redact_url, ChainConfig};

/// Index of a provider in its chain's pool.
pub type ProviderId = usize;

/// The headers and logs of an inclusive block range, as one provider saw them (or several, one
/// sub-range each, when a range limit split the request).
#[derive(Debug, Default)]
pub struct RangeData {
    pub headers: Vec<Header>,
    pub logs: Vec<Log>,
    /// The provider that answered the first sub-range (whose first header links to the cursor).
    pub provider: ProviderId,
}

/// Heads as known after a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Highest head any provider reported: the chain's head, for lag.
    pub best: u64,
    /// Highest head among providers that can be asked now: how far indexing can go.
    pub serving: u64,
}

/// The RPC providers of one chain. Cheap to clone.
#[derive(Clone)]
pub struct ChainRpc {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    timeout: Duration,
    range: range::AdaptiveRange,
    verify_ranges: bool,
    /// `verify_ranges` and `check_logs_bloom`: answers are checked against the blooms.
    check_bloom: bool,
    last_heads: Mutex<Option<(Instant, Heads)>>,
    /// Ranges that failed with an error no wording matched, and how often in a row (ranges in
    /// flight fail side by side, so one "last range" would never see a repetition).
    unrecognised: Mutex<std::collections::HashMap<(u64, u64), u32>>,
    /// Times the only provider was caught answering a block wrongly (see `settle.rs`).
    contradictions: Mutex<std::collections::HashMap<u64, u32>>,
}

/// Heads younger than this are not asked again (ranges in flight share one refresh).
const HEADS_FRESH: Duration = Duration::from_millis(200);
/// After the first provider answered its head, how long the others get before the refresh
/// returns without them (a hung provider must not hold up indexing).
const HEADS_GRACE: Duration = Duration::from_millis(150);

impl ChainRpc {
    /// Builds clients for every provider of the chain (no network traffic yet).
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
        let mut providers: Vec<Provider> = Vec::new();
        for p in chain.all_providers() {
            let url: url::Url = p
                .url
                .parse()
                .map_err(|e: url::ParseError| RpcError::Invalid {
                    provider: redact_url(&p.url),
                    method: "connect",
                    message: e.to_string(),
                })?;
            let mut label = p.name.clone().unwrap_or_else(|| redact_url(&p.url));
            // Two keys of one service redact to the same label: keep labels distinct.
            if providers.iter().any(|q| q.label == label) {
                label = format!("{label}#{}", providers.len() + 1);
            }
            let metrics = layers::MetricsLayer::new(&chain.name, &label);
            let transport = http::CappedHttp::new(http.clone(), url, chain.max_response_bytes);
            let local = transport.is_local();
            let client = match p.max_rps {
                Some(rps) => ClientBuilder::default()
                    .layer(metrics)
                    .layer(ThrottleLayer::new(rps))
                    .transport(transport, local),
                None => ClientBuilder::default()
                    .layer(metrics)
                    .transport(transport, local),
            };
            providers.push(Provider::new(label, p.weight, client));
        }
        let pool = Pool {
            chain: chain.name.clone(),
            providers,
            max_lag: chain.max_provider_lag_blocks,
        };
        pool.publish_all();
        Ok(ChainRpc {
            inner: Arc::new(Inner {
                pool,
                timeout,
                range: range::AdaptiveRange::new(
                    chain.range_blocks,
                    chain.range_target_logs,
                    chain.range_target_bytes,
                ),
                verify_ranges: chain.verify_ranges,
                check_bloom: chain.verify_ranges && chain.check_logs_bloom,
                last_heads: Mutex::new(None),
                unrecognised: Mutex::default(),
                contradictions: Mutex::default(),
            }),
        })
    }

    fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn chain(&self) -> &str {
        &self.inner.pool.chain
    }

    /// The provider's label.
    pub fn label(&self, id: ProviderId) -> &str {
        &self.pool().providers[id].label
    }

    /// Blocks per `eth_getLogs` now: sized by what the answers held, shrunk after range limits
    /// (see `range.rs`).
    pub fn range_blocks(&self) -> u64 {
        self.inner.range.current()
    }

    /// The same for at most `max_logs` logs per request (`None`: the configured targets only).
    pub fn range_blocks_within(&self, max_logs: Option<u64>) -> u64 {
        self.inner.range.span_within(max_logs)
    }

    /// Every provider's state, for `status` and the `rpc_providers` table.
    pub fn snapshot(&self) -> Vec<ProviderStatus> {
        self.pool().snapshot()
    }

    /// Time since a provider last reported the head (`None` before the first answer). Grows while
    /// every provider is down, which is what "indexer stalled" alerts watch.
    pub fn head_age(&self) -> Option<Duration> {
        self.inner
            .last_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(at, _)| at.elapsed())
    }

    /// Providers configured for the chain.
    pub fn provider_count(&self) -> usize {
        self.pool().providers.len()
    }

    /// Providers in rotation now.
    pub fn in_rotation(&self) -> usize {
        self.pool().in_rotation()
    }

    /// Checks that at least one provider answers and that every answering one serves `expected`.
    /// An unreachable provider is only benched: the others may carry the chain.
    pub async fn verify_chain_id(&self, expected: u64) -> Result<(), RpcError> {
        let mut errors = Vec::new();
        let mut reachable = 0;
        for (i, p) in self.pool().providers.iter().enumerate() {
            match self.call::<(), U64>(i, "eth_chainId", ()).await {
                Ok(id) if id.to::<u64>() == expected => reachable += 1,
                Ok(id) => {
                    return Err(RpcError::WrongChain {
                        chain: self.chain().to_owned(),
                        provider: p.label.clone(),
                        expected,
                        actual: id.to(),
                    })
                }
                Err(e) => {
                    self.pool().record_failure(i, &e);
                    tracing::warn!(chain = %self.chain(), error = %e, "RPC provider unreachable at start");
                    errors.push(e.to_string());
                }
            }
        }
        if reachable == 0 {
            return Err(RpcError::AllFailed {
                chain: self.chain().to_owned(),
                errors: errors.join("; "),
                unrecognised: false,
            });
        }
        Ok(())
    }

    /// Asks every provider that may be asked for its head (which also probes benched providers
    /// whose time is up) and returns the best heads. Waits for all answers only briefly after
    /// the first: slow providers update the pool when they answer.
    pub async fn heads(&self) -> Result<Heads, RpcError> {
        if let Some((at, heads)) = *self
            .inner
            .last_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            if at.elapsed() < HEADS_FRESH {
                return Ok(heads);
            }
        }
        let now = Instant::now();
        let pool = self.pool();
        let mut targets: Vec<ProviderId> = (0..pool.providers.len())
            .filter(|i| pool.providers[*i].claim_probe(now))
            .collect();
        if targets.is_empty() && pool.in_rotation() == 0 {
            // Every provider is benched: probe the one due first (the ingest's own backoff
            // caps how often this happens).
            targets = pool
                .candidates(None)
                .into_iter()
                .filter(|i| pool.providers[*i].claim_forced())
                .take(1)
                .collect();
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in targets.iter().copied() {
            let rpc = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = rpc.call::<(), U64>(i, "eth_blockNumber", ()).await;
                let pool = rpc.pool();
                match &result {
                    Ok(n) => {
                        pool.record_alive(i, started.elapsed());
                        pool.record_head(i, n.to::<u64>());
                    }
                    Err(e) => pool.record_failure(i, e),
                }
                pool.providers[i].end_probe();
                let _ = tx.send(result.map(|n| n.to::<u64>()));
            });
        }
        drop(tx);
        let mut answered = 0;
        let mut errors = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => break,
                },
                None => rx.recv().await,
            };
            match next {
                None => break,
                Some(Ok(_)) => {
                    answered += 1;
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + HEADS_GRACE);
                }
                Some(Err(e)) => errors.push(e),
            }
        }
        if answered == 0 && !errors.is_empty() {
            return Err(self.all_failed(&errors));
        }
        let serving = pool
            .candidates(None)
            .into_iter()
            .filter_map(|i| pool.providers[i].head())
            .max();
        let (Some(best), Some(serving)) = (pool.best_head(), serving) else {
            return Err(RpcError::NoProvider {
                chain: self.chain().to_owned(),
                reason: pool.unavailable_reason(),
            });
        };
        let heads = Heads { best, serving };
        gauge!(crate::metrics::BEST_HEAD, "chain" => self.chain().to_owned()).set(best as f64);
        *self
            .inner
            .last_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), heads));
        Ok(heads)
    }

    /// The block the indexer may go up to: the serving head.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        Ok(self.heads().await?.serving)
    }

    /// The header at `number` from the best provider (`None`: it does not have it) and who said so.
    pub async fn header(&self, number: u64) -> Result<(Option<Header>, ProviderId), RpcError> {
        let (h, i) = self
            .with_failover(Some(number), None, |i| async move {
                let h = self.header_on(i, number).await?;
                Ok((h, i))
            })
            .await?;
        if h.is_some() {
            return Ok((h, i));
        }
        // A provider can report a head and still lack the blocks just below it (a load balancer
        // in front of a lagging node). Its "no such block" is not the chain's: ask another one,
        // or the caller would retry the same provider for as long as its head probe looks fine.
        self.pool().record_missing(i, number);
        match self.header_elsewhere(number, i).await? {
            Some((Some(h), j)) => Ok((Some(h), j)),
            _ => Ok((None, i)),
        }
    }

    /// The header at `number` from a provider other than `exclude`: a second opinion. `Ok(None)`
    /// when no other provider could answer.
    pub async fn header_elsewhere(
        &self,
        number: u64,
        exclude: ProviderId,
    ) -> Result<Option<(Option<Header>, ProviderId)>, RpcError> {
        if self.pool().providers.len() < 2 {
            return Ok(None);
        }
        match self
            .with_failover(Some(number), Some(exclude), |i| async move {
                let h = self.header_on(i, number).await?;
                Ok((h, i))
            })
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(RpcError::NoProvider { .. } | RpcError::AllFailed { .. }) => Ok(None),
            Err(e) if e.is_provider_fault() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes a provider out of rotation for answering with another chain's block hash.
    pub fn penalize(&self, id: ProviderId, block: u64, detail: &str) {
        let e = RpcError::Invalid {
            provider: self.label(id).to_owned(),
            method: "eth_getBlockByNumber",
            message: format!("disagrees with the other providers on block {block}: {detail}"),
        };
        tracing::warn!(chain = %self.chain(), error = %e, "RPC provider on another fork");
        self.pool().record_failure(id, &e);
    }

    /// Headers of `from..=to` from one provider in one batch (`prefer` first when given); `None`
    /// where it lacks a block.
    pub async fn headers(
        &self,
        from: u64,
        to: u64,
        prefer: Option<ProviderId>,
    ) -> Result<(Vec<Option<Header>>, ProviderId), RpcError> {
        let attempt = |i: ProviderId| async move {
            let p = &self.pool().providers[i];
            let mut batch = p.client.new_batch();
            let waiters = self.add_header_calls(i, &mut batch, from, to)?;
            self.send_batch(i, batch, "eth_getBlockByNumber").await?;
            Ok((self.await_headers(i, waiters).await?, i))
        };
        if let Some(i) = prefer {
            let started = Instant::now();
            match self.timed(i, "eth_getBlockByNumber", attempt(i)).await {
                Ok(v) => {
                    self.pool().record_success(i, started.elapsed());
                    return Ok(v);
                }
                Err(e) => self.pool().record_failure(i, &e),
            }
        }
        let (headers, i) = self.with_failover(Some(to), None, attempt).await?;
        let Some(missing) = headers
            .iter()
            .zip(from..)
            .find_map(|(h, n)| h.is_none().then_some(n))
        else {
            return Ok((headers, i));
        };
        // As in [`Self::header`]: one provider's gap is not the chain's.
        self.pool().record_missing(i, missing);
        if self.pool().providers.len() > 1 {
            if let Ok((other, j)) = self.with_failover(Some(to), Some(i), attempt).await {
                if other.iter().all(Option::is_some) {
                    return Ok((other, j));
                }
            }
        }
        Ok((headers, i))
    }

    /// Headers and logs of `from..=to` for `addresses`. Each sub-range comes from one provider in
    /// one batch with its headers, so an empty log list is backed by that provider's headers. A
    /// range limit shrinks the range and the rest is fetched in smaller pieces; a single block
    /// that is still too large is split by address, then tried on every provider, then reported.
    pub async fn fetch_range(
        &self,
        from: u64,
        to: u64,
        interest: &Interest,
    ) -> Result<RangeData, RpcError> {
        let mut out = RangeData::default();
        let mut next = from;
        while next <= to {
            let end = to.min(next + self.inner.range.current() - 1);
            let attempt = self
                .with_failover(Some(end), None, |i| self.range_on(i, next, end, interest))
                .await;
            match self.limit_if_repeated(next, end, attempt) {
                Ok(data) => {
                    self.inner.range.success(end - next + 1);
                    self.inner.range.observe(
                        end - next + 1,
                        data.logs.len() as u64,
                        data.logs.iter().map(types::json_size).sum(),
                    );
                    self.forget_contradictions(end);
                    if next == from {
                        out.provider = data.provider;
                    }
                    out.headers.extend(data.headers);
                    out.logs.extend(data.logs);
                    next = end + 1;
                }
                Err(RpcError::RangeLimit {
                    max_blocks, style, ..
                }) if end > next => {
                    let span = self.inner.range.shrink(end - next + 1, max_blocks);
                    counter!(crate::metrics::RANGE_SHRINKS, "chain" => self.chain().to_owned(), "style" => style)
                        .increment(1);
                    tracing::debug!(chain = %self.chain(), from = next, to = end, span, "range limit: shrinking");
                }
                Err(e @ RpcError::RangeLimit { .. }) => {
                    let data = self.fetch_block_split(next, interest, e).await?;
                    self.forget_contradictions(end);
                    if next == from {
                        out.provider = data.provider;
                    }
                    out.headers.extend(data.headers);
                    out.logs.extend(data.logs);
                    next = end + 1;
                }
                Err(e) => return Err(e),
            }
            gauge!(crate::metrics::RANGE_BLOCKS, "chain" => self.chain().to_owned())
                .set(self.inner.range.current() as f64);
            if let Some((per_block, _)) = self.inner.range.density() {
                gauge!(crate::metrics::RANGE_LOGS_PER_BLOCK, "chain" => self.chain().to_owned())
                    .set(per_block);
            }
        }
        Ok(out)
    }

    /// One batch on provider `i`: the headers of `from..=to` and their logs, checked against the
    /// headers' blooms; blocks the bloom says may hold logs the answer lacks are settled by a
    /// second source before the answer is used.
    async fn range_on(
        &self,
        i: ProviderId,
        from: u64,
        to: u64,
        interest: &Interest,
    ) -> Result<RangeData, RpcError> {
        let p = &self.pool().providers[i];
        let mut batch = p.client.new_batch();
        let header_waiters = self.add_header_calls(i, &mut batch, from, to)?;
        // With no address nothing is asked for logs: an unfiltered eth_getLogs returns every log
        // of the chain.
        let logs_waiter = if interest.is_empty() {
            None
        } else {
            let filter = Filter::new()
                .from_block(from)
                .to_block(to)
                .address(interest.addresses());
            Some(
                batch
                    .add_call::<_, Vec<types::WireLog>>("eth_getLogs", &(filter,))
                    .map_err(|e| RpcError::from_alloy(&p.label, "eth_getLogs", e))?,
            )
        };
        self.send_batch(i, batch, "eth_getLogs").await?;
        let answered = self.await_headers(i, header_waiters).await;
        let logs: Vec<Log> = match logs_waiter {
            Some(w) => w
                .await
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getLogs", e))?
                .into_iter()
                .map(Log::from)
                .collect(),
            None => Vec::new(),
        };
        let mut headers = Vec::with_capacity((to - from + 1) as usize);
        for (h, n) in answered?.into_iter().zip(from..) {
            match h {
                Some(h) => headers.push(h),
                None if self.inner.verify_ranges => {
                    self.pool().record_missing(i, n);
                    return Err(RpcError::MissingBlock {
                        provider: p.label.clone(),
                        block: n,
                    });
                }
                // Unverified mode: take the header from whoever else has it and trust the logs.
                None => match self.header_elsewhere(n, i).await? {
                    Some((Some(h), _)) => headers.push(h),
                    _ => {
                        return Err(RpcError::MissingBlock {
                            provider: p.label.clone(),
                            block: n,
                        })
                    }
                },
            }
        }
        if self.inner.check_bloom && !interest.is_empty() {
            let findings = evidence::check(&headers, &logs, interest).map_err(|detail| {
                self.caught(i, headers.first().map_or(from, |h| h.number), detail)
            })?;
            if !findings.suspects.is_empty() {
                let suspects: Vec<Header> = findings.suspects.iter().map(|k| headers[*k]).collect();
                self.settle(i, &suspects, interest).await?;
            }
        }
        Ok(RangeData {
            headers,
            logs,
            provider: i,
        })
    }

    async fn header_on(&self, i: ProviderId, number: u64) -> Result<Option<Header>, RpcError> {
        self.call::<_, Option<Header>>(i, "eth_getBlockByNumber", (U64::from(number), false))
            .await
    }

    fn add_header_calls(
        &self,
        i: ProviderId,
        batch: &mut BatchRequest<'_>,
        from: u64,
        to: u64,
    ) -> Result<Vec<Waiter<Option<Header>>>, RpcError> {
        let label = &self.pool().providers[i].label;
        (from..=to)
            .map(|n| {
                batch
                    .add_call("eth_getBlockByNumber", &(U64::from(n), false))
                    .map_err(|e| RpcError::from_alloy(label, "eth_getBlockByNumber", e))
            })
            .collect()
    }

    async fn await_headers(
        &self,
        i: ProviderId,
        waiters: Vec<Waiter<Option<Header>>>,
    ) -> Result<Vec<Option<Header>>, RpcError> {
        let label = &self.pool().providers[i].label;
        let mut out = Vec::with_capacity(waiters.len());
        for w in waiters {
            out.push(
                w.await
                    .map_err(|e| RpcError::from_alloy(label, "eth_getBlockByNumber", e))?,
            );
        }
        Ok(out)
    }

    async fn send_batch(
        &self,
        i: ProviderId,
        batch: BatchRequest<'_>,
        method: &'static str,
    ) -> Result<(), RpcError> {
        batch
            .send()
            .await
            .map_err(|e| RpcError::from_alloy(&self.pool().providers[i].label, method, e))
    }

    async fn call<P, R>(
        &self,
        i: ProviderId,
        method: &'static str,
        params: P,
    ) -> Result<R, RpcError>
    where
        P: alloy::rpc::json_rpc::RpcSend,
        R: alloy::rpc::json_rpc::RpcRecv,
    {
        let p = &self.pool().providers[i];
        let fut = async {
            p.client
                .request(method, params)
                .await
                .map_err(|e| RpcError::from_alloy(&p.label, method, e))
        };
        self.timed(i, method, fut).await
    }

    /// `fut` with the chain's RPC timeout.
    async fn timed<T>(
        &self,
        i: ProviderId,
        method: &'static str,
        fut: impl std::future::Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout {
                provider: self.label(i).to_owned(),
                method,
                after: self.inner.timeout,
            }),
        }
    }

    fn all_failed(&self, errors: &[RpcError]) -> RpcError {
        RpcError::AllFailed {
            chain: self.chain().to_owned(),
            errors: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            unrecognised: !errors.is_empty() && errors.iter().all(RpcError::is_unrecognised_answer),
        }
    }

    /// Runs `op` on the best provider for a request needing block `needs`, moving to the next
    /// one within the same call when a provider fails. A range limit is returned at once (the
    /// caller shrinks the range); every other failure benches the provider.
    async fn with_failover<'a, T, F, Fut>(
        &'a self,
        needs: Option<u64>,
        exclude: Option<ProviderId>,
        op: F,
    ) -> Result<T, RpcError>
    where
        F: Fn(ProviderId) -> Fut,
        Fut: std::future::Future<Output = Result<T, RpcError>> + 'a,
    {
        let pool = self.pool();
        let candidates: Vec<ProviderId> = pool
            .candidates(needs)
            .into_iter()
            .filter(|i| Some(*i) != exclude)
            .collect();
        if candidates.is_empty() {
            return Err(RpcError::NoProvider {
                chain: self.chain().to_owned(),
                reason: pool.unavailable_reason(),
            });
        }
        let mut errors = Vec::new();
        let last = candidates.len() - 1;
        for (n, i) in candidates.into_iter().enumerate() {
            let started = Instant::now();
            match self.timed(i, "request", op(i)).await {
                Ok(v) => {
                    pool.record_success(i, started.elapsed());
                    return Ok(v);
                }
                Err(e) => {
                    pool.record_failure(i, &e);
                    if matches!(e, RpcError::RangeLimit { .. }) || e.is_fatal() {
                        return Err(e);
                    }
                    if n < last {
                        pool.count_failover(i);
                        tracing::debug!(chain = %self.chain(), error = %e, "RPC provider failed, trying the next");
                    }
                    errors.push(e);
                }
            }
        }
        if errors.len() == 1 {
            return Err(errors.pop().expect("one error"));
        }
        Err(self.all_failed(&errors))
    }
}
