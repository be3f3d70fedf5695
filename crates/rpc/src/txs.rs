//! Transaction-level monitoring: the transactions sent to watched contracts, reverted ones
//! included (a revert emits no log, so the log stream cannot see them). For every block of a
//! range the provider of its header also gives the block with full transactions and its receipts;
//! both lists are proven against the block's roots (`transactionsRoot`, `receiptsRoot`) before a
//! record is built, so a provider cannot drop, add or alter one unnoticed. What is not covered by
//! a root is derived from what is: a transaction's hash from its encoding, its gas used from the
//! receipts' cumulative gas, its effective gas price from its fee fields and the block's base fee,
//! its sender from its signature.

use std::collections::HashMap;

use alloy::{
    consensus::{
        proofs::{calculate_receipt_root, calculate_transaction_root},
        transaction::SignerRecoverable as _,
        Transaction as _, TxEnvelope,
    },
    eips::eip2718::Encodable2718,
    primitives::{Address, FixedBytes, B256, U256, U64},
    rpc::types::{Transaction, TransactionReceipt},
};
use serde::Deserialize;
use tripwire_config::{ContractAbi, ContractSpec, TxWatch};
use tripwire_schema::{TransactionRecord, TxStatus};

use crate::Header;

/// One watched contract, as the transaction records need it.
#[derive(Debug, Clone)]
struct Watched {
    name: String,
    watch: TxWatch,
    abi: ContractAbi,
    start_block: Option<u64>,
}

/// The contracts of a chain whose transactions are watched, by address.
#[derive(Debug, Clone, Default)]
pub struct TxInterest {
    by_address: HashMap<Address, Watched>,
}

impl TxInterest {
    /// The watched contracts among `contracts` (`None`: no contract watches transactions, so no
    /// block needs its transactions fetched).
    pub fn new<'a>(contracts: impl IntoIterator<Item = &'a ContractSpec>) -> Option<TxInterest> {
        let mut by_address = HashMap::new();
        for c in contracts.into_iter().filter(|c| c.transactions.is_on()) {
            for a in &c.addresses {
                by_address.insert(
                    *a,
                    Watched {
                        name: c.name.clone(),
                        watch: c.transactions.clone(),
                        abi: c.abi.clone(),
                        start_block: c.start_block,
                    },
                );
            }
        }
        (!by_address.is_empty()).then_some(TxInterest { by_address })
    }

    /// Addresses whose transactions are watched.
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.by_address.keys()
    }
}

/// A block with its full transactions, as `eth_getBlockByNumber(n, true)` gives it: only the
/// fields the proofs and the records need.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxBlock {
    /// Block height.
    pub number: U64,
    /// Block hash: must be the header's.
    pub hash: B256,
    /// Root of the transactions trie.
    pub transactions_root: B256,
    /// Root of the receipts trie.
    pub receipts_root: B256,
    /// Base fee per gas (EIP-1559 blocks), for the effective gas price.
    #[serde(default)]
    pub base_fee_per_gas: Option<U64>,
    /// The transactions, in block order.
    pub transactions: Vec<Transaction>,
}

/// Why a block's transactions or receipts cannot be believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The full block is another block than the header at its height.
    #[error("the full block has hash {block}, the header says {header}")]
    OtherBlock {
        /// Hash of the full block.
        block: B256,
        /// Hash of the header.
        header: B256,
    },
    /// The full block and the header disagree on `receiptsRoot`.
    #[error("the full block's receiptsRoot is {block}, the header's {header}")]
    HeaderRoots {
        /// The full block's root.
        block: B256,
        /// The header's root.
        header: B256,
    },
    /// The transactions do not hash to `transactionsRoot`: one was dropped, added or altered.
    #[error("transactionsRoot mismatch: {count} transactions hash to {computed}, the block says {expected}")]
    TransactionsRoot {
        /// Transactions answered.
        count: usize,
        /// Root of the answered transactions.
        computed: B256,
        /// The block's root.
        expected: B256,
    },
    /// The receipts do not hash to `receiptsRoot`: one was dropped, added or altered.
    #[error(
        "receiptsRoot mismatch: {count} receipts hash to {computed}, the block says {expected}"
    )]
    ReceiptsRoot {
        /// Receipts answered.
        count: usize,
        /// Root of the answered receipts.
        computed: B256,
        /// The block's root.
        expected: B256,
    },
    /// The receipts are not those of the block's transactions, one for one and in order.
    #[error("receipt {index} is for transaction {receipt}, the block's is {transaction}")]
    ReceiptOrder {
        /// Position in the block.
        index: usize,
        /// The transaction hash the receipt names.
        receipt: B256,
        /// The hash of the block's transaction at that position.
        transaction: B256,
    },
    /// The sender the provider names is not the one the signature gives.
    #[error(
        "transaction {index} is from {claimed} in the answer, its signature gives {}",
        .recovered.map_or_else(|| "no sender".to_owned(), |a| a.to_string())
    )]
    Sender {
        /// Position in the block.
        index: usize,
        /// The `from` of the answer.
        claimed: Address,
        /// The signer recovered from the signature (`None`: the signature does not recover).
        recovered: Option<Address>,
    },
    /// As many receipts as transactions are needed.
    #[error("{receipts} receipts for {transactions} transactions")]
    ReceiptCount {
        /// Receipts answered.
        receipts: usize,
        /// Transactions in the block.
        transactions: usize,
    },
}

