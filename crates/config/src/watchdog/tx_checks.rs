//! The checks of a detector's `source`, `function`, `status` and `threshold` keys: which keys make
//! sense on which source (the types are in `transactions.rs`; the rest of a detector's checks in
//! `detectors.rs`).

use super::detectors::{bad, d_actor_fields, d_privileged, DetectorConfig, Params};
use super::kinds::InvalidDetector;
use super::transactions::{Source, TX_ACTOR_FIELD};

impl DetectorConfig {
    /// The checks of `source`, `function` and `status`: keys that only make sense on one source.
    pub(crate) fn validate_source(&self) -> Result<(), InvalidDetector> {
        let n = self.name.as_str();
        let on_tx = self.source == Source::Transactions;
        if !on_tx {
            if let Some(f) = &self.function {
                return Err(bad(
                    n,
                    "function",
                    format!("`{f}` selects calls: it needs source = \"transactions\""),
                ));
            }
            if let Some(s) = self.status {
                return Err(bad(
                    n,
                    "status",
                    format!(
                        "`{}` selects transactions: it needs source = \"transactions\"",
                        s.as_str()
                    ),
                ));
            }
            if let Params::Event(p) = &self.params {
                if !p.functions.is_empty() {
                    return Err(bad(
                        n,
                        "functions",
                        "lists calls: it needs source = \"transactions\"",
                    ));
                }
            }
            return Ok(());
        }
        if let Some(e) = &self.event {
            return Err(bad(
                n,
                "event",
                format!(
                    "`{e}` selects logs; a detector on transactions selects calls with `function`"
                ),
            ));
        }
        if matches!(&self.function, Some(f) if f.trim().is_empty()) {
            return Err(bad(n, "function", "is empty"));
        }
        match &self.params {
            Params::Flow(_) => Err(bad(
                n,
                "source",
                "a flow detector reads the inflow and outflow events of logs, not transactions",
            )),
            Params::Value(p) if p.field == "status" || p.field == "from" => Err(bad(
                n,
                "field",
                format!("`{}` is not a numeric field of a transaction", p.field),
            )),
            Params::Threshold(p) if p.field == "status" || p.field == "from" => Err(bad(
                n,
                "field",
                format!("`{}` is not a numeric field of a transaction", p.field),
            )),
            Params::Event(p) => {
                if p.events != d_privileged() {
                    return Err(bad(
                        n,
                        "events",
                        "names events; a detector on transactions names its calls in `functions`",
                    ));
                }
                if p.functions.is_empty() && self.function.is_none() {
                    return Err(bad(
                        n,
                        "functions",
                        "lists no function (list the privileged calls, or set `function`)",
                    ));
                }
                if let Some(f) = &self.function {
                    let listed =
                        p.functions.is_empty() || p.functions.iter().any(|w| w.trim() == f.trim());
                    if !listed {
                        return Err(bad(
                            n,
                            "function",
                            format!(
                                "`{f}` is not one of `functions` ({}), so no selected call alerts",
                                p.functions.join(", ")
                            ),
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The actor fields a function-call `event` detector reads: `from` unless `actor_fields` was
    /// set.
    pub fn tx_actor_fields(p: &super::EventParams) -> Vec<String> {
        if p.actor_fields == d_actor_fields() {
            vec![TX_ACTOR_FIELD.to_owned()]
        } else {
            p.actor_fields.clone()
        }
    }
}
