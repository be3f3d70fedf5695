//! Kafka for tests: a real broker when `KAFKA_BROKERS` is set, otherwise
//! librdkafka's in-process mock cluster, so the suite runs without a JVM.
//!
//! The mock cluster is not `Send` (it wraps a raw pointer), so it lives on a
//! dedicated thread and is driven through a channel; that keeps [`TestKafka`]
//! `Send + Sync` for use across tasks without any `unsafe`.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Message, Offset, TopicPartitionList};

const READ_TIMEOUT: Duration = Duration::from_secs(30);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// One consumed record with its position, for tests that check partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A Kafka endpoint for one test (or a test binary).
#[derive(Debug)]
pub struct TestKafka {
    brokers: String,
    mock: Option<MockHandle>,
    /// A broker this value started (see [`TestKafka::real`]).
    own: Option<crate::broker::KafkaBroker>,
}

impl TestKafka {
    /// Uses `KAFKA_BROKERS` if set, otherwise starts a one-broker mock cluster
    /// that lives as long as the returned value.
    pub fn start() -> anyhow::Result<TestKafka> {
        match Self::from_env() {
            Some(kafka) => Ok(kafka),
            None => Self::start_mock(),
        }
    }

    /// The broker `KAFKA_BROKERS` names, if it is set.
    fn from_env() -> Option<TestKafka> {
        let brokers = std::env::var("KAFKA_BROKERS").ok()?;
        (!brokers.trim().is_empty()).then_some(TestKafka {
            brokers,
            mock: None,
            own: None,
        })
    }

    /// A real Apache Kafka broker: `KAFKA_BROKERS` if set, otherwise one started for this value
    /// (`scripts/kafka`, installed by `scripts/install-tools`). For tests whose point is the real
    /// broker's behaviour: they never fall back to the mock.
    pub fn real() -> anyhow::Result<TestKafka> {
        if let Some(kafka) = Self::from_env() {
            return Ok(kafka);
        }
        let broker = crate::broker::KafkaBroker::start()?;
        Ok(TestKafka {
            brokers: broker.brokers(),
            mock: None,
            own: Some(broker),
        })
    }

    /// Sets topic-level configs (e.g. `retention.ms`) through the admin API. Real broker only.
    pub async fn set_topic_config(
        &self,
        topic: &str,
        configs: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        use rdkafka::admin::{AlterConfig, ResourceSpecifier};
        if self.mock.is_some() {
            bail!("topic configs need a real broker");
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating Kafka admin client")?;
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in configs {
            alter = alter.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.alter_configs([&alter], &opts).await? {
            result.map_err(|(res, code)| anyhow!("alter configs of {res:?}: {code}"))?;
        }
        Ok(())
    }

    /// (low, high) watermarks of `topic`/`partition`.
    pub async fn watermarks(&self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        let brokers = self.brokers.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .context("creating Kafka consumer")?;
            consumer
                .fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
                .with_context(|| format!("watermarks of {topic}/{partition}"))
        })
        .await
        .context("watermarks worker panicked")?
    }

    /// Always starts the mock cluster, ignoring `KAFKA_BROKERS`; for fault
    /// tests that need [`TestKafka::broker_down`].
    pub fn start_mock() -> anyhow::Result<TestKafka> {
        let (mock, brokers) = MockHandle::start()?;
        Ok(TestKafka {
            brokers,
            mock: Some(mock),
            own: None,
        })
    }

    /// The broker this value started itself, to kill and restart ([`TestKafka::real`] without
    /// `KAFKA_BROKERS`).
    pub fn own_broker(&self) -> Option<&crate::broker::KafkaBroker> {
        self.own.as_ref()
    }

    /// `bootstrap.servers` value for clients under test.
    pub fn brokers(&self) -> String {
        self.brokers.clone()
    }

    /// Whether this is librdkafka's mock cluster rather than a real broker.
    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// A topic name that does not collide with other tests sharing a real broker.
    pub fn unique_topic(&self, prefix: &str) -> String {
        format!("{prefix}-{}", crate::random_hex(12))
    }

