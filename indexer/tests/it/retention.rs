//! A sink whose stored Kafka position was removed by retention stops with a clear error instead of
//! skipping ahead (librdkafka's `auto.offset.reset` would otherwise jump silently): on the mock
//! broker, whose partitions keep about 5 MiB, and on a real Apache Kafka broker whose topic has a
//! small `retention.ms` and `segment.bytes`.

use std::time::Duration;

use crate::common::Env;
use rdkafka::{
    config::ClientConfig,
    producer::{FutureProducer, FutureRecord},
};

/// Writes `chunks` records of 64 KiB into the environment's topic.
async fn fill(env: &Env, chunks: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.kafka.brokers())
        .set("compression.type", "none")
        .create()?;
    let filler = vec![b'x'; 64 * 1024];
    for _ in 0..chunks {
        producer
            .send(
                FutureRecord::to(&env.topic).key("31337").payload(&filler),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_position_stops_the_sink_with_a_clear_error() -> anyhow::Result<()> {
    let env = Env::on_mock().await?;
    // The mock broker keeps about 5 MiB per partition: write 8 MiB, so offset 0 is gone.
    fill(&env, 128).await?;
    sink_stops_on_lost_position(&env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_position_on_a_real_broker_stops_the_sink() -> anyhow::Result<()> {
    let env = Env::on_real_broker().await?;
    // Segments of 1 MiB (the smallest Kafka 4 accepts) kept 1 s: the broker's retention check
    // (every second in the test broker) deletes the closed ones.
    env.kafka
        .set_topic_config(
            &env.topic,
            &[
                ("segment.bytes", "1048576"),
                ("retention.ms", "1000"),
                ("file.delete.delay.ms", "0"),
            ],
        )
        .await?;
    fill(&env, 64).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (low, high) = env.kafka.watermarks(&env.topic, 0).await?;
        if low > 0 {
            println!("retention removed offsets 0..{low} of {high}");
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the broker's retention removed nothing within 90 s (low {low}, high {high})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sink_stops_on_lost_position(&env).await
}

async fn sink_stops_on_lost_position(env: &Env) -> anyhow::Result<()> {
    // The sink has a stored position at offset 0 (it wrote nothing since).
    let p = env.spawn("migrate")?.wait_ok().await?;
    drop(p);
    sqlx::query(
        "INSERT INTO sink_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, 0, 0)",
    )
    .bind(&env.consumer)
    .bind(&env.topic)
    .execute(env.db.pool())
    .await?;

    let mut sink = env.spawn("sink")?;
    let status = sink.wait(Duration::from_secs(60))?;
    assert!(!status.success(), "the sink must stop");
    let out = sink.output();
    assert!(
        out.contains("stored position is no longer in the topic"),
        "no clear message:\n{out}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(env.db.pool())
        .await?;
    assert_eq!(rows, 0, "nothing after the gap was written either");
    Ok(())
}
