//! What delivery promises, against fake receivers: the caller never waits, a receiver that hangs
//! or fails holds up only its own queue, a failed post is kept until it goes through, and one
//! refused for good leaves the queue.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tripwire_runtime::health::Health;

use super::sink::fake::{Behaviour, FakeSink};
use super::tests::{at, finding, policy};
use super::*;

const A: &str = "http://alertmanager-a:9093";
const B: &str = "http://alertmanager-b:9093";

fn render() -> Render {
    Render {
        chains: [(31337, "devnet".to_string())].into_iter().collect(),
        explorer_tx_url: None,
        generator_url: "http://watchdog.example/detectors/{detector}".into(),
        firing_ttl: Duration::from_secs(180),
    }
}

/// The incident of `burst` on series `a` after a finding in `block`.
fn incident(book: &mut IncidentBook, block: u64) -> Incident {
    let c = book.on_finding(&finding("burst", "a", block), &[], at(block as i64));
    c.changed.into_iter().next().expect("an incident")
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn depths(d: &Deliveries) -> Vec<usize> {
    d.depths().into_iter().map(|(_, n)| n).collect()
}

#[tokio::test]
async fn a_hung_receiver_delays_neither_the_other_nor_the_caller() {
    let sink = FakeSink::new(&[A, B]);
    sink.set(A, Behaviour::Hang);
    let shutdown = CancellationToken::new();
    let deliveries = Deliveries::spawn(sink.clone(), render(), Health::new(), shutdown.clone());
    let mut book = IncidentBook::new(policy());

    let started = Instant::now();
    deliveries.enqueue([&incident(&mut book, 10)]);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "enqueue returns at once"
    );
    eventually("B gets the alert", || sink.accepted(B).len() == 1).await;
    eventually("A is being posted to", || sink.attempts(A) == 1).await;

    // A newer state replaces the one A still holds, and reaches B.
    deliveries.enqueue([&incident(&mut book, 11)]);
    eventually("B gets the update", || sink.accepted(B).len() == 2).await;
    assert_eq!(sink.accepted(B)[1][0].annotations["block"], "11");
    assert_eq!(depths(&deliveries), vec![1, 0]);
    assert!(sink.accepted(A).is_empty());

    // Shutdown waits for the hung post only as long as it is told to.
    shutdown.cancel();
    let stopping = Instant::now();
    deliveries.finish(Duration::from_millis(200)).await;
    assert!(stopping.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_failed_post_is_kept_until_the_receiver_takes_it() {
    let sink = FakeSink::new(&[A]);
    sink.set(A, Behaviour::Refuse(503));
    let health = Health::new();
    let shutdown = CancellationToken::new();
    let deliveries = Deliveries::spawn(sink.clone(), render(), health.clone(), shutdown.clone());
    let mut book = IncidentBook::new(policy());

    deliveries.enqueue([&incident(&mut book, 10)]);
    eventually("A refuses a post", || sink.attempts(A) >= 1).await;
    assert_eq!(depths(&deliveries), vec![1], "kept for the next attempt");

    sink.set(A, Behaviour::Accept);
    eventually("A takes it after the backoff", || {
        sink.accepted(A).len() == 1
    })
    .await;
    eventually("the queue empties", || depths(&deliveries) == vec![0]).await;
    shutdown.cancel();
    deliveries.finish(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn alerts_refused_for_good_leave_the_queue() {
    let sink = FakeSink::new(&[A]);
    sink.set(A, Behaviour::Refuse(400));
    let shutdown = CancellationToken::new();
    let deliveries = Deliveries::spawn(sink.clone(), render(), Health::new(), shutdown.clone());
    let mut book = IncidentBook::new(policy());

    deliveries.enqueue([&incident(&mut book, 10)]);
    eventually("A refuses a post", || sink.attempts(A) >= 1).await;
    eventually("the queue empties", || depths(&deliveries) == vec![0]).await;
    // Sending the same alerts again cannot help: no second attempt.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.attempts(A), 1);
    shutdown.cancel();
    deliveries.finish(Duration::from_secs(1)).await;
}
