//! How far the ingest is ahead of the sink: what the chain's topic holds beyond the sink's
//! stored position, in records and in bytes (see `tripwire_config::flow` for why both).
//!
//! Records are counted from offsets. Bytes are counted as the broker keeps them, compressed: for
//! the groups of records this process published that the sink has not stored yet, the bytes the
//! producer sent since the oldest of them ([`tripwire_kafka::SentBytes`], which also counts request
//! framing, so it is an upper bound), plus the uncompressed size of the groups the producer's
//! statistics do not cover yet. Records in the topic from before this process started have no
//! known size; while the sink is behind them, a byte limit counts as reached, so a restarted
//! ingest waits until the sink caught up with them (with the embedded broker the topic starts
//! empty, so this never happens there). Records another producer wrote between this process's
//! groups (a replay re-publishing history, a second ingest during a hand-over) are sized like
//! this process's own: their count times the average size of the unstored groups' records, as
//! the broker is expected to keep them.

use std::collections::{BTreeMap, VecDeque};

use super::{ChainIngest, IngestError, RecordPublisher};
use tripwire_config::LeadLimit;
use tripwire_rpc::ChainSource;

/// What this process produced, as far as the sink may not have stored it.
#[derive(Debug, Default)]
pub(super) struct Produced {
    /// Offset after the last record known to be in the topic, per partition.
    next: BTreeMap<i32, i64>,
    /// Per partition: records below this offset were in the topic before this process started.
    unknown_below: BTreeMap<i32, i64>,
    /// Acknowledged groups, oldest first, until the sink stored them.
    groups: VecDeque<SentGroup>,
    /// Bytes sent per uncompressed byte, as last measured over the groups the statistics cover
    /// (an upper bound: the measurement includes request framing and perhaps later groups).
    ratio: Option<f64>,
}

/// Margin on the measured compression ratio for groups the statistics do not cover yet.
const RATIO_MARGIN: f64 = 2.0;

/// One acknowledged group of records.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentGroup {
    pub partition: i32,
    /// Offset after its last record.
    pub end: i64,
    /// Key and payload bytes, uncompressed.
    pub bytes: u64,
    /// Records of this process in it (the offsets between groups may hold others').
    pub records: u64,
    /// What the producer had sent before the group (a lower bound, read before publishing).
    pub sent_before: u64,
    /// The producer's statistics event count when the acknowledgements were in: a later event
    /// includes the group's bytes.
    pub updates_at_ack: u64,
}

impl Produced {
    /// Nothing known yet (before the first acknowledgement or the first look at the topic).
    pub(super) fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// The topic's end offsets, for a process that has produced nothing yet.
    fn start_at(&mut self, ends: impl IntoIterator<Item = (i32, i64)>) {
        for (p, end) in ends {
            let next = self.next.entry(p).or_default();
            *next = (*next).max(end);
            self.unknown_below.insert(p, end);
        }
    }

    /// Kafka acknowledged every record of `group`.
    pub(super) fn acknowledged(&mut self, group: SentGroup) {
        let next = self.next.entry(group.partition).or_default();
        *next = (*next).max(group.end);
        self.groups.push_back(group);
    }

    /// What an uncompressed byte of a group the statistics do not cover counts: twice the
    /// measured ratio, at most 1.
    fn factor(&self) -> f64 {
        self.ratio.map_or(1.0, |r| (r * RATIO_MARGIN).min(1.0))
    }

