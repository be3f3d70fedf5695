//! The configuration file: one TOML document shared by every Tripwire process. The structs below are
//! its documentation: every field has a doc comment, unknown keys are rejected, `${ENV}` is expanded
//! before parsing (see `env.rs`), and `validate` turns every semantic mistake into an error that names
//! the field and the value.

mod abi;
mod env;
pub mod flow;
#[cfg(test)]
mod tests;

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy::primitives::Address;
use serde::Deserialize;

pub use abi::{ContractAbi, EventAbi};
pub use env::interpolate;
pub use flow::{Flow, LeadLimit};

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: environment variable `{var}` {reason}")]
    Interpolation { var: String, reason: String },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where rows, cursors and offsets are stored.
    pub postgres: PostgresConfig,
    /// The stream between the ingest and its consumers.
    pub kafka: KafkaConfig,
    /// The HTTP endpoint serving `/metrics` and `/health`.
    #[serde(default)]
    pub server: ServerConfig,
    /// The chains to follow (`[[chains]]`).
    pub chains: Vec<ChainConfig>,
    /// The contracts whose logs are indexed (`[[contracts]]`).
    #[serde(default)]
    pub contracts: Vec<ContractConfig>,
    /// Settings of the sink (Kafka -> Postgres).
    #[serde(default)]
    pub sink: SinkConfig,
    /// `[watchdog]`: detectors and alerting, read and validated by `tripwire-watchdog` (its
    /// structure is documented in `watchdog/src/config.rs`); the indexer ignores it.
    #[serde(default)]
    pub watchdog: Option<toml::Table>,
}

/// `[postgres]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL, e.g. `postgres://user@host:5432/db`. Usually `${DATABASE_URL}`.
    pub url: String,
    /// Largest number of pooled connections per process.
    #[serde(default = "default_pg_max_connections")]
    pub max_connections: u32,
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, or `embedded` to start librdkafka's in-process broker
    /// (in memory, lost at exit: for development only).
    pub brokers: String,
    /// Topic name template per chain; `{chain}` is the chain's name, `{chain_id}` its id.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Partitions of a topic the indexer creates. Records are keyed by chain, so one suffices.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How many records the ingest may have in the topic beyond the sink's stored position
    /// (0 = no limit): it publishes a group of blocks only if the group stays within the limit
    /// (a single block larger than the whole limit goes alone once the sink has caught up), and
    /// waits for the sink otherwise. Default: no limit; the byte limit below is the one the
    /// embedded broker needs. `sink.batch_records` must be at most half of it (see
    /// `config/flow.rs`).
    #[serde(default)]
    pub max_lead_records: Option<u64>,
    /// The same in bytes as the broker keeps them (compressed record batches, counted from what
    /// the producer sent), 0 = no limit. Defaults to 4 MiB with the embedded broker, whose
    /// in-memory partitions keep only the newest 5 MiB of record batches, and to no limit with a
    /// real cluster, whose retention is the operator's choice. `sink.batch_bytes` must be at most
    /// half of it.
    #[serde(default)]
    pub max_lead_bytes: Option<u64>,
    /// Extra librdkafka properties for every client (e.g. `"security.protocol" = "SASL_SSL"`).
    /// They win over Tripwire's own choices, except that with a byte lead
    /// `statistics.interval.ms` must stay within 1..=1000 (the lead is counted from the
    /// producer's statistics; Tripwire's own is 20).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

impl KafkaConfig {
    /// `brokers = "embedded"`: the in-process development broker.
    pub fn is_embedded(&self) -> bool {
        self.brokers.trim() == crate::kafka::EMBEDDED
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address of `/metrics` and `/health`. Each process of a host needs its own port:
    /// `--listen` on the command line overrides it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Lag in blocks (head minus last synced block) above which `/health` reports `degraded`.
    /// The runbooks call more than 1000 blocks a P1.
    #[serde(default = "default_lag_threshold")]
    pub lag_threshold_blocks: u64,
    /// A connection that has not sent a request's complete headers within this many
    /// milliseconds is closed (an idle keep-alive connection too), so idle or slow clients cannot
    /// hold connections. Applies to every process's HTTP server (the watchdog's webhook too).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A request not answered within this many milliseconds, reading its body included, is
    /// answered 408.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Connections served at once; more wait in the kernel's backlog (using no file descriptor
    /// of the process) until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            lag_threshold_blocks: default_lag_threshold(),
            header_timeout_ms: default_header_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_connections: default_max_connections(),
        }
    }
}

