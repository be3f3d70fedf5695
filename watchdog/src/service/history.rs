//! Lost history is loud: records that left the broker before the watchdog read them.
//!
//! Kafka keeps a topic's records for its retention (the embedded broker only a few MiB); a
//! watchdog that was down longer, or started long after the indexer, finds its stored position
//! (or the topic's beginning) below the earliest offset still held, and the consumer silently
//! continues from there. The detectors never saw those records: this module counts them, at the
//! assignment (from the partition's low watermark) and while reading (an offset past the next
//! one expected: the ingest's producer is idempotent and not transactional, so its offsets have no
//! other gaps), and says which blocks to back-test with `tripwire-replay --mode detect`. The
//! health component `history:<topic>` stays degraded for [`DEGRADED_FOR`] after the last gap.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long `/health` reports a gap after it was found.
pub(super) const DEGRADED_FOR: Duration = Duration::from_secs(3600);

/// Records of one partition that were never read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Gap {
    pub partition: i32,
    /// The offsets missed: `from..to`.
    pub from: i64,
    pub to: i64,
    /// The last block read before the gap, if any was.
    pub block_before: Option<u64>,
    /// The block of the first record read after it, once one was.
    pub block_after: Option<u64>,
}

impl Gap {
    pub(super) fn missed(&self) -> i64 {
        self.to - self.from
    }

    /// The `tripwire-replay` command that back-tests the blocks the gap held (with what is known
    /// of them yet).
    pub(super) fn backtest(&self, chain: &str) -> String {
        let from = match self.block_before {
            Some(b) => format!(" --from-block {}", b + 1),
            None => " --from-block <the chain's start_block>".to_owned(),
        };
        let to = match self.block_after {
            Some(b) => format!(" --to-block {b}"),
            None => String::new(),
        };
        format!("tripwire-replay --chain {chain} --mode detect{from}{to}")
    }
}

/// Per partition of one topic: the next offset expected and the last block read.
#[derive(Debug, Default)]
pub(super) struct History {
    expect: BTreeMap<i32, i64>,
    last_block: BTreeMap<i32, u64>,
    /// The newest block the topic's saved state remembers: the last block read before a gap
    /// found right after a restart.
    saved_newest: Option<u64>,
    /// Gaps found at the assignment whose end block is not known yet.
    open: BTreeMap<i32, Gap>,
}

impl History {
    /// The scope was opened at these stored positions (a partition without one reads from the
    /// topic's beginning, offset 0), its saved state remembering blocks up to `newest`.
    pub(super) fn at(stored: &BTreeMap<i32, i64>, newest: Option<u64>) -> History {
        History {
            expect: stored.clone(),
            saved_newest: newest,
            ..History::default()
        }
    }

    fn before(&self, partition: i32) -> Option<u64> {
        self.last_block
            .get(&partition)
            .copied()
            .or(self.saved_newest)
    }

    /// The partition's earliest offset still held is `low`: a gap when the next record expected
    /// is below it. Returns it (its end block follows with the first record read).
    pub(super) fn assigned(&mut self, partition: i32, low: i64) -> Option<Gap> {
        let expect = self.expect.get(&partition).copied().unwrap_or(0);
        if low <= expect {
            return None;
        }
        let gap = Gap {
            partition,
            from: expect,
            to: low,
            block_before: self.before(partition),
            block_after: None,
        };
        self.expect.insert(partition, low);
        self.open.insert(partition, gap.clone());
        Some(gap)
    }

    /// The record at `offset` (of block `block`, when it is readable) was read. Returns a gap
    /// that ends here: one found at the assignment (now with its end block), or offsets skipped
    /// just now. The second element says whether the gap is new (to be counted).
    pub(super) fn read(
        &mut self,
        partition: i32,
        offset: i64,
        block: Option<u64>,
    ) -> Option<(Gap, bool)> {
        let expect = self.expect.get(&partition).copied().unwrap_or(0);
        self.expect.insert(partition, offset + 1);
        let before = self.before(partition);
        if let Some(b) = block {
            self.last_block.insert(partition, b);
        }
        if offset > expect {
            self.open.remove(&partition);
            return Some((
                Gap {
                    partition,
                    from: expect,
                    to: offset,
                    block_before: before,
                    block_after: block,
                },
                true,
            ));
        }
        let mut open = self.open.remove(&partition)?;
        open.block_after = block;
        Some((open, false))
    }
}

/// When each topic's last gap was found, for clearing its health component.
#[derive(Debug, Default)]
pub(super) struct Alarms {
    since: BTreeMap<String, Instant>,
}

impl Alarms {
    pub(super) fn raised(&mut self, topic: &str) {
        self.since.insert(topic.to_owned(), Instant::now());
    }

    /// Topics whose last gap is older than [`DEGRADED_FOR`]: their component clears.
    pub(super) fn expired(&mut self) -> Vec<String> {
        let done: Vec<String> = self
            .since
            .iter()
            .filter(|(_, t)| t.elapsed() >= DEGRADED_FOR)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &done {
            self.since.remove(k);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_below_the_earliest_offset_is_a_gap_closed_by_the_next_record() {
        let mut h = History::at(&[(0, 100)].into(), None);
        assert_eq!(h.assigned(0, 80), None, "the position is still held");
        let gap = h.assigned(0, 150).expect("a gap");
        assert_eq!((gap.from, gap.to, gap.missed()), (100, 150, 50));
        let (gap, new) = h.read(0, 150, Some(4_000)).expect("the gap's end");
        assert!(!new, "counted at the assignment already");
        assert_eq!(gap.block_after, Some(4_000));
        assert_eq!(
            gap.backtest("devnet"),
            "tripwire-replay --chain devnet --mode detect --from-block <the chain's start_block> --to-block 4000"
        );
        assert_eq!(h.read(0, 151, Some(4_000)), None);
    }

    #[test]
    fn offsets_skipped_while_reading_are_a_gap_between_two_blocks() {
        // No stored position: the beginning (0) is what is expected.
        let mut h = History::at(&BTreeMap::new(), None);
        assert_eq!(h.read(0, 0, Some(10)), None);
        assert_eq!(h.read(0, 1, Some(11)), None);
        let (gap, new) = h.read(0, 40, Some(25)).expect("a gap");
        assert!(new);
        assert_eq!((gap.from, gap.to, gap.block_before), (2, 40, Some(11)));
        assert_eq!(
            gap.backtest("devnet"),
            "tripwire-replay --chain devnet --mode detect --from-block 12 --to-block 25"
        );
        // A topic that starts past 0 for a new watchdog: the records before were lost too.
        let mut h = History::at(&BTreeMap::new(), None);
        assert_eq!(h.assigned(1, 7).map(|g| g.missed()), Some(7));
        // After a restart the saved state knows the last block read.
        let mut h = History::at(&[(0, 500)].into(), Some(90));
        let gap = h.assigned(0, 800).expect("a gap");
        assert_eq!(gap.block_before, Some(90));
    }
}
