//! How much data is in flight between the chain and Postgres, and why the limits fit together.
//!
//! Three settings meet here: how far the ingest may run ahead of the sink's stored position
//! (`kafka.max_lead_records`, `kafka.max_lead_bytes`), and how large a batch the sink writes
//! in one transaction (`sink.batch_records`, `sink.batch_bytes`). The sink commits a batch when it
//! is full (or after `sink.batch_wait_ms`); the ingest publishes a group of blocks only when it
//! stays within the lead limit. If a batch could be larger than the lead, the ingest would stop
//! before the sink has a full batch, and both would wait for the sink's timer. So a batch is at
//! most half the lead: while the sink writes one batch, the ingest can fill the next.
//!
//! Defaults: with a real cluster there is no lead limit (retention is the operator's choice) and
//! batches are 50,000 records or 16 MiB. The embedded broker keeps only the newest 5 MiB of
//! record batches per partition and deletes older ones whether they were read or not, so the lead
//! defaults to 4 MiB there, counted as the broker keeps it: compressed, from what the producer sent
//! (`ingest/service/lead.rs`), while a batch counts records as they are. A batch that cannot fill
//! because the ingest is held back does not wait for `sink.batch_wait_ms` either: an idle sink
//! writes what it has as soon as the topic is quiet for 5 ms (`sink/service.rs`). A user's value
//! is kept as given, and a pair that contradicts is refused naming both keys (an explicit
//! `sink.batch_bytes` above half an explicit `kafka.max_lead_bytes`, likewise for records).

use super::{Config, ConfigError};

/// Bytes of record batches the embedded broker keeps per partition (librdkafka's mock cluster,
/// `rdkafka_mock.c`: `max_size = 1024 * 1024 * 5`); older batches are deleted.
pub const EMBEDDED_PARTITION_BYTES: u64 = 5 << 20;

/// The embedded broker's default lead: 80% of what a partition keeps, leaving room for the
/// estimate's own slack (a group is admitted by its uncompressed size).
pub const EMBEDDED_MAX_LEAD_BYTES: u64 = EMBEDDED_PARTITION_BYTES * 4 / 5;

/// The librdkafka property the byte lead depends on (see [`crate::kafka::SentBytes`]).
pub const STATS_PROPERTY: &str = "statistics.interval.ms";

/// The producer's statistics interval when the byte lead needs them and the user set none.
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 20;

/// The slowest statistics interval a byte lead accepts: the ingest waits up to one interval
/// after each group for the count of what it sent.
pub const MAX_STATS_INTERVAL_MS: u64 = 1000;

/// Default `sink.batch_records` (when no lead limit asks for less).
pub const DEFAULT_BATCH_RECORDS: usize = 50_000;

/// Default `sink.batch_bytes` (when no lead limit asks for less).
pub const DEFAULT_BATCH_BYTES: u64 = 16 << 20;

/// How far the ingest may run ahead of the sink (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeadLimit {
    /// Most records the ingest may publish beyond what the sink has stored (`kafka.max_lead_records`).
    pub records: Option<u64>,
    /// Most payload bytes the ingest may publish beyond what the sink has stored (`kafka.max_lead_bytes`).
    pub bytes: Option<u64>,
}

impl LeadLimit {
    /// No limit of either kind.
    pub fn is_unlimited(&self) -> bool {
        self.records.is_none() && self.bytes.is_none()
    }
}

/// The effective limits, after defaults and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// How far the ingest may run ahead of the sink.
    pub lead: LeadLimit,
    /// Most records per sink transaction.
    pub batch_records: usize,
    /// Most payload bytes per sink transaction (a single larger record still makes a batch).
    pub batch_bytes: u64,
}

