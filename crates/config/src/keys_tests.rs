//! Every key of the config model appears in `examples/tripwire.toml`, set or in a comment, so the
//! example stays the complete reference. The model's keys are read from the structs themselves
//! (the field lists serde derives), not from a list kept by hand: a new field is missing from the
//! example until someone documents it there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, Visitor};

use crate::watchdog::{
    AlertmanagerConfig, EventParams, FlowParams, RateParams, RuleConfig, SafeConfig, ServiceConfig,
    TargetConfig, ThresholdParams, ValueParams, WatchdogConfig, WebhookConfig, COMMON_KEYS,
};
use crate::{
    ChainConfig, Config, ContractConfig, KafkaConfig, PostgresConfig, ProviderConfig, ServerConfig,
    SinkConfig,
};

/// A deserializer that only records the field list of the struct it is asked for.
struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The keys of `T`, a struct deserialized with derived field names.
fn keys<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    let mut fields = None;
    let _ = T::deserialize(Probe(&mut fields));
    fields
        .unwrap_or_else(|| panic!("{} is not a struct", std::any::type_name::<T>()))
        .to_vec()
}

/// The model: each table's path in the file and its keys.
fn model() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut m = BTreeMap::new();
    m.insert("", keys::<Config>());
    m.insert("postgres", keys::<PostgresConfig>());
    m.insert("kafka", keys::<KafkaConfig>());
    m.insert("server", keys::<ServerConfig>());
    m.insert("sink", keys::<SinkConfig>());
    m.insert("chains", keys::<ChainConfig>());
    m.insert("chains.providers", keys::<ProviderConfig>());
    m.insert("contracts", keys::<ContractConfig>());
    m.insert("watchdog", keys::<WatchdogConfig>());
    m.insert("watchdog.alertmanager", keys::<AlertmanagerConfig>());
    let mut detectors: Vec<&'static str> = COMMON_KEYS.to_vec();
    detectors.push("kind");
    for kind in [
        keys::<RateParams>(),
        keys::<ValueParams>(),
        keys::<FlowParams>(),
        keys::<EventParams>(),
        keys::<ThresholdParams>(),
    ] {
        detectors.extend(kind);
    }
    m.insert("watchdog.detectors", detectors);
    m.insert("watchdog.safe", keys::<SafeConfig>());
    m.insert("watchdog.safe.targets", keys::<TargetConfig>());
    m.insert("watchdog.safe.service", keys::<ServiceConfig>());
    m.insert("watchdog.webhook", keys::<WebhookConfig>());
    m.insert("watchdog.webhook.rules", keys::<RuleConfig>());
    m
}

/// (table, key) of every key the example sets or shows in a comment, and every table header. A
/// key set for real belongs to the last real header (as TOML reads it); a commented key belongs
/// to a commented header right above it (`# [[chains.providers]]` then `# url = ...`), else to
/// the real table.
fn documented(text: &str) -> BTreeSet<(String, String)> {
    let header = regex::Regex::new(r"^\s*(#?)\s*\[\[?([a-z_.]+)\]\]?\s*$").expect("regex");
    let key = regex::Regex::new(r"^\s*(#?)\s*([a-z_]+)\s*=").expect("regex");
    let mut out = BTreeSet::new();
    let mut table = String::new();
    let mut commented: Option<String> = None;
    for line in text.lines() {
        if let Some(c) = header.captures(line) {
            let name = c[2].to_owned();
            // A table header documents the key that holds it.
            let (parent, last) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
            out.insert((parent.to_owned(), last.to_owned()));
            if c[1].is_empty() {
                table = name;
                commented = None;
            } else {
                commented = Some(name);
            }
        } else if let Some(c) = key.captures(line) {
            if c[1].is_empty() {
                commented = None;
                out.insert((table.clone(), c[2].to_owned()));
            } else {
                let t = commented.clone().unwrap_or_else(|| table.clone());
                out.insert((t, c[2].to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_key_of_the_model_is_in_the_example() {
    let path = super::tests::repo().join("examples/tripwire.toml");
    let text = std::fs::read_to_string(&path).expect("read examples/tripwire.toml");
    let seen = documented(&text);
    let mut missing = Vec::new();
    let mut total = 0;
    for (table, keys) in model() {
        for k in keys {
            total += 1;
            if !seen.contains(&(table.to_owned(), k.to_owned())) {
                missing.push(if table.is_empty() {
                    k.to_owned()
                } else {
                    format!("{table}.{k}")
                });
            }
        }
    }
    assert!(
        total > 100,
        "the model has only {total} keys: the probe is broken"
    );
    assert!(
        missing.is_empty(),
        "{} keys of the config model are not in {} (set them or show them in a comment): {}",
        missing.len(),
        path.display(),
        missing.join(", ")
    );
}

/// The probe sees nested tables and the detector kinds, and a key only in prose is not counted.
#[test]
fn the_probe_and_the_scan_see_what_they_should() {
    assert!(keys::<KafkaConfig>().contains(&"max_lead_bytes"));
    assert!(keys::<FlowParams>().contains(&"baseline_windows"));
    let seen = documented(
        "[a]\nx = 1\n# y = 2\n# [a.b]\n# v = 0\n# prose mentions z but sets nothing\nu = 1\n[[c.d]]\nw = 3\n",
    );
    for want in [
        ("a", "x"),
        ("a", "y"),
        ("a", "b"),
        ("a.b", "v"),
        ("a", "u"),
        ("c", "d"),
        ("c.d", "w"),
    ] {
        assert!(seen.contains(&(want.0.into(), want.1.into())), "{want:?}");
    }
    assert!(!seen.iter().any(|(_, k)| k == "z" || k == "prose"));
}
