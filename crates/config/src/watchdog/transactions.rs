//! What a detector reads from transactions (`source = "transactions"`) and the `threshold` kind.
//! A failed call emits no log, so a detector on logs cannot see it: on transactions the same kinds
//! read each call sent to an opted-in contract (`transactions` of `[[contracts]]`), with its
//! receipt's outcome.
//!
//! A detector on transactions reads, besides the decoded call's parameters, the transaction's own
//! fields ([`TX_FIELDS`]); these take precedence over a decoded parameter of the same name.

use serde::{Deserialize, Deserializer, Serialize};

pub use tripwire_schema::TxStatus;

/// What a detector's records are (`source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Contract logs (the default).
    #[default]
    Logs,
    /// Transactions sent to the contracts that opted in, with their receipts' outcome.
    Transactions,
}

/// The numeric fields of a transaction a `value` or `threshold` detector can read by name.
pub const TX_NUMERIC_FIELDS: &[&str] = &["gas_used", "gas_limit", "value", "effective_gas_price"];

/// Every field of a transaction a detector on transactions reads by name (`field`, `filters`,
/// `group_by`, `actor_fields`), besides the decoded call's parameters.
pub const TX_FIELDS: &[&str] = &[
    "from",
    "status",
    "gas_used",
    "gas_limit",
    "value",
    "effective_gas_price",
];

/// The actor field of a function-call `event` detector when `actor_fields` keeps its default: the
/// sender.
pub const TX_ACTOR_FIELD: &str = "from";

/// `kind = "threshold"`: every selected record whose `field` compares with `value` as `op` says is
/// a finding, e.g. `field = "gas_used"`, `op = ">"`, `value = 2000000`. A rule, not a statistic:
/// nothing is learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {
    /// The numeric field: on transactions one of `gas_used`, `gas_limit`, `value`,
    /// `effective_gas_price` or a decoded integer parameter of the call; on logs a decoded integer
    /// parameter of the event.
    pub field: String,
    /// How the field compares with `value`: `>`, `>=`, `<`, `<=`, `==` or `!=`.
    pub op: CompareOp,
    /// The constant, an integer, a float or a decimal string (for amounts beyond 2^63). Compared
    /// as 64-bit floats, exact up to 2^53.
    #[serde(deserialize_with = "number")]
    pub value: f64,
}

/// A comparison of a `threshold` detector (`op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    /// Whether `observed op constant` holds.
    pub fn holds(self, observed: f64, constant: f64) -> bool {
        match self {
            CompareOp::Gt => observed > constant,
            CompareOp::Ge => observed >= constant,
            CompareOp::Lt => observed < constant,
            CompareOp::Le => observed <= constant,
            CompareOp::Eq => observed == constant,
            CompareOp::Ne => observed != constant,
        }
    }
}

/// An integer, a float or a decimal string, as a float.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        F(f64),
        S(String),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i as f64),
        N::F(f) => Ok(f),
        N::S(s) => s.trim().parse::<f64>().map_err(|_| {
            serde::de::Error::custom(format!("`{s}` is not a number (value of a threshold)"))
        }),
    }
}

/// Whether a function named in the file (`function`, `functions`) is the call `name` with
/// canonical `signature`: a name matches every overload, a signature (spaces ignored) one.
pub fn names_function(written: &str, name: &str, signature: &str) -> bool {
    if written.contains('(') {
        let w: String = written.chars().filter(|c| !c.is_whitespace()).collect();
        w == signature
    } else {
        written == name
    }
}
