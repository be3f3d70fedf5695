//! Kafka clients for every role (the ingest's producer, the sink's and the watchdog's group
//! consumers, the replay's): librdkafka settings in one place, the embedded development broker,
//! topic creation, watermarks, group consumers reading from positions stored in Postgres
//! ([`group`]), and the broker probe behind `/health` ([`probe`]).

// Every dependency of the library is used (its tests and benchmarks have their own).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![warn(missing_docs)]

pub mod group;
pub mod metrics;
pub mod probe;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{Client, ClientContext, DefaultClientContext},
    config::ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    mocking::MockCluster,
    producer::{BaseProducer, DefaultProducerContext, FutureProducer, Producer as _},
};

use tripwire_config::{flow, KafkaConfig};

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

/// librdkafka's in-process broker (`rdkafka::mocking::MockCluster`), reachable over TCP on
/// loopback. Everything it holds is in memory and gone when the process exits.
///
/// The cluster belongs to a client created with `test.mock.num.brokers` (rather than
/// `MockCluster::new`), because only then can its handle be had for a setting the wrapper does
/// not offer: the group coordinator's initial rebalance delay. Like Kafka's
/// `group.initial.rebalance.delay.ms`, it defaults to 3 s, which every `run` would spend with
/// its sink in the group but assigned nothing while the ingest fills the lead.
pub struct EmbeddedKafka {
    owner: BaseProducer<DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster whose group coordinator assigns at once.
    pub fn start() -> Result<EmbeddedKafka, KafkaError> {
        let owner: BaseProducer<DefaultProducerContext> = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()?;
        // SAFETY: the handle is the owner's, alive as long as `owner`; the call only sets a
        // number in the cluster's defaults (under the cluster's lock).
        unsafe {
            let cluster =
                rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            if cluster.is_null() {
                return Err(KafkaError::MockCluster(RDKafkaErrorCode::Fail));
            }
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
        Ok(EmbeddedKafka { owner })
    }

    fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        self.owner
            .client()
            .mock_cluster()
            .expect("the owner was created with test.mock.num.brokers")
    }

    /// The `host:port` list other processes can connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster().bootstrap_servers()
    }

    /// Creates a topic (the mock broker would auto-create it with one partition otherwise).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.cluster().create_topic(topic, partitions, 1)
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

/// Sets each of `defaults` unless the user's `kafka.properties` sets it: the user's choice wins.
fn set_defaults<'a>(
    c: &mut ClientConfig,
    cfg: &KafkaConfig,
    defaults: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (k, v) in defaults {
        if !cfg.properties.contains_key(k) {
            c.set(k, v);
        }
    }
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
    set_defaults(&mut c, cfg, fixed.iter().chain(defaults).copied());
    c.create_with_context(group::GroupContext::default())
}

/// What a producer has sent to its brokers, from librdkafka's statistics (`brokers.*.txbytes`:
/// every request on the wire, so compressed record batches plus their request framing). The
/// ingest's byte lead is counted with it: what the broker keeps of a record batch is at most what
/// was sent of it. `updates` counts the statistics events: events are served in the order they were
/// queued, so one served after a delivery report was made after that record's bytes were sent.
#[derive(Debug, Default)]
pub struct SentBytes {
    bytes: AtomicU64,
    updates: AtomicU64,
}

impl SentBytes {
    /// `(bytes sent, statistics events so far)`.
    pub fn read(&self) -> (u64, u64) {
        // `updates` first: a snapshot never pairs an older count with newer bytes' event number.
        let updates = self.updates.load(Ordering::Acquire);
        (self.bytes.load(Ordering::Acquire), updates)
    }

    fn record(&self, stats: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Stats {
            #[serde(default)]
            brokers: std::collections::HashMap<String, Broker>,
        }
        #[derive(serde::Deserialize)]
        struct Broker {
            #[serde(default)]
            txbytes: u64,
        }
        if let Ok(s) = serde_json::from_slice::<Stats>(stats) {
            let sent: u64 = s.brokers.values().map(|b| b.txbytes).sum();
            self.bytes.fetch_max(sent, Ordering::AcqRel);
            self.updates.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Client context of the ingest's producer: keeps [`SentBytes`] up to date.
#[derive(Debug, Clone, Default)]
pub struct ProducerStats(pub Arc<SentBytes>);

impl ClientContext for ProducerStats {
    fn stats_raw(&self, statistics: &[u8]) {
        self.0.record(statistics);
    }
}

/// The ingest's producer.
pub type IngestProducer = FutureProducer<ProducerStats>;

/// The ingest's producer: idempotent (no duplicates or reordering from its own retries), all
/// in-sync replicas acknowledge, and messages never expire in the queue, so a broker outage delays
/// the stream instead of dropping from it. Records are compressed with lz4, which also lets the
/// embedded broker's 5 MiB per partition hold several times more records (see `tripwire_config::flow`). The local queue holds at most 32 MiB: the ingest waits for every
/// group's acknowledgements before the next, and a group is a few ranges. With `stats`, the
/// producer reports what it sent every 20 ms unless `kafka.properties` says otherwise (see
/// [`SentBytes`]).
pub fn producer(
    cfg: &KafkaConfig,
    brokers: &str,
    stats: bool,
) -> Result<(IngestProducer, Arc<SentBytes>), KafkaError> {
    let mut c = client_config(cfg, brokers);
    // A user's own interval is kept (the config check bounds it when a byte lead needs it).
    let interval = flow::DEFAULT_STATS_INTERVAL_MS.to_string();
    if stats {
        set_defaults(&mut c, cfg, [(flow::STATS_PROPERTY, interval.as_str())]);
    }
    let defaults = [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("message.timeout.ms", "0"),
        // The ingest waits for a group's acknowledgements before the next step: lingering
        // only delays them (a group fills batches at once).
        ("linger.ms", "2"),
        ("batch.num.messages", "10000"),
        ("compression.type", "lz4"),
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "32768"),
    ];
    set_defaults(&mut c, cfg, defaults);
    let context = ProducerStats::default();
    let sent = context.0.clone();
    Ok((c.create_with_context(context)?, sent))
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
