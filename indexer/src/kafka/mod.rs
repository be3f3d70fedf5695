//! Kafka clients shared by the ingest (producer) and the sink (consumer): librdkafka settings in one
//! place, the embedded development broker, topic creation, and group consumers reading from
//! positions stored in Postgres (`group`).

pub mod group;

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{Client, ClientContext, DefaultClientContext},
    config::ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    mocking::MockCluster,
    producer::{DefaultProducerContext, FutureProducer},
};

use crate::config::KafkaConfig;

/// `(partition, low, high)` watermarks of every partition of `topic` (none when the topic does
/// not exist or has no partitions). Blocking: call it from a blocking context.
pub fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Ok(Vec::new());
    };
    t.partitions()
        .iter()
        .map(|p| {
            let (low, high) = client.fetch_watermarks(topic, p.id(), timeout)?;
            Ok((p.id(), low, high))
        })
        .collect()
}

/// The value of `kafka.brokers` that starts the in-process broker.
pub const EMBEDDED: &str = "embedded";

/// librdkafka's in-process broker (`rdkafka::mocking::MockCluster`), reachable over TCP on
/// loopback. Everything it holds is in memory and gone when the process exits.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster.
    pub fn start() -> Result<EmbeddedKafka, KafkaError> {
        Ok(EmbeddedKafka {
            cluster: MockCluster::new(1)?,
        })
    }

    /// The `host:port` list other processes can connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock broker would auto-create it with one partition otherwise).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.cluster.create_topic(topic, partitions, 1)
    }
}

/// Base client settings: brokers plus the user's extra properties.
pub fn client_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// A consumer in group `group_id` (the `[sink]` or `[watchdog]` consumer name), for instances that
/// share the partitions of the chain topics. Positions live in Postgres: Kafka's auto-commit and
/// offset store are off, and a rebalance goes through [`group::GroupContext`]. `defaults` are set
/// unless the user's `kafka.properties` has them (`session.timeout.ms`, or `group.instance.id` for
/// static membership, say). The round-robin assignor spreads the topics' partitions over the
/// instances (the range assignor would give every one-partition topic to the same instance).
pub fn group_consumer(
    cfg: &KafkaConfig,
    brokers: &str,
    group_id: &str,
    defaults: &[(&str, &str)],
) -> Result<group::GroupConsumer, KafkaError> {
    let mut c = client_config(cfg, brokers);
    let fixed = [
        ("group.id", group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("partition.assignment.strategy", "roundrobin"),
        // An instance that died (SIGKILL, a lost host) holds its partitions until the broker
        // gives up on it: 10 s instead of librdkafka's 45 s, so a restarted or surviving
        // instance takes over quickly. A clean stop leaves the group at once. Kafka's default
        // group.min.session.timeout.ms (6 s) allows it.
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
    ];
    for (k, v) in fixed.iter().chain(defaults) {
        if !cfg.properties.contains_key(*k) {
            c.set(*k, *v);
        }
    }
    c.create_with_context(group::GroupContext::default())
}

/// The ingest's producer: idempotent (no duplicates or reordering from its own retries), all
/// in-sync replicas acknowledge, and messages never expire in the queue, so a broker outage delays
/// the stream instead of dropping from it.
pub fn producer(cfg: &KafkaConfig, brokers: &str) -> Result<FutureProducer, KafkaError> {
    let mut c = client_config(cfg, brokers);
    for (k, v) in [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("message.timeout.ms", "0"),
        ("linger.ms", "10"),
        ("batch.num.messages", "10000"),
        ("compression.type", "lz4"),
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "131072"),
    ] {
        if !cfg.properties.contains_key(k) {
            c.set(k, v);
        }
    }
    c.create()
}

/// Creates `topic` unless the cluster has it. Existence is checked first from the full metadata
/// (asking for one topic by name may auto-create it with the broker's defaults), so clusters that
/// refuse admin requests to this client still work when the topic was provisioned for it.
pub async fn ensure_topic(cfg: &KafkaConfig, brokers: &str, topic: &str) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(cfg, brokers).create()?;
    let md = tokio::task::block_in_place(|| {
        admin.inner().fetch_metadata(None, Duration::from_secs(10))
    })?;
    if md
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    {
        return Ok(());
    }
    let new = NewTopic::new(topic, cfg.partitions, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new], &opts).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(
                    |_| tracing::error!(topic = %name, error = %code, "cannot create topic"),
                )
            }
        }
    }
    Ok(())
}
