//! The metric names the processes declare: each crate that records metrics lists them in its
//! `metrics::NAMES`, so the dashboard's queries and the runbooks' greps are checked against the
//! names the code records.

use std::collections::BTreeSet;

/// Every metric name of every process.
pub fn declared() -> anyhow::Result<BTreeSet<String>> {
    Ok([
        tripwire_runtime::metrics::NAMES,
        tripwire_kafka::metrics::NAMES,
        tripwire_rpc::metrics::NAMES,
        tripwire_indexer::metrics::NAMES,
        tripwire_watchdog::metrics::NAMES,
    ]
    .into_iter()
    .flatten()
    .map(|n| (*n).to_owned())
    .collect())
}

/// `name` is declared, or is a series of a declared histogram (`_bucket`, `_sum`, `_count`).
pub fn is_declared(declared: &BTreeSet<String>, name: &str) -> bool {
    declared.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .any(|base| declared.contains(base))
}