impl ServerConfig {
    /// The HTTP server's limits.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms.max(1)),
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms.max(1)),
            max_connections: self.max_connections.max(1),
        }
    }
}

fn default_header_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    256
}

/// `[sink]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Name under which the sink stores its Kafka positions in Postgres, and its Kafka group id:
    /// every sink of this name shares the chain topics' partitions (see `kafka::group`).
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Largest number of records written in one Postgres transaction. Default 50000, or half of
    /// `kafka.max_lead_records` when that is less; a larger value than that half is refused.
    #[serde(default)]
    pub batch_records: Option<usize>,
    /// Largest number of record bytes (Kafka payloads) written in one Postgres transaction; with
    /// `batch_records` it bounds the sink's memory (two batches exist at a time). Default 16 MiB,
    /// or half of an explicit `kafka.max_lead_bytes` when that is less; a value above half of an
    /// explicit `kafka.max_lead_bytes` is refused.
    #[serde(default)]
    pub batch_bytes: Option<u64>,
    /// Longest wait, in milliseconds, for a batch to fill before it is written anyway.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            consumer: default_consumer(),
            batch_records: None,
            batch_bytes: None,
            batch_wait_ms: default_batch_wait_ms(),
        }
    }
}

/// `[[chains]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Short name used in topics, metrics and the CLI (`[a-z0-9_-]`).
    pub name: String,
    /// EIP-155 chain id; checked against `eth_chainId` of every RPC URL at start.
    pub chain_id: u64,
    /// JSON-RPC endpoints (HTTP), all of equal weight and without a rate limit. Shorthand for
    /// `providers`; both may be given and are used together.
    #[serde(default)]
    pub rpc_urls: Vec<String>,
    /// JSON-RPC endpoints with their own settings (`[[chains.providers]]`). Requests go to the best
    /// provider in rotation (highest weight, then lowest latency and error rate) and fail over to
    /// the next within the same call.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// A provider whose head is more than this many blocks behind the best provider's head is
    /// taken out of rotation until it catches up.
    #[serde(default = "default_max_provider_lag_blocks")]
    pub max_provider_lag_blocks: u64,
    /// Believe a provider's log list only together with its own header of every block of the
    /// range, fetched in the same JSON-RPC batch. A node that has not reached a block answers
    /// `eth_getLogs` with an empty list, not an error: turning this off loses those rows silently.
    /// It exists so that the test suite can show that loss; never turn it off in production.
    #[serde(default = "default_true")]
    pub verify_ranges: bool,
    /// Check every log answer against its blocks' `logsBloom` (with `verify_ranges`): a log the
    /// bloom excludes makes the answer wrong, and a block whose bloom holds a configured address
    /// (and event) but whose answer has no log is settled by a second source (another provider's
    /// `eth_getLogs` by block hash, or the block's receipts checked against its `receiptsRoot`)
    /// before the cursor moves. Catches providers whose log index lags their headers. Headers
    /// without a bloom (or with an all-zero one) are not checked; turn it off only for a chain
    /// whose blooms are known to be wrong.
    #[serde(default = "default_true")]
    pub check_logs_bloom: bool,
    /// First block to index when no cursor exists yet.
    #[serde(default)]
    pub start_block: u64,
    /// Blocks to stay behind the head. 0 streams tip blocks at once and relies on retractions when
    /// the chain reorganises.
    #[serde(default)]
    pub confirmations: u64,
    /// Deepest reorganisation handled. A deeper one stops the indexer with an error instead of
    /// corrupting data. Ethereum: 64; Polygon PoS: 200; Arbitrum: 240; OP/Base: 30.
    #[serde(default = "default_max_reorg_depth")]
    pub max_reorg_depth: u64,
    /// Milliseconds between polls of the head once the indexer has caught up.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Largest number of blocks per `eth_getLogs` request. Below it, each range is sized by what
    /// the previous answers held: as many blocks as are expected to hold `range_target_logs` logs
    /// and `range_target_bytes` bytes (a sparse contract gets long ranges, a dense one short ones),
    /// and smaller after a provider's range or response-size limit, growing back after successes.
    /// The first range of a run is one block, to learn the density.
    #[serde(default = "default_range_blocks")]
    pub range_blocks: u64,
    /// Logs aimed at per `eth_getLogs` request (see `range_blocks`). Below the 10,000 results many
    /// providers allow per request.
    #[serde(default = "default_range_target_logs")]
    pub range_target_logs: u64,
    /// Bytes of JSON aimed at per `eth_getLogs` answer (see `range_blocks`): with
    /// `ranges_in_flight` it bounds what the ingest holds in memory.
    #[serde(default = "default_range_target_bytes")]
    pub range_target_bytes: u64,
    /// Largest JSON-RPC answer read, in bytes: a larger one is abandoned unread and treated as a
    /// provider's response-size limit (the range halves). Bounds what one request can hold when
    /// a range meets more logs than its size estimate expected. At least `range_target_bytes`.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Seconds before an RPC request is abandoned.
    #[serde(default = "default_rpc_timeout_s")]
    pub rpc_timeout_s: u64,
    /// Ranges fetched at once during backfill (published and committed in order).
    #[serde(default = "default_ranges_in_flight")]
    pub ranges_in_flight: usize,
}

