//! A seeded generator of benign traffic of a token vault, for back-testing the detectors: deposits
//! into and withdrawals from a watched balance, block by block, with daily seasonality in how many
//! and how large, heavy-tailed (log-normal) amounts, occasional whale transfers, and optional
//! planted drains. Deterministic: the same seed gives the same blocks. Its own small PRNG, so the
//! `test-utils` feature needs no extra dependency.

use std::f64::consts::TAU;

use alloy_primitives::Address;
use tripwire_schema::{BlockMarker, LogRecord};

use super::synth::{log, marker};

/// The vault the traffic flows through.
pub const VAULT: Address = Address::repeat_byte(0x5a);
/// Its contract name, for `contract = "vault"` selectors.
pub const CONTRACT: &str = "vault";
/// Raw units per token (a 6-decimal token): amounts are written as integers of these.
pub const UNIT: f64 = 1e6;

/// splitmix64: small, fast and good enough for simulated traffic.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator starting from `seed`: the same seed gives the same numbers.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        (-2.0 * u.ln()).sqrt() * (TAU * self.uniform()).cos()
    }

    /// Poisson with a small mean (Knuth's product of uniforms; the means here are below one).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut prod = self.uniform();
        while prod > limit {
            k += 1;
            prod *= self.uniform();
        }
        k
    }
}

/// What benign traffic looks like. Amounts are in tokens.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Block time of the first block (seconds since the epoch; midnight UTC keeps the hours plain).
    pub start_ts: u64,
    /// Seconds between blocks.
    pub block_s: u64,
    /// The vault's balance before the first block.
    pub balance: f64,
    /// Mean deposits per hour, and as many withdrawals, over a day.
    pub per_hour: f64,
    /// Relative daily swing of the rate: `1 + swing * cos(...)`, busiest at `peak_hour`.
    pub rate_swing: f64,
    /// Hour of the day (UTC) with the most traffic.
    pub peak_hour: f64,
    /// Withdrawals peak this many hours before deposits: a daily net outflow then inflow.
    pub withdraw_lead_h: f64,
    /// Median transfer at the daily mean, and the sigma of its logarithm (the tail).
    pub median: f64,
    /// Standard deviation of the natural logarithm of a transfer's size: the heaviness of the tail.
    pub log_sigma: f64,
    /// Relative daily swing of the median size, in phase with the rate.
    pub size_swing: f64,
    /// Whale transfers per day, each direction.
    pub whales_per_day: f64,
    /// A whale moves between these shares of the balance (log-uniform).
    pub whale_share: (f64, f64),
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            start_ts: 1_767_225_600, // 2026-01-01 00:00 UTC
            block_s: 12,
            balance: 1_000_000.0,
            per_hour: 60.0,
            rate_swing: 0.6,
            peak_hour: 15.0,
            withdraw_lead_h: 0.5,
            median: 250.0,
            log_sigma: 1.2,
            size_swing: 0.3,
            whales_per_day: 2.0,
            whale_share: (0.01, 0.05),
        }
    }
}

/// A planted drain: withdrawals of equal size every `every_s` seconds for `duration_s`, taking
/// `pct_per_hour` percent of the balance the vault had when the drain began, per hour.
#[derive(Debug, Clone)]
pub struct Drain {
    /// Block time at which the drain begins, in seconds since the epoch.
    pub start_ts: u64,
    /// How long the drain lasts, in seconds.
    pub duration_s: u64,
    /// Percent of the vault's balance at the drain's start taken per hour.
    pub pct_per_hour: f64,
    /// Seconds between two withdrawals of the drain (60 with [`Drain::new`]).
    pub every_s: u64,
    /// The balance when the drain began (set by the generator).
    base: Option<f64>,
}

impl Drain {
    /// A drain of one withdrawal a minute.
    pub fn new(start_ts: u64, duration_s: u64, pct_per_hour: f64) -> Drain {
        Drain {
            start_ts,
            duration_s,
            pct_per_hour,
            every_s: 60,
            base: None,
        }
    }

