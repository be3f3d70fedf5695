//! The metric names the processes declare: `indexer/src/metrics.rs` and `watchdog/src/metrics.rs`
//! describe every metric they export, so the dashboard's queries and the runbooks' greps are
//! checked against these two files.

use std::collections::BTreeSet;

use anyhow::Context;

/// Every quoted `tripwire_*` name of the two metric modules.
pub fn declared() -> anyhow::Result<BTreeSet<String>> {
    let name = regex::Regex::new(r#""(tripwire_[a-z0-9_]+)""#)?;
    let mut out = BTreeSet::new();
    for f in [
        "crates/runtime/src/metrics.rs",
        "indexer/src/metrics.rs",
        "watchdog/src/metrics.rs",
    ] {
        let path = crate::repo_root().join(f);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        out.extend(name.captures_iter(&text).map(|c| c[1].to_owned()));
    }
    Ok(out)
}

/// `name` is declared, or is a series of a declared histogram (`_bucket`, `_sum`, `_count`).
pub fn is_declared(declared: &BTreeSet<String>, name: &str) -> bool {
    declared.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .any(|base| declared.contains(base))
}
