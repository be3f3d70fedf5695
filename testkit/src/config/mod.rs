//! [`TestConfig`]: the tests' `tripwire.toml`, built from typed parts (the sections of
//! `tripwire_config`'s model, `[watchdog]` included in [`watchdog`]) instead of text, written with
//! `toml` and checked by the product's own parser before it reaches a process, so a test cannot
//! hand a program a file the program would refuse without noticing.
//!
//! Every key the model gives a default is an `Option` (or an empty list) here, written only when
//! set: what a test leaves unset keeps the product's default, exactly as a key left out of the file
//! does. The parts are plain structs with
//! public fields, built with `..Part::new(...)` (or `..Default::default()`). Rare keys go through
//! [`TestConfig::set`] (a dotted path, arrays indexed by number) or [`TestConfig::raw`] (text
//! appended as it is, e.g. a table the model has no part for here); a test of a refusal writes
//! with [`TestConfig::write_unchecked`].

pub mod watchdog;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub use watchdog::{
    Alertmanager, Detector, Rule, Safe, SafeService, SafeTarget, Watchdog, Webhook,
};

/// The whole file; see the module documentation.
#[derive(Debug, Clone, Serialize)]
pub struct TestConfig {
    /// `[postgres]`
    pub postgres: Postgres,
    /// `[kafka]`
    pub kafka: Kafka,
    /// `[server]`, when the test sets any of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    /// `[sink]`, when the test sets any of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<Sink>,
    /// `[[chains]]`
    pub chains: Vec<Chain>,
    /// `[[contracts]]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contracts: Vec<Contract>,
    /// `[watchdog]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<Watchdog>,
    /// Keys set by [`TestConfig::set`], applied over the parts in order.
    #[serde(skip)]
    sets: Vec<(String, toml::Value)>,
    /// Text appended by [`TestConfig::raw`].
    #[serde(skip)]
    raw: String,
    /// Environment the validation interpolates `${VAR}` with, before the process's own.
    #[serde(skip)]
    env: BTreeMap<String, String>,
}

impl TestConfig {
    /// A file with `postgres.url` and `kafka.brokers` and nothing else yet.
    pub fn new(postgres_url: impl Into<String>, brokers: impl Into<String>) -> TestConfig {
        TestConfig {
            postgres: Postgres {
                url: postgres_url.into(),
                ..Postgres::default()
            },
            kafka: Kafka {
                brokers: brokers.into(),
                ..Kafka::default()
            },
            server: None,
            sink: None,
            chains: Vec::new(),
            contracts: Vec::new(),
            watchdog: None,
            sets: Vec::new(),
            raw: String::new(),
            env: BTreeMap::new(),
        }
    }

    /// Sets `[server]`.
    pub fn server(mut self, server: Server) -> Self {
        self.server = Some(server);
        self
    }

    /// Sets `[sink]`.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Adds a `[[chains]]` entry.
    pub fn chain(mut self, chain: Chain) -> Self {
        self.chains.push(chain);
        self
    }

    /// Adds a `[[contracts]]` entry.
    pub fn contract(mut self, contract: Contract) -> Self {
        self.contracts.push(contract);
        self
    }

    /// Sets `[watchdog]`.
    pub fn watchdog(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = Some(watchdog);
        self
    }

    /// Sets the key at the dotted `path` (`"chains.0.verify_ranges"`, `"kafka.properties.acks"`)
    /// to `value`, creating the tables on the way: for a key no part has a field for.
    pub fn set(mut self, path: &str, value: impl Into<toml::Value>) -> Self {
        self.sets.push((path.to_owned(), value.into()));
        self
    }

    /// Appends `text` to the file as it is. It must open with a table header (`[[...]]` or
    /// `[...]`), since the table written last is not known to the caller.
    pub fn raw(mut self, text: impl AsRef<str>) -> Self {
        self.raw.push('\n');
        self.raw.push_str(text.as_ref());
        self.raw.push('\n');
        self
    }