    /// Block time at which the drain stops, in seconds since the epoch.
    pub fn end_ts(&self) -> u64 {
        self.start_ts + self.duration_s
    }
}

/// One block: its logs, then its marker (the order the stream delivers them in).
pub struct Block {
    /// The block's logs, in log index order.
    pub logs: Vec<LogRecord>,
    /// The block's marker, following its logs.
    pub marker: BlockMarker,
}

/// The generator; `Clone` copies its PRNG too, so a clone continues identically.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// What the generated traffic looks like.
    pub profile: Profile,
    rng: SplitMix,
    number: u64,
    ts: u64,
    balance: f64,
    drains: Vec<Drain>,
}

impl Traffic {
    /// A generator of `profile` traffic from `seed`, starting at block 1 and `profile.start_ts`.
    pub fn new(profile: Profile, seed: u64) -> Traffic {
        Traffic {
            rng: SplitMix::new(seed),
            number: 1,
            ts: profile.start_ts,
            balance: profile.balance,
            drains: Vec::new(),
            profile,
        }
    }

    /// Adds a drain to the traffic to come.
    pub fn plant(&mut self, d: Drain) {
        self.drains.push(d);
    }

    /// Block time of the next block.
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The vault's balance after the blocks generated so far, in tokens.
    pub fn balance(&self) -> f64 {
        self.balance
    }

    /// The daily profile at `ts`, lagged by `lead_h` hours: `1 + swing * cos`.
    fn season(&self, lead_h: f64, swing: f64) -> f64 {
        let hour = (self.ts % 86_400) as f64 / 3600.0;
        1.0 + swing * (TAU * (hour - self.profile.peak_hour + lead_h) / 24.0).cos()
    }

    /// Generates the next block, `profile.block_s` seconds after the previous one.
    pub fn next_block(&mut self) -> Block {
        let p = self.profile.clone();
        let per_block = p.per_hour * p.block_s as f64 / 3600.0;
        let whale_per_block = p.whales_per_day * p.block_s as f64 / 86_400.0;
        let size = p.median * self.season(0.0, p.size_swing);
        let mut flows: Vec<(&str, f64)> = Vec::new();
        let sides = [
            ("Deposit", self.season(0.0, p.rate_swing)),
            ("Withdraw", self.season(p.withdraw_lead_h, p.rate_swing)),
        ];
        for (event, season) in sides {
            for _ in 0..self.rng.poisson(per_block * season) {
                flows.push((event, size * (p.log_sigma * self.rng.normal()).exp()));
            }
            for _ in 0..self.rng.poisson(whale_per_block) {
                let (lo, hi) = p.whale_share;
                let share = lo * (hi / lo).powf(self.rng.uniform());
                flows.push((event, self.balance * share));
            }
        }
        for d in &mut self.drains {
            if self.ts < d.start_ts || self.ts >= d.end_ts() {
                continue;
            }
            let base = *d.base.get_or_insert(self.balance);
            if (self.ts - d.start_ts) % d.every_s < p.block_s {
                flows.push((
                    "Withdraw",
                    base * d.pct_per_hour / 100.0 * d.every_s as f64 / 3600.0,
                ));
            }
        }
        let mut logs = Vec::with_capacity(flows.len());
        for (i, (event, amount)) in flows.into_iter().enumerate() {
            // Nobody withdraws more than the vault holds.
            let amount = if event == "Withdraw" {
                amount.min(self.balance)
            } else {
                amount
            };
            if amount < 1.0 / UNIT {
                continue;
            }
            self.balance += if event == "Deposit" { amount } else { -amount };
            let raw = format!("{:.0}", amount * UNIT);
            logs.push(log(
                VAULT,
                CONTRACT,
                event,
                &[("amount", &raw)],
                self.number,
                self.ts,
                i as u64,
            ));
        }
        let block = Block {
            logs,
            marker: marker(self.number, self.ts),
        };
        self.number += 1;
        self.ts += p.block_s;
        block
    }
}
