//! The block span of the next `eth_getLogs` of a chain, learned from the answers.
//!
//! Two things bound it below `range_blocks`:
//! - **What the blocks hold.** Each answer updates an estimate of logs per block and bytes per
//!   log; the span is the number of blocks expected to hold `range_target_logs` logs and
//!   `range_target_bytes` bytes. A sparse contract gets `range_blocks`, a contract with 2,000 logs
//!   per block two or three blocks, with no tuning. The estimate rises at once when an answer is
//!   denser than expected and falls slowly, and the span grows at most eightfold per answer, so a
//!   quiet stretch does not lead into one enormous answer. With nothing learned yet the span is
//!   one block.
//! - **What the provider accepts.** A recognised range or response-size limit (`limits.rs`)
//!   shrinks the span to the provider's hint or to half, and no span that failed is tried again
//!   until 200 answers later; after 8 full-size successes the span grows halfway to the smallest
//!   span that failed (or doubles, when none did).
//!
//! The ingest may ask for less still (`span_within`), to keep a group of ranges within what it
//! may publish before the sink catches up.

use std::sync::Mutex;

/// Successful full-size requests before the limit-learned span doubles.
const GROW_AFTER: u32 = 8;
/// Successes after which a span that once failed may be tried again.
const FORGET_AFTER: u32 = 200;
/// Largest growth of the density-sized span from one answer to the next.
const GROWTH: u64 = 8;
/// Weight of a sparser answer in the density estimate (a denser one replaces it).
const DECAY: f64 = 0.25;

/// What one chain's answers taught about range sizes.
#[derive(Debug)]
pub struct AdaptiveRange {
    max: u64,
    target_logs: u64,
    target_bytes: u64,
    state: Mutex<RangeState>,
}

#[derive(Debug)]
struct RangeState {
    /// Span the provider limits allow now.
    current: u64,
    /// Largest span not known to fail.
    ceiling: u64,
    streak: u32,
    since_limit: u32,
    /// Logs per block and JSON bytes per log, once an answer came.
    density: Option<(f64, f64)>,
    /// Largest span answered since the last estimate change: the base of the growth cap.
    answered: u64,
}

impl AdaptiveRange {
    /// `max` is `range_blocks`; the targets are `range_target_logs` and `range_target_bytes`.
    pub fn new(max: u64, target_logs: u64, target_bytes: u64) -> Self {
        let max = max.max(1);
        AdaptiveRange {
            max,
            target_logs: target_logs.max(1),
            target_bytes: target_bytes.max(1),
            state: Mutex::new(RangeState {
                current: max,
                ceiling: max,
                streak: 0,
                since_limit: 0,
                density: None,
                answered: 0,
            }),
        }
    }

    /// Blocks per request now.
    pub fn current(&self) -> u64 {
        self.span_within(None)
    }

    /// Blocks per request for at most `max_logs` logs (the ingest's share of its lead budget).
    pub fn span_within(&self, max_logs: Option<u64>) -> u64 {
        let s = self.lock();
        let Some((per_block, per_log)) = s.density else {
            return 1;
        };
        let logs = max_logs.map_or(self.target_logs, |m| m.min(self.target_logs)) as f64;
        let by_logs = logs / per_block.max(1e-9);
        let by_bytes = self.target_bytes as f64 / (per_block * per_log).max(1e-9);
        let sized = by_logs.min(by_bytes).floor().clamp(1.0, self.max as f64) as u64;
        sized
            .min(s.answered.max(1).saturating_mul(GROWTH))
            .min(s.current)
            .max(1)
    }

    /// Logs per block and JSON bytes per log as estimated now (for metrics and tests).
    pub fn density(&self) -> Option<(f64, f64)> {
        self.lock().density
    }

    /// An answer for `blocks` blocks held `logs` logs of about `bytes` bytes of JSON.
    pub fn observe(&self, blocks: u64, logs: u64, bytes: u64) {
        let mut s = self.lock();
        let per_block = logs as f64 / blocks.max(1) as f64;
        let per_log = if logs == 0 {
            None
        } else {
            Some(bytes as f64 / logs as f64)
        };
        s.density = Some(match s.density {
            None => (per_block, per_log.unwrap_or(0.0)),
            Some((d, b)) => {
                let d = if per_block > d {
                    per_block
                } else {
                    d + DECAY * (per_block - d)
                };
                let b = match per_log {
                    Some(p) if p > b => p,
                    Some(p) => b + DECAY * (p - b),
                    None => b,
                };
                (d, b)
            }
        });
        s.answered = s.answered.max(blocks);
    }