impl Config {
    /// The lead and batch limits of this configuration, with defaults derived from each other;
    /// an explicit pair that contradicts is an error naming both keys.
    pub fn flow(&self) -> Result<Flow, ConfigError> {
        let embedded = self.kafka.is_embedded();
        let explicit = |v: Option<u64>| match v {
            Some(0) => None,
            v => v,
        };
        let lead = LeadLimit {
            records: explicit(self.kafka.max_lead_records),
            bytes: match self.kafka.max_lead_bytes {
                Some(0) => None,
                Some(n) => Some(n),
                None if embedded => Some(EMBEDDED_MAX_LEAD_BYTES),
                None => None,
            },
        };
        if let (Some(bytes), true) = (lead.bytes, embedded) {
            if bytes > EMBEDDED_PARTITION_BYTES {
                return Err(ConfigError::invalid(
                    "kafka.max_lead_bytes",
                    format!(
                        "{bytes} is more than the embedded broker keeps per partition \
                         ({EMBEDDED_PARTITION_BYTES} bytes): records would be deleted before the \
                         sink wrote them"
                    ),
                ));
            }
        }
        if let (Some(bytes), Some(v)) = (lead.bytes, self.kafka.properties.get(STATS_PROPERTY)) {
            // The byte lead is counted from the producer's statistics: without them it never
            // moves (the ingest would stop at its first group), and a slow interval makes the
            // ingest wait that long after every group.
            if !v
                .parse::<u64>()
                .is_ok_and(|ms| (1..=MAX_STATS_INTERVAL_MS).contains(&ms))
            {
                return Err(ConfigError::invalid(
                    "kafka.properties.\"statistics.interval.ms\"",
                    format!(
                        "{v:?}: the byte lead (kafka.max_lead_bytes = {bytes}{}) is counted from \
                         the producer's statistics, so this must be between 1 and \
                         {MAX_STATS_INTERVAL_MS} ms. Remove it (the ingest then uses \
                         {DEFAULT_STATS_INTERVAL_MS} ms) or \
                         set kafka.max_lead_bytes = 0",
                        if self.kafka.max_lead_bytes.is_none() {
                            ", the embedded broker's default"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        let batch_records = match (self.sink.batch_records, lead.records) {
            (Some(0), _) => {
                return Err(ConfigError::invalid(
                    "sink.batch_records",
                    "must be at least 1",
                ))
            }
            (Some(b), Some(l)) if b as u64 > l / 2 => {
                return Err(ConfigError::invalid(
                    "sink.batch_records",
                    format!(
                        "{b} is more than half of kafka.max_lead_records = {l}: the ingest would \
                         stop before the sink has a full batch. Set sink.batch_records to at most \
                         {} or raise kafka.max_lead_records to at least {}",
                        (l / 2).max(1),
                        2 * b as u64
                    ),
                ))
            }
            (Some(b), _) => b,
            (None, Some(l)) => DEFAULT_BATCH_RECORDS.min((l / 2).max(1) as usize),
            (None, None) => DEFAULT_BATCH_RECORDS,
        };
        if lead.records == Some(1) {
            return Err(ConfigError::invalid(
                "kafka.max_lead_records",
                "must be at least 2 (a batch of the sink is at most half of it), or 0 for no limit",
            ));
        }
        // The embedded broker's default byte lead counts compressed bytes, the batch counts
        // records as they are: there the sink's hand-over on a quiet topic (`sink/service.rs`)
        // keeps the two apart, and the batch keeps its default.
        let explicit_lead_bytes = explicit(self.kafka.max_lead_bytes);
        let batch_bytes = match (self.sink.batch_bytes, explicit_lead_bytes) {
            (Some(0), _) => {
                return Err(ConfigError::invalid(
                    "sink.batch_bytes",
                    "must be at least 1",
                ))
            }
            (Some(b), Some(l)) if b > l / 2 => {
                return Err(ConfigError::invalid(
                    "sink.batch_bytes",
                    format!(
                    "{b} is more than half of kafka.max_lead_bytes = {l}: the ingest would stop \
                         before the sink has a full batch. Set sink.batch_bytes to at most {} or \
                         raise kafka.max_lead_bytes to at least {}",
                    (l / 2).max(1),
                    2 * b
                ),
                ))
            }
            (Some(b), _) => b,
            (None, Some(l)) => DEFAULT_BATCH_BYTES.min((l / 2).max(1)),
            (None, None) => DEFAULT_BATCH_BYTES,
        };
        Ok(Flow {
            lead,
            batch_records,
            batch_bytes,
        })
    }
}
