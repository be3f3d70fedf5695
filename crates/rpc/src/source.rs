//! [`ChainSource`]: what the applications read from a chain, as a trait, so that the ingest, the
//! Safe reads and the replay's checks run against the provider pool ([`ChainRpc`], whose failover,
//! timeouts, bloom checks and metrics stay behind it) in production and against an in-memory
//! chain in tests (`fake.rs`, feature `test-utils`).
//!
//! Methods return `impl Future + Send` rather than being `async fn`: the ingest spawns its
//! fetches, which needs the futures to be `Send` whatever the implementation.

use std::future::Future;
use std::time::Duration;

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::SolCall;

use crate::{
    At, CallError, ChainRpc, Header, Heads, Interest, ProviderId, ProviderStatus, RangeData,
    RpcError,
};

/// A chain to read: heads, headers, proven log ranges, code and contract calls, plus the state of
/// the providers behind it (a single source reports one provider, id 0).
pub trait ChainSource: Clone + Send + Sync + 'static {
    /// The best heads known now (see [`Heads`]).
    fn heads(&self) -> impl Future<Output = Result<Heads, RpcError>> + Send;

    /// The block the indexer may go up to: the serving head.
    fn block_number(&self) -> impl Future<Output = Result<u64, RpcError>> + Send;

    /// The header at `number` (`None`: the source does not have it) and who said so.
    fn header(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<(Option<Header>, ProviderId), RpcError>> + Send;

    /// The header at `number` from a provider other than `exclude`; `Ok(None)` when no other one
    /// could answer.
    fn header_elsewhere(
        &self,
        number: u64,
        exclude: ProviderId,
    ) -> impl Future<Output = Result<Option<(Option<Header>, ProviderId)>, RpcError>> + Send;

    /// Headers of `from..=to` from one provider (`prefer` first when given); `None` where it lacks
    /// a block.
    fn headers(
        &self,
        from: u64,
        to: u64,
        prefer: Option<ProviderId>,
    ) -> impl Future<Output = Result<(Vec<Option<Header>>, ProviderId), RpcError>> + Send;

    /// Headers and logs of `from..=to` for `interest`, every log backed by the same provider's
    /// headers, and the transactions of the contracts watching them, proven against those
    /// headers' roots.
    fn fetch_range(
        &self,
        from: u64,
        to: u64,
        interest: &Interest,
    ) -> impl Future<Output = Result<RangeData, RpcError>> + Send;

    /// The code at `address` (empty: none).
    fn code(
        &self,
        address: Address,
        at: At,
    ) -> impl Future<Output = Result<Bytes, RpcError>> + Send;

    /// `eth_call` of `data` on `to` at the latest block, `from` someone when given.
    fn call_raw(
        &self,
        to: Address,
        data: Bytes,
        from: Option<Address>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send;

    /// A typed call of `C` on `to` (from `sol!`), decoded to its return type.
    fn call_sol<C: SolCall>(
        &self,
        to: Address,
        call: &C,
        from: Option<Address>,
    ) -> impl Future<Output = Result<C::Return, CallError>> + Send {
        // Encoded before the future so that it holds no borrow of `call`.
        let answer = self.call_raw(to, Bytes::from(call.abi_encode()), from);
        async move {
            let out = answer.await?;
            C::abi_decode_returns(&out).map_err(|e| CallError::Decode {
                function: C::SIGNATURE,
                bytes: out.len(),
                message: e.to_string(),
            })
        }
    }

    /// The provider's label, for errors and logs.
    fn label(&self, id: ProviderId) -> &str;

    /// Takes a provider out of rotation for answering with another chain's block hash.
    fn penalize(&self, id: ProviderId, block: u64, detail: &str);

    /// Providers behind the source.
    fn provider_count(&self) -> usize;

    /// Blocks per range for at most `max_logs` logs (`None`: the configured targets only).
    fn range_blocks_within(&self, max_logs: Option<u64>) -> u64;

    /// Time since a provider last reported the head (`None` before the first answer).
    fn head_age(&self) -> Option<Duration>;

    /// Every provider's state, for `status` and health.
    fn snapshot(&self) -> Vec<ProviderStatus>;
}

// Each method is the pool's own (inherent methods win over the trait's in `ChainRpc::…`).
impl ChainSource for ChainRpc {
    fn heads(&self) -> impl Future<Output = Result<Heads, RpcError>> + Send {
        ChainRpc::heads(self)
    }

    fn block_number(&self) -> impl Future<Output = Result<u64, RpcError>> + Send {
        ChainRpc::block_number(self)
    }

    fn header(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<(Option<Header>, ProviderId), RpcError>> + Send {
        ChainRpc::header(self, number)
    }

    fn header_elsewhere(
        &self,
        number: u64,
        exclude: ProviderId,
    ) -> impl Future<Output = Result<Option<(Option<Header>, ProviderId)>, RpcError>> + Send {
        ChainRpc::header_elsewhere(self, number, exclude)
    }

    fn headers(
        &self,
        from: u64,
        to: u64,
        prefer: Option<ProviderId>,
    ) -> impl Future<Output = Result<(Vec<Option<Header>>, ProviderId), RpcError>> + Send {
        ChainRpc::headers(self, from, to, prefer)
    }

    fn fetch_range(
        &self,
        from: u64,
        to: u64,
        interest: &Interest,
    ) -> impl Future<Output = Result<RangeData, RpcError>> + Send {
        ChainRpc::fetch_range(self, from, to, interest)
    }

    fn code(
        &self,
        address: Address,
        at: At,
    ) -> impl Future<Output = Result<Bytes, RpcError>> + Send {
        ChainRpc::code(self, address, at)
    }

    fn call_raw(
        &self,
        to: Address,
        data: Bytes,
        from: Option<Address>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        ChainRpc::call_raw(self, to, data, from)
    }

    fn label(&self, id: ProviderId) -> &str {
        ChainRpc::label(self, id)
    }

    fn penalize(&self, id: ProviderId, block: u64, detail: &str) {
        ChainRpc::penalize(self, id, block, detail)
    }

    fn provider_count(&self) -> usize {
        ChainRpc::provider_count(self)
    }

    fn range_blocks_within(&self, max_logs: Option<u64>) -> u64 {
        ChainRpc::range_blocks_within(self, max_logs)
    }

    fn head_age(&self) -> Option<Duration> {
        ChainRpc::head_age(self)
    }

    fn snapshot(&self) -> Vec<ProviderStatus> {
        ChainRpc::snapshot(self)
    }
}
