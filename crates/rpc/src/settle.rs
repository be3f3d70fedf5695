//! Second sources for suspect blocks (see `evidence.rs`): a block whose bloom says it may hold
//! logs of interest, in an answer that has none for it. Another provider is asked for the
//! block's logs by block hash (with the block itself, so a provider that lacks the block cannot
//! testify to its emptiness); failing that, the block's receipts, checked against the header's
//! `receiptsRoot`, from any provider. Two sources agreeing on "no logs" settle a bloom false
//! positive. A provider caught answering wrongly is benched and counted; the only provider of a
//! chain caught on the same block again and again stops the ingest rather than let it store the
//! block as empty.

use std::time::Instant;

use alloy::rpc::types::{Filter, Log, TransactionReceipt};

use super::{
    evidence::{self, Interest, ReceiptsVerdict},
    ChainRpc, Header, ProviderId, RpcError,
};

/// Times the only provider may be caught on one block before the ingest stops.
pub(crate) const MAX_CONTRADICTIONS: u32 = 8;

impl ChainRpc {
    /// Settles the suspect blocks of provider `i`'s answer: `Ok` when a second source agrees
    /// they hold no logs of interest, [`RpcError::Inconsistent`] (or, for the only provider, in
    /// the end [`RpcError::Contradicted`]) when it shows logs, [`RpcError::Unsettled`] when no
    /// source could tell.
    pub(super) async fn settle(
        &self,
        i: ProviderId,
        suspects: &[Header],
        interest: &Interest,
    ) -> Result<(), RpcError> {
        let Some(last) = suspects.last().map(|h| h.number) else {
            return Ok(());
        };
        // The settlement runs inside provider `i`'s request, under its timeout: a second source
        // that hangs must end as "unsettled" (not `i`'s fault), never as a timeout of `i`.
        let deadline = Instant::now() + self.inner.timeout / 2;
        let mut errors = Vec::new();
        let others: Vec<ProviderId> = self
            .pool()
            .candidates(Some(last))
            .into_iter()
            .filter(|q| *q != i)
            .collect();
        for q in others.iter().copied() {
            if Instant::now() >= deadline {
                break;
            }
            let started = Instant::now();
            match self
                .within(
                    deadline,
                    q,
                    "eth_getLogs",
                    self.logs_by_hash(q, suspects, interest),
                )
                .await
            {
                Ok(Some(counts)) => {
                    self.pool().record_success(q, started.elapsed());
                    if let Some((h, n)) = suspects.iter().zip(&counts).find(|(_, n)| **n > 0) {
                        return Err(self.caught(
                            i,
                            h.number,
                            format!(
                                "answered no logs, {} returned {n} of the configured contracts for \
                                 block hash {} and the block's logsBloom agrees",
                                self.label(q),
                                h.hash
                            ),
                        ));
                    }
                    self.count_settled("false_positive", suspects.len());
                    return Ok(());
                }
                Ok(None) => errors.push(format!("{}: lacks the block", self.label(q))),
                Err(e) => {
                    // Out of the settlement's time is not the provider's fault.
                    if !matches!(e, RpcError::Timeout { .. }) {
                        self.pool().record_failure(q, &e);
                    }
                    errors.push(e.to_string());
                }
            }
        }
        // No other provider could testify: the receipts, from the same provider first.
        for q in std::iter::once(i).chain(others) {
            if Instant::now() >= deadline {
                errors.push("no time left to ask another source".into());
                break;
            }
            let started = Instant::now();
            match self
                .within(
                    deadline,
                    q,
                    "eth_getBlockReceipts",
                    self.receipts_of(q, suspects),
                )
                .await
            {
                Ok(all) => {
                    self.pool().record_success(q, started.elapsed());
                    let mut complete = true;
                    for (h, receipts) in suspects.iter().zip(all) {
                        let Some(receipts) = receipts else {
                            complete = false;
                            errors.push(format!(
                                "{}: no receipts for block {}",
                                self.label(q),
                                h.number
                            ));
                            break;
                        };
                        match evidence::judge_receipts(h, receipts, interest) {
                            ReceiptsVerdict::Verified(0) | ReceiptsVerdict::Unverified(0) => {}
                            ReceiptsVerdict::Verified(n) | ReceiptsVerdict::Unverified(n) => {
                                return Err(self.caught(
                                    i,
                                    h.number,
                                    format!(
                                        "answered no logs, but the block's receipts (from {}) \
                                         hold {n} of the configured contracts",
                                        self.label(q)
                                    ),
                                ));
                            }
                            ReceiptsVerdict::Mismatch => {
                                complete = false;
                                errors.push(format!(
                                    "{}: receipts of block {} do not match its receiptsRoot",
                                    self.label(q),
                                    h.number
                                ));
                                break;
                            }
                        }
                    }
                    if complete {
                        self.count_settled("false_positive", suspects.len());
                        return Ok(());
                    }
                }
                Err(e) => {
                    // Out of the settlement's time is not the provider's fault.
                    if !matches!(e, RpcError::Timeout { .. }) {
                        self.pool().record_failure(q, &e);
                    }
                    errors.push(e.to_string());
                }
            }
        }
        self.count_settled("unsettled", suspects.len());
        let block = suspects[0].number;
        let detail = errors.join("; ");
        if self.provider_count() == 1 {
            if let Some(e) = self.contradiction(i, block, &detail) {
                return Err(e);
            }
        }
        Err(RpcError::Unsettled {
            provider: self.label(i).to_owned(),
            block,
            detail,
        })
    }

