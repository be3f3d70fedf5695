//! Kafka for tests: a real broker when `KAFKA_BROKERS` is set, otherwise
//! librdkafka's in-process mock cluster, so the suite runs without a JVM.
//!
//! A test holds one [`TestKafka`]: it names the brokers its clients connect to, creates the
//! topics they use, and reads back what landed in them as [`Record`]s. Behind it there is either
//! a real Apache Kafka broker (`KAFKA_BROKERS`, or one started through [`crate::broker`] by
//! [`TestKafka::real`]) or the mock cluster, which fault tests can take down and bring back.
//!
//! The mock cluster is not `Send` (it wraps a raw pointer), so it lives on a
//! dedicated thread and is driven through a channel; that keeps [`TestKafka`]
//! `Send + Sync` for use across tasks without any `unsafe`.
//!
//! The code is split by concern: `shared` holds what the other parts both use ([`Record`], the
//! metadata timeout); `mock` the thread that owns the mock cluster; `read` the consumer that
//! reads a topic to its end offsets; `endpoint` the [`TestKafka`] handle itself, which uses the
//! other three. Dependencies run one way: `endpoint` uses `mock`, `read` and `shared`; `read`
//! uses `shared`; `mock` and `shared` use no sibling. Only the re-exports below are public, so
//! every path stays `kafka::X`.

mod endpoint;
mod mock;
mod read;
mod shared;

pub use endpoint::TestKafka;
pub use shared::Record;
