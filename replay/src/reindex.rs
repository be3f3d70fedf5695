//! `reindex`: fetch the logs (and the transactions of contracts that opted in) of the range again
//! (same RPC pool, same same-provider proofs as the ingest), remove rows (logs, transactions)
//! whose block is no longer canonical, publish the records to the chain's topic and wait until
//! the sink has written them. The live indexer keeps running: the sink's
//! writes are idempotent and its cursor never moves back for older blocks, and the ingest's cursor
//! is not touched. Progress is saved after every range, so the same command continues.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use rdkafka::producer::FutureRecord;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tripwire_config::Settings;
use tripwire_kafka as kafka;
use tripwire_rpc::records;
use tripwire_rpc::ChainRpc;
use tripwire_schema::StreamRecord;

use crate::plan::Plan;
use crate::progress::Progress;
use crate::ReplayError;

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub blocks: u64,
    pub logs_published: u64,
    pub stale_rows_deleted: u64,
    /// Logs of the range missing from Postgres before the run (rows with the canonical hash).
    pub logs_missing: u64,
    pub resumed_from: Option<u64>,
}

pub struct Options {
    pub dry_run: bool,
    /// Wait for the sink to write everything published (default).
    pub wait_for_sink: bool,
}

/// Opens the run's progress row, or finds the one an earlier, interrupted run left.
async fn open_run(pool: &PgPool, plan: &Plan) -> Result<(i64, u64, bool), ReplayError> {
    let existing: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, next_block FROM replay_runs
         WHERE chain_id = $1 AND mode = 'reindex' AND from_block = $2 AND to_block = $3
           AND contracts = $4 AND state <> 'done'",
    )
    .bind(plan.chain.chain_id as i64)
    .bind(plan.from as i64)
    .bind(plan.to as i64)
    .bind(&plan.contracts_key)
    .fetch_optional(pool)
    .await?;
    if let Some((id, next)) = existing {
        sqlx::query("UPDATE replay_runs SET state = 'running', updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        return Ok((id, next as u64, true));
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO replay_runs (chain_id, mode, from_block, to_block, contracts, next_block, state)
         VALUES ($1, 'reindex', $2, $3, $4, $2, 'running') RETURNING id",
    )
    .bind(plan.chain.chain_id as i64)
    .bind(plan.from as i64)
    .bind(plan.to as i64)
    .bind(&plan.contracts_key)
    .fetch_one(pool)
    .await?;
    Ok((id, plan.from, false))
}

