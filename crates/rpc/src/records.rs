//! Turns one provider's answer for a block range into stream records, block by block: the logs of a
//! block, then its marker (the transaction records, built and proven in `txs.rs`, come before the
//! logs of their block; the ingest places them). Checks that the answer is one consistent chain segment first.

use std::collections::HashMap;

use alloy::{primitives::Address, rpc::types::Log};
use tripwire_schema::{BlockMarker, LogRecord, StreamRecord, TransactionRecord};

use crate::{Header, Interest};
use tripwire_config::ContractSpec;

/// Address -> index into the chain's contracts.
pub type AddressBook = HashMap<Address, usize>;

/// Builds the address book of a chain's contracts.
pub fn address_book(contracts: &[ContractSpec]) -> AddressBook {
    contracts
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.addresses.iter().map(move |a| (*a, i)))
        .collect()
}

/// What to ask the providers for (and to check their answers against): every address of
/// `contracts`, with its events' topic0s when the ABI describes all of its logs, and the
/// transactions of those that watch them.
pub fn interest<'a>(contracts: impl IntoIterator<Item = &'a ContractSpec>) -> Interest {
    let contracts: Vec<&ContractSpec> = contracts.into_iter().collect();
    let mut entries = Vec::new();
    for c in contracts.iter().copied() {
        let topics = c.abi.topic0s();
        for a in &c.addresses {
            entries.push((*a, topics.clone()));
        }
    }
    Interest::new(entries.iter().map(|(a, t)| (*a, t.as_deref())))
        .with_transactions(crate::txs::TxInterest::new(contracts))
}

/// Why a range answer cannot be used as is.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// A header's parent hash is not the hash of the header before it (the block given): the
    /// provider switched forks mid-answer.
    #[error("headers do not form a chain at block {0} (the provider switched forks mid-answer)")]
    Broken(u64),
    /// A log's block hash differs from its block's header: the logs and headers come from
    /// different forks.
    #[error("log {log_index} of block {number} has block hash {log_hash}, the header says {header_hash}")]
    ForeignLog {
        /// Height of the block.
        number: u64,
        /// The log's position within its block.
        log_index: u64,
        /// The block hash the log carries.
        log_hash: String,
        /// The hash of the header at that height.
        header_hash: String,
    },
    /// A log lacks a field a mined log has (the field named), as pending logs do.
    #[error("log is missing {0} (a pending log?)")]
    Incomplete(&'static str),
    /// A log's block (the height given) is outside the range asked for.
    #[error("log of block {0} is outside the requested range")]
    OutOfRange(u64),
    /// A transaction is of no block of the range's headers.
    #[error("a transaction does not belong to the range")]
    ForeignTransaction(#[source] tripwire_schema::order::Unplaced),
}

/// Converts the range into records in stream order (per block: its transactions, its logs, its
/// marker). `headers` must be `from..=to` in order; `transactions` are the proven ones of the
/// range ([`crate::RangeData::transactions`]).
pub fn build(
    chain_id: u64,
    chain: &str,
    headers: &[Header],
    logs: Vec<Log>,
    transactions: &[TransactionRecord],
    contracts: &[ContractSpec],
    book: &AddressBook,
) -> Result<Vec<StreamRecord>, RangeError> {
    for w in headers.windows(2) {
        if w[1].parent_hash != w[0].hash || w[1].number != w[0].number + 1 {
            return Err(RangeError::Broken(w[1].number));
        }
    }
    let Some(first) = headers.first() else {
        return Ok(Vec::new());
    };
    let mut by_block: Vec<Vec<LogRecord>> = vec![Vec::new(); headers.len()];
    for log in logs {
        if log.removed {
            continue;
        }
        let number = log
            .block_number
            .ok_or(RangeError::Incomplete("blockNumber"))?;
        let idx = number
            .checked_sub(first.number)
            .filter(|i| (*i as usize) < headers.len())
            .ok_or(RangeError::OutOfRange(number))? as usize;
        let header = &headers[idx];
        let block_hash = log.block_hash.ok_or(RangeError::Incomplete("blockHash"))?;
        let log_index = log.log_index.ok_or(RangeError::Incomplete("logIndex"))?;
        if block_hash != header.hash {
            return Err(RangeError::ForeignLog {
                number,
                log_index,
                log_hash: block_hash.to_string(),
                header_hash: header.hash.to_string(),
            });
        }
        let address = log.inner.address;
        let contract = book.get(&address).map(|i| &contracts[*i]);
        if contract
            .and_then(|c| c.start_block)
            .is_some_and(|s| number < s)
        {
            continue;
        }
        let topics = log.inner.data.topics().to_vec();
        let data = log.inner.data.data.clone();
        let event = contract.and_then(|c| {
            if c.abi.is_empty() {
                return None;
            }
            let decoded = c.abi.decode(&topics, &data);
            if decoded.is_none() {
                crate::metrics::undecoded(chain, &c.name)
                    .logs_undecoded_total
                    .increment(1);
            }
            decoded
        });
        by_block[idx].push(LogRecord {
            chain_id,
            block_number: number,
            block_hash,
            block_timestamp: header.timestamp,
            tx_hash: log
                .transaction_hash
                .ok_or(RangeError::Incomplete("transactionHash"))?,
            tx_index: log
                .transaction_index
                .ok_or(RangeError::Incomplete("transactionIndex"))?,
            log_index,
            address,
            topics,
            data,
            contract: contract.map(|c| c.name.clone()),
            event,
        });
    }
    let total: usize = by_block.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total + headers.len());
    for (header, mut logs) in headers.iter().zip(by_block) {
        logs.sort_by_key(|l| l.log_index);
        let log_count = logs.len() as u32;
        out.extend(logs.into_iter().map(StreamRecord::Log));
        out.push(StreamRecord::Block(BlockMarker {
            chain_id,
            number: header.number,
            hash: header.hash,
            parent_hash: header.parent_hash,
            timestamp: header.timestamp,
            log_count,
        }));
    }
    tripwire_schema::order::with_transactions(out, transactions)
        .map_err(RangeError::ForeignTransaction)
}
