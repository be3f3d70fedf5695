//! Detectors checked against the contracts' ABIs before any log arrives. A detector whose event
//! no contract it watches has, or which reads a parameter those events lack (or carry with a type
//! it cannot use), never fires: without this check it would start and stay silent forever.
//!
//! The rules (also in the doc comments of [`DetectorConfig`] and the parameter structs):
//! - The scope is every `[[contracts]]` entry the selector admits (`contract`, `chain_id`); with
//!   no `contract`, every configured contract. It must not be empty.
//! - Every event a detector names (`event`, a flow's `inflow` and `outflow`, an event detector's
//!   explicit `events`) is an event of at least one contract in scope. The default `events` of an
//!   event detector is a catalogue: at least one of them must be.
//! - The events it reads are the named ones in every contract of the scope that has them (with no
//!   event named: every event of the scope). A parameter it reads (`filters` keys, `group_by`,
//!   `field`, explicit `actor_fields`) is a parameter of at least one of them.
//! - Wherever those events have the parameter, `field` is an integer (`uintN` or `intN`) and an
//!   actor field (explicit or default) an `address`: a mistyped one would be skipped silently.
//!   For a flow each `inflow` and `outflow` event is checked on its own: each must carry `field`.
//! - On transactions (`source = "transactions"`) the same rules hold for functions: `function` and
//!   each of an event detector's `functions` is a function of at least one contract in scope (by
//!   name or signature), and a parameter read is a transaction field (`from`, `gas_used`, ...) or
//!   a parameter of at least one function read.

use std::collections::BTreeSet;

use alloy_json_abi::{Event, EventParam, Function};

use super::detectors::{d_actor_fields, d_privileged as privileged_events};
use super::transactions::{names_function, Source, TX_FIELDS, TX_NUMERIC_FIELDS};
use super::{DetectorConfig, Params};

/// The events one `[[contracts]]` entry decodes, as the check sees them.
#[derive(Debug, Clone)]
pub struct ContractEvents {
    /// `[[contracts]] name`.
    pub name: String,
    /// The `chain_id` of its chain.
    pub chain_id: u64,
    /// Its decoded (non-anonymous) events; none for a contract indexed raw.
    pub events: Vec<Event>,
    /// The functions of its ABI file, for detectors on transactions.
    pub functions: Vec<Function>,
    /// Whether its transactions are indexed (`transactions` of `[[contracts]]` not off): a
    /// detector on transactions sees only those contracts.
    pub transactions: bool,
}

/// A detector that cannot fire as configured: which one, the key at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("watchdog.detectors[{index}] \"{detector}\": {key}: {problem}")]
pub struct AbiMismatch {
    /// Position in `[[watchdog.detectors]]`.
    pub index: usize,
    /// The detector's `name`.
    pub detector: String,
    /// The key and its value as written, e.g. `field = "amount"`.
    pub key: String,
    /// Why the detector cannot fire, e.g. the event has no such field.
    pub problem: String,
}

/// Checks every detector against the ABIs of the contracts it can see; the first mismatch wins.
pub fn check_against_abis(
    detectors: &[DetectorConfig],
    contracts: &[ContractEvents],
) -> Result<(), AbiMismatch> {
    for (index, d) in detectors.iter().enumerate() {
        let scope = contracts
            .iter()
            .filter(|c| d.contract.as_ref().is_none_or(|n| &c.name == n))
            .filter(|c| d.chain_id.is_none_or(|id| c.chain_id == id))
            .collect();
        Check { index, d, scope }.run()?;
    }
    Ok(())
}

/// What a parameter must be, where it exists.
#[derive(Clone, Copy)]
enum Want {
    Integer,
    Address,
}

/// One event of one contract in scope.
#[derive(Clone, Copy)]
struct Ev<'a> {
    contract: &'a str,
    event: &'a Event,
}

impl Ev<'_> {
    /// The parameter names as the decoder writes them (unnamed ones are `arg{i}`).
    fn params(&self) -> Vec<(String, &str)> {
        self.event
            .inputs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = if p.name.is_empty() {
                    format!("arg{i}")
                } else {
                    p.name.clone()
                };
                (name, p.ty.as_str())
            })
            .collect()
    }

    fn shape(&self) -> String {
        let names: Vec<String> = self.params().into_iter().map(|(n, _)| n).collect();
        format!("{}({})", self.event.name, names.join(", "))
    }
}

