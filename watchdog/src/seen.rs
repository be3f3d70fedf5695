//! Records recently seen, so that the at-least-once stream counts each log, transaction and block
//! once: a
//! record published twice (the ingest re-sends after a crash) or read twice is skipped. Keyed by
//! block hash, so a log re-included in another block after a reorg is new.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

/// How many blocks below the newest one are remembered; deeper duplicates cannot happen because
/// the ingest never re-sends more than its reorg window.
pub const DEFAULT_DEPTH: u64 = 1024;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// block number -> block hash -> (marker seen, log indexes seen, and transaction indexes seen
    /// with [`TX_MARK`] set)
    blocks: BTreeMap<u64, BTreeMap<B256, (bool, BTreeSet<u64>)>>,
    #[serde(default = "default_depth")]
    depth: u64,
}

/// Set on a transaction's index in the set of a block's log indexes: a log index never reaches
/// 2^63, and the saved state keeps the shape it had before transactions.
const TX_MARK: u64 = 1 << 63;

fn default_depth() -> u64 {
    DEFAULT_DEPTH
}

impl Seen {
    pub fn new(depth: u64) -> Self {
        Seen {
            blocks: BTreeMap::new(),
            depth,
        }
    }

    /// True the first time a log is offered.
    pub fn first_log(&mut self, block: u64, hash: B256, log_index: u64) -> bool {
        let fresh = self
            .blocks
            .entry(block)
            .or_default()
            .entry(hash)
            .or_default()
            .1
            .insert(log_index);
        self.prune();
        fresh
    }

    /// True the first time a transaction is offered.
    pub fn first_transaction(&mut self, block: u64, hash: B256, tx_index: u64) -> bool {
        self.first_log(block, hash, TX_MARK | tx_index)
    }

    /// True the first time a block marker is offered.
    pub fn first_block(&mut self, block: u64, hash: B256) -> bool {
        let entry = self
            .blocks
            .entry(block)
            .or_default()
            .entry(hash)
            .or_default();
        let fresh = !entry.0;
        entry.0 = true;
        self.prune();
        fresh
    }

    /// The newest block remembered.
    pub fn newest(&self) -> Option<u64> {
        self.blocks.last_key_value().map(|(&n, _)| n)
    }

    /// Whether a record of `block` not seen before is history rather than news: below the newest
    /// block remembered (a replay re-publishing old blocks, or a consumer re-reading them). The
    /// live stream only moves forward; after a reorg the retraction lowers the newest block first.
    pub fn is_history(&self, block: u64) -> bool {
        self.blocks
            .last_key_value()
            .is_some_and(|(&newest, _)| block < newest)
    }

    /// Whether anything of block `block` with `hash` was seen (its later logs are not history).
    pub fn has_block(&self, block: u64, hash: B256) -> bool {
        self.blocks
            .get(&block)
            .is_some_and(|m| m.contains_key(&hash))
    }

    /// Forgets orphaned blocks: they are gone from the chain, and nothing of them comes again.
    pub fn retract(&mut self, orphaned: &[(u64, B256)]) {
        for (n, h) in orphaned {
            if let Some(m) = self.blocks.get_mut(n) {
                m.remove(h);
                if m.is_empty() {
                    self.blocks.remove(n);
                }
            }
        }
    }

    fn prune(&mut self) {
        let Some((&newest, _)) = self.blocks.last_key_value() else {
            return;
        };
        let keep_from = newest.saturating_sub(self.depth);
        while let Some((&oldest, _)) = self.blocks.first_key_value() {
            if oldest >= keep_from {
                break;
            }
            self.blocks.remove(&oldest);
        }
    }

    /// Entries remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.blocks.values().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_count_once_and_reorgs_reset() {
        let mut s = Seen::new(4);
        let h = B256::with_last_byte(1);
        assert!(s.first_block(10, h));
        assert!(!s.first_block(10, h));
        assert!(s.first_log(10, h, 0));
        assert!(!s.first_log(10, h, 0));
        assert!(s.first_log(10, h, 1));
        // A transaction and a log of the same index are different records.
        assert!(s.first_transaction(10, h, 0));
        assert!(!s.first_transaction(10, h, 0));
        assert!(!s.first_log(10, h, 0));
        // The same height under another hash is another block.
        assert!(s.first_log(10, B256::with_last_byte(2), 0));
        s.retract(&[(10, h)]);
        assert!(s.first_log(10, h, 0));
        // Old blocks are forgotten.
        s.first_block(20, h);
        assert!(!s.blocks.contains_key(&10));
        let json = serde_json::to_value(&s).expect("serializes");
        let back: Seen = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, s);
    }

    #[test]
    fn history_is_below_the_newest_block_and_reorgs_lower_the_newest() {
        let mut s = Seen::new(1024);
        let (a, b) = (B256::with_last_byte(1), B256::with_last_byte(2));
        s.first_log(100, a, 0);
        assert!(!s.is_history(100) && !s.is_history(101));
        assert!(s.is_history(99), "a replayed older block");
        assert!(s.has_block(100, a) && !s.has_block(100, b));
        s.first_block(101, a);
        // A reorg orphans 101: the new fork's 101 is news again.
        s.retract(&[(101, a)]);
        assert!(!s.is_history(101));
    }
}
