//! A loaded configuration: read, interpolated, parsed once (the `[watchdog]` section with the
//! rest), validated, and its secrets registered for redaction.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy_json_abi::Function;
use alloy_primitives::{Address, FixedBytes};

use crate::watchdog::WatchdogConfig;
use crate::{Brokers, ChainConfig, Config, ConfigError, ContractAbi, Flow};

/// A contract after validation: parsed addresses and loaded ABI.
#[derive(Debug, Clone)]
pub struct ContractSpec {
    /// The contract's name in the config, used in records and detectors.
    pub name: String,
    /// Name of the chain the contract lives on.
    pub chain: String,
    /// The contract's addresses (one ABI may cover several deployments).
    pub addresses: Vec<Address>,
    /// Its events, from the ABI file and the human-readable `events`.
    pub abi: ContractAbi,
    /// First block of the contract (its deployment): its logs in earlier blocks are skipped.
    /// `None`: no limit of its own.
    pub start_block: Option<u64>,
    /// Which transactions sent to the contract are fetched and proven (`transactions`).
    pub transactions: TxWatch,
}

/// Which transactions sent to a contract are watched (its `transactions` key, validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TxWatch {
    /// None (the default).
    #[default]
    Off,
    /// Every transaction sent to the contract.
    All,
    /// Only calls of these function selectors.
    Functions(Vec<FixedBytes<4>>),
}

impl TxWatch {
    /// True when some transactions are watched.
    pub fn is_on(&self) -> bool {
        !matches!(self, TxWatch::Off)
    }

    /// Whether a transaction whose calldata starts with `selector` (`None`: shorter than 4
    /// bytes, a plain transfer) is watched.
    pub fn matches(&self, selector: Option<FixedBytes<4>>) -> bool {
        match self {
            TxWatch::Off => false,
            TxWatch::All => true,
            TxWatch::Functions(list) => selector.is_some_and(|s| list.contains(&s)),
        }
    }
}

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as parsed.
    pub config: Config,
    /// Every configured contract, validated.
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
        Self::from_str_with_env(text, path, |k| std::env::var(k).ok())
    }

    /// [`Settings::from_str_at`] with the environment given by `lookup`.
    pub fn from_str_with_env(
        text: &str,
        path: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let config: Config = crate::env::parse(text, path, lookup)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let contracts = config.validate(base)?;
        if let Some(w) = &config.watchdog {
            crate::watchdog::validate(w, &config, &contracts)?;
            crate::watchdog::register_secrets(w);
        }
        Ok(Settings {
            config,
            contracts,
            path: path.to_owned(),
        })
    }

    /// The `[watchdog]` section, which the watchdog and the back-test need.
    pub fn watchdog(&self) -> Result<&WatchdogConfig, ConfigError> {
        self.config
            .watchdog
            .as_ref()
            .ok_or_else(|| ConfigError::Invalid {
                field: "watchdog".into(),
                message: "the file has no [watchdog] section".into(),
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

    /// The lead and batch limits (see `flow.rs`); checked when the file was loaded.
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
        if self.kafka.brokers == Brokers::Servers(String::new()) {
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
            let mut abi = ContractAbi::load(abi_path.as_deref(), &c.events).map_err(|m| {
                ConfigError::invalid(
                    field(if m.starts_with("event") {
                        "events"
                    } else {
                        "abi"
                    }),
                    m,
                )
            })?;
            let transactions = tx_watch(&c.transactions, c.abi.is_some(), &mut abi)
                .map_err(|m| ConfigError::invalid(field("transactions"), m))?;
            specs.push(ContractSpec {
                name: c.name.clone(),
                chain: c.chain.clone(),
                addresses,
                abi,
                start_block: c.start_block,
                transactions,
            });
        }
        Ok(specs)
    }
}

/// Validates `transactions`: every listed signature must parse as a function and, when the
/// contract has an ABI file, be one of its functions (a typo would otherwise watch nothing).
/// Listed functions unknown to the ABI are added to it so that their calls decode.
fn tx_watch(
    config: &crate::TransactionsConfig,
    has_abi_file: bool,
    abi: &mut ContractAbi,
) -> Result<TxWatch, String> {
    let list = match config {
        crate::TransactionsConfig::All(false) => return Ok(TxWatch::Off),
        crate::TransactionsConfig::All(true) => return Ok(TxWatch::All),
        crate::TransactionsConfig::Functions(list) => list,
    };
    if list.is_empty() {
        return Err("an empty list watches nothing: use `false`, `true` or name functions".into());
    }
    let mut selectors = Vec::with_capacity(list.len());
    for sig in list {
        let function = Function::parse(sig)
            .map_err(|e| format!("`{sig}` is not a function signature: {e}"))?;
        let selector = function.selector();
        if has_abi_file {
            if abi.function(selector).is_none() {
                return Err(format!(
                    "`{sig}` ({}) is not a function of the contract's ABI",
                    function.signature()
                ));
            }
        } else {
            abi.add_function(function);
        }
        if !selectors.contains(&selector) {
            selectors.push(selector);
        }
    }
    Ok(TxWatch::Functions(selectors))
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