    /// `${name}` is `value` when [`TestConfig::write`] validates the file, e.g. a variable only
    /// the child process's environment holds.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut doc = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            Ok(other) => panic!("the config serialized to {other:?}, not a table"),
            Err(e) => panic!("the config does not serialize: {e}"),
        };
        for (path, value) in &self.sets {
            if let Err(e) = set_path(&mut doc, path, value.clone()) {
                panic!("TestConfig::set({path:?}): {e}");
            }
        }
        let mut text = toml::to_string(&doc).expect("a table serializes");
        text.push_str(&self.raw);
        text
    }

    /// Checks the text as the programs will read it (interpolated, parsed, validated with the
    /// `[watchdog]` section, relative paths against `path`'s folder), then writes it to `path`
    /// (through a temporary file and a rename, so a process starting meanwhile never reads half
    /// a file). Returns `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let text = self.text();
        self.check(&text, path)?;
        write_atomically(path, &text)?;
        Ok(path.to_owned())
    }

    /// [`TestConfig::write`] without the check: for a test of what a program refuses.
    pub fn write_unchecked(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        write_atomically(path, &self.text())?;
        Ok(path.to_owned())
    }

    /// The settings the programs would read from this config at `path` (checked as
    /// [`TestConfig::write`] checks it): for unit tests that need `Settings` and no file.
    pub fn settings(&self, path: impl AsRef<Path>) -> Result<tripwire_config::Settings> {
        self.check(&self.text(), path.as_ref())
    }

    /// The validation of [`TestConfig::write`], for a text built here.
    fn check(&self, text: &str, path: &Path) -> Result<tripwire_config::Settings> {
        let lookup = |k: &str| self.env.get(k).cloned().or_else(|| std::env::var(k).ok());
        match tripwire_config::Settings::from_str_with_env(text, path, lookup) {
            Ok(settings) => Ok(settings),
            Err(e) => bail!(
                "the programs would refuse this config ({}): {e}\n{text}",
                path.display()
            ),
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", crate::random_hex(8)));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Sets `path` (dotted; a number indexes an array) in `doc` to `value`.
fn set_path(doc: &mut toml::Table, path: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, walk) = parts.split_last().context("empty path")?;
    let mut here = doc;
    let mut steps = walk.iter().peekable();
    while let Some(part) = steps.next() {
        let next = here
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let next = match next {
            // `chains.0.x`: the step after an array is its index.
            toml::Value::Array(items) => {
                let index = steps
                    .next()
                    .with_context(|| format!("`{part}` is an array: give an index after it"))?;
                let i: usize = index
                    .parse()
                    .with_context(|| format!("`{part}.{index}`: not an index"))?;
                let len = items.len();
                items
                    .get_mut(i)
                    .with_context(|| format!("`{part}` has {len} entries, not {}", i + 1))?
            }
            other => other,
        };
        here = match next {
            toml::Value::Table(t) => t,
            other => bail!("`{part}` is {}, not a table", other.type_str()),
        };
    }
    here.insert((*last).to_owned(), value);
    Ok(())
}

/// `[postgres]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Postgres {
    /// `url`
    pub url: String,
    /// `max_connections`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// `[kafka]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kafka {
    /// `brokers`
    pub brokers: String,
    /// `topic`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `partitions`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// `max_lead_records`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lead_records: Option<u64>,
    /// `max_lead_bytes`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lead_bytes: Option<u64>,
    /// `[kafka.properties]`
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// `[server]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Server {
    /// `listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `lag_threshold_blocks`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_threshold_blocks: Option<u64>,
    /// `header_timeout_ms`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<u64>,
    /// `request_timeout_ms`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// `max_connections`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

impl Server {
    /// `listen = "127.0.0.1:0"`: any free port (the process logs the one it bound).
    pub fn any_port() -> Server {
        Server {
            listen: Some("127.0.0.1:0".into()),
            ..Server::default()
        }
    }
}

/// `[sink]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sink {
    /// `consumer`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// `batch_records`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_records: Option<usize>,
    /// `batch_bytes`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_bytes: Option<u64>,
    /// `batch_wait_ms`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_wait_ms: Option<u64>,
}

/// `[[chains]]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chain {
    /// `name`
    pub name: String,
    /// `chain_id`
    pub chain_id: u64,
    /// `rpc_urls`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rpc_urls: Vec<String>,
    /// `[[chains.providers]]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Provider>,
    /// `max_provider_lag_blocks`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_provider_lag_blocks: Option<u64>,
    /// `verify_ranges`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ranges: Option<bool>,
    /// `check_logs_bloom`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_logs_bloom: Option<bool>,
    /// `start_block`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_block: Option<u64>,
    /// `confirmations`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// `max_reorg_depth`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reorg_depth: Option<u64>,
    /// `poll_interval_ms`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    /// `range_blocks`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_blocks: Option<u64>,
    /// `range_target_logs`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_target_logs: Option<u64>,
    /// `range_target_bytes`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_target_bytes: Option<u64>,
    /// `max_response_bytes`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// `rpc_timeout_s`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_timeout_s: Option<u64>,
    /// `ranges_in_flight`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges_in_flight: Option<usize>,
}

impl Chain {
    /// A chain named `name` with id `chain_id` and one RPC URL.
    pub fn new(name: impl Into<String>, chain_id: u64, rpc_url: impl Into<String>) -> Chain {
        Chain {
            name: name.into(),
            chain_id,
            rpc_urls: vec![rpc_url.into()],
            ..Chain::default()
        }
    }
}

/// `[[chains.providers]]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Provider {
    /// `url`
    pub url: String,
    /// `name`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `weight`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// `max_rps`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rps: Option<u32>,
}

/// `[[contracts]]`
#[derive(Debug, Clone, Default, Serialize)]
pub struct Contract {
    /// `name`
    pub name: String,
    /// `chain`
    pub chain: String,
    /// `addresses`
    pub addresses: Vec<String>,
    /// `abi`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi: Option<PathBuf>,
    /// `events`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// `start_block`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_block: Option<u64>,
    /// `transactions` (`true`: every call; a list: calls of those functions)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<toml::Value>,
}

impl Contract {
    /// A contract named `name` on `chain` at `addresses` (their `Display`: checksummed hex for
    /// an `Address`), with no ABI yet.
    pub fn new<A: Display>(
        name: impl Into<String>,
        chain: impl Into<String>,
        addresses: impl IntoIterator<Item = A>,
    ) -> Contract {
        Contract {
            name: name.into(),
            chain: chain.into(),
            addresses: addresses.into_iter().map(|a| a.to_string()).collect(),
            ..Contract::default()
        }
    }

    /// With the ABI of the committed artifact `contract` (`contracts/out/<contract>.json`).
    pub fn artifact(mut self, contract: &str) -> Contract {
        self.abi = Some(crate::contracts::artifact_path(contract));
        self
    }

    /// With every transaction sent to it indexed (`transactions = true`).
    pub fn transactions(mut self) -> Contract {
        self.transactions = Some(toml::Value::Boolean(true));
        self
    }

    /// With the human-readable event signatures `events`.
    pub fn events<S: Into<String>>(mut self, events: impl IntoIterator<Item = S>) -> Contract {
        self.events = events.into_iter().map(Into::into).collect();
        self
    }
}

#[cfg(test)]
mod tests;
