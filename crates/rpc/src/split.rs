//! What a range limit leaves to do: a single block whose logs exceed every answer's limit is
//! fetched address by address from whichever provider accepts it (every configured provider is
//! asked before the block is declared too large), and an error no wording recognises, repeated on
//! the same range, is read as a limit.

use std::time::Instant;

use super::{ChainRpc, Interest, ProviderId, RangeData, RpcError};

impl ChainRpc {
    /// An error the wording table does not know, seen twice in a row for the same range of more
    /// than one block, is taken for a limit: the range halves instead of failing for good.
    pub(super) fn limit_if_repeated<T>(
        &self,
        from: u64,
        to: u64,
        result: Result<T, RpcError>,
    ) -> Result<T, RpcError> {
        let mut failed = self
            .inner
            .unrecognised
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let e = match result {
            Ok(v) => {
                failed.remove(&(from, to));
                return Ok(v);
            }
            Err(e) if to > from && e.is_unrecognised_answer() => e,
            Err(e) => return Err(e),
        };
        if failed.len() > 256 {
            failed.clear();
        }
        let seen = failed.entry((from, to)).or_default();
        *seen += 1;
        if *seen < 2 {
            return Err(e);
        }
        failed.remove(&(from, to));
        tracing::warn!(chain = %self.chain(), from, to, error = %e, "unrecognised error repeated on the same range: treating it as a range limit");
        Err(RpcError::RangeLimit {
            provider: e.provider().unwrap_or("-").to_owned(),
            method: "eth_getLogs",
            style: "unrecognised-repeated",
            max_blocks: None,
            message: e.to_string(),
        })
    }

    /// One block whose logs exceed a limit: fetch them address by address, each from the first
    /// provider that accepts it. Every configured provider is asked, a benched one once its bench
    /// is over (waiting up to the RPC timeout for it): the block is reported too large only when
    /// every provider refused it with a limit. Any other failure leaves it to a later attempt.
    pub(super) async fn fetch_block_split(
        &self,
        block: u64,
        interest: &Interest,
        first: RpcError,
    ) -> Result<RangeData, RpcError> {
        let mut out = RangeData::default();
        for (n, address) in interest.addresses().iter().enumerate() {
            // The block's transactions are asked once, with the first address's logs.
            let only = if n == 0 {
                interest.only(*address)
            } else {
                interest.only(*address).without_transactions()
            };
            let mut errors = vec![first.clone()];
            let mut done = None;
            let mut order = self.pool().candidates(Some(block));
            let rest: Vec<ProviderId> = (0..self.provider_count())
                .filter(|i| !order.contains(i))
                .collect();
            order.extend(rest);
            for i in order {
                if let Some(wait) = self.pool().bench_remaining(i) {
                    if wait > self.inner.timeout {
                        errors.push(RpcError::Invalid {
                            provider: self.label(i).to_owned(),
                            method: "eth_getLogs",
                            message: format!(
                                "out of rotation for another {:.1}s, not asked",
                                wait.as_secs_f64()
                            ),
                        });
                        continue;
                    }
                    tokio::time::sleep(wait).await;
                }
                let started = Instant::now();
                match self
                    .timed(i, "eth_getLogs", self.range_on(i, block, block, &only))
                    .await
                {
                    Ok(d) => {
                        self.pool().record_success(i, started.elapsed());
                        done = Some(d);
                        break;
                    }
                    Err(e) => {
                        self.pool().record_failure(i, &e);
                        errors.push(e);
                    }
                }
            }
            let Some(d) = done else {
                let text = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                // Refused by every provider: a fact about the block, not a passing fault.
                let refused: std::collections::BTreeSet<&str> = errors
                    .iter()
                    .filter(|e| matches!(e, RpcError::RangeLimit { .. }))
                    .filter_map(RpcError::provider)
                    .collect();
                if refused.len() >= self.provider_count() {
                    return Err(RpcError::BlockTooLarge {
                        chain: self.chain().to_owned(),
                        block,
                        address: address.to_string(),
                        errors: text,
                    });
                }
                return Err(RpcError::AllFailed {
                    chain: self.chain().to_owned(),
                    errors: format!(
                        "block {block} of {address}: not every provider could be asked: {text}"
                    ),
                    unrecognised: false,
                });
            };
            if n == 0 {
                out.provider = d.provider;
                out.headers = d.headers;
            } else if out.headers != d.headers {
                // Another provider on another fork for this address: not one consistent answer.
                return Err(RpcError::Invalid {
                    provider: self.label(d.provider).to_owned(),
                    method: "eth_getBlockByNumber",
                    message: format!("block {block} differs between providers"),
                });
            }
            out.logs.extend(d.logs);
            out.transactions.extend(d.transactions);
        }
        out.logs.sort_by_key(|l| l.log_index);
        Ok(out)
    }
}
