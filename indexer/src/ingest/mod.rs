//! Ingest (RPC -> Kafka): backfills a chain from its cursor in block ranges, then follows the head,
//! publishing each block's logs and marker; detects reorgs by parent hash and publishes retractions.

mod service;

pub use service::{Acked, Backpressure, ChainIngest, IngestError, KafkaAck, RecordPublisher};
