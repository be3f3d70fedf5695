//! Contract ABIs for decoding: read from a Foundry/Hardhat artifact, a plain JSON ABI, or
//! human-readable event signatures, and indexed by topic0 so that decoding a log is one hash lookup.
//! Functions are kept too, by selector, to decode the calldata of watched transactions.

use std::{collections::HashMap, path::Path};

use alloy_dyn_abi::{DynSolEvent, DynSolValue, JsonAbiExt, Specifier};
use alloy_json_abi::{Event, Function, JsonAbi};
use alloy_primitives::{FixedBytes, B256};
use tripwire_schema::DecodedEvent;

/// One event of a contract, resolved once for fast decoding.
#[derive(Debug, Clone)]
pub struct EventAbi {
    /// The event as declared in the ABI (name, parameters, which are indexed).
    pub event: Event,
    resolved: DynSolEvent,
    signature: String,
}

/// The events of a contract by topic0. Several events may share a topic0 (ERC-20 and ERC-721
/// `Transfer` differ only in which parameters are indexed), so each topic holds a list.
#[derive(Debug, Clone, Default)]
pub struct ContractAbi {
    by_topic: HashMap<B256, Vec<EventAbi>>,
    /// Some event is anonymous: the contract's logs cannot be told apart by topic0.
    anonymous: bool,
    /// The functions of the ABI file (and the watched signatures), by selector.
    functions: HashMap<FixedBytes<4>, Function>,
}

impl ContractAbi {
    /// Loads the ABI file (if any) and adds the human-readable `events`. An error message starts
    /// with `event` when a signature is at fault, so that the caller can name the right field.
    pub fn load(path: Option<&Path>, events: &[String]) -> Result<ContractAbi, String> {
        let mut abi = ContractAbi::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read ABI file {}: {e}", path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("ABI file {} is not JSON: {e}", path.display()))?;
            // Foundry and Hardhat artifacts wrap the ABI in an object under `abi`.
            let items = match value {
                serde_json::Value::Object(mut o) => o.remove("abi").ok_or_else(|| {
                    format!(
                        "ABI file {} is an object without an `abi` key",
                        path.display()
                    )
                })?,
                v => v,
            };
            let json: JsonAbi = serde_json::from_value(items)
                .map_err(|e| format!("ABI file {} is not a valid ABI: {e}", path.display()))?;
            for event in json.events() {
                abi.add(event.clone())
                    .map_err(|e| format!("ABI file {}: {e}", path.display()))?;
            }
            for function in json.functions() {
                // Two functions sharing a selector cannot both be called: the first is kept.
                abi.functions
                    .entry(function.selector())
                    .or_insert_with(|| function.clone());
            }
        }
        for sig in events {
            let event = Event::parse(sig).map_err(|e| format!("event signature `{sig}`: {e}"))?;
            abi.add(event)
                .map_err(|e| format!("event signature `{sig}`: {e}"))?;
        }
        Ok(abi)
    }

    fn add(&mut self, event: Event) -> Result<(), String> {
        if event.anonymous {
            // Anonymous events carry no topic0 to match on; their logs stay raw.
            self.anonymous = true;
            return Ok(());
        }
        let resolved = event
            .resolve()
            .map_err(|e| format!("event {}: {e}", event.name))?;
        let entry = self.by_topic.entry(event.selector()).or_default();
        if entry.iter().any(|e| e.event == event) {
            return Ok(());
        }
        entry.push(EventAbi {
            signature: event.signature(),
            event,
            resolved,
        });
        Ok(())
    }

    /// Adds a function known from elsewhere (a watched signature when there is no ABI file), so
    /// that its calls decode; one of the ABI file with that selector is kept instead.
    pub fn add_function(&mut self, function: Function) {
        self.functions
            .entry(function.selector())
            .or_insert(function);
    }

    /// The function with `selector`, when known.
    pub fn function(&self, selector: FixedBytes<4>) -> Option<&Function> {
        self.functions.get(&selector)
    }

    /// Every known function.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.functions.values()
    }

    /// Decodes calldata (selector first) with the known function of its selector; `None` when
    /// no function is known or the arguments do not decode. Parameters follow the convention of
    /// events (see `schema/README.md`); unnamed ones are `arg0`, `arg1`...
    pub fn decode_call(&self, input: &[u8]) -> Option<DecodedEvent> {
        let selector = FixedBytes::<4>::try_from(input.get(..4)?).ok()?;
        let function = self.functions.get(&selector)?;
        let values = function.abi_decode_input(&input[4..]).ok()?;
        let mut params = serde_json::Map::with_capacity(values.len());
        for (i, (input, value)) in function.inputs.iter().zip(&values).enumerate() {
            let name = if input.name.is_empty() {
                format!("arg{i}")
            } else {
                input.name.clone()
            };
            params.insert(name, to_json(value));
        }
        Some(DecodedEvent {
            name: function.name.clone(),
            signature: function.signature(),
            params,
        })
    }

    /// Every known event (anonymous ones excluded: their logs stay raw). The watchdog checks its
    /// detectors' event and field names against these.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.by_topic.values().flatten().map(|e| &e.event)
    }

    /// Number of distinct events known.
    pub fn len(&self) -> usize {
        self.by_topic.values().map(Vec::len).sum()
    }

    /// The topic0 of every known event, when they describe all the contract's logs of interest
    /// (`None` for a raw contract, or one with anonymous events).
    pub fn topic0s(&self) -> Option<Vec<B256>> {
        if self.by_topic.is_empty() || self.anonymous {
            return None;
        }
        Some(self.by_topic.keys().copied().collect())
    }

    /// True when no event is known (the contract is indexed raw).
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Decodes a log; `None` when no known event matches or decoding fails.
    pub fn decode(&self, topics: &[B256], data: &[u8]) -> Option<DecodedEvent> {
        let candidates = self.by_topic.get(topics.first()?)?;
        candidates.iter().find_map(|abi| {
            let decoded = abi
                .resolved
                .decode_log_parts(topics.iter().copied(), data)
                .ok()?;
            let mut indexed = decoded.indexed.into_iter();
            let mut body = decoded.body.into_iter();
            let mut params = serde_json::Map::with_capacity(abi.event.inputs.len());
            for (i, input) in abi.event.inputs.iter().enumerate() {
                let value = if input.indexed {
                    indexed.next()
                } else {
                    body.next()
                }?;
                let name = if input.name.is_empty() {
                    format!("arg{i}")
                } else {
                    input.name.clone()
                };
                params.insert(name, to_json(&value));
            }
            Some(DecodedEvent {
                name: abi.event.name.clone(),
                signature: abi.signature.clone(),
                params,
            })
        })
    }
}

/// The JSON form of a decoded value documented in `schema/README.md`.
fn to_json(value: &DynSolValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, _) => Value::String(i.to_string()),
        DynSolValue::Uint(u, _) => Value::String(u.to_string()),
        DynSolValue::FixedBytes(word, size) => {
            Value::String(format!("0x{}", hex::encode(&word[..*size])))
        }
        DynSolValue::Address(a) => Value::String(a.to_checksum(None)),
        DynSolValue::Function(f) => Value::String(format!("0x{}", hex::encode(f.as_slice()))),
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", hex::encode(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) | DynSolValue::Tuple(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        #[allow(unreachable_patterns)]
        other => Value::String(format!("{other:?}")),
    }
}
