//! Publishing a group: records in stream order, every acknowledgement awaited before the cursor
//! may move, and the lead and lag reported as it goes. Records go to a [`RecordPublisher`] (the
//! Kafka producer in production; tests use an in-memory one).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rdkafka::{
    error::KafkaError,
    producer::{DeliveryFuture, FutureRecord, Producer},
};
use tripwire_kafka::IngestProducer;
use tripwire_rpc::ChainSource;
use tripwire_runtime::{faults, health::Health, health::Status};

use super::{lead, ChainIngest, IngestError};
use crate::metrics::kafka_errors;

/// Where a record was stored once acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The topic's partition.
    pub partition: i32,
    /// The record's offset in it.
    pub offset: i64,
}

/// A durable log of records that acknowledges each one: what the ingest publishes to. A record
/// counts as published only once its acknowledgement resolved `Ok`; until then the ingest does
/// not move its cursor past it.
pub trait RecordPublisher: Send + Sync + 'static {
    /// The acknowledgement of one record: where it was stored, or why not.
    type Ack: Future<Output = Result<Acked, KafkaError>> + Send;

    /// Hands `payload` (keyed `key`) to the publisher for `topic`, waiting while its queue is
    /// full; an error means the record was not taken.
    fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<Self::Ack, KafkaError>> + Send;

    /// The end offset of every partition of `topic` now (where the next record would go).
    fn end_offsets(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<BTreeMap<i32, i64>, KafkaError>> + Send;
}

/// The idempotent producer's acknowledgement of one record.
pub struct KafkaAck(DeliveryFuture);

impl Future for KafkaAck {
    type Output = Result<Acked, KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(d)) => Ok(Acked {
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Err((e, _))) => Err(e),
            // The producer dropped the record's delivery report (it is shutting down).
            Err(_) => Err(KafkaError::Canceled),
        })
    }
}

impl RecordPublisher for IngestProducer {
    type Ack = KafkaAck;

    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<KafkaAck, KafkaError> {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        loop {
            match self.send_result(record) {
                Ok(f) => return Ok(KafkaAck(f)),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    // The local queue is full: let librdkafka drain it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn end_offsets(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<BTreeMap<i32, i64>, KafkaError>> + Send {
        let producer = self.clone();
        let topic = topic.to_owned();
        async move {
            // The metadata call blocks: off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                let marks =
                    tripwire_kafka::watermarks(producer.client(), &topic, Duration::from_secs(10))?;
                Ok(marks.into_iter().map(|(p, _, high)| (p, high)).collect())
            })
            .await
            .map_err(|_| KafkaError::Canceled)?
        }
    }
}

