//! Range and response-size limits of `eth_getLogs`. Every provider words them differently; the
//! table below is the one place that knows the wordings, and [`AdaptiveRange`] turns a recognised
//! limit into a smaller range that grows back after successes.

use std::sync::Mutex;

/// A recognised limit error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The provider family whose wording matched.
    pub style: &'static str,
    /// How many blocks the provider accepts, when the message says (a suggested range or a
    /// stated maximum).
    pub max_blocks: Option<u64>,
}

/// What the message says beyond "too large".
#[derive(Debug, Clone, Copy)]
enum Hint {
    /// Nothing usable: halve.
    None,
    /// A suggested range `[0x.., 0x..]` (Alchemy, Infura).
    SuggestedRange,
    /// The largest accepted block span, as the last number of the message.
    MaxBlocks,
}

/// `(style, lowercase fragment, hint)`. Matching is by fragment only: codes are reused for
/// unrelated errors (Infura's -32005 is also its rate limit).
const WORDINGS: &[(&str, &str, Hint)] = &[
    // -32602 "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block
    // range ... this block range should work: [0x.., 0x..]"
    (
        "alchemy",
        "log response size exceeded",
        Hint::SuggestedRange,
    ),
    // -32005 "query returned more than 10000 results. Try with this block range [0x.., 0x..]."
    ("infura", "query returned more than", Hint::SuggestedRange),
    // -32614 "eth_getLogs is limited to a 10,000 range"
    ("quicknode", "eth_getlogs is limited to a", Hint::MaxBlocks),
    // -32600 "block range is too wide"
    ("ankr", "block range is too wide", Hint::None),
    // -32000 "exceed maximum block range: 5000"
    ("nodereal", "exceed maximum block range", Hint::MaxBlocks),
    // -32602 "query exceeds max block range 100000"
    ("reth", "exceeds max block range", Hint::MaxBlocks),
    // -32602 "query exceeds max results 20000"
    ("geth", "exceeds max results", Hint::None),
    // -32005 "Requested range exceeds maximum range limit"
    ("besu", "exceeds maximum range limit", Hint::None),
    // -32602 "... exceeds limit of 10000"
    ("limit-of", "exceeds limit of", Hint::None),
    // "block range limit exceeded"
    ("chainstack", "block range limit exceeded", Hint::None),
    // "response size exceeded", "response size should not greater than ..."
    ("response-size", "response size", Hint::None),
    // "block range too large", "range is too large"
    ("range-too-large", "range too large", Hint::None),
    ("range-too-large", "range is too large", Hint::None),
    // "too many blocks requested"
    ("too-many-blocks", "too many blocks", Hint::None),
];

/// Recognises a range or size limit in a JSON-RPC error (`code` is kept for the log only).
pub fn recognise(_code: i64, message: &str) -> Option<Limit> {
    let lower = message.to_ascii_lowercase();
    let (style, _, hint) = WORDINGS
        .iter()
        .find(|(_, fragment, _)| lower.contains(fragment))?;
    let max_blocks = match hint {
        Hint::None => None,
        Hint::SuggestedRange => suggested_range(&lower).map(|(from, to)| to - from + 1),
        Hint::MaxBlocks => last_number(&lower),
    };
    Some(Limit {
        style,
        max_blocks: max_blocks.filter(|n| *n > 0),
    })
}

/// `[0x10, 0x1f]` or `[16, 31]` in a message.
fn suggested_range(lower: &str) -> Option<(u64, u64)> {
    let open = lower.rfind('[')?;
    let close = open + lower[open..].find(']')?;
    let (a, b) = lower[open + 1..close].split_once(',')?;
    let parse = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    };
    let (from, to) = (parse(a)?, parse(b)?);
    (to >= from).then_some((from, to))
}

/// The last decimal number of a message, thousands separators allowed ("a 10,000 range").
fn last_number(lower: &str) -> Option<u64> {
    let mut best = None;
    let mut current = String::new();
    for c in lower.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            current.push(c);
        } else if c == ',' && !current.is_empty() {
            continue;
        } else if !current.is_empty() {
            best = current.parse().ok();
            current.clear();
        }
    }
    best
}

/// Successful full-size requests before the range doubles.
const GROW_AFTER: u32 = 8;
/// Successes after which a span that once failed may be tried again.
const FORGET_AFTER: u32 = 200;

/// The block span of the next `eth_getLogs`, shared by the requests of one chain.
#[derive(Debug)]
pub struct AdaptiveRange {
    max: u64,
    state: Mutex<RangeState>,
}

#[derive(Debug)]
struct RangeState {
    current: u64,
    /// Largest span not known to fail.
    ceiling: u64,
    streak: u32,
    since_limit: u32,
}

impl AdaptiveRange {
    /// Starts at `max` (the configured `range_blocks`).
    pub fn new(max: u64) -> Self {
        let max = max.max(1);
        AdaptiveRange {
            max,
            state: Mutex::new(RangeState {
                current: max,
                ceiling: max,
                streak: 0,
                since_limit: 0,
            }),
        }
    }

    /// Blocks per request now.
    pub fn current(&self) -> u64 {
        self.lock().current
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
            s.current = (s.current * 2).min(s.ceiling);
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

    /// Messages as the providers send them.
    const SAMPLES: &[(i64, &str, &str, Option<u64>)] = &[
        (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x10, 0x1f]", "alchemy", Some(16)),
        (-32005, "query returned more than 10000 results. Try with this block range [0x3A2F1, 0x3A2F9].", "infura", Some(9)),
        (-32614, "eth_getLogs is limited to a 10,000 range", "quicknode", Some(10_000)),
        (-32600, "block range is too wide", "ankr", None),
        (-32000, "exceed maximum block range: 5000", "nodereal", Some(5000)),
        (-32602, "query exceeds max block range 100000", "reth", Some(100_000)),
        (-32602, "query exceeds max results 20000", "geth", None),
        (-32005, "Requested range exceeds maximum range limit", "besu", None),
        (-32602, "eth_getLogs block range exceeds limit of 10000", "limit-of", None),
        (-32000, "Block range limit exceeded.", "chainstack", None),
        (-32008, "response size exceeded", "response-size", None),
        (-32000, "block range too large", "range-too-large", None),
    ];

    #[test]
    fn every_known_wording_is_recognised_with_its_hint() {
        for (code, message, style, max) in SAMPLES {
            let got =
                recognise(*code, message).unwrap_or_else(|| panic!("not recognised: {message}"));
            assert_eq!(got.style, *style, "{message}");
            assert_eq!(got.max_blocks, *max, "{message}");
        }
        let styles: std::collections::BTreeSet<_> = SAMPLES.iter().map(|s| s.2).collect();
        assert!(styles.len() >= 6);
    }

    #[test]
    fn other_errors_are_not_limits() {
        for message in [
            "daily request count exceeded, request rate limited",
            "header not found",
            "execution reverted",
            "invalid params",
            "Too Many Requests",
        ] {
            assert_eq!(recognise(-32005, message), None, "{message}");
        }
    }

    #[test]
    fn decimal_suggestions_and_reversed_ranges() {
        assert_eq!(
            suggested_range("try with this block range [16, 31]"),
            Some((16, 31))
        );
        assert_eq!(suggested_range("try [0x20, 0x10]"), None);
        assert_eq!(last_number("limited to a 10,000 range"), Some(10_000));
    }

    #[test]
    fn shrinks_to_the_hint_or_half_and_grows_back_to_the_ceiling() {
        let r = AdaptiveRange::new(500);
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
}
