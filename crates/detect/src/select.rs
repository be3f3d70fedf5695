//! A detector's selector: which logs (or, with `source = "transactions"`, which transactions) it
//! looks at. Checked on every record of the stream, so it compares without allocating.

use std::collections::BTreeMap;

use tripwire_config::watchdog::{names_function, Source, TxStatus};
use tripwire_schema::{LogRecord, TransactionRecord};

use super::DetectorConfig;

pub(crate) struct Selector {
    pub chain_id: Option<u64>,
    contract: Option<String>,
    event: Option<String>,
    /// Field and expected value, lower-cased (addresses are checksummed on the wire).
    filters: Vec<(String, String)>,
    source: Source,
    function: Option<String>,
    status: Option<TxStatus>,
}

impl Selector {
    pub(crate) fn new(c: &DetectorConfig) -> Selector {
        Selector {
            chain_id: c.chain_id,
            contract: c.contract.clone(),
            event: c.event.clone(),
            filters: lower(&c.filters),
            source: c.source,
            function: c.function.clone(),
            status: c.status,
        }
    }

    /// Whether `log` is selected (never for a detector on transactions).
    pub(crate) fn matches(&self, log: &LogRecord) -> bool {
        self.source == Source::Logs && self.matches_view(log)
    }

    /// Whether `tx` is selected, `view` being its log-shaped view (see `txview`).
    pub(crate) fn matches_tx(&self, tx: &TransactionRecord, view: &LogRecord) -> bool {
        if self.source != Source::Transactions {
            return false;
        }
        if self.status.is_some_and(|s| s != tx.status) {
            return false;
        }
        if let Some(want) = &self.function {
            match &tx.function {
                Some(f) if names_function(want, &f.name, &f.signature) => {}
                _ => return false,
            }
        }
        self.matches_view(view)
    }

    fn matches_view(&self, log: &LogRecord) -> bool {
        if self.chain_id.is_some_and(|c| c != log.chain_id) {
            return false;
        }
        if let Some(c) = &self.contract {
            if log.contract.as_deref() != Some(c.as_str()) {
                return false;
            }
        }
        if self.event.is_none() && self.filters.is_empty() {
            return true;
        }
        let Some(ev) = &log.event else {
            return false;
        };
        if let Some(e) = &self.event {
            if &ev.name != e {
                return false;
            }
        }
        self.filters.iter().all(|(k, want)| match ev.params.get(k) {
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case(want),
            Some(other) => other.to_string().eq_ignore_ascii_case(want),
            None => false,
        })
    }
}

fn lower(f: &BTreeMap<String, String>) -> Vec<(String, String)> {
    f.iter()
        .map(|(k, v)| (k.clone(), v.to_ascii_lowercase()))
        .collect()
}