/// Sends `payloads` in order, then waits for every acknowledgement (marking Kafka unhealthy in
/// `health` while none comes for 5 s). `Ok` only when every record was acknowledged: the caller
/// stores its cursor after this and only after this.
pub(super) async fn send_all<P: RecordPublisher>(
    publisher: &P,
    topic: &str,
    key: &str,
    payloads: &[Vec<u8>],
    health: &Health,
) -> Result<Vec<Acked>, IngestError> {
    let mut pending = Vec::with_capacity(payloads.len());
    for payload in payloads {
        match publisher.send(topic, key, payload).await {
            Ok(ack) => pending.push(ack),
            Err(e) => {
                kafka_errors("produce").increment(1);
                return Err(e.into());
            }
        }
    }
    faults::point(faults::points::INGEST_AFTER_PUBLISH)?;
    // In order, one after the other: acknowledgements arrive in about that order anyway,
    // and a group is up to ~100,000 records, for which `join_all`'s task set costs more
    // than the waiting.
    let all = async move {
        let mut results = Vec::with_capacity(pending.len());
        for f in pending {
            results.push(f.await);
        }
        results
    };
    tokio::pin!(all);
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                health.set(tripwire_runtime::Component::Kafka, Status::Unhealthy, "no acknowledgement from Kafka for 5 s");
            }
        }
    };
    let mut acked = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(a) => acked.push(a),
            Err(KafkaError::Canceled) => return Err(KafkaError::Canceled.into()),
            Err(e) => {
                kafka_errors("delivery").increment(1);
                return Err(e.into());
            }
        }
    }
    Ok(acked)
}

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// The room the lead limit leaves, in logs (about one record each); `None`: unlimited.
    pub(super) fn room_in_logs(&self, lead: &lead::Lead) -> Option<u64> {
        let (records, bytes) = lead.room();
        let by_bytes =
            bytes.and_then(|b| Some((b as f64 / (self.record_bytes? * lead.factor)) as u64));
        match (records, by_bytes) {
            (Some(r), Some(b)) => Some(r.min(b)),
            (r, b) => r.or(b),
        }
    }

    pub(super) fn report_lag(&self) {
        let ingested = self.cursor.tip().map_or(0, |t| t.number);
        let lag = self.head.saturating_sub(ingested);
        self.metrics.lag.get().lag_blocks.set(lag as f64);
    }

    /// Publishes encoded records in order and waits until Kafka acknowledged all of them.
    pub(super) async fn publish(&mut self, payloads: &[Vec<u8>]) -> Result<(), IngestError> {
        let key = self.chain.chain_id.to_string();
        let (sent_before, _) = self.sent.read();
        let acked = send_all(&self.producer, &self.topic, &key, payloads, &self.health).await?;
        let (_, updates_at_ack) = self.sent.read();
        // Per partition: (offset after the last record, bytes, records).
        let mut ends: std::collections::BTreeMap<i32, (i64, u64, u64)> = Default::default();
        for (d, payload) in acked.into_iter().zip(payloads) {
            let e = ends.entry(d.partition).or_default();
            e.0 = e.0.max(d.offset + 1);
            e.1 += (key.len() + payload.len()) as u64;
            e.2 += 1;
        }
        for (partition, (end, bytes, records)) in ends {
            self.produced.acknowledged(lead::SentGroup {
                partition,
                end,
                bytes,
                records,
                sent_before,
                updates_at_ack,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rdkafka::types::RDKafkaErrorCode;
    use tokio::sync::watch;

    use super::*;

    /// Takes records in order (refusing the `refuse`th); their acknowledgements wait until
    /// [`FakePublisher::release`], and the `fail`th then fails.
    struct FakePublisher {
        sent: Mutex<Vec<(String, String, Vec<u8>)>>,
        released: watch::Sender<bool>,
        refuse: Option<usize>,
        fail: Option<usize>,
    }

    impl FakePublisher {
        fn new(refuse: Option<usize>, fail: Option<usize>) -> FakePublisher {
            FakePublisher {
                sent: Mutex::default(),
                released: watch::Sender::new(false),
                refuse,
                fail,
            }
        }

        fn release(&self) {
            self.released.send_replace(true);
        }

        fn payloads(&self) -> Vec<Vec<u8>> {
            let sent = self.sent.lock().expect("fake publisher lock");
            sent.iter().map(|(_, _, p)| p.clone()).collect()
        }
    }

    impl RecordPublisher for FakePublisher {
        type Ack = Pin<Box<dyn Future<Output = Result<Acked, KafkaError>> + Send>>;

        fn send(
            &self,
            topic: &str,
            key: &str,
            payload: &[u8],
        ) -> impl Future<Output = Result<Self::Ack, KafkaError>> + Send {
            let mut sent = self.sent.lock().expect("fake publisher lock");
            let n = sent.len();
            if self.refuse == Some(n) {
                return std::future::ready(Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge,
                )));
            }
            sent.push((topic.to_owned(), key.to_owned(), payload.to_vec()));
            let mut released = self.released.subscribe();
            let fail = self.fail == Some(n);
            let ack: Self::Ack = Box::pin(async move {
                let _ = released.wait_for(|r| *r).await;
                if fail {
                    return Err(KafkaError::MessageProduction(
                        RDKafkaErrorCode::MessageTimedOut,
                    ));
                }
                Ok(Acked {
                    partition: 0,
                    offset: n as i64,
                })
            });
            std::future::ready(Ok(ack))
        }

        fn end_offsets(
            &self,
            _topic: &str,
        ) -> impl Future<Output = Result<BTreeMap<i32, i64>, KafkaError>> + Send {
            let sent = self.sent.lock().expect("fake publisher lock").len() as i64;
            std::future::ready(Ok(BTreeMap::from([(0, sent)])))
        }
    }

    fn payloads() -> Vec<Vec<u8>> {
        (0..3u8).map(|i| vec![i; 8]).collect()
    }

    #[tokio::test]
    async fn a_group_is_published_only_once_every_record_is_acknowledged() {
        let publisher = FakePublisher::new(None, None);
        let health = Health::new();
        let payloads = payloads();
        let all = send_all(&publisher, "tripwire.devnet", "31337", &payloads, &health);
        tokio::pin!(all);
        // Every record is handed over, in stream order, and yet nothing is reported published
        // (so the caller cannot store its cursor) while acknowledgements are outstanding.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut all)
                .await
                .is_err(),
            "returned before the acknowledgements"
        );
        assert_eq!(publisher.payloads(), payloads);
        publisher.release();
        let acked = all.await.expect("every record acknowledged");
        let offsets: Vec<i64> = acked.iter().map(|a| a.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn one_failed_acknowledgement_fails_the_group() {
        let publisher = FakePublisher::new(None, Some(1));
        publisher.release();
        let r = send_all(&publisher, "t", "1", &payloads(), &Health::new()).await;
        assert!(
            matches!(
                r,
                Err(IngestError::Kafka(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut
                )))
            ),
            "{:?}",
            r.map(|a| a.len())
        );
    }

    #[tokio::test]
    async fn a_record_not_taken_fails_the_group_before_the_rest_is_sent() {
        let publisher = FakePublisher::new(Some(1), None);
        publisher.release();
        let r = send_all(&publisher, "t", "1", &payloads(), &Health::new()).await;
        assert!(matches!(r, Err(IngestError::Kafka(_))));
        assert_eq!(publisher.payloads(), payloads()[..1].to_vec());
    }
}
