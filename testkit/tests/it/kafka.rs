//! TestKafka round trip: what a producer writes, read_all returns, in order.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use testkit::kafka::TestKafka;

fn producer(kafka: &TestKafka) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

#[tokio::test]
async fn produce_then_read_all() -> anyhow::Result<()> {
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("roundtrip");
    kafka.create_topic(&topic, 3).await?;
    // Idempotent: a second create is not an error.
    kafka.create_topic(&topic, 3).await?;
    assert!(kafka.read_all(&topic).await?.is_empty());

    let producer = producer(&kafka);
    for i in 0..20u32 {
        let key = format!("k{}", i % 4);
        let payload = format!("v{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    producer
        .send(
            FutureRecord::<(), _>::to(&topic)
                .partition(0)
                .payload("no-key"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;

    let records = kafka.read_records(&topic).await?;
    assert_eq!(records.len(), 21);
    // Same key, same partition, in produce order.
    for k in 0..4 {
        let key = format!("k{k}").into_bytes();
        let values: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_slice()))
            .collect();
        assert_eq!(values.len(), 5);
        assert!(values.iter().all(|r| r.partition == values[0].partition));
        let expected: Vec<Vec<u8>> = (0..5)
            .map(|j| format!("v{}", k + 4 * j).into_bytes())
            .collect();
        let got: Vec<Vec<u8>> = values.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(got, expected);
    }
    let pairs = kafka.read_all(&topic).await?;
    assert!(pairs.contains(&(None, b"no-key".to_vec())));
    Ok(())
}

#[tokio::test]
async fn unknown_topic_reads_empty() -> anyhow::Result<()> {
    let kafka = TestKafka::start()?;
    let topic = kafka.unique_topic("absent");
    assert!(kafka.read_all(&topic).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn mock_broker_can_go_down_and_come_back() -> anyhow::Result<()> {
    let kafka = TestKafka::start_mock()?;
    let topic = kafka.unique_topic("outage");
    kafka.create_topic(&topic, 1).await?;
    let producer = producer(&kafka);
    producer
        .send(
            FutureRecord::to(&topic).key("a").payload("before"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;

    kafka.broker_down().await?;
    let pending = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key("a").payload("during"),
                    Duration::from_secs(10),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "delivery cannot complete while the broker is down"
    );
    kafka.broker_up().await?;
    pending.await?.map_err(anyhow::Error::msg)?;
    producer.flush(Duration::from_secs(10))?;

    let payloads: Vec<_> = kafka
        .read_all(&topic)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(payloads, vec![b"before".to_vec(), b"during".to_vec()]);
    Ok(())
}

#[tokio::test]
async fn real_broker_rejects_fault_injection() -> anyhow::Result<()> {
    let kafka = TestKafka::start()?;
    if kafka.is_mock() {
        assert!(kafka.broker_down().await.is_ok());
        assert!(kafka.broker_up().await.is_ok());
    } else {
        assert!(kafka.broker_down().await.is_err());
    }
    Ok(())
}
