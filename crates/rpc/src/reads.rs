//! What the pool reads from a chain: heads (a refresh shared by the ranges in flight, not held up
//! by a hung provider), headers, and block ranges with their logs (and, for contracts watching
//! them, their transactions and receipts), each from one provider in one batch and checked against
//! the headers before it is believed.

use std::time::Instant;

use alloy::{
    primitives::U64,
    rpc::types::{Filter, Log},
};

use crate::{evidence, types, Interest};
use crate::{Header, Heads, ProviderId, RangeData, RpcError, HEADS_FRESH, HEADS_GRACE};

impl crate::ChainRpc {
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
        self.pool()
            .metrics
            .best_head
            .get()
            .best_head_block
            .set(best as f64);
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
                    out.transactions.extend(data.transactions);
                    next = end + 1;
                }
                Err(RpcError::RangeLimit {
                    max_blocks, style, ..
                }) if end > next => {
                    let span = self.inner.range.shrink(end - next + 1, max_blocks);
                    self.pool()
                        .metrics
                        .shrinks
                        .get(&style)
                        .range_shrinks_total
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
                    out.transactions.extend(data.transactions);
                    next = end + 1;
                }
                Err(e) => return Err(e),
            }
            let metrics = &self.pool().metrics;
            metrics
                .range_blocks
                .get()
                .range_blocks
                .set(self.inner.range.current() as f64);
            if let Some((per_block, _)) = self.inner.range.density() {
                metrics.density.get().range_logs_per_block.set(per_block);
            }
        }
        Ok(out)
    }

    /// One batch on provider `i`: the headers of `from..=to` and their logs, checked against the
    /// headers' blooms; blocks the bloom says may hold logs the answer lacks are settled by a
    /// second source before the answer is used.
    pub(crate) async fn range_on(
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
        // The transactions ride in the same batch: proven against this provider's headers.
        let tx_waiters = match interest.transactions() {
            Some(_) => Some(self.add_tx_calls(i, &mut batch, from, to)?),
            None => None,
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
        let transactions = match (tx_waiters, interest.transactions()) {
            (Some(w), Some(watched)) => self.await_transactions(i, w, &headers, watched).await?,
            _ => Vec::new(),
        };
        Ok(RangeData {
            headers,
            logs,
            transactions,
            provider: i,
        })
    }
}