    /// `fut` on provider `q`, given until `deadline`.
    async fn within<T>(
        &self,
        deadline: Instant,
        q: ProviderId,
        method: &'static str,
        fut: impl std::future::Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, fut).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout {
                provider: self.label(q).to_owned(),
                method,
                after: left,
            }),
        }
    }

    /// Provider `i` answered block `block` wrongly: counted, benched by the caller's failure
    /// record, and for the only provider of the chain, counted towards the stop.
    pub(super) fn caught(&self, i: ProviderId, block: u64, detail: String) -> RpcError {
        self.pool().providers[i]
            .metrics
            .counters
            .inconsistent_answers_total
            .increment(1);
        self.count_settled("caught", 1);
        tracing::warn!(chain = %self.chain(), provider = %self.label(i), block, %detail, "RPC provider answered wrongly");
        if self.provider_count() == 1 {
            if let Some(e) = self.contradiction(i, block, &detail) {
                return e;
            }
        }
        RpcError::Inconsistent {
            provider: self.label(i).to_owned(),
            block,
            detail,
        }
    }

    /// One more contradiction on `block`; the stop once there were too many.
    fn contradiction(&self, i: ProviderId, block: u64, detail: &str) -> Option<RpcError> {
        let mut seen = self
            .inner
            .contradictions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let times = seen.entry(block).or_default();
        *times += 1;
        (*times >= MAX_CONTRADICTIONS).then(|| RpcError::Contradicted {
            chain: self.chain().to_owned(),
            provider: self.label(i).to_owned(),
            block,
            times: *times,
            detail: detail.to_owned(),
        })
    }

    /// Blocks up to `to` were fetched and believed: their contradictions are history.
    pub(super) fn forget_contradictions(&self, to: u64) {
        self.inner
            .contradictions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|b, _| *b > to);
    }

    fn count_settled(&self, outcome: &'static str, n: usize) {
        self.pool()
            .metrics
            .bloom
            .get(&outcome)
            .bloom_suspects_total
            .increment(n as u64);
    }

    /// Logs of interest per block, asked of provider `q` by block hash, with each block by hash
    /// in the same batch; `None` when `q` lacks one of the blocks.
    async fn logs_by_hash(
        &self,
        q: ProviderId,
        blocks: &[Header],
        interest: &Interest,
    ) -> Result<Option<Vec<usize>>, RpcError> {
        let p = &self.pool().providers[q];
        let mut batch = p.client.new_batch();
        let mut waiters = Vec::with_capacity(blocks.len());
        for h in blocks {
            let block = batch
                .add_call::<_, Option<Header>>("eth_getBlockByHash", &(h.hash, false))
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getBlockByHash", e))?;
            let filter = Filter::new()
                .at_block_hash(h.hash)
                .address(interest.addresses());
            let logs = batch
                .add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getLogs", e))?;
            waiters.push((h.hash, block, logs));
        }
        self.send_batch(q, batch, "eth_getLogs").await?;
        let mut counts = Vec::with_capacity(blocks.len());
        let mut complete = true;
        for (hash, block, logs) in waiters {
            let block = block
                .await
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getBlockByHash", e))?;
            let logs = logs
                .await
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getLogs", e))?;
            if block.is_none_or(|b| b.hash != hash) {
                complete = false;
            }
            counts.push(
                logs.iter()
                    .filter(|l| !l.removed && l.block_hash == Some(hash))
                    .count(),
            );
        }
        Ok(complete.then_some(counts))
    }

    /// Each block's receipts from provider `q` in one batch (`None` where it has none).
    async fn receipts_of(
        &self,
        q: ProviderId,
        blocks: &[Header],
    ) -> Result<Vec<Option<Vec<TransactionReceipt>>>, RpcError> {
        let p = &self.pool().providers[q];
        let mut batch = p.client.new_batch();
        let waiters = blocks
            .iter()
            .map(|h| {
                batch
                    // A block hash (not its number) pins the block the header belongs to.
                    .add_call::<_, Option<Vec<TransactionReceipt>>>(
                        "eth_getBlockReceipts",
                        &(h.hash,),
                    )
                    .map_err(|e| RpcError::from_alloy(&p.label, "eth_getBlockReceipts", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.send_batch(q, batch, "eth_getBlockReceipts").await?;
        let mut out = Vec::with_capacity(blocks.len());
        for w in waiters {
            out.push(
                w.await
                    .map_err(|e| RpcError::from_alloy(&p.label, "eth_getBlockReceipts", e))?,
            );
        }
        Ok(out)
    }
}