fn kv(key: &str, value: &str) -> String {
    format!("{key} = {value:?}")
}

struct Check<'a> {
    index: usize,
    d: &'a DetectorConfig,
    scope: Vec<&'a ContractEvents>,
}

impl<'a> Check<'a> {
    fn err(&self, key: String, problem: String) -> AbiMismatch {
        AbiMismatch {
            index: self.index,
            detector: self.d.name.clone(),
            key,
            problem,
        }
    }

    fn run(&self) -> Result<(), AbiMismatch> {
        if self.scope.is_empty() {
            return Err(match (&self.d.contract, self.d.chain_id) {
                (Some(c), Some(id)) => self.err(
                    format!("chain_id = {id}"),
                    format!("contract `{c}` is not on this chain, so no log is selected"),
                ),
                (None, Some(id)) => self.err(
                    format!("chain_id = {id}"),
                    "no [[contracts]] entry is on this chain, so no log is selected".into(),
                ),
                _ => self.err(
                    "contract".into(),
                    "no [[contracts]] entry is configured, so no log is selected".into(),
                ),
            });
        }
        if self.d.source == Source::Transactions {
            return self.run_transactions();
        }
        let selected = match &self.d.event {
            Some(e) => self.require_event(kv("event", e), e)?,
            None => self.all(),
        };
        match &self.d.params {
            Params::Rate(p) => {
                self.filters(&selected)?;
                if let Some(g) = &p.group_by {
                    self.has_param(kv("group_by", g), g, &selected)?;
                }
            }
            Params::Value(p) => {
                self.filters(&selected)?;
                if let Some(g) = &p.group_by {
                    self.has_param(kv("group_by", g), g, &selected)?;
                }
                let key = kv("field", &p.field);
                self.has_param(key.clone(), &p.field, &selected)?;
                self.typed(key, &p.field, &selected, Want::Integer)?;
            }
            Params::Threshold(p) => {
                self.filters(&selected)?;
                let key = kv("field", &p.field);
                self.has_param(key.clone(), &p.field, &selected)?;
                self.typed(key, &p.field, &selected, Want::Integer)?;
            }
            Params::Flow(p) => {
                let mut read = Vec::new();
                for (list, names) in [("inflow", &p.inflow), ("outflow", &p.outflow)] {
                    for (i, n) in names.iter().enumerate() {
                        let evs = self.require_event(kv(&format!("{list}[{i}]"), n), n)?;
                        let key = kv("field", &p.field);
                        self.has_param(key.clone(), &p.field, &evs)?;
                        self.typed(key, &p.field, &evs, Want::Integer)?;
                        read.extend(evs);
                    }
                }
                self.filters(&read)?;
            }
            Params::Event(p) => {
                let read = match &self.d.event {
                    Some(e) if !p.events.contains(e) => {
                        return Err(self.err(
                            kv("event", e),
                            format!(
                                "is not one of `events` ({}), so no selected log alerts",
                                p.events.join(", ")
                            ),
                        ))
                    }
                    Some(_) => selected,
                    None if p.events == privileged_events() => {
                        let found: Vec<Ev> = self
                            .all()
                            .into_iter()
                            .filter(|ev| p.events.contains(&ev.event.name))
                            .collect();
                        if found.is_empty() {
                            return Err(self.err(
                                "events (default)".into(),
                                format!(
                                    "none of the default privileged events ({}) is an event of {}: \
                                     name the events to watch",
                                    p.events.join(", "),
                                    self.scope_label()
                                ),
                            ));
                        }
                        found
                    }
                    None => {
                        let mut read = Vec::new();
                        for (i, n) in p.events.iter().enumerate() {
                            read.extend(self.require_event(kv(&format!("events[{i}]"), n), n)?);
                        }
                        read
                    }
                };
                self.filters(&read)?;
                let default = p.actor_fields == d_actor_fields();
                for (i, f) in p.actor_fields.iter().enumerate() {
                    let key = kv(&format!("actor_fields[{i}]"), f);
                    if default {
                        // The defaults name the usual actors; an event need not have them all.
                        self.typed(format!("{key} (default)"), f, &read, Want::Address)?;
                    } else {
                        self.has_param(key.clone(), f, &read)?;
                        self.typed(key, f, &read, Want::Address)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every event of every contract in scope.
    fn all(&self) -> Vec<Ev<'a>> {
        self.scope
            .iter()
            .flat_map(|c| {
                c.events.iter().map(|event| Ev {
                    contract: &c.name,
                    event,
                })
            })
            .collect()
    }

    fn scope_label(&self) -> String {
        let names: BTreeSet<&str> = self.scope.iter().map(|c| c.name.as_str()).collect();
        let label = match names.len() {
            1 => format!("contract `{}`", self.scope[0].name),
            _ => format!(
                "the contracts in scope ({})",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
        };
        if self.scope.iter().all(|c| c.events.is_empty()) {
            format!("{label}, indexed raw (no `abi` or `events`)")
        } else {
            label
        }
    }

    /// The events named `name` in scope; an error listing what the scope has when there is none.
    fn require_event(&self, key: String, name: &str) -> Result<Vec<Ev<'a>>, AbiMismatch> {
        let found: Vec<Ev> = self
            .all()
            .into_iter()
            .filter(|ev| ev.event.name == name)
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        let has = |c: &ContractEvents| {
            let names: BTreeSet<&str> = c.events.iter().map(|e| e.name.as_str()).collect();
            if names.is_empty() {
                "none: it is indexed raw (no `abi` or `events`), so its logs have no names".into()
            } else {
                names.into_iter().collect::<Vec<_>>().join(", ")
            }
        };
        let problem = match self.scope.as_slice() {
            [c] => format!("{} has no event \"{name}\" (it has {})", c.name, has(c)),
            many => format!(
                "no contract in scope has an event \"{name}\" ({})",
                many.iter()
                    .map(|c| format!("{}: {}", c.name, has(c)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        Err(self.err(key, problem))
    }

    /// Every `filters` key is a parameter of some event read.
    fn filters(&self, read: &[Ev]) -> Result<(), AbiMismatch> {
        for (k, v) in &self.d.filters {
            self.has_param(kv(&format!("filters.{k}"), v), k, read)?;
        }
        Ok(())
    }

    /// `field` is a parameter of at least one of `read`.
    fn has_param(&self, key: String, field: &str, read: &[Ev]) -> Result<(), AbiMismatch> {
        if read
            .iter()
            .any(|ev| ev.params().iter().any(|(n, _)| n == field))
        {
            return Ok(());
        }
        // The same event often comes from several contracts: describe each shape once.
        let shapes: BTreeSet<String> = read.iter().map(Ev::shape).collect();
        let problem = match (read.first(), shapes.len()) {
            (None, _) => format!("no log it reads is decoded ({})", self.scope_label()),
            (Some(ev), 1) => {
                let names: Vec<String> = ev.params().into_iter().map(|(n, _)| n).collect();
                format!(
                    "{} has no parameter \"{field}\" (it has {})",
                    ev.event.name,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            }
            _ => format!(
                "none of the events it reads has a parameter \"{field}\": {}",
                shapes.into_iter().collect::<Vec<_>>().join(", ")
            ),
        };
        Err(self.err(key, problem))
    }

    /// Wherever one of `read` has `field`, it is of the wanted type.
    fn typed(&self, key: String, field: &str, read: &[Ev], want: Want) -> Result<(), AbiMismatch> {
        for ev in read {
            for (n, ty) in ev.params() {
                if n != field {
                    continue;
                }
                let ok = match want {
                    Want::Integer => {
                        (ty.starts_with("uint") || ty.starts_with("int")) && !ty.contains('[')
                    }
                    Want::Address => ty == "address",
                };
                if !ok {
                    let why = match want {
                        Want::Integer => format!(
                            "not an integer: a {} detector reads uintN or intN amounts",
                            self.d.params.kind()
                        ),
                        Want::Address => {
                            "not an address: an actor field names an account (set actor_fields)"
                                .to_owned()
                        }
                    };
                    return Err(self.err(
                        key,
                        format!(
                            "\"{field}\" of {} on {} is {ty}, {why}",
                            ev.event.name, ev.contract
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A function of a contract in scope, seen as an event of its inputs, so the parameter checks
/// are the same for calls and logs.
fn as_event(f: &Function) -> Event {
    Event {
        name: f.name.clone(),
        inputs: f
            .inputs
            .iter()
            .map(|p| EventParam {
                ty: p.ty.clone(),
                name: p.name.clone(),
                indexed: false,
                components: p.components.clone(),
                internal_type: p.internal_type.clone(),
            })
            .collect(),
        anonymous: false,
    }
}

impl Check<'_> {
    /// The checks of a detector on transactions: the functions it names exist in scope, and the
    /// parameters it reads are transaction fields or parameters of the functions read.
    fn run_transactions(&self) -> Result<(), AbiMismatch> {
        if !self.scope.iter().any(|c| c.transactions) {
            return Err(self.err(
                kv("source", "transactions"),
                "no contract in scope has `transactions` on in [[contracts]], so no transaction \
                 is selected"
                    .into(),
            ));
        }
        let calls: Vec<(&str, Event, String)> = self
            .scope
            .iter()
            .flat_map(|c| {
                c.functions
                    .iter()
                    .map(|f| (c.name.as_str(), as_event(f), f.signature()))
            })
            .collect();
        let find = |key: String, written: &str| -> Result<Vec<Ev<'_>>, AbiMismatch> {
            let found: Vec<Ev> = calls
                .iter()
                .filter(|(_, ev, sig)| names_function(written, &ev.name, sig))
                .map(|(contract, event, _)| Ev { contract, event })
                .collect();
            if found.is_empty() {
                let mut has: Vec<&str> = calls.iter().map(|(_, _, sig)| sig.as_str()).collect();
                has.sort_unstable();
                has.dedup();
                let has = if has.is_empty() {
                    "none: give the contract an `abi` file with its functions".to_owned()
                } else {
                    has.join(", ")
                };
                return Err(self.err(
                    key,
                    format!(
                        "{} has no function \"{written}\" (it has {has})",
                        self.scope_label()
                    ),
                ));
            }
            Ok(found)
        };
        let mut read = match &self.d.function {
            Some(f) => find(kv("function", f), f)?,
            None => calls
                .iter()
                .map(|(contract, event, _)| Ev { contract, event })
                .collect(),
        };
        if let Params::Event(p) = &self.d.params {
            let mut listed = Vec::new();
            for (i, f) in p.functions.iter().enumerate() {
                listed.extend(find(kv(&format!("functions[{i}]"), f), f)?);
            }
            if self.d.function.is_none() {
                read = listed;
            }
        }
        let builtin = |f: &str| TX_FIELDS.contains(&f);
        for (k, v) in &self.d.filters {
            if !builtin(k) {
                self.has_param(kv(&format!("filters.{k}"), v), k, &read)?;
            }
        }
        let numeric = |field: &str| -> Result<(), AbiMismatch> {
            if TX_NUMERIC_FIELDS.contains(&field) {
                return Ok(());
            }
            let key = kv("field", field);
            self.has_param(key.clone(), field, &read)?;
            self.typed(key, field, &read, Want::Integer)
        };
        match &self.d.params {
            Params::Rate(p) => {
                if let Some(g) = p.group_by.as_deref().filter(|g| !builtin(g)) {
                    self.has_param(kv("group_by", g), g, &read)?;
                }
            }
            Params::Value(p) => {
                if let Some(g) = p.group_by.as_deref().filter(|g| !builtin(g)) {
                    self.has_param(kv("group_by", g), g, &read)?;
                }
                numeric(&p.field)?;
            }
            Params::Threshold(p) => numeric(&p.field)?,
            Params::Event(p) => {
                for (i, f) in DetectorConfig::tx_actor_fields(p).iter().enumerate() {
                    if builtin(f) {
                        continue;
                    }
                    let key = kv(&format!("actor_fields[{i}]"), f);
                    self.has_param(key.clone(), f, &read)?;
                    self.typed(key, f, &read, Want::Address)?;
                }
            }
            // Refused by `validate` (a flow reads logs).
            Params::Flow(_) => {}
        }
        Ok(())
    }
}
