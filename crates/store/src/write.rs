//! One batch of Kafka messages applied to Postgres in one transaction, in stream order.
//!
//! A [`Batch`] is prepared as the messages arrive: each one is parsed once and its row encoded
//! straight into binary `COPY` data (transactions, logs and block markers), so a batch holds
//! encoded rows, not
//! parsed records. A retraction closes the rows before it, which are written before its deletes.
//! [`write_batch`] then writes the rows, applies the retractions, keeps unreadable messages in
//! `dead_letters`, and stores the sink cursors and the Kafka offsets, all in one transaction. A
//! prepared batch does not change: a failed write is retried with exactly the same batch.

use std::collections::BTreeMap;

use tripwire_runtime::faults;

use alloy::primitives::B256;
use sqlx::{PgConnection, PgPool};
use tripwire_schema::{BlockRef, LogView, Retraction, StreamRecord};

use crate::pgcopy::{self, BlockCopyBuffer, LogCopyBuffer, TransactionCopyBuffer};
use crate::positions;

/// Kafka messages prepared for one transaction. Build it with [`Batch::push`] in stream order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Closed rows and the retractions that closed them, in stream order.
    steps: Vec<Step>,
    /// Rows after the last retraction (written after `steps`).
    transactions: TransactionCopyBuffer,
    logs: LogCopyBuffer,
    blocks: BlockCopyBuffer,
    dead_letters: Vec<DeadLetter>,
    /// Per chain: the last block marker, or the common ancestor of a later retraction.
    cursors: BTreeMap<u64, BlockRef>,
    /// Chains with a retraction in this batch: their cursor may move back.
    rewound: std::collections::BTreeSet<u64>,
    /// (topic, partition, first offset, next offset), one entry per partition seen.
    offsets: Vec<(String, i32, i64, i64)>,
    messages: usize,
    /// Key and payload bytes of the messages.
    bytes: u64,
}

#[derive(Debug)]
enum Step {
    /// Rows that precede a retraction: transactions and logs first, then block markers.
    Rows {
        transactions: TransactionCopyBuffer,
        logs: LogCopyBuffer,
        blocks: BlockCopyBuffer,
    },
    Retraction(Retraction),
}