    /// Records and bytes beyond `sunk` (the sink's next offset per partition; a partition it has
    /// not stored yet counts from 0), given what the producer has `sent` now as `(bytes, event
    /// count)`. Bytes are `None` when some of those records have no known size.
    fn lead(&mut self, sunk: &BTreeMap<i32, i64>, sent: (u64, u64)) -> (u64, Option<u64>) {
        let from = |p: &i32| sunk.get(p).copied().unwrap_or(0);
        let records = self
            .next
            .iter()
            .map(|(p, next)| (next - from(p)).max(0) as u64)
            .sum();
        while self
            .groups
            .front()
            .is_some_and(|g| g.end <= from(&g.partition))
        {
            self.groups.pop_front();
        }
        if self.unknown_below.iter().any(|(p, end)| from(p) < *end) {
            return (records, None);
        }
        let Some(oldest) = self.groups.front() else {
            return (records, Some(0));
        };
        let (now, updates) = sent;
        let sent_since = now.saturating_sub(oldest.sent_before);
        let (covered, uncovered) = self.groups.iter().fold((0u64, 0u64), |(c, u), g| {
            if g.updates_at_ack < updates {
                (c + g.bytes, u)
            } else {
                (c, u + g.bytes)
            }
        });
        if covered > 0 {
            self.ratio = Some((sent_since as f64 / covered as f64).min(1.0));
        }
        // Groups the statistics do not cover yet count at twice the measured ratio (at most
        // their uncompressed size): they are the last few milliseconds of traffic, and the
        // default limit leaves a fifth of the broker's partition for such an estimate.
        let factor = self.factor();
        // Offsets ahead of the sink that none of this process's unstored groups holds.
        let mut own: BTreeMap<i32, u64> = BTreeMap::new();
        for g in &self.groups {
            *own.entry(g.partition).or_default() += g.records;
        }
        let foreign: u64 = self
            .next
            .iter()
            .map(|(p, next)| {
                let ahead = (next - from(p)).max(0) as u64;
                ahead.saturating_sub(own.get(p).copied().unwrap_or(0))
            })
            .sum();
        let own_records: u64 = own.values().sum();
        let foreign_bytes = if foreign == 0 || own_records == 0 {
            0
        } else {
            let per_record = (covered + uncovered) as f64 / own_records as f64;
            (foreign as f64 * per_record * factor).ceil() as u64
        };
        (
            records,
            Some(sent_since + (uncovered as f64 * factor).ceil() as u64 + foreign_bytes),
        )
    }
}

/// The lead against its limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lead {
    pub records: u64,
    /// `None`: unknown (records from before this process that the sink has not stored).
    pub bytes: Option<u64>,
    pub limit: LeadLimit,
    /// What a record byte is expected to take in the broker: the measured compression ratio
    /// with its margin (1 until measured), as groups the statistics do not cover are counted.
    pub factor: f64,
}

impl Lead {
    /// Records and bytes that may still be published: `(records, bytes)`, `None` where unlimited.
    pub(super) fn room(&self) -> (Option<u64>, Option<u64>) {
        let records = self.limit.records.map(|l| l.saturating_sub(self.records));
        let bytes = self
            .limit
            .bytes
            .map(|l| self.bytes.map_or(0, |b| l.saturating_sub(b)));
        (records, bytes)
    }

    /// Nothing more may be published until the sink moves.
    pub(super) fn is_full(&self) -> bool {
        let (records, bytes) = self.room();
        records == Some(0) || bytes == Some(0)
    }

    /// Whether a group of `records` records and `bytes` bytes (uncompressed) fits the room
    /// left, its bytes counted as the broker is expected to keep them. (The caller lets a single
    /// block larger than the whole limit go alone once the sink has caught up.)
    pub(super) fn admits(&self, records: u64, bytes: u64) -> bool {
        let (r, b) = self.room();
        let kept = (bytes as f64 * self.factor).ceil() as u64;
        r.is_none_or(|r| records <= r) && b.is_none_or(|b| kept <= b)
    }

