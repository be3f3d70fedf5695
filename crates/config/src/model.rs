//! The structs of the file, which are its documentation: every field has a doc comment and a
//! default where one is safe, and unknown keys are rejected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::watchdog::WatchdogConfig;

/// The value of `kafka.brokers` that starts the in-process development broker.
pub const EMBEDDED: &str = "embedded";

/// `kafka.brokers`: the in-process development broker, or a cluster's bootstrap servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// `embedded`: librdkafka's in-process broker (in memory, lost at exit).
    Embedded,
    /// `host:port[,host:port...]`, as librdkafka's `bootstrap.servers` takes them.
    Servers(String),
}

impl Brokers {
    /// The bootstrap servers of a real cluster; `None` for the embedded broker, whose address
    /// exists only once it runs.
    pub fn servers(&self) -> Option<&str> {
        match self {
            Brokers::Embedded => None,
            Brokers::Servers(s) => Some(s),
        }
    }
}

impl std::fmt::Display for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Brokers::Embedded => EMBEDDED,
            Brokers::Servers(s) => s,
        })
    }
}

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        Ok(if s == EMBEDDED {
            Brokers::Embedded
        } else {
            // An empty list is refused by validation, naming the key.
            Brokers::Servers(s.to_owned())
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// The whole configuration file, as parsed (before validation; see `Settings`).
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
    /// `[watchdog]`: detectors, alerting, pause proposals and the webhook receiver (see
    /// [`WatchdogConfig`]). Parsed and validated with the rest of the file by every process, so a
    /// mistake in it is found by `check-config` of any of them; only `tripwire-watchdog` needs it.
    #[serde(default)]
    pub watchdog: Option<WatchdogConfig>,
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
    pub brokers: Brokers,
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
    /// `flow.rs`).
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
        self.brokers == Brokers::Embedded
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
    /// A complete request's headers must arrive within this.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }
    /// A request must be answered within this, its body read included.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
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
    /// Transaction-level monitoring: `true` to fetch every transaction sent to the contract (with
    /// its receipt, proven against the block header), or a list of function signatures, e.g.
    /// `["pause()"]`, for the calls of those functions only. Off by default: it costs a full
    /// block and its receipts per block.
    #[serde(default)]
    pub transactions: TransactionsConfig,
}

/// `transactions` of a `[[contracts]]` entry: on/off, or the functions whose calls are watched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "true, false or a list of function signatures")]
pub enum TransactionsConfig {
    /// `true`: every transaction sent to the contract; `false`: none.
    All(bool),
    /// Only calls of these functions (signatures such as `grantRole(bytes32,address)`).
    Functions(Vec<String>),
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        TransactionsConfig::All(false)
    }
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