    /// A request of `span` blocks hit a limit; returns the span to use instead (at least 1).
    pub fn shrink(&self, span: u64, limit_blocks: Option<u64>) -> u64 {
        let mut s = self.lock();
        let smaller = span.saturating_sub(1).max(1);
        let next = limit_blocks.unwrap_or(span / 2).clamp(1, smaller);
        s.current = s.current.min(next);
        s.ceiling = s.ceiling.min(smaller);
        s.streak = 0;
        s.since_limit = 0;
        s.current
    }

    /// A request of `span` blocks succeeded.
    pub fn success(&self, span: u64) {
        let mut s = self.lock();
        s.since_limit = s.since_limit.saturating_add(1);
        if s.since_limit >= FORGET_AFTER {
            s.ceiling = self.max;
        }
        if span < s.current {
            return;
        }
        s.streak += 1;
        if s.streak >= GROW_AFTER && s.current < s.ceiling {
            // Below a span known to fail, probe halfway to it (a refusal there lowers the
            // ceiling, so a provider's limit is found in a few steps); otherwise double.
            s.current = if s.ceiling < self.max {
                (s.current + s.ceiling).div_ceil(2)
            } else {
                (s.current * 2).min(s.ceiling)
            };
            s.streak = 0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RangeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A range that knows its density already (a sparse one: the limits alone decide).
    fn sparse(max: u64) -> AdaptiveRange {
        let r = AdaptiveRange::new(max, 5_000, 4 << 20);
        r.observe(max, 0, 0);
        r
    }

    #[test]
    fn shrinks_to_the_hint_or_half_and_grows_back_to_the_ceiling() {
        let r = sparse(500);
        assert_eq!(r.shrink(500, None), 250);
        assert_eq!(r.shrink(250, Some(40)), 40);
        // A hint larger than the failed span cannot grow it.
        assert_eq!(r.shrink(40, Some(1000)), 39);
        for _ in 0..GROW_AFTER {
            r.success(39);
        }
        // Doubling stops below the smallest span that failed.
        assert_eq!(r.current(), 39);
        for _ in 0..FORGET_AFTER {
            r.success(39);
        }
        for _ in 0..GROW_AFTER * 8 {
            let c = r.current();
            r.success(c);
        }
        assert_eq!(
            r.current(),
            500,
            "grows back to range_blocks after long success"
        );
        assert_eq!(r.shrink(1, None), 1, "never below one block");
    }

    #[test]
    fn sized_by_what_the_blocks_hold() {
        let r = AdaptiveRange::new(500, 5_000, 4 << 20);
        assert_eq!(r.current(), 1, "one block until something is known");
        // Dense: 1,000 logs of ~560 bytes per block -> 5 blocks hold the 5,000 logs.
        r.observe(1, 1_000, 560_000);
        assert_eq!(r.current(), 5);
        // 2,000 logs per block: the estimate rises at once.
        r.observe(5, 10_000, 5_600_000);
        assert_eq!(r.current(), 2);
        // Large logs: the byte target binds first (4 MiB / (100 logs * 20 kB) = 2 blocks).
        let big = AdaptiveRange::new(500, 5_000, 4 << 20);
        big.observe(1, 100, 2_000_000);
        assert_eq!(big.current(), 2);
        // The ingest's budget asks for less.
        assert_eq!(r.span_within(Some(1_000)), 1);
    }

    #[test]
    fn sparse_contracts_grow_to_range_blocks_in_a_few_answers() {
        let r = AdaptiveRange::new(500, 5_000, 4 << 20);
        let mut spans = vec![r.current()];
        for _ in 0..4 {
            let span = r.current();
            r.observe(span, 0, 0);
            spans.push(r.current());
        }
        assert_eq!(spans, [1, 8, 64, 500, 500]);
        // A dense answer after a quiet stretch brings the span down at once.
        r.observe(500, 500_000, 280_000_000);
        assert_eq!(r.current(), 5);
        // ... and sparser answers raise it slowly.
        r.observe(5, 100, 56_000);
        assert!(r.current() > 5 && r.current() < 100, "{}", r.current());
    }
}
