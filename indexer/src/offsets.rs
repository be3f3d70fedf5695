//! `tripwire-indexer offsets`: the stream positions the sink and the watchdog keep in Postgres
//! (`sink_offsets`), next to what each partition still holds, and the two resets the runbooks need:
//! to the earliest record Kafka still keeps, when retention removed the stored position (the sink
//! stops rather than skip; the gap is then re-indexed with `tripwire-replay`), and to the end, when
//! a restored database already reflects what the stream holds since (the watchdog would otherwise
//! detect, alert and propose again for incidents already handled). The consumer must be stopped:
//! it keeps its position in memory and would write its own back.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;

use tripwire_config::KafkaConfig;
use tripwire_kafka::client_config;

/// Where a reset moves a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The first record the partition still holds (its low watermark).
    Earliest,
    /// After the last record (its high watermark): nothing already in the topic is read.
    Latest,
}

/// One partition of one topic, for one consumer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Position {
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset the consumer reads, as stored; `None` before its first write.
    pub stored: Option<i64>,
    /// The first offset the partition still holds.
    pub low: i64,
    /// The offset after the last record.
    pub high: i64,
}

impl Position {
    /// Records between the position and the end.
    pub fn lag(&self) -> i64 {
        (self.high - self.stored.unwrap_or(self.low)).max(0)
    }

    /// The stored position was removed by retention: the consumer cannot continue from it.
    pub fn lost(&self) -> bool {
        self.stored.is_some_and(|s| s < self.low)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error("topic {0} does not exist on the brokers")]
    NoTopic(String),
    #[error("kafka.brokers is `embedded`: offsets needs the address of the broker the processes use (set KAFKA_BROKERS)")]
    Embedded,
    #[error("no stored position for consumer `{0}` (consumers with one: {1})")]
    UnknownConsumer(String, String),
}

/// The positions of `consumers` on `topics` (every consumer with a stored position when empty).
pub async fn read(
    pool: &PgPool,
    kafka: &KafkaConfig,
    topics: &[String],
    consumers: &[String],
) -> Result<Vec<Position>, OffsetsError> {
    let Some(servers) = kafka.brokers.servers() else {
        return Err(OffsetsError::Embedded);
    };
    let stored = tripwire_store::positions::all(pool).await?;
    let mut known: Vec<String> = stored.iter().map(|r| r.consumer.clone()).collect();
    known.dedup();
    if let Some(unknown) = consumers.iter().find(|c| !known.contains(c)) {
        return Err(OffsetsError::UnknownConsumer(
            unknown.clone(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        ));
    }
    let names = if consumers.is_empty() {
        known
    } else {
        consumers.to_vec()
    };
    let client: BaseConsumer = client_config(kafka, servers).create()?;
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for topic in topics {
        let marks =
            tokio::task::block_in_place(|| -> Result<Vec<(i32, i64, i64)>, OffsetsError> {
                let marks = tripwire_kafka::watermarks(client.client(), topic, timeout)?;
                if marks.is_empty() {
                    return Err(OffsetsError::NoTopic(topic.clone()));
                }
                Ok(marks)
            })?;
        for name in &names {
            for (partition, low, high) in &marks {
                let stored = stored
                    .iter()
                    .find(|r| &r.consumer == name && &r.topic == topic && r.partition == *partition)
                    .map(|r| r.next_offset);
                out.push(Position {
                    consumer: name.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    stored,
                    low: *low,
                    high: *high,
                });
            }
        }
    }
    Ok(out)
}

/// Moves `consumer` to `target` on every partition of `positions` (from [`read`], which refuses
/// a consumer with no stored position); returns the new positions.
pub async fn reset(
    pool: &PgPool,
    consumer: &str,
    positions: &[Position],
    target: Target,
) -> Result<Vec<Position>, OffsetsError> {
    let mut tx = pool.begin().await?;
    let mut moved = Vec::new();
    for p in positions.iter().filter(|p| p.consumer == consumer) {
        let next = match target {
            Target::Earliest => p.low,
            Target::Latest => p.high,
        };
        tripwire_store::positions::save(&mut tx, consumer, &p.topic, p.partition, next).await?;
        moved.push(Position {
            stored: Some(next),
            ..p.clone()
        });
    }
    tx.commit().await?;
    Ok(moved)
}

/// The table `offsets` prints.
pub fn render(positions: &[Position]) -> String {
    let mut s = format!(
        "{:<20} {:<32} {:>9} {:>12} {:>12} {:>12} {:>10}\n",
        "consumer", "topic", "partition", "position", "earliest", "end", "lag"
    );
    for p in positions {
        let stored = p.stored.map_or("-".to_string(), |v| v.to_string());
        let note = if p.lost() {
            "  LOST: below the earliest record kept (reset --to earliest, then replay the gap)"
        } else {
            ""
        };
        s.push_str(&format!(
            "{:<20} {:<32} {:>9} {:>12} {:>12} {:>12} {:>10}{note}\n",
            p.consumer,
            p.topic,
            p.partition,
            stored,
            p.low,
            p.high,
            p.lag()
        ));
    }
    s
}
