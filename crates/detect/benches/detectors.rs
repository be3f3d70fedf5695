//! C5, first half: detector throughput on in-memory events, one core. Each kind (and all four
//! together) is fed a pre-built stream of decoded logs with block markers, as the watchdog feeds
//! them from Kafka; criterion prints events per second (target >= 1,000,000 for rate and value).
//!
//! `cargo bench -p tripwire-detect --features test-utils --bench detectors`

use std::hint::black_box;
use std::time::Instant;

use alloy_primitives::Address;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tripwire_detect::synth::{detector, log, marker};
use tripwire_detect::DetectorSet;
use tripwire_schema::{BlockMarker, LogRecord};

const EVENTS: usize = 200_000;
const VAULT: Address = Address::repeat_byte(0x11);

enum Rec {
    Log(LogRecord),
    Block(BlockMarker),
}

/// Poisson traffic of about 4 events per 2-second block, half deposits and half withdrawals with
/// log-normal amounts, a block marker after each block.
fn stream() -> (Vec<Rec>, u64) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Vec::with_capacity(EVENTS * 2);
    let (mut ts, mut block, mut n) = (1_700_000_000u64, 1u64, 0usize);
    while n < EVENTS {
        let k = rng.random_range(0..9);
        for i in 0..k {
            let ev = if rng.random::<bool>() {
                "Deposit"
            } else {
                "Withdraw"
            };
            let u: f64 = 1.0 - rng.random::<f64>();
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.random::<f64>()).cos();
            let amount = format!("{:.0}", (42.0 + 1.5 * z).exp());
            out.push(Rec::Log(log(
                VAULT,
                "vault",
                ev,
                &[
                    ("amount", &amount),
                    ("user", "0x00000000000000000000000000000000000000aa"),
                ],
                block,
                ts,
                i,
            )));
            n += 1;
        }
        out.push(Rec::Block(marker(block, ts)));
        block += 1;
        ts += 2;
    }
    let span = ts - 1_700_000_000;
    (out, span)
}

const RATE: &str = "name = \"rate\"\nkind = \"rate\"\ncontract = \"vault\"\nevent = \"Withdraw\"\n";
const VALUE: &str =
    "name = \"value\"\nkind = \"value\"\ncontract = \"vault\"\nevent = \"Withdraw\"\nfield = \"amount\"\n";
const FLOW: &str = "name = \"flow\"\nkind = \"flow\"\ncontract = \"vault\"\nfield = \"amount\"\ninflow = [\"Deposit\"]\noutflow = [\"Withdraw\"]\n";
const EVENT: &str = "name = \"event\"\nkind = \"event\"\ncontract = \"vault\"\n";

fn bench(c: &mut Criterion) {
    let (mut recs, span) = stream();
    let logs = recs.iter().filter(|r| matches!(r, Rec::Log(_))).count();
    let cases: [(&str, Vec<&str>); 5] = [
        ("rate", vec![RATE]),
        ("value", vec![VALUE]),
        ("flow", vec![FLOW]),
        ("event", vec![EVENT]),
        ("all four", vec![RATE, VALUE, FLOW, EVENT]),
    ];
    let mut g = c.benchmark_group("detectors");
    // One element = one log (block markers ride along, as on the stream).
    g.throughput(Throughput::Elements(logs as u64));
    for (name, bodies) in cases {
        let configs: Vec<_> = bodies.iter().map(|b| detector(b)).collect();
        let mut set = DetectorSet::new(&configs).expect("valid detectors");
        let mut round = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut findings = 0usize;
                let start = Instant::now();
                for _ in 0..iters {
                    // Each pass continues in time, so windows keep closing as on a live stream.
                    round += 1;
                    let shift = round * span;
                    for r in recs.iter_mut() {
                        match r {
                            Rec::Log(l) => {
                                l.block_timestamp += shift;
                                findings += set.observe_log(black_box(l)).len();
                                l.block_timestamp -= shift;
                            }
                            Rec::Block(m) => {
                                m.timestamp += shift;
                                findings += set.observe_block(black_box(m)).len();
                                m.timestamp -= shift;
                            }
                        }
                    }
                }
                black_box(findings);
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