pub async fn run(
    settings: &Settings,
    plan: &Plan,
    rpc: &ChainRpc,
    pool: &PgPool,
    opts: &Options,
    shutdown: &CancellationToken,
) -> Result<Report, ReplayError> {
    let cfg = &settings.config;
    let servers = cfg.kafka.brokers.servers();
    if servers.is_none() && !opts.dry_run {
        return Err(ReplayError::Invalid(
            "kafka.brokers = \"embedded\" is a broker inside the indexer process: give the replay the \
             address the indexer printed (KAFKA_BROKERS=127.0.0.1:PORT)"
                .into(),
        ));
    }
    let topic = settings.topic(&plan.chain);
    let producer: Option<kafka::IngestProducer> = match servers {
        Some(brokers) if !opts.dry_run => Some(kafka::producer(&cfg.kafka, brokers, false)?.0),
        _ => None,
    };
    let book = records::address_book(&plan.contracts);
    let addresses: Vec<alloy::primitives::Address> = plan
        .contracts
        .iter()
        .flat_map(|c| c.addresses.iter().copied())
        .collect();
    let addr_bytes: Vec<Vec<u8>> = addresses.iter().map(|a| a.to_vec()).collect();
    let interest = records::interest(&plan.contracts);

    let (run_id, mut next, resumed) = if opts.dry_run {
        (0, plan.from, false)
    } else {
        open_run(pool, plan).await?
    };
    let mut report = Report {
        resumed_from: resumed.then_some(next),
        ..Report::default()
    };
    if resumed {
        tracing::info!(next, "continuing an interrupted run");
    }
    let total = plan.to - plan.from + 1;
    let mut progress = Progress::new(total, next - plan.from, "reindex");
    let step = plan.chain.range_blocks.max(1);
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    while next <= plan.to {
        if shutdown.is_cancelled() {
            if !opts.dry_run {
                sqlx::query("UPDATE replay_runs SET state = 'interrupted', updated_at = now() WHERE id = $1")
                    .bind(run_id)
                    .execute(pool)
                    .await?;
            }
            progress.finish();
            return Err(ReplayError::Interrupted { next });
        }
        let end = plan.to.min(next + step - 1);
        let data = rpc.fetch_range(next, end, &interest).await?;
        let canonical: BTreeMap<u64, B256> =
            data.headers.iter().map(|h| (h.number, h.hash)).collect();
        let recs = records::build(
            plan.chain.chain_id,
            &plan.chain.name,
            &data.headers,
            data.logs,
            &data.transactions,
            &plan.contracts,
            &book,
        )
        .map_err(|e| ReplayError::Range(format!("blocks {next}..={end}: {e}")))?;

        // What Postgres holds of the range: rows under a non-canonical hash are stale; canonical
        // ones count towards what is already there.
        let stored: Vec<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT block_number, block_hash, count(*) FROM logs
             WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3 AND address = ANY($4)
             GROUP BY block_number, block_hash",
        )
        .bind(plan.chain.chain_id as i64)
        .bind(next as i64)
        .bind(end as i64)
        .bind(&addr_bytes)
        .fetch_all(pool)
        .await?;
        let mut present = 0u64;
        let mut stale: BTreeSet<(u64, Vec<u8>)> = BTreeSet::new();
        for (n, h, c) in stored {
            if canonical
                .get(&(n as u64))
                .is_some_and(|x| x.as_slice() == h.as_slice())
            {
                present += c as u64;
            } else {
                stale.insert((n as u64, h));
            }
        }
        let logs_in_range = recs
            .iter()
            .filter(|r| matches!(r, StreamRecord::Log(_)))
            .count() as u64;
        report.logs_missing += logs_in_range.saturating_sub(present);

        if let Some(producer) = &producer {
            // Stale rows and block rows of every contract go: their blocks left the chain.
            let mut deleted = 0u64;
            let mut tx = pool.begin().await?;
            for (n, h) in &stale {
                deleted += sqlx::query("DELETE FROM logs WHERE chain_id = $1 AND block_number = $2 AND block_hash = $3")
                    .bind(plan.chain.chain_id as i64)
                    .bind(*n as i64)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            // Transactions under a non-canonical hash go the same way as the logs.
            let (numbers, hashes): (Vec<i64>, Vec<&[u8]>) = canonical
                .iter()
                .map(|(n, h)| (*n as i64, h.as_slice()))
                .unzip();
            deleted += sqlx::query(
                "DELETE FROM transactions WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
                   AND to_address = ANY($4) AND (block_number, block_hash) NOT IN
                   (SELECT * FROM unnest($5::bigint[], $6::bytea[]))",
            )
            .bind(plan.chain.chain_id as i64)
            .bind(next as i64)
            .bind(end as i64)
            .bind(&addr_bytes)
            .bind(&numbers)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            for (n, h) in &canonical {
                sqlx::query(
                    "DELETE FROM blocks WHERE chain_id = $1 AND number = $2 AND hash <> $3",
                )
                .bind(plan.chain.chain_id as i64)
                .bind(*n as i64)
                .bind(h.as_slice())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            report.stale_rows_deleted += deleted;
            for (p, o) in publish(producer, &topic, plan.chain.chain_id, &recs).await? {
                let e = last_offset.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
            report.logs_published += logs_in_range;
            sqlx::query(
                "UPDATE replay_runs SET next_block = $2, logs_published = logs_published + $3,
                   stale_rows_deleted = stale_rows_deleted + $4, updated_at = now() WHERE id = $1",
            )
            .bind(run_id)
            .bind((end + 1) as i64)
            .bind(logs_in_range as i64)
            .bind(deleted as i64)
            .execute(pool)
            .await?;
        }
        report.blocks += end - next + 1;
        progress.advance(
            end - next + 1,
            &format!(
                "{} logs, {} missing",
                report.logs_published, report.logs_missing
            ),
        );
        next = end + 1;
    }
    progress.finish();
    if opts.dry_run {
        return Ok(report);
    }
    if opts.wait_for_sink {
        wait_for_sink(pool, &cfg.sink.consumer, &topic, &last_offset, shutdown).await?;
    }
    sqlx::query("UPDATE replay_runs SET state = 'done', finished_at = now(), updated_at = now() WHERE id = $1")
        .bind(run_id)
        .execute(pool)
        .await?;
    Ok(report)
}

/// Publishes in order, waits for every acknowledgement; returns the last offset per partition.
async fn publish(
    producer: &kafka::IngestProducer,
    topic: &str,
    chain_id: u64,
    recs: &[StreamRecord],
) -> Result<Vec<(i32, i64)>, ReplayError> {
    let key = chain_id.to_string();
    let mut pending = Vec::with_capacity(recs.len());
    for r in recs {
        let payload = r.to_json();
        let mut record = FutureRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    // The local queue is full: let librdkafka drain it.
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(ReplayError::Kafka(e)),
            }
        }
    }
    let mut out = Vec::new();
    for f in pending {
        match f.await {
            Ok(Ok(d)) => out.push((d.partition, d.offset)),
            Ok(Err((e, _))) => return Err(ReplayError::Kafka(e)),
            Err(_) => return Err(ReplayError::Kafka(rdkafka::error::KafkaError::Canceled)),
        }
    }
    Ok(out)
}

/// Waits until the sink's stored offsets pass what the replay published.
async fn wait_for_sink(
    pool: &PgPool,
    consumer: &str,
    topic: &str,
    last: &BTreeMap<i32, i64>,
    shutdown: &CancellationToken,
) -> Result<(), ReplayError> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let mut behind = 0i64;
        for (p, o) in last {
            let next = tripwire_store::positions::of_partition(pool, consumer, topic, *p).await?;
            behind += (o + 1 - next.unwrap_or(0)).max(0);
        }
        if behind == 0 {
            return Ok(());
        }
        if !said && started.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                behind,
                consumer,
                "waiting for the sink to write the replayed records"
            );
            said = true;
        }
        if shutdown.is_cancelled() {
            return Err(ReplayError::Range(format!(
                "interrupted while the sink ({consumer}) was {behind} records behind; they are published and will be written"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