/// The block's transactions and receipts, proven against each other and the block's roots.
#[derive(Debug, Clone)]
pub struct ProvenBlock {
    block: TxBlock,
    /// Hash of each transaction, from its encoding.
    hashes: Vec<B256>,
    receipts: Vec<TransactionReceipt>,
}

/// Checks `block` and `receipts` against `header`: the same block hash, the transactions against
/// `transactionsRoot`, the receipts against `receiptsRoot` (the header's, when it carries one)
/// and one receipt per transaction, in order.
pub fn prove(
    header: &Header,
    block: TxBlock,
    receipts: Vec<TransactionReceipt>,
) -> Result<ProvenBlock, ProofError> {
    if block.hash != header.hash {
        return Err(ProofError::OtherBlock {
            block: block.hash,
            header: header.hash,
        });
    }
    if let Some(root) = header.receipts_root.filter(|r| *r != block.receipts_root) {
        return Err(ProofError::HeaderRoots {
            block: block.receipts_root,
            header: root,
        });
    }
    let envelopes: Vec<&TxEnvelope> = block.transactions.iter().map(|t| t.inner.inner()).collect();
    let computed = calculate_transaction_root(&envelopes);
    if computed != block.transactions_root {
        return Err(ProofError::TransactionsRoot {
            count: envelopes.len(),
            computed,
            expected: block.transactions_root,
        });
    }
    let primitive: Vec<_> = receipts
        .iter()
        .map(|r| r.inner.clone().into_primitives_receipt())
        .collect();
    let computed = calculate_receipt_root(&primitive);
    if computed != block.receipts_root {
        return Err(ProofError::ReceiptsRoot {
            count: receipts.len(),
            computed,
            expected: block.receipts_root,
        });
    }
    if receipts.len() != envelopes.len() {
        return Err(ProofError::ReceiptCount {
            receipts: receipts.len(),
            transactions: envelopes.len(),
        });
    }
    // The hash is computed, not read: the root covers the encoding, not the `hash` field.
    let hashes: Vec<B256> = envelopes.iter().map(|e| e.trie_hash()).collect();
    for (index, (r, h)) in receipts.iter().zip(&hashes).enumerate() {
        if r.transaction_hash != *h {
            return Err(ProofError::ReceiptOrder {
                index,
                receipt: r.transaction_hash,
                transaction: *h,
            });
        }
    }
    Ok(ProvenBlock {
        block,
        hashes,
        receipts,
    })
}

impl ProvenBlock {
    /// Hashes of the block's transactions, in order (for receipts fetched one by one).
    pub fn transaction_hashes(block: &TxBlock) -> Vec<B256> {
        block
            .transactions
            .iter()
            .map(|t| t.inner.inner().trie_hash())
            .collect()
    }

    /// Records of the transactions sent to a watched contract (and, for a function list, calling
    /// one of them), in block order. The sender of each is recovered from its signature (which
    /// the transactions root covers), not taken from the answer: a detector of who called a
    /// privileged function must not trust the provider's `from`.
    pub fn records(
        &self,
        chain_id: u64,
        header: &Header,
        watched: &TxInterest,
    ) -> Result<Vec<TransactionRecord>, ProofError> {
        let base_fee = self.block.base_fee_per_gas.map(|b| b.to::<u64>());
        let mut previous_cumulative = 0u64;
        let mut out = Vec::new();
        for (index, ((tx, receipt), hash)) in self
            .block
            .transactions
            .iter()
            .zip(&self.receipts)
            .zip(&self.hashes)
            .enumerate()
        {
            let cumulative = receipt.inner.cumulative_gas_used();
            let gas_used = cumulative.saturating_sub(previous_cumulative);
            previous_cumulative = cumulative;
            let envelope = tx.inner.inner();
            let Some(to) = envelope.to() else {
                continue;
            };
            let Some(contract) = watched.by_address.get(&to) else {
                continue;
            };
            if contract.start_block.is_some_and(|s| header.number < s) {
                continue;
            }
            let input = envelope.input();
            let selector = input
                .get(..4)
                .and_then(|s| FixedBytes::<4>::try_from(s).ok());
            if !contract.watch.matches(selector) {
                continue;
            }
            let claimed = tx.inner.signer();
            let recovered = envelope.recover_signer().ok();
            if recovered != Some(claimed) {
                return Err(ProofError::Sender {
                    index,
                    claimed,
                    recovered,
                });
            }
            out.push(TransactionRecord {
                chain_id,
                block_number: header.number,
                block_hash: header.hash,
                block_timestamp: header.timestamp,
                tx_hash: *hash,
                tx_index: index as u64,
                from: claimed,
                to,
                value: envelope.value(),
                selector,
                function: selector.and_then(|_| contract.abi.decode_call(input)),
                status: if receipt.inner.status() {
                    TxStatus::Success
                } else {
                    TxStatus::Reverted
                },
                gas_used,
                gas_limit: envelope.gas_limit(),
                effective_gas_price: U256::from(envelope.effective_gas_price(base_fee)),
                contract: Some(contract.name.clone()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "txs_tests.rs"]
mod tests;
