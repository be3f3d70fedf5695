//! Consumer groups whose positions live in Postgres, for the processes that scale out (sinks,
//! watchdogs): Kafka decides which instance reads which partition, Postgres decides where.
//!
//! librdkafka serves rebalances inside the consumer's poll, that is inside `recv()` of the task
//! that reads. The positions of newly assigned partitions are in Postgres, which cannot be asked
//! from that callback, so [`GroupContext`] assigns them paused (from the beginning, a start that
//! never trips `auto.offset.reset = error`) and hands the change to the reading task. That task
//! finishes or drops what it holds of the old assignment, loads the stored positions, seeks and
//! resumes ([`resume_at`]); until then nothing of the new partitions is delivered. Revoked
//! partitions are handed over the same way, so a batch holding their records is never committed
//! by an instance that no longer owns them (and the writes are fenced in Postgres besides).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::{
    client::ClientContext,
    consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer},
    error::KafkaError,
    types::RDKafkaRespErr,
    Offset, TopicPartitionList,
};
use tokio::sync::Notify;

/// A topic partition.
pub type Partition = (String, i32);

/// What a rebalance changed, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// Newly owned partitions, paused until [`resume_at`] gives their stored positions.
    Assigned(Vec<Partition>),
    /// Partitions another instance owns from now on.
    Revoked(Vec<Partition>),
}

/// Consumer context that records rebalances for the reading task (see the module header).
#[derive(Default)]
pub struct GroupContext {
    changes: Mutex<Vec<Rebalanced>>,
    notify: Notify,
}

impl GroupContext {
    /// The changes since the last call, oldest first.
    pub fn take(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut *self.changes.lock().expect("rebalance list poisoned"))
    }

    /// Resolves once a rebalance happened after the last [`GroupContext::take`] (or immediately
    /// if one is waiting).
    pub async fn changed(&self) {
        if !self
            .changes
            .lock()
            .expect("rebalance list poisoned")
            .is_empty()
        {
            return;
        }
        self.notify.notified().await;
    }

    /// Wakes [`GroupContext::changed`] with no change: the reader repositions its partitions
    /// (after a write or checkpoint was fenced).
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    fn push(&self, change: Rebalanced) {
        tracing::info!(?change, "kafka group rebalanced");
        self.changes
            .lock()
            .expect("rebalance list poisoned")
            .push(change);
        self.notify.notify_one();
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts = partitions(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                for mut elem in tpl.elements() {
                    let _ = elem.set_offset(Offset::Beginning);
                }
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned.and_then(|()| consumer.pause(tpl)) {
                    // librdkafka retries the group join after an error here.
                    tracing::error!(error = %e, "kafka: taking the assigned partitions failed");
                }
                self.push(Rebalanced::Assigned(parts));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.push(Rebalanced::Revoked(parts));
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "kafka: releasing the revoked partitions failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "kafka: rebalance failed, releasing every partition");
                self.push(Rebalanced::Revoked(parts));
                let _ = consumer.unassign();
            }
        }
    }
}

/// A group consumer reading from Postgres-stored positions.
pub type GroupConsumer = StreamConsumer<GroupContext>;

fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Applies `changes` to the set of owned partitions.
pub fn apply(owned: &mut std::collections::BTreeSet<Partition>, changes: &[Rebalanced]) {
    for change in changes {
        match change {
            Rebalanced::Assigned(p) => owned.extend(p.iter().cloned()),
            Rebalanced::Revoked(p) => {
                for part in p {
                    owned.remove(part);
                }
            }
        }
    }
}

/// Moves each of `parts` (every partition the instance owns) to its stored next offset (the
/// beginning when none is stored) and lets it deliver again.
///
/// With the eager protocol (the default, round-robin) the whole assignment is set again with
/// explicit offsets: each partition's fetch starts afresh at that offset, and whatever librdkafka
/// had fetched or asked for under the old start is discarded (a seek instead can lose a race
/// with the pending lookup of the paused start, and then reads from the beginning that lookup
/// found, which is past a position that retention removed). The cooperative protocol allows only
/// incremental changes, so there the partitions are sought.
pub async fn resume_at(
    consumer: &GroupConsumer,
    parts: &[Partition],
    stored: &BTreeMap<Partition, i64>,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        let offset = stored
            .get(p)
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        tpl.add_partition_offset(&p.0, p.1, offset)?;
        tracing::info!(topic = %p.0, partition = p.1, ?offset, "reading from the stored position");
    }
    if !matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    ) {
        consumer.assign(&tpl)?;
        return if parts.is_empty() {
            Ok(())
        } else {
            consumer.resume(&tpl)
        };
    }
    if parts.is_empty() {
        return Ok(());
    }
    // A partition whose assignment librdkafka is still setting up refuses a seek for a moment
    // ("erroneous state"): try again briefly.
    let mut last = None;
    for _ in 0..50 {
        let result = tokio::task::block_in_place(|| {
            consumer.seek_partitions(tpl.clone(), Duration::from_secs(5))
        });
        match result {
            Ok(done) => {
                let failed: Vec<_> = done
                    .elements()
                    .iter()
                    .filter_map(|e| e.error().err())
                    .collect();
                match failed.into_iter().next() {
                    None => return consumer.resume(&tpl),
                    Some(e) => last = Some(e),
                }
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.expect("at least one attempt"))
}

/// Waits up to 30 s for `topic` to exist with partitions (the ingest creates it); `false` if it
/// did not appear.
pub async fn wait_for_topic(consumer: &GroupConsumer, topic: &str) -> Result<bool, KafkaError> {
    for _ in 0..30 {
        let md = tokio::task::block_in_place(|| {
            consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
        })?;
        if md
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(false)
}
