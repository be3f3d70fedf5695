//! Stored stream positions (`sink_offsets`): for each consumer (a sink or a watchdog name), topic
//! and partition, the next Kafka offset to read. Every process reads and writes them through
//! these functions, in the same transaction as the rows or the state they cover, so a position is
//! stored only once what it covers is.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgExecutor};

/// One stored position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    /// The sink or watchdog name the position belongs to.
    pub consumer: String,
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition of `topic`.
    pub partition: i32,
    /// The next Kafka offset to read (one past the last stored message).
    pub next_offset: i64,
}

/// Every stored position, ordered by consumer, topic and partition.
pub async fn all<'e>(db: impl PgExecutor<'e>) -> Result<Vec<StoredPosition>, sqlx::Error> {
    let rows: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT consumer, topic, partition, next_offset FROM sink_offsets ORDER BY 1, 2, 3",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(consumer, topic, partition, next_offset)| StoredPosition {
            consumer,
            topic,
            partition,
            next_offset,
        })
        .collect())
}

/// The positions of `consumer`: (topic, partition) -> next offset.
pub async fn of_consumer<'e>(
    db: impl PgExecutor<'e>,
    consumer: &str,
) -> Result<BTreeMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// The positions of `consumer` in `topic`: partition -> next offset.
pub async fn of_topic<'e>(
    db: impl PgExecutor<'e>,
    consumer: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The position of `consumer` in one partition.
pub async fn of_partition<'e>(
    db: impl PgExecutor<'e>,
    consumer: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partition)
    .fetch_optional(db)
    .await
}

/// Locks the stored positions of `consumer` in the given (topic, partition)s until the
/// transaction ends, so two instances never write one partition at once, and returns them.
pub async fn lock(
    conn: &mut PgConnection,
    consumer: &str,
    partitions: &[(&str, i32)],
) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    let topics: Vec<&str> = partitions.iter().map(|(t, _)| *t).collect();
    let numbers: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
    sqlx::query_as(
        "SELECT topic, partition, next_offset FROM sink_offsets
         WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
         ORDER BY topic, partition FOR UPDATE",
    )
    .bind(consumer)
    .bind(&topics)
    .bind(&numbers)
    .fetch_all(&mut *conn)
    .await
}

/// Locks every stored position of `consumer` in `topic` until the transaction ends.
pub async fn lock_topic(
    conn: &mut PgConnection,
    consumer: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM sink_offsets
         WHERE consumer = $1 AND topic = $2 ORDER BY partition FOR UPDATE",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Stores the position of `consumer` in one partition.
pub async fn save(
    conn: &mut PgConnection,
    consumer: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sink_offsets (consumer, topic, partition, next_offset, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (consumer, topic, partition) DO UPDATE
           SET next_offset = EXCLUDED.next_offset, updated_at = now()",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