    /// For `/health`: the lead and the limit that holds it back.
    pub(super) fn describe(&self) -> String {
        let bytes = self
            .bytes
            .map_or("an unknown number of bytes".to_owned(), |b| {
                format!("{b} bytes")
            });
        let mut limits = Vec::new();
        if let Some(r) = self.limit.records {
            limits.push(format!("kafka.max_lead_records = {r}"));
        }
        if let Some(b) = self.limit.bytes {
            limits.push(format!("kafka.max_lead_bytes = {b}"));
        }
        format!(
            "waiting for the sink: {} records ({bytes}) ahead ({})",
            self.records,
            limits.join(", ")
        )
    }
}

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// How far the topic is ahead of the sink's stored position (`None`: no limit set). Before
    /// the first acknowledgement of this process the topic's end offsets stand in for what it
    /// produced, so a restarted ingest is held back exactly like a running one.
    pub(super) async fn sink_lead(&mut self) -> Result<Option<Lead>, IngestError> {
        let Some(bp) = self.backpressure.clone() else {
            return Ok(None);
        };
        if self.produced.is_empty() {
            let ends = self.topic_ends().await?;
            self.produced.start_at(ends);
        }
        let stored =
            tripwire_store::positions::of_topic(&self.pool, &bp.consumer, &self.topic).await?;
        let (records, bytes) = self.produced.lead(&stored, self.sent.read());
        Ok(Some(Lead {
            records,
            bytes,
            limit: bp.limit,
            factor: self.produced.factor(),
        }))
    }

    /// The end offset of every partition of the chain's topic, as the broker reports it.
    async fn topic_ends(&self) -> Result<BTreeMap<i32, i64>, IngestError> {
        Ok(self.producer.end_offsets(&self.topic).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(records: Option<u64>, bytes: Option<u64>) -> LeadLimit {
        LeadLimit { records, bytes }
    }

    /// A group of 10 records.
    fn group(end: i64, bytes: u64, sent_before: u64, updates_at_ack: u64) -> SentGroup {
        SentGroup {
            partition: 0,
            end,
            bytes,
            records: 10,
            sent_before,
            updates_at_ack,
        }
    }

    #[test]
    fn records_of_another_producer_between_groups_count_at_the_groups_size() {
        let mut p = Produced::default();
        p.start_at([(0, 0)]);
        // Two groups of 10 records (6,000 bytes each, ~1,000 sent), and 30 records of a replay
        // between them (offsets 10..40).
        p.acknowledged(group(10, 6_000, 0, 1));
        p.acknowledged(group(50, 6_000, 1_000, 2));
        // Measured ratio 2,000 / 12,000, doubled: a record byte counts 1/3. The 30 foreign
        // records count as 30 * 600 / 3 = 6,000 bytes on top of the 2,000 sent.
        assert_eq!(p.lead(&BTreeMap::new(), (2_000, 3)), (50, Some(8_000)));
        // The sink stored the first group and the replay's records: only the second group left.
        assert_eq!(p.lead(&[(0, 40)].into(), (2_000, 3)), (10, Some(1_000)));
    }

    #[test]
    fn bytes_are_what_was_sent_since_the_oldest_unstored_group() {
        let mut p = Produced::default();
        p.start_at([(0, 0)]);
        // Three groups of 10 records, 6,000 bytes each, compressed to ~1,000 on the wire.
        p.acknowledged(group(10, 6_000, 0, 1));
        p.acknowledged(group(20, 6_000, 1_000, 2));
        p.acknowledged(group(30, 6_000, 2_000, 3));
        // Statistics after all three: what was sent since the first.
        assert_eq!(p.lead(&BTreeMap::new(), (3_000, 4)), (30, Some(3_000)));
        // The sink stored the first group: counted from the second one's start.
        assert_eq!(p.lead(&[(0, 10)].into(), (3_000, 4)), (20, Some(2_000)));
        // Half of the second group stored: the whole group still counts.
        assert_eq!(p.lead(&[(0, 15)].into(), (3_000, 4)), (15, Some(2_000)));
        assert_eq!(p.lead(&[(0, 30)].into(), (3_000, 4)), (0, Some(0)));
    }

    #[test]
    fn groups_the_statistics_do_not_cover_count_uncompressed() {
        let mut p = Produced::default();
        p.start_at([(0, 0)]);
        p.acknowledged(group(10, 6_000, 0, 1));
        p.acknowledged(group(20, 6_000, 1_000, 2));
        // No event since either group: both count in full on top of what was sent.
        assert_eq!(p.lead(&BTreeMap::new(), (1_000, 1)), (20, Some(13_000)));
        // The last statistics event (number 2) came before the second group's acknowledgements:
        // the first group measured a ratio of 1/6, the second counts at twice that.
        assert_eq!(p.lead(&BTreeMap::new(), (1_000, 2)), (20, Some(3_000)));
    }

    #[test]
    fn records_from_before_this_process_have_no_known_size() {
        let mut p = Produced::default();
        p.start_at([(0, 50)]);
        p.acknowledged(group(51, 100, 0, 1));
        assert_eq!(p.lead(&[(0, 40)].into(), (100, 2)), (11, None));
        assert_eq!(p.lead(&[(0, 50)].into(), (100, 2)), (1, Some(100)));
        let lead = Lead {
            records: 11,
            bytes: None,
            limit: limit(None, Some(1_000)),
            factor: 1.0,
        };
        assert!(lead.is_full(), "unknown bytes count as the limit reached");
    }

    #[test]
    fn a_group_fits_the_room_left() {
        let lead = Lead {
            records: 10,
            bytes: Some(1_000),
            limit: limit(Some(100), Some(4_000)),
            factor: 1.0,
        };
        assert_eq!(lead.room(), (Some(90), Some(3_000)));
        assert!(lead.admits(90, 3_000));
        assert!(!lead.admits(91, 10));
        assert!(!lead.admits(1, 3_001));
        // Compressed to a sixth, counted at a third.
        let compressed = Lead {
            factor: 1.0 / 3.0,
            ..lead
        };
        assert!(compressed.admits(10, 9_000));
        assert!(!compressed.admits(10, 9_004));
        let idle = Lead {
            records: 0,
            bytes: Some(0),
            ..lead
        };
        assert!(idle.admits(100, 4_000));
        assert!(!idle.admits(101, 4_000));
    }
}
