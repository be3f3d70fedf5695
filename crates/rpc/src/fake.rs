//! An in-memory [`ChainSource`] for tests (feature `test-utils`): a chain of headers, its logs,
//! deployed code and answers to contract calls, all set by the test, with one provider (id 0)
//! and a switch that makes every read fail as an unreachable pool would.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{keccak256, Address, Bytes, B256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolCall;

use crate::{
    At, CallError, ChainSource, Header, Heads, Interest, ProviderId, ProviderStatus, RangeData,
    RpcError,
};

/// The fake's one provider label.
pub const FAKE_PROVIDER: &str = "fake";

/// A chain held in memory. Cheap to clone; clones share the chain, so a test keeps one to change
/// what the code under test reads.
#[derive(Clone, Default)]
pub struct FakeChain {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    headers: BTreeMap<u64, Header>,
    logs: Vec<Log>,
    /// Address -> (first block with the code, the code).
    code: HashMap<Address, (u64, Bytes)>,
    /// (to, calldata) -> the answer, or the revert reason.
    calls: HashMap<(Address, Bytes), Result<Bytes, String>>,
    /// Every `(from, to, calldata)` of `eth_call`, in order.
    called: Vec<(Option<Address>, Address, Bytes)>,
    penalized: Vec<(ProviderId, u64, String)>,
    down: bool,
}

impl FakeChain {
    /// An empty chain: no blocks, no code, no answers.
    pub fn new() -> FakeChain {
        FakeChain::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a block linked to the current tip (block 0 when empty), with its timestamp 12 s
    /// after its parent's; returns its header.
    pub fn push_block(&self) -> Header {
        let mut s = self.state();
        let (number, parent_hash, timestamp) = match s.headers.last_key_value() {
            Some((n, h)) => (n + 1, h.hash, h.timestamp + 12),
            None => (0, B256::ZERO, 1_700_000_000),
        };
        let header = Header {
            number,
            hash: keccak256([number.to_be_bytes().as_slice(), parent_hash.as_slice()].concat()),
            parent_hash,
            timestamp,
            logs_bloom: None,
            receipts_root: None,
        };
        s.headers.insert(number, header);
        header
    }

    /// Appends blocks until the tip is `number`.
    pub fn extend_to(&self, number: u64) {
        while self
            .state()
            .headers
            .last_key_value()
            .is_none_or(|(n, _)| *n < number)
        {
            self.push_block();
        }
    }

    /// Sets (or replaces, as a reorg would) the header at its height.
    pub fn set_header(&self, header: Header) {
        self.state().headers.insert(header.number, header);
    }

    /// Adds a log; its `block_number` places it in ranges.
    pub fn push_log(&self, log: Log) {
        self.state().logs.push(log);
    }

    /// Deploys `code` at `address` from block `from_block` on (earlier blocks have none).
    pub fn deploy(&self, address: Address, from_block: u64, code: impl Into<Bytes>) {
        self.state().code.insert(address, (from_block, code.into()));
    }

    /// Answers `call` on `to` with `returns`.
    pub fn answer<C: SolCall>(&self, to: Address, call: &C, returns: &C::Return) {
        self.state().calls.insert(
            (to, Bytes::from(call.abi_encode())),
            Ok(Bytes::from(C::abi_encode_returns(returns))),
        );
    }

    /// Makes `call` on `to` revert with `reason`.
    pub fn revert<C: SolCall>(&self, to: Address, call: &C, reason: &str) {
        self.state()
            .calls
            .insert((to, Bytes::from(call.abi_encode())), Err(reason.to_owned()));
    }

    /// Every `eth_call` so far: (from, to, calldata), in order.
    pub fn calls(&self) -> Vec<(Option<Address>, Address, Bytes)> {
        self.state().called.clone()
    }

    /// Every [`ChainSource::penalize`] so far: (provider, block, detail).
    pub fn penalized(&self) -> Vec<(ProviderId, u64, String)> {
        self.state().penalized.clone()
    }

    /// While `down`, every read fails as if no provider answered.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    fn up(&self) -> Result<std::sync::MutexGuard<'_, State>, RpcError> {
        let s = self.state();
        if s.down {
            return Err(RpcError::AllFailed {
                chain: FAKE_PROVIDER.into(),
                errors: "the fake chain is down".into(),
                unrecognised: false,
            });
        }
        Ok(s)
    }

    fn tip(&self) -> Result<u64, RpcError> {
        Ok(self.up()?.headers.last_key_value().map_or(0, |(n, _)| *n))
    }

    fn headers_of(&self, from: u64, to: u64) -> Result<Vec<Option<Header>>, RpcError> {
        let s = self.up()?;
        Ok((from..=to).map(|n| s.headers.get(&n).copied()).collect())
    }

    fn range(&self, from: u64, to: u64, interest: &Interest) -> Result<RangeData, RpcError> {
        let headers = self.headers_of(from, to)?;
        // As the pool: a range is only believed with a header for every block.
        if let Some(n) = headers
            .iter()
            .zip(from..)
            .find_map(|(h, n)| h.is_none().then_some(n))
        {
            return Err(RpcError::MissingBlock {
                provider: FAKE_PROVIDER.into(),
                block: n,
            });
        }
        let addresses = interest.addresses();
        let logs = self
            .up()?
            .logs
            .iter()
            .filter(|l| l.block_number.is_some_and(|b| (from..=to).contains(&b)))
            .filter(|l| addresses.contains(&l.address()))
            .cloned()
            .collect();
        Ok(RangeData {
            headers: headers.into_iter().flatten().collect(),
            logs,
            provider: 0,
        })
    }

