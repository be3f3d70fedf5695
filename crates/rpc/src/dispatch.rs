//! How a call reaches a provider: batches, timeouts, per-call metrics, and the failover that moves
//! a failed call to the next provider in rotation and reports every provider's failure at once.

use std::time::Instant;

use alloy::{
    primitives::U64,
    rpc::client::{BatchRequest, Waiter},
};

use crate::{Header, ProviderId, RpcError};

impl crate::ChainRpc {
    pub(crate) async fn header_on(
        &self,
        i: ProviderId,
        number: u64,
    ) -> Result<Option<Header>, RpcError> {
        self.call::<_, Option<Header>>(i, "eth_getBlockByNumber", (U64::from(number), false))
            .await
    }

    pub(crate) fn add_header_calls(
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

    pub(crate) async fn await_headers(
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

    pub(crate) async fn send_batch(
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

    pub(crate) async fn call<P, R>(
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
    pub(crate) async fn timed<T>(
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

    pub(crate) fn all_failed(&self, errors: &[RpcError]) -> RpcError {
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
    pub(crate) async fn with_failover<'a, T, F, Fut>(
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
