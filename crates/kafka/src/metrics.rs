//! The metrics of Kafka clients shared by several processes, declared once as a typed struct (the
//! field is the name after the scope, its doc comment the description).

use metrics::Gauge;
use metrics_derive::Metrics;
use tripwire_runtime::metrics::{no_labels, Lazy};

/// Partitions a group consumer (sink or watchdog) owns right now.
pub const PARTITIONS_OWNED: &str = "tripwire_kafka_partitions_owned";

/// Every metric name this crate declares (the deploy checks read it).
pub const NAMES: &[&str] = &[PARTITIONS_OWNED];

/// Registers the descriptions; each process that consumes in a group calls it.
///
/// Unconditionally (`force_describe`): metrics-derive describes a struct once per process, to
/// whichever recorder exists when the first one is built, which may be none or a test's own.
pub fn describe() {
    Partitions::force_describe();
}

/// The partitions a group consumer owns: a gauge that appears with the first assignment (a 0
/// before it would say the group gave this consumer nothing).
#[derive(Metrics)]
#[metrics(scope = "tripwire_kafka", separator = "_")]
pub struct Partitions {
    /// Partitions of the chain topics this consumer owns in its group
    pub partitions_owned: Gauge,
}

impl Partitions {
    /// The handle, built on the first assignment.
    pub fn lazy() -> Lazy<Partitions> {
        Lazy::new(|| Partitions::new_with_labels(no_labels()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn names_are_the_described_fields() {
        let described = tripwire_runtime::metrics::described(super::describe);
        let names: BTreeSet<String> = super::NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, names);
    }
}
