//! Reading a test topic back: a throwaway consumer that snapshots every partition's end offset,
//! then reads each partition up to it, so a test sees what was in the topic when it asked and
//! not whatever keeps arriving. Only committed transactional records come back (librdkafka's
//! default `read_committed`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::shared::{Record, METADATA_TIMEOUT};

const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Every record of `topic` up to its end offsets as of this call, ordered by partition, then
/// offset; an unknown or empty topic reads as no records.
pub(super) fn read_to_end(brokers: &str, topic: &str) -> anyhow::Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("testkit-read-{}", crate::random_hex(8)))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating Kafka consumer")?;

    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("fetching metadata of {topic}"))?;
    let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    if let Some(err) = meta.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Ok(Vec::new());
        }
        bail!("metadata of {topic}: {code}");
    }

    // Snapshot the end of each partition first: the caller wants what was
    // there when it asked, not whatever keeps arriving while we read.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in meta.partitions() {
        let id = partition.id();
        let (low, high) = consumer
            .fetch_watermarks(topic, id, METADATA_TIMEOUT)
            .with_context(|| format!("watermarks of {topic}/{id}"))?;
        if high > low {
            ends.insert(id, high);
            assignment
                .add_partition_offset(topic, id, Offset::Offset(low))
                .context("building assignment")?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;

    let mut records = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "reading {topic}: partitions {:?} did not reach their end offsets within {READ_TIMEOUT:?}",
                ends.keys().collect::<Vec<_>>()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // EOF also covers trailing transaction markers, which occupy
                // offsets but are never delivered as messages.
                ends.remove(&partition);
            }
            Some(Err(e)) => return Err(anyhow!("reading {topic}: {e}")),
            Some(Ok(msg)) => {
                let partition = msg.partition();
                let Some(&end) = ends.get(&partition) else {
                    continue;
                };
                if msg.offset() >= end {
                    ends.remove(&partition);
                    continue;
                }
                let headers = msg
                    .headers()
                    .map(|hs| {
                        use rdkafka::message::Headers;
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition,
                    offset: msg.offset(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                });
                if msg.offset() + 1 >= end {
                    ends.remove(&partition);
                }
            }
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}
