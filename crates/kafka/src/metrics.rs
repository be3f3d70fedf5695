//! The metrics of Kafka clients shared by several processes.

/// Partitions a group consumer (sink or watchdog) owns right now.
pub const PARTITIONS_OWNED: &str = "tripwire_kafka_partitions_owned";

/// Every metric name this crate declares (the deploy checks read it).
pub const NAMES: &[&str] = &[PARTITIONS_OWNED];

/// Registers the descriptions; each process that consumes in a group calls it.
pub fn describe() {
    metrics::describe_gauge!(
        PARTITIONS_OWNED,
        "Partitions of the chain topics this consumer owns in its group"
    );
}
