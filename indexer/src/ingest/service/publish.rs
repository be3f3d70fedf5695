//! Publishing a group: records in stream order, every acknowledgement awaited before the cursor
//! may move, and the lead and lag reported as it goes.

use std::time::Duration;

use metrics::{counter, gauge};
use rdkafka::{error::KafkaError, producer::FutureRecord};
use tripwire_rpc::ChainSource;
use tripwire_runtime::{faults, health::Status};

use super::{lead, ChainIngest, IngestError};
use crate::metrics as m;

impl<S: ChainSource> ChainIngest<S> {
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
        gauge!(m::LAG_BLOCKS, "chain" => self.label(), "stage" => "ingest").set(lag as f64);
    }

    /// Publishes encoded records in order and waits until Kafka acknowledged all of them.
    pub(super) async fn publish(&mut self, payloads: &[Vec<u8>]) -> Result<(), IngestError> {
        let key = self.chain.chain_id.to_string();
        let (sent_before, _) = self.sent.read();
        let mut pending = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let mut record = FutureRecord::to(&self.topic).key(&key).payload(payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        // The local queue is full: let librdkafka drain it.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        counter!(m::KAFKA_ERRORS, "op" => "produce").increment(1);
                        return Err(e.into());
                    }
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
                    self.health.set(tripwire_runtime::Component::Kafka, Status::Unhealthy, "no acknowledgement from Kafka for 5 s");
                }
            }
        };
        let (_, updates_at_ack) = self.sent.read();
        // Per partition: (offset after the last record, bytes, records).
        let mut ends: std::collections::BTreeMap<i32, (i64, u64, u64)> = Default::default();
        for (r, payload) in results.into_iter().zip(payloads) {
            match r {
                Ok(Ok(d)) => {
                    let e = ends.entry(d.partition).or_default();
                    e.0 = e.0.max(d.offset + 1);
                    e.1 += (key.len() + payload.len()) as u64;
                    e.2 += 1;
                }
                Ok(Err((e, _))) => {
                    counter!(m::KAFKA_ERRORS, "op" => "delivery").increment(1);
                    return Err(e.into());
                }
                Err(_) => return Err(KafkaError::Canceled.into()),
            }
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