    /// Creates `name` with `partitions` partitions (replication factor 1);
    /// an existing topic is not an error. Create topics explicitly: the mock
    /// cluster auto-creates unknown topics on first produce with 4 partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        if let Some(mock) = &self.mock {
            let name = name.to_owned();
            return mock
                .request(
                    move |cluster| match cluster.create_topic(&name, partitions, 1) {
                        Ok(()) => Ok(()),
                        Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => {
                            Ok(())
                        }
                        Err(e) => Err(anyhow!("mock create_topic {name}: {e}")),
                    },
                )
                .await;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating Kafka admin client")?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .with_context(|| format!("create topic {name}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => bail!("create topic {topic}: {code}"),
            }
        }
        Ok(())
    }

    /// Every `(key, payload)` in `topic` up to the end offsets as of this call,
    /// ordered by partition, then offset. Only committed transactional records
    /// are returned (librdkafka's default `read_committed`).
    pub async fn read_all(&self, topic: &str) -> anyhow::Result<Vec<(Option<Vec<u8>>, Vec<u8>)>> {
        Ok(self
            .read_records(topic)
            .await?
            .into_iter()
            .map(|r| (r.key, r.payload))
            .collect())
    }

    /// Like [`TestKafka::read_all`] but with partition, offset and headers.
    pub async fn read_records(&self, topic: &str) -> anyhow::Result<Vec<Record>> {
        let brokers = self.brokers.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_to_end(&brokers, &topic))
            .await
            .context("read_records worker panicked")?
    }

    /// Makes the mock broker refuse and drop connections. Mock only: a real
    /// broker cannot be stopped from here.
    pub async fn broker_down(&self) -> anyhow::Result<()> {
        self.mock_op("broker_down", |cluster| cluster.broker_down(-1))
            .await
    }

    /// Undoes [`TestKafka::broker_down`].
    pub async fn broker_up(&self) -> anyhow::Result<()> {
        self.mock_op("broker_up", |cluster| cluster.broker_up(-1))
            .await
    }

    async fn mock_op(
        &self,
        what: &'static str,
        op: impl FnOnce(&Mock) -> rdkafka::error::KafkaResult<()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mock = self.mock.as_ref().with_context(|| {
            format!("{what} needs the mock cluster, but KAFKA_BROKERS points at a real broker")
        })?;
        mock.request(move |cluster| op(cluster).map_err(|e| anyhow!("mock {what}: {e}")))
            .await
    }
}

type Mock = MockCluster<'static, DefaultProducerContext>;
type MockJob = Box<dyn FnOnce(&Mock) + Send>;

#[derive(Debug)]
struct MockHandle {
    jobs: Option<mpsc::Sender<MockJob>>,
    thread: Option<JoinHandle<()>>,
}

impl MockHandle {
    fn start() -> anyhow::Result<(MockHandle, String)> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<MockJob>();
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<String>>();
        let thread = std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("starting mock Kafka cluster: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until the handle drops its sender; then the cluster is destroyed here.
                while let Ok(job) = jobs_rx.recv() {
                    job(&cluster);
                }
            })
            .context("spawning the mock Kafka thread")?;
        let brokers = ready_rx
            .recv()
            .map_err(|_| anyhow!("mock Kafka thread exited during startup"))??;
        Ok((
            MockHandle {
                jobs: Some(jobs_tx),
                thread: Some(thread),
            },
            brokers,
        ))
    }

    async fn request<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mock) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .context("mock Kafka cluster already shut down")?
            .send(Box::new(move |cluster| {
                let _ = tx.send(f(cluster));
            }))
            .map_err(|_| anyhow!("mock Kafka thread is gone"))?;
        rx.await
            .map_err(|_| anyhow!("mock Kafka thread dropped the request"))?
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_to_end(brokers: &str, topic: &str) -> anyhow::Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("testkit-read-{}", crate::random_hex(8)))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating Kafka consumer")?;

    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("fetching metadata of {topic}"))?;
    let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    if let Some(err) = meta.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Ok(Vec::new());
        }
        bail!("metadata of {topic}: {code}");
    }

    // Snapshot the end of each partition first: the caller wants what was
    // there when it asked, not whatever keeps arriving while we read.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in meta.partitions() {
        let id = partition.id();
        let (low, high) = consumer
            .fetch_watermarks(topic, id, METADATA_TIMEOUT)
            .with_context(|| format!("watermarks of {topic}/{id}"))?;
        if high > low {
            ends.insert(id, high);
            assignment
                .add_partition_offset(topic, id, Offset::Offset(low))
                .context("building assignment")?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;

    let mut records = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "reading {topic}: partitions {:?} did not reach their end offsets within {READ_TIMEOUT:?}",
                ends.keys().collect::<Vec<_>>()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // EOF also covers trailing transaction markers, which occupy
                // offsets but are never delivered as messages.
                ends.remove(&partition);
            }
            Some(Err(e)) => return Err(anyhow!("reading {topic}: {e}")),
            Some(Ok(msg)) => {
                let partition = msg.partition();
                let Some(&end) = ends.get(&partition) else {
                    continue;
                };
                if msg.offset() >= end {
                    ends.remove(&partition);
                    continue;
                }
                let headers = msg
                    .headers()
                    .map(|hs| {
                        use rdkafka::message::Headers;
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition,
                    offset: msg.offset(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                });
                if msg.offset() + 1 >= end {
                    ends.remove(&partition);
                }
            }
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}
