//! A sink whose stored Kafka position was removed by retention stops with a clear error instead of
//! skipping ahead (librdkafka's `auto.offset.reset` would otherwise jump silently).

mod common;

use std::time::Duration;

use common::Env;
use rdkafka::{
    config::ClientConfig,
    producer::{FutureProducer, FutureRecord},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_position_stops_the_sink_with_a_clear_error() -> anyhow::Result<()> {
    let env = Env::new().await?;
    if !env.kafka.is_mock() {
        // Retention cannot be forced on a shared real broker from a test.
        println!("KAFKA_BROKERS is set: retention test needs the mock broker");
        return Ok(());
    }
    // The mock broker keeps about 5 MiB per partition: write 8 MiB, so offset 0 is gone.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.kafka.brokers())
        .set("compression.type", "none")
        .create()?;
    let filler = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        producer
            .send(
                FutureRecord::to(&env.topic).key("31337").payload(&filler),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
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