/// A message that is not a readable record: kept in `dead_letters` with the reason.
#[derive(Debug)]
struct DeadLetter {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    error: String,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds the Kafka message at `offset` of `topic`/`partition`: parses the payload and encodes
    /// its row, or keeps it as a dead letter when it is not a readable record. Messages of one
    /// partition must come in offset order.
    pub fn push(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) {
        self.messages += 1;
        self.bytes += (key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len)) as u64;
        self.note_offset(topic, partition, offset);
        // Nearly every message is a log: encode its row from a borrowed view when it can be
        // (the owned record below gives the same row, and handles everything else).
        if let Some(view) = payload.and_then(LogView::from_json) {
            self.logs.push_view(&view);
            return;
        }
        let parsed = match payload {
            Some(p) => StreamRecord::from_json(p).map_err(|e| e.to_string()),
            None => Err("message has no payload".to_owned()),
        };
        match parsed {
            Ok(StreamRecord::Log(l)) => self.logs.push(&l),
            Ok(StreamRecord::Transaction(t)) => self.transactions.push(&t),
            Ok(StreamRecord::Block(b)) => {
                self.blocks.push(&b);
                self.cursors.insert(
                    b.chain_id,
                    BlockRef {
                        number: b.number,
                        hash: b.hash,
                    },
                );
            }
            Ok(StreamRecord::Retraction(r)) => {
                if !self.transactions.is_empty() || !self.logs.is_empty() || !self.blocks.is_empty()
                {
                    self.steps.push(Step::Rows {
                        transactions: std::mem::take(&mut self.transactions),
                        logs: std::mem::take(&mut self.logs),
                        blocks: std::mem::take(&mut self.blocks),
                    });
                }
                self.cursors.insert(r.chain_id, r.common_ancestor);
                self.rewound.insert(r.chain_id);
                self.steps.push(Step::Retraction(r));
            }
            Err(error) => self.dead_letters.push(DeadLetter {
                topic: topic.to_owned(),
                partition,
                offset,
                key: key.map(<[u8]>::to_vec),
                payload: payload.map(<[u8]>::to_vec),
                error,
            }),
        }
    }

    fn note_offset(&mut self, topic: &str, partition: i32, offset: i64) {
        match self
            .offsets
            .iter_mut()
            .find(|(t, p, _, _)| *p == partition && t == topic)
        {
            Some(entry) => entry.3 = offset + 1,
            None => self
                .offsets
                .push((topic.to_owned(), partition, offset, offset + 1)),
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Key and payload bytes of the messages, as Kafka carried them.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Per (topic, partition): the offset after the batch's last message.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.offsets.iter().map(|(t, p, _, o)| (t.as_str(), *p, *o))
    }

    /// Whether the batch holds records of `topic`/`partition`.
    pub fn touches(&self, topic: &str, partition: i32) -> bool {
        self.offsets
            .iter()
            .any(|(t, p, _, _)| *p == partition && t == topic)
    }
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A Postgres query failed (connection lost, constraint, ...); the transaction is rolled back.
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    /// Another instance of the same consumer stored a later position for a partition of this
    /// batch (it owns the partition now, or owned it meanwhile): writing this batch would apply
    /// older records after newer ones, so nothing of it is stored.
    #[error(
        "{topic}/{partition}: the stored position is {stored}, past this batch's first offset \
         {first} (another instance of the consumer wrote it); the batch is dropped"
    )]
    Fenced {
        /// Kafka topic of the fenced partition.
        topic: String,
        /// The fenced partition.
        partition: i32,
        /// The offset already stored for the partition.
        stored: i64,
        /// The offset of this batch's first message of the partition.
        first: i64,
    },
    /// A test stopped the process at a fault point (see `faults.rs`).
    #[error(transparent)]
    Stopped(#[from] tripwire_runtime::faults::Stopped),
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchStats {
    /// Rows newly inserted into `logs` (logs already stored are not counted).
    pub logs_inserted: u64,
    /// Rows newly inserted into `transactions` (transactions already stored are not counted).
    pub transactions_inserted: u64,
    /// Block markers inserted or changed (a marker identical to the stored one is not counted).
    pub blocks_written: u64,
    /// Retractions applied (each removes the rows of blocks a reorganisation orphaned).
    pub retractions: u64,
    /// Unreadable messages kept in `dead_letters`.
    pub dead_letters: u64,
    /// Per chain: the last block whose marker was written (or the ancestor after a reorg).
    pub cursors: BTreeMap<u64, BlockRef>,
}

/// Applies `batch` and stores the offsets under `consumer`, all in one transaction. Leaves the
/// batch as it is: after an error the same batch can be written again.
///
/// The batch is fenced: its partitions' stored positions are locked first, and if one is past the
/// batch's first offset (an instance that lost the partition in a rebalance writing late, or a
/// new owner that started from an older position) nothing is written and
/// [`WriteError::Fenced`] tells the caller to read again from the stored positions.
pub async fn write_batch(
    pool: &PgPool,
    consumer: &str,
    batch: &Batch,
) -> Result<BatchStats, WriteError> {
    let mut tx = pool.begin().await?;
    fence(&mut tx, consumer, batch).await?;
    pgcopy::prepare_staging(&mut tx).await?;
    let mut stats = BatchStats {
        cursors: batch.cursors.clone(),
        ..BatchStats::default()
    };
    for d in &batch.dead_letters {
        tracing::error!(topic = %d.topic, partition = d.partition, offset = d.offset, error = %d.error, "unreadable record kept in dead_letters");
        sqlx::query(
            "INSERT INTO dead_letters (topic, partition, kafka_offset, key, payload, error)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&d.topic)
        .bind(d.partition)
        .bind(d.offset)
        .bind(d.key.as_deref())
        .bind(d.payload.as_deref())
        .bind(&d.error)
        .execute(&mut *tx)
        .await?;
        stats.dead_letters += 1;
    }
    for step in &batch.steps {
        match step {
            Step::Rows {
                transactions,
                logs,
                blocks,
            } => {
                stats.transactions_inserted +=
                    pgcopy::store_transactions(&mut tx, transactions).await?;
                stats.logs_inserted += pgcopy::store_logs(&mut tx, logs).await?;
                stats.blocks_written += pgcopy::store_blocks(&mut tx, blocks).await?;
            }
            Step::Retraction(r) => {
                apply_retraction(&mut tx, r).await?;
                stats.retractions += 1;
            }
        }
    }
    stats.transactions_inserted += pgcopy::store_transactions(&mut tx, &batch.transactions).await?;
    stats.logs_inserted += pgcopy::store_logs(&mut tx, &batch.logs).await?;
    faults::point(faults::points::SINK_INSIDE_COPY)?;
    stats.blocks_written += pgcopy::store_blocks(&mut tx, &batch.blocks).await?;
    for (chain_id, at) in &stats.cursors {
        // Markers of older blocks (a replay re-publishing history) never move the cursor back;
        // only a retraction does.
        let rewound = batch.rewound.contains(chain_id);
        sqlx::query(
            "INSERT INTO sink_cursors (chain_id, block_number, block_hash, updated_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number,
               block_hash = EXCLUDED.block_hash, updated_at = now()
             WHERE $4 OR sink_cursors.block_number <= EXCLUDED.block_number",
        )
        .bind(*chain_id as i64)
        .bind(at.number as i64)
        .bind(at.hash.as_slice())
        .bind(rewound)
        .execute(&mut *tx)
        .await?;
    }
    for (topic, partition, next) in batch.next_offsets() {
        positions::save(&mut tx, consumer, topic, partition, next).await?;
    }
    tx.commit().await?;
    faults::point(faults::points::SINK_AFTER_COMMIT)?;
    Ok(stats)
}

/// Locks the stored positions of the batch's partitions (so two instances never write one
/// partition at once) and checks that none is past the batch's start.
async fn fence(conn: &mut PgConnection, consumer: &str, batch: &Batch) -> Result<(), WriteError> {
    let partitions: Vec<(&str, i32)> = batch
        .offsets
        .iter()
        .map(|(t, p, ..)| (t.as_str(), *p))
        .collect();
    let stored = positions::lock(conn, consumer, &partitions).await?;
    for (topic, partition, stored) in stored {
        let first = batch
            .offsets
            .iter()
            .find(|(t, p, ..)| *p == partition && *t == topic)
            .map_or(i64::MAX, |e| e.2);
        if stored > first {
            return Err(WriteError::Fenced {
                topic,
                partition,
                stored,
                first,
            });
        }
    }
    Ok(())
}

/// Removes the orphaned blocks' rows. Keyed by block hash, so replaying an old retraction never
/// touches the rows of the fork that replaced it; logs and transactions by (number, hash), the
/// leading columns of their primary keys after the chain.
async fn apply_retraction(conn: &mut PgConnection, r: &Retraction) -> Result<(), sqlx::Error> {
    let hashes: Vec<&[u8]> = r.orphaned.iter().map(|b| b.hash.as_slice()).collect();
    let numbers: Vec<i64> = r.orphaned.iter().map(|b| b.number as i64).collect();
    let chain = r.chain_id as i64;
    sqlx::query(
        "DELETE FROM logs WHERE chain_id = $1 AND (block_number, block_hash) IN \
         (SELECT * FROM unnest($2::bigint[], $3::bytea[]))",
    )
    .bind(chain)
    .bind(&numbers)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM transactions WHERE chain_id = $1 AND (block_number, block_hash) IN \
         (SELECT * FROM unnest($2::bigint[], $3::bytea[]))",
    )
    .bind(chain)
    .bind(&numbers)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM blocks WHERE chain_id = $1 AND hash = ANY($2)")
        .bind(chain)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    let tip = r.orphaned.last().map_or(B256::ZERO, |b| b.hash);
    sqlx::query(
        "INSERT INTO reorgs (chain_id, orphaned_tip, ancestor_number, ancestor_hash, depth, orphaned)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(chain)
    .bind(tip.as_slice())
    .bind(r.common_ancestor.number as i64)
    .bind(r.common_ancestor.hash.as_slice())
    .bind(r.orphaned.len() as i32)
    .bind(serde_json::to_value(&r.orphaned).expect("block refs serialise"))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