    fn code_at(&self, address: Address, at: At) -> Result<Bytes, RpcError> {
        let s = self.up()?;
        Ok(match (s.code.get(&address), at) {
            (Some((_, code)), At::Latest) => code.clone(),
            (Some((first, code)), At::Block(n)) if *first <= n => code.clone(),
            _ => Bytes::new(),
        })
    }

    fn eth_call(
        &self,
        to: Address,
        data: Bytes,
        from: Option<Address>,
    ) -> Result<Bytes, CallError> {
        let mut s = self.up()?;
        s.called.push((from, to, data.clone()));
        // Like a node calling an address without that function: an empty answer.
        match s.calls.get(&(to, data)) {
            Some(Ok(b)) => Ok(b.clone()),
            Some(Err(reason)) => Err(CallError::Reverted(reason.clone())),
            None => Ok(Bytes::new()),
        }
    }
}

impl ChainSource for FakeChain {
    fn heads(&self) -> impl Future<Output = Result<Heads, RpcError>> + Send {
        let tip = self.tip();
        async move {
            let tip = tip?;
            Ok(Heads {
                best: tip,
                serving: tip,
            })
        }
    }

    fn block_number(&self) -> impl Future<Output = Result<u64, RpcError>> + Send {
        std::future::ready(self.tip())
    }

    fn header(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<(Option<Header>, ProviderId), RpcError>> + Send {
        std::future::ready(
            self.headers_of(number, number)
                .map(|h| (h.into_iter().next().flatten(), 0)),
        )
    }

    fn header_elsewhere(
        &self,
        _number: u64,
        _exclude: ProviderId,
    ) -> impl Future<Output = Result<Option<(Option<Header>, ProviderId)>, RpcError>> + Send {
        // One provider: there is no second opinion, as with a pool of one.
        std::future::ready(Ok(None))
    }

    fn headers(
        &self,
        from: u64,
        to: u64,
        _prefer: Option<ProviderId>,
    ) -> impl Future<Output = Result<(Vec<Option<Header>>, ProviderId), RpcError>> + Send {
        std::future::ready(self.headers_of(from, to).map(|h| (h, 0)))
    }

    fn fetch_range(
        &self,
        from: u64,
        to: u64,
        interest: &Interest,
    ) -> impl Future<Output = Result<RangeData, RpcError>> + Send {
        std::future::ready(self.range(from, to, interest))
    }

    fn code(
        &self,
        address: Address,
        at: At,
    ) -> impl Future<Output = Result<Bytes, RpcError>> + Send {
        std::future::ready(self.code_at(address, at))
    }

    fn call_raw(
        &self,
        to: Address,
        data: Bytes,
        from: Option<Address>,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send {
        std::future::ready(self.eth_call(to, data, from))
    }

    fn label(&self, _id: ProviderId) -> &str {
        FAKE_PROVIDER
    }

    fn penalize(&self, id: ProviderId, block: u64, detail: &str) {
        self.state().penalized.push((id, block, detail.to_owned()));
    }

    fn provider_count(&self) -> usize {
        1
    }

    fn range_blocks_within(&self, _max_logs: Option<u64>) -> u64 {
        100
    }

    fn head_age(&self) -> Option<Duration> {
        None
    }

    fn snapshot(&self) -> Vec<ProviderStatus> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    alloy::sol! {
        interface ICounter {
            function count() external view returns (uint256);
        }
    }

    #[tokio::test]
    async fn reads_what_the_test_set() {
        let chain = FakeChain::new();
        chain.extend_to(5);
        assert_eq!(chain.block_number().await.unwrap(), 5);
        let (headers, _) = chain.headers(4, 6, None).await.unwrap();
        assert_eq!(headers[0].unwrap().hash, headers[1].unwrap().parent_hash);
        assert!(headers[2].is_none());
        assert!(matches!(
            chain.fetch_range(4, 6, &Interest::default()).await,
            Err(RpcError::MissingBlock { block: 6, .. })
        ));

        let a = Address::repeat_byte(1);
        chain.deploy(a, 3, vec![0x60, 0x00]);
        assert!(chain.code(a, At::Block(2)).await.unwrap().is_empty());
        assert!(!chain.code(a, At::Block(3)).await.unwrap().is_empty());

        chain.answer(
            a,
            &ICounter::countCall {},
            &alloy::primitives::U256::from(7),
        );
        let n = chain
            .call_sol(a, &ICounter::countCall {}, None)
            .await
            .unwrap();
        assert_eq!(n, alloy::primitives::U256::from(7));
        chain.revert(a, &ICounter::countCall {}, "no");
        assert!(matches!(
            chain.call_sol(a, &ICounter::countCall {}, None).await,
            Err(CallError::Reverted(r)) if r == "no"
        ));

        chain.set_down(true);
        assert!(chain.heads().await.is_err());
    }
}
