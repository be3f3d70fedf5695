//! The order of one block's records on the stream: its transactions (by position in the block),
//! then its logs, then its marker. A consumer that has seen a block's marker has therefore seen
//! all of the block's records, transactions included.

use std::collections::BTreeMap;

use alloy_primitives::B256;

use crate::record::{StreamRecord, TransactionRecord};

/// Puts `transactions` into `records` (a block's logs then its marker, block after block, as the
/// ingest builds them): each block's transactions, ordered by `tx_index`, just before the block's
/// first record. A transaction is placed by its block's hash; one whose block has no marker in
/// `records` is refused ([`Unplaced`]): it belongs to no block of the range, which only a wrong
/// answer produces.
pub fn with_transactions(
    records: Vec<StreamRecord>,
    transactions: &[TransactionRecord],
) -> Result<Vec<StreamRecord>, Unplaced> {
    if transactions.is_empty() {
        return Ok(records);
    }
    // By block, then position: one lookup per marker, however many blocks the range has.
    let mut by_block: BTreeMap<(u64, B256), Vec<&TransactionRecord>> = BTreeMap::new();
    for t in transactions {
        by_block
            .entry((t.block_number, t.block_hash))
            .or_default()
            .push(t);
    }
    let mut out = Vec::with_capacity(records.len() + transactions.len());
    // Start of the current block's records in `out`: its transactions go there.
    let mut block_start = 0;
    for record in records {
        let marker = match &record {
            StreamRecord::Block(b) => Some((b.number, b.hash)),
            _ => None,
        };
        out.push(record);
        if let Some((number, hash)) = marker {
            if let Some(mut block_txs) = by_block.remove(&(number, hash)) {
                block_txs.sort_by_key(|t| t.tx_index);
                let block_txs = block_txs
                    .into_iter()
                    .map(|t| StreamRecord::Transaction(t.clone()));
                out.splice(block_start..block_start, block_txs);
            }
            block_start = out.len();
        }
    }
    if let Some(((number, hash), txs)) = by_block.into_iter().next() {
        return Err(Unplaced {
            block_number: number,
            block_hash: hash,
            tx_index: txs.first().map_or(0, |t| t.tx_index),
        });
    }
    Ok(out)
}

/// A transaction whose block is not among the records it was to join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "transaction {tx_index} of block {block_number} ({block_hash}) is of no block of the range"
)]
pub struct Unplaced {
    /// Its block's height.
    pub block_number: u64,
    /// Its block's hash.
    pub block_hash: B256,
    /// Its position in that block.
    pub tx_index: u64,
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, Bytes, U256};

    use super::*;
    use crate::record::{BlockMarker, LogRecord, TxStatus};

    fn hash(n: u64) -> B256 {
        B256::left_padding_from(&n.to_be_bytes())
    }

    fn tx(block: u64, tx_index: u64) -> TransactionRecord {
        TransactionRecord {
            chain_id: 1,
            block_number: block,
            block_hash: hash(block),
            block_timestamp: block,
            tx_hash: B256::repeat_byte(tx_index as u8),
            tx_index,
            from: Address::repeat_byte(1),
            to: Address::repeat_byte(2),
            value: U256::ZERO,
            selector: None,
            function: None,
            status: TxStatus::Success,
            gas_used: 21_000,
            gas_limit: 30_000,
            effective_gas_price: U256::from(1u64),
            contract: None,
        }
    }

    fn log(block: u64, log_index: u64) -> StreamRecord {
        StreamRecord::Log(LogRecord {
            chain_id: 1,
            block_number: block,
            block_hash: hash(block),
            block_timestamp: block,
            tx_hash: B256::ZERO,
            tx_index: 0,
            log_index,
            address: Address::repeat_byte(2),
            topics: vec![],
            data: Bytes::new(),
            contract: None,
            event: None,
        })
    }

    fn marker(block: u64, log_count: u32) -> StreamRecord {
        StreamRecord::Block(BlockMarker {
            chain_id: 1,
            number: block,
            hash: hash(block),
            parent_hash: hash(block - 1),
            timestamp: block,
            log_count,
        })
    }

    /// `t<block>.<index>`, `l<block>.<index>`, `b<block>`.
    fn names(records: &[StreamRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| match r {
                StreamRecord::Transaction(t) => format!("t{}.{}", t.block_number, t.tx_index),
                StreamRecord::Log(l) => format!("l{}.{}", l.block_number, l.log_index),
                StreamRecord::Block(b) => format!("b{}", b.number),
                StreamRecord::Retraction(_) => "r".into(),
            })
            .collect()
    }

    #[test]
    fn transactions_precede_their_blocks_logs_and_marker() {
        let records = vec![
            log(5, 0),
            log(5, 1),
            marker(5, 2),
            marker(6, 0),
            log(7, 0),
            marker(7, 1),
        ];
        // Out of order.
        let txs = [tx(7, 3), tx(5, 2), tx(6, 0), tx(5, 0)];
        assert_eq!(
            names(&with_transactions(records.clone(), &txs).unwrap()),
            ["t5.0", "t5.2", "l5.0", "l5.1", "b5", "t6.0", "b6", "t7.3", "l7.0", "b7"]
        );
        assert_eq!(with_transactions(records.clone(), &[]).unwrap(), records);
        // One of a block not in the records, or of another fork of block 7, is refused.
        let err = with_transactions(records.clone(), &[tx(5, 0), tx(9, 0)]).unwrap_err();
        assert_eq!((err.block_number, err.tx_index), (9, 0));
        let mut other_fork = tx(7, 9);
        other_fork.block_hash = B256::repeat_byte(0xee);
        let err = with_transactions(records, &[other_fork]).unwrap_err();
        assert_eq!(
            (err.block_number, err.block_hash),
            (7, B256::repeat_byte(0xee))
        );
    }
}
