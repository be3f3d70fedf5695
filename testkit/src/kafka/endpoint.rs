//! The [`TestKafka`] handle a test holds: which brokers its clients use (a real broker or the
//! mock cluster), topic creation and configuration, watermarks, reading topics back, and taking
//! the mock broker down and up. It drives the mock cluster through [`super::mock`] and reads
//! topics through [`super::read`].

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::mock::{Mock, MockHandle};
use super::read::read_to_end;
use super::shared::{Record, METADATA_TIMEOUT};

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
