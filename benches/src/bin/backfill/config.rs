//! The `tripwire.toml` each run gives the indexer: only what the benchmark must set (its
//! database, topic and chain) and what the command line asked for, so everything else stays at
//! the indexer's defaults.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use testkit::postgres::TestDb;

use crate::chain::{Chain, CHAIN_ID, PING};
use crate::cli::{Args, BloomCheck};

#[allow(clippy::too_many_arguments)]
pub(crate) fn config_text(
    args: &Args,
    chain: &Chain,
    db: &TestDb,
    brokers: &str,
    topic: &str,
    providers: usize,
    bloom: BloomCheck,
    mock_broker: bool,
) -> Result<String> {
    let mut props = String::new();
    for p in &args.kafka_props {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--kafka-prop {p:?} is not KEY=VALUE"))?;
        writeln!(props, "{k:?} = {v:?}")?;
    }
    if !props.is_empty() {
        props.insert_str(0, "[kafka.properties]\n");
    }
    // Only what the benchmark must set, and what the command line gave: the rest is the
    // indexer's defaults.
    let line = |key: &str, v: Option<String>| v.map_or(String::new(), |v| format!("{key} = {v}\n"));
    let lead = if args.staged {
        "max_lead_records = 0\nmax_lead_bytes = 0\n".to_owned()
    } else {
        // The indexer takes any broker but `embedded` for a real cluster (no lead limit by
        // default); the mock broker of this process keeps 5 MiB per partition like the embedded
        // one, so it gets the embedded broker's default limit.
        let bytes = args.max_lead_bytes.or(mock_broker.then_some(4 << 20));
        line(
            "max_lead_records",
            args.max_lead_records.map(|v| v.to_string()),
        ) + &line("max_lead_bytes", bytes.map(|v: u64| v.to_string()))
    };
    let sink = line("batch_records", args.batch_records.map(|v| v.to_string()))
        + &line("batch_wait_ms", args.batch_wait_ms.map(|v| v.to_string()));
    let chain_opts = line("range_blocks", args.range_blocks.map(|v| v.to_string()))
        + &line(
            "ranges_in_flight",
            args.ranges_in_flight.map(|v| v.to_string()),
        );
    Ok(format!(
        r#"# Written by tripwire-bench-backfill.
[postgres]
url = "{pg}"

[kafka]
brokers = "{brokers}"
topic = "{topic}"
{lead}{props}
[server]
listen = "127.0.0.1:0"
lag_threshold_blocks = 100000000

[sink]
consumer = "bench-sink"
{sink}
[[chains]]
name = "bench"
chain_id = {chain_id}
rpc_urls = ["{rpc}"]
{providers}
start_block = 0
poll_interval_ms = 100
check_logs_bloom = {bloom}
{chain_opts}
[[contracts]]
name = "spammer"
chain = "bench"
addresses = ["{spammer:#x}"]
events = ["{PING}"]
"#,
        pg = db.url(),
        bloom = bloom == BloomCheck::On,
        chain_id = CHAIN_ID,
        rpc = chain.anvil.url(),
        providers = if providers > 1 {
            let more: Vec<String> = (2..=providers)
                .map(|i| {
                    format!(
                        "{{ url = \"{}\", name = \"anvil-{i}\" }}",
                        chain.anvil.url()
                    )
                })
                .collect();
            format!("providers = [{}]", more.join(", "))
        } else {
            String::new()
        },
        spammer = chain.spammer,
    ))
}
