//! One batch of Kafka messages applied to Postgres in one transaction, in stream order: logs and
//! block markers are buffered for COPY; a retraction first flushes what precedes it, then deletes the
//! orphaned blocks' rows. The batch ends by storing the sink cursors and the Kafka offsets.

use std::collections::BTreeMap;

use alloy::primitives::B256;
use sqlx::{PgConnection, PgPool};
use tripwire_schema::{BlockRef, RecordError, Retraction, StreamRecord};

use super::pgcopy::{self, BlockCopyBuffer, LogCopyBuffer};

/// A message read from Kafka.
#[derive(Debug)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub item: Item,
}

/// A message's content.
// Records are the common case; boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    Record(StreamRecord),
    /// Not a readable record: kept in `dead_letters` with the reason.
    Bad {
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        error: String,
    },
}

impl Item {
    /// Parses a Kafka payload.
    pub fn parse(key: Option<&[u8]>, payload: Option<&[u8]>) -> Item {
        let result = match payload {
            Some(p) => StreamRecord::from_json(p).map_err(|e: RecordError| e.to_string()),
            None => Err("message has no payload".to_owned()),
        };
        match result {
            Ok(r) => Item::Record(r),
            Err(error) => Item::Bad {
                key: key.map(<[u8]>::to_vec),
                payload: payload.map(<[u8]>::to_vec),
                error,
            },
        }
    }
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchStats {
    pub logs_inserted: u64,
    pub blocks_written: u64,
    pub retractions: u64,
    pub dead_letters: u64,
    /// Per chain: the last block whose marker was written (or the ancestor after a reorg).
    pub cursors: BTreeMap<u64, BlockRef>,
}

/// Applies `batch` and stores the offsets under `consumer`, all in one transaction.
pub async fn write_batch(
    pool: &PgPool,
    consumer: &str,
    batch: &[Message],
) -> Result<BatchStats, sqlx::Error> {
    let mut tx = pool.begin().await?;
    pgcopy::prepare_staging(&mut tx).await?;
    let mut logs = LogCopyBuffer::new();
    let mut blocks = BlockCopyBuffer::new();
    let mut stats = BatchStats::default();
    let mut offsets: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for msg in batch {
        offsets.insert((msg.topic.as_str(), msg.partition), msg.offset + 1);
        match &msg.item {
            Item::Record(StreamRecord::Log(l)) => logs.push(l),
            Item::Record(StreamRecord::Block(b)) => {
                blocks.push(b);
                stats.cursors.insert(
                    b.chain_id,
                    BlockRef {
                        number: b.number,
                        hash: b.hash,
                    },
                );
            }
            Item::Record(StreamRecord::Retraction(r)) => {
                stats.logs_inserted += pgcopy::flush_logs(&mut tx, &mut logs).await?;
                stats.blocks_written += pgcopy::flush_blocks(&mut tx, &mut blocks).await?;
                apply_retraction(&mut tx, r).await?;
                stats.retractions += 1;
                stats.cursors.insert(r.chain_id, r.common_ancestor);
            }
            Item::Bad {
                key,
                payload,
                error,
            } => {
                tracing::error!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, %error, "unreadable record kept in dead_letters");
                sqlx::query(
                    "INSERT INTO dead_letters (topic, partition, kafka_offset, key, payload, error)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&msg.topic)
                .bind(msg.partition)
                .bind(msg.offset)
                .bind(key.as_deref())
                .bind(payload.as_deref())
                .bind(error)
                .execute(&mut *tx)
                .await?;
                stats.dead_letters += 1;
            }
        }
    }
    stats.logs_inserted += pgcopy::flush_logs(&mut tx, &mut logs).await?;
    stats.blocks_written += pgcopy::flush_blocks(&mut tx, &mut blocks).await?;
    for (chain_id, at) in &stats.cursors {
        sqlx::query(
            "INSERT INTO sink_cursors (chain_id, block_number, block_hash, updated_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number,
               block_hash = EXCLUDED.block_hash, updated_at = now()",
        )
        .bind(*chain_id as i64)
        .bind(at.number as i64)
        .bind(at.hash.as_slice())
        .execute(&mut *tx)
        .await?;
    }
    for ((topic, partition), next) in offsets {
        sqlx::query(
            "INSERT INTO sink_offsets (consumer, topic, partition, next_offset, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (consumer, topic, partition) DO UPDATE
               SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(consumer)
        .bind(topic)
        .bind(partition)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(stats)
}

/// Removes the orphaned blocks' rows. Keyed by block hash, so replaying an old retraction never
/// touches the rows of the fork that replaced it.
async fn apply_retraction(conn: &mut PgConnection, r: &Retraction) -> Result<(), sqlx::Error> {
    let hashes: Vec<&[u8]> = r.orphaned.iter().map(|b| b.hash.as_slice()).collect();
    let chain = r.chain_id as i64;
    sqlx::query("DELETE FROM logs WHERE chain_id = $1 AND block_hash = ANY($2)")
        .bind(chain)
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

/// The stored positions of `consumer`: (topic, partition) -> next offset.
pub async fn load_offsets(
    pool: &PgPool,
    consumer: &str,
) -> Result<BTreeMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}