/// `[[chains.providers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// HTTP(S) JSON-RPC endpoint. A key in its path or query is redacted from logs and metrics.
    pub url: String,
    /// Label in logs, metrics and `status` (default: the URL without path or credentials).
    #[serde(default)]
    pub name: Option<String>,
    /// Preference among healthy providers: a provider with a higher weight is asked first.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Largest number of HTTP requests per second sent to this provider (a JSON-RPC batch is one
    /// request). Unset: no limit.
    #[serde(default)]
    pub max_rps: Option<u32>,
}

impl ChainConfig {
    /// `rpc_urls` and `providers` as one list, in that order.
    pub fn all_providers(&self) -> Vec<ProviderConfig> {
        self.rpc_urls
            .iter()
            .map(|url| ProviderConfig {
                url: url.clone(),
                name: None,
                weight: default_weight(),
                max_rps: None,
            })
            .chain(self.providers.iter().cloned())
            .collect()
    }
}

/// `[[contracts]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractConfig {
    /// Name written into every record of this contract (`contract` field).
    pub name: String,
    /// Name of the chain (from `[[chains]]`) the contract lives on.
    pub chain: String,
    /// One or more addresses sharing the ABI (0x-hex, 20 bytes).
    pub addresses: Vec<String>,
    /// Path to the ABI: a Foundry or Hardhat artifact (an object with `abi`) or a plain JSON ABI
    /// array. Relative paths are resolved against the config file's folder.
    #[serde(default)]
    pub abi: Option<PathBuf>,
    /// Human-readable event signatures, e.g. `event Transfer(address indexed from, address indexed
    /// to, uint256 value)`; added to those of `abi`.
    #[serde(default)]
    pub events: Vec<String>,
    /// First block of this contract (its deployment); earlier blocks are not queried for it.
    #[serde(default)]
    pub start_block: Option<u64>,
}

fn default_pg_max_connections() -> u32 {
    8
}
fn default_topic() -> String {
    "tripwire.{chain}.events".into()
}
fn default_partitions() -> i32 {
    1
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("valid literal")
}
fn default_lag_threshold() -> u64 {
    1000
}
fn default_consumer() -> String {
    "tripwire-sink".into()
}
fn default_batch_wait_ms() -> u64 {
    200
}
fn default_max_reorg_depth() -> u64 {
    64
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_true() -> bool {
    true
}
fn default_weight() -> u32 {
    1
}
fn default_max_provider_lag_blocks() -> u64 {
    10
}
fn default_range_blocks() -> u64 {
    500
}
fn default_range_target_logs() -> u64 {
    5_000
}
fn default_range_target_bytes() -> u64 {
    4 << 20
}
fn default_max_response_bytes() -> u64 {
    16 << 20
}
fn default_ranges_in_flight() -> usize {
    3
}
fn default_rpc_timeout_s() -> u64 {
    30
}

/// A contract after validation: parsed addresses and loaded ABI.
#[derive(Debug, Clone)]
pub struct ContractSpec {
    pub name: String,
    pub chain: String,
    pub addresses: Vec<Address>,
    pub abi: ContractAbi,
    pub start_block: Option<u64>,
}

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub contracts: Vec<ContractSpec>,
    /// The file it was read from.
    pub path: PathBuf,
}

