//! An in-memory [`ChainSource`] for tests (feature `test-utils`): a chain of headers, its logs,
//! full blocks with receipts (proven against the headers as the pool proves them, so a test can
//! make the fake lie: drop a receipt, flip a status), deployed code and answers to contract
//! calls, all set by the test, with one provider (id 0) and a switch that makes every read fail
//! as an unreachable pool would.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{keccak256, Address, Bytes, B256};
use alloy::rpc::types::{Log, TransactionReceipt};
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
    /// Block height -> its full block and receipts (blocks without an entry hold no transaction).
    tx_blocks: BTreeMap<u64, (crate::txs::TxBlock, Vec<TransactionReceipt>)>,
    chain_id: u64,
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

    /// Sets the chain id written into transaction records (0 until set).
    pub fn set_chain_id(&self, chain_id: u64) {
        self.state().chain_id = chain_id;
    }

    /// Sets the full block (with transactions) and the receipts of its height. The header at that
    /// height must carry the block's hash and roots (see [`FakeChain::set_header`]) for the
    /// answer to prove; ranges fetched for contracts watching transactions are proven.
    pub fn set_transactions(&self, block: crate::txs::TxBlock, receipts: Vec<TransactionReceipt>) {
        self.state()
            .tx_blocks
            .insert(block.number.to::<u64>(), (block, receipts));
    }

    /// Lies from now on: the receipts of block `number` lack the one at `index`.
    pub fn drop_receipt(&self, number: u64, index: usize) {
        if let Some((_, receipts)) = self.state().tx_blocks.get_mut(&number) {
            receipts.remove(index);
        }
    }

    /// Lies from now on: the receipt at `index` of block `number` has the other status.
    pub fn flip_status(&self, number: u64, index: usize) {
        if let Some((_, receipts)) = self.state().tx_blocks.get_mut(&number) {
            let mut json = serde_json::to_value(&receipts[index]).expect("a receipt serialises");
            let success = receipts[index].inner.status();
            json["status"] = if success { "0x0" } else { "0x1" }.into();
            receipts[index] = serde_json::from_value(json).expect("a receipt deserialises");
        }
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
        let headers: Vec<Header> = headers.into_iter().flatten().collect();
        let mut transactions = Vec::new();
        if let Some(watched) = interest.transactions() {
            let s = self.up()?;
            for h in &headers {
                let Some((block, receipts)) = s.tx_blocks.get(&h.number) else {
                    continue;
                };
                let lied = |e| RpcError::Inconsistent {
                    provider: FAKE_PROVIDER.into(),
                    block: h.number,
                    detail: format!("transactions of the block: {e}"),
                };
                let proven = crate::txs::prove(h, block.clone(), receipts.clone()).map_err(lied)?;
                transactions.extend(proven.records(s.chain_id, h, watched).map_err(lied)?);
            }
        }
        Ok(RangeData {
            headers,
            logs,
            transactions,
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

    /// A block anvil mined: two reverted calls to the contract at `0x5fbd…0aa3` among transfers.
    fn anvil_chain() -> (FakeChain, Interest) {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("testdata/anvil_block.json")).unwrap();
        let chain = FakeChain::new();
        chain.set_chain_id(31337);
        chain.extend_to(3);
        chain.set_header(serde_json::from_value(v["header"].clone()).unwrap());
        chain.set_transactions(
            serde_json::from_value(v["block"].clone()).unwrap(),
            serde_json::from_value(v["receipts"].clone()).unwrap(),
        );
        let spec = tripwire_config::ContractSpec {
            name: "reverter".into(),
            chain: "devnet".into(),
            addresses: vec![alloy::primitives::address!(
                "5fbdb2315678afecb367f032d93f642f64180aa3"
            )],
            abi: tripwire_config::ContractAbi::default(),
            start_block: None,
            transactions: tripwire_config::TxWatch::All,
        };
        (chain, crate::records::interest([&spec]))
    }

    #[tokio::test]
    async fn holds_proven_transactions_and_can_lie_about_them() {
        let (chain, interest) = anvil_chain();
        let data = chain.fetch_range(1, 3, &interest).await.unwrap();
        assert_eq!(data.transactions.len(), 2);
        assert!(data.transactions.iter().all(|t| t.block_number == 2));
        assert_eq!(data.transactions[0].chain_id, 31337);
        // Without transactions in the interest none are fetched.
        let none = chain
            .fetch_range(1, 3, &interest.without_transactions())
            .await
            .unwrap();
        assert!(none.transactions.is_empty());

        chain.flip_status(2, 1);
        let e = chain.fetch_range(1, 3, &interest).await.unwrap_err();
        assert!(
            matches!(&e, RpcError::Inconsistent { block: 2, detail, .. } if detail.contains("receiptsRoot")),
            "{e}"
        );
        let (chain, interest) = anvil_chain();
        chain.drop_receipt(2, 3);
        assert!(matches!(
            chain.fetch_range(2, 2, &interest).await,
            Err(RpcError::Inconsistent { block: 2, .. })
        ));
    }
}
