//! The `tripwire.toml` each run gives the indexer: only what the benchmark must set (its
//! database, topic and chain) and what the command line asked for, so everything else stays at
//! the indexer's defaults.

use anyhow::{Context, Result};
use testkit::config::{Chain, Contract, Provider, Server, Sink, TestConfig};
use testkit::postgres::TestDb;

use crate::chain::{Chain as BenchChain, CHAIN_ID, PING};
use crate::cli::{Args, BloomCheck};

#[allow(clippy::too_many_arguments)]
pub(crate) fn config(
    args: &Args,
    chain: &BenchChain,
    db: &TestDb,
    brokers: &str,
    topic: &str,
    providers: usize,
    bloom: BloomCheck,
    mock_broker: bool,
) -> Result<TestConfig> {
    let mut config = TestConfig::new(db.url(), brokers);
    config.kafka.topic = Some(topic.to_owned());
    for p in &args.kafka_props {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--kafka-prop {p:?} is not KEY=VALUE"))?;
        config.kafka.properties.insert(k.to_owned(), v.to_owned());
    }
    // Only what the benchmark must set, and what the command line gave: the rest is the
    // indexer's defaults.
    if args.staged {
        config.kafka.max_lead_records = Some(0);
        config.kafka.max_lead_bytes = Some(0);
    } else {
        // The indexer takes any broker but `embedded` for a real cluster (no lead limit by
        // default); the mock broker of this process keeps 5 MiB per partition like the embedded
        // one, so it gets the embedded broker's default limit.
        config.kafka.max_lead_records = args.max_lead_records;
        config.kafka.max_lead_bytes = args.max_lead_bytes.or(mock_broker.then_some(4 << 20));
    }
    Ok(config
        .server(Server {
            lag_threshold_blocks: Some(100_000_000),
            ..Server::any_port()
        })
        .sink(Sink {
            consumer: Some("bench-sink".into()),
            batch_records: args.batch_records,
            batch_wait_ms: args.batch_wait_ms,
            ..Sink::default()
        })
        .chain(Chain {
            providers: (2..=providers)
                .map(|i| Provider {
                    url: chain.anvil.url(),
                    name: Some(format!("anvil-{i}")),
                    ..Provider::default()
                })
                .collect(),
            start_block: Some(0),
            poll_interval_ms: Some(100),
            check_logs_bloom: Some(bloom == BloomCheck::On),
            range_blocks: args.range_blocks,
            ranges_in_flight: args.ranges_in_flight,
            ..Chain::new("bench", CHAIN_ID, chain.anvil.url())
        })
        .contract(
            Contract::new("spammer", "bench", [format!("{:#x}", chain.spammer)]).events([PING]),
        ))
}