impl Settings {
    /// Reads, interpolates, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses config text as if read from `path` (relative ABI paths resolve against its folder).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let text = interpolate(text, |k| std::env::var(k).ok())?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let contracts = config.validate(base)?;
        Ok(Settings {
            config,
            contracts,
            path: path.to_owned(),
        })
    }

    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&ChainConfig> {
        self.config.chains.iter().find(|c| c.name == name)
    }

    /// The contracts configured on `chain`.
    pub fn contracts_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ContractSpec> {
        self.contracts.iter().filter(move |c| c.chain == chain)
    }

    /// The lead and batch limits (see `config/flow.rs`); checked when the file was loaded.
    pub fn flow(&self) -> Flow {
        self.config
            .flow()
            .expect("the flow limits were validated when the config was loaded")
    }

    /// The Kafka topic of a chain.
    pub fn topic(&self, chain: &ChainConfig) -> String {
        self.config
            .kafka
            .topic
            .replace("{chain}", &chain.name)
            .replace("{chain_id}", &chain.chain_id.to_string())
    }
}

impl Config {
    fn validate(&self, base: &Path) -> Result<Vec<ContractSpec>, ConfigError> {
        if self.postgres.url.trim().is_empty() {
            return Err(ConfigError::invalid("postgres.url", "is empty"));
        }
        if !self.postgres.url.starts_with("postgres://")
            && !self.postgres.url.starts_with("postgresql://")
        {
            return Err(ConfigError::invalid(
                "postgres.url",
                format!(
                    "`{}` is not a postgres:// URL",
                    redact_url(&self.postgres.url)
                ),
            ));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "is empty (use `embedded` for the in-process development broker)",
            ));
        }
        if !self.kafka.topic.contains("{chain}")
            && !self.kafka.topic.contains("{chain_id}")
            && self.chains.len() > 1
        {
            return Err(ConfigError::invalid(
                "kafka.topic",
                "must contain {chain} or {chain_id} when several chains are configured",
            ));
        }
        if self.kafka.partitions < 1 {
            return Err(ConfigError::invalid(
                "kafka.partitions",
                "must be at least 1",
            ));
        }
        self.flow()?;
        if self.chains.is_empty() {
            return Err(ConfigError::invalid("chains", "no [[chains]] configured"));
        }
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for (i, c) in self.chains.iter().enumerate() {
            let field = |f: &str| format!("chains[{i}] ({}).{f}", c.name);
            if c.name.is_empty()
                || !c.name.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
                })
            {
                return Err(ConfigError::invalid(
                    format!("chains[{i}].name"),
                    format!(
                        "`{}` must be non-empty and use only a-z, 0-9, _ and -",
                        c.name
                    ),
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(ConfigError::invalid(field("name"), "is used by two chains"));
            }
            if !ids.insert(c.chain_id) {
                return Err(ConfigError::invalid(
                    field("chain_id"),
                    format!("{} is used by two chains", c.chain_id),
                ));
            }
            let providers = c.all_providers();
            if providers.is_empty() {
                return Err(ConfigError::invalid(
                    field("rpc_urls"),
                    "needs at least one URL (in rpc_urls or [[chains.providers]])",
                ));
            }
            for (j, p) in providers.iter().enumerate() {
                // From here on its key, wherever it appears, is shown as `***`.
                crate::secrets::register_url(&p.url);
                let what = if j < c.rpc_urls.len() {
                    field("rpc_urls")
                } else {
                    field(&format!("providers[{}].url", j - c.rpc_urls.len()))
                };
                let parsed = url::Url::parse(&p.url).map_err(|e| {
                    ConfigError::invalid(&what, format!("`{}`: {e}", redact_url(&p.url)))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::invalid(
                        what,
                        format!(
                            "`{}`: only http(s) endpoints are supported",
                            redact_url(&p.url)
                        ),
                    ));
                }
                if p.max_rps == Some(0) {
                    return Err(ConfigError::invalid(
                        field(&format!("providers[{}].max_rps", j - c.rpc_urls.len())),
                        "must be at least 1 (leave it out for no limit)",
                    ));
                }
            }
            if c.max_reorg_depth == 0 {
                return Err(ConfigError::invalid(
                    field("max_reorg_depth"),
                    "must be at least 1",
                ));
            }
            if c.range_blocks == 0 {
                return Err(ConfigError::invalid(
                    field("range_blocks"),
                    "must be at least 1",
                ));
            }
            if c.range_target_logs == 0 {
                return Err(ConfigError::invalid(
                    field("range_target_logs"),
                    "must be at least 1",
                ));
            }
            if c.range_target_bytes == 0 {
                return Err(ConfigError::invalid(
                    field("range_target_bytes"),
                    "must be at least 1",
                ));
            }
            if c.max_response_bytes < c.range_target_bytes {
                return Err(ConfigError::invalid(
                    field("max_response_bytes"),
                    format!(
                        "{} is less than range_target_bytes = {}: every range sized to the \
                         target could be refused as too large. Raise max_response_bytes or lower \
                         range_target_bytes",
                        c.max_response_bytes, c.range_target_bytes
                    ),
                ));
            }
            if c.ranges_in_flight == 0 {
                return Err(ConfigError::invalid(
                    field("ranges_in_flight"),
                    "must be at least 1",
                ));
            }
            if c.poll_interval_ms == 0 {
                return Err(ConfigError::invalid(
                    field("poll_interval_ms"),
                    "must be at least 1",
                ));
            }
        }
        let mut contract_names = HashSet::new();
        let mut owners: std::collections::HashMap<(&str, Address), usize> = Default::default();
        let mut specs = Vec::with_capacity(self.contracts.len());
        for (i, c) in self.contracts.iter().enumerate() {
            let field = |f: &str| format!("contracts[{i}] ({}).{f}", c.name);
            if c.name.is_empty() {
                return Err(ConfigError::invalid(
                    format!("contracts[{i}].name"),
                    "is empty",
                ));
            }
            if !contract_names.insert((c.chain.as_str(), c.name.as_str())) {
                return Err(ConfigError::invalid(
                    field("name"),
                    "is used twice on this chain",
                ));
            }
            if !names.contains(c.chain.as_str()) {
                return Err(ConfigError::invalid(
                    field("chain"),
                    format!("`{}` is not a configured chain", c.chain),
                ));
            }
            if c.addresses.is_empty() {
                return Err(ConfigError::invalid(
                    field("addresses"),
                    "needs at least one address",
                ));
            }
            let addresses = c
                .addresses
                .iter()
                .map(|a| parse_address(a).map_err(|m| ConfigError::invalid(field("addresses"), m)))
                .collect::<Result<Vec<_>, _>>()?;
            // Rows are attributed to a contract by address: one address under two names would
            // silently give every row the later name.
            for a in &addresses {
                if let Some(first) = owners.insert((c.chain.as_str(), *a), i) {
                    let message = if first == i {
                        format!("lists {a} twice")
                    } else {
                        format!(
                            "{a} is also an address of contracts[{first}] ({}) on chain {}: \
                             an address belongs to one contract",
                            self.contracts[first].name, c.chain
                        )
                    };
                    return Err(ConfigError::invalid(field("addresses"), message));
                }
            }
            let abi_path = c.abi.as_ref().map(|p| base.join(p));
            let abi = ContractAbi::load(abi_path.as_deref(), &c.events).map_err(|m| {
                ConfigError::invalid(
                    field(if m.starts_with("event") {
                        "events"
                    } else {
                        "abi"
                    }),
                    m,
                )
            })?;
            specs.push(ContractSpec {
                name: c.name.clone(),
                chain: c.chain.clone(),
                addresses,
                abi,
                start_block: c.start_block,
            });
        }
        Ok(specs)
    }
}

/// Parses a 0x-prefixed 20-byte hex address; a mixed-case address must carry a valid EIP-55
/// checksum, since a wrong one usually means a typo.
fn parse_address(s: &str) -> Result<Address, String> {
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{s}` is not an address: it must start with 0x"))?;
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not an address: expected 40 hex digits after 0x"
        ));
    }
    let mixed =
        hex.chars().any(|c| c.is_ascii_uppercase()) && hex.chars().any(|c| c.is_ascii_lowercase());
    if mixed {
        Address::parse_checksummed(s, None)
            .map_err(|_| format!("`{s}` has an invalid EIP-55 checksum"))
    } else {
        Address::from_str(s).map_err(|e| format!("`{s}`: {e}"))
    }
}

/// Hides credentials in a URL before it reaches a log, a label or an error message: the user
/// info (a key given as the user name too), the path and the query.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            // API keys often sit in the path (`/v2/<key>`) or query; keep only the host.
            if u.path().len() > 1 || u.query().is_some() {
                u.set_path("/…");
                u.set_query(None);
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".into(),
    }
}
