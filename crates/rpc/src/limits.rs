//! Range and response-size limits of `eth_getLogs`. Every provider words them differently; the
//! table below is the one place that knows the wordings; `range.rs` turns a recognised limit into a
//! smaller range that grows back after successes.

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
    /// A suggested range `[0x.., 0x..]` (Alchemy, Infura); halve when the message has none.
    SuggestedRange,
    /// The largest accepted block span is the number at the pattern's `#`.
    Number,
    /// The largest accepted block span is the last number of the message.
    LastNumber,
}

/// `(style, words, hint)`, first match wins, so the specific wordings come before the general
/// ones. `words` must appear in this order and next to each other in the message after
/// [`words`] normalised it (case, punctuation, inflections: "Exceeded", "exceeds" and "exceed"
/// are one word, "max" is "maximum", "10,000" and "10k" are numbers); `#` stands for a number.
/// Matching is by wording only: codes are reused for unrelated errors (Infura's -32005 is also
/// its rate limit).
const WORDINGS: &[(&str, &str, Hint)] = &[
    // -32602 "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block
    // range ... this block range should work: [0x.., 0x..]"
    ("alchemy", "log response size exceed", Hint::SuggestedRange),
    // -32005 "query returned more than 10000 results. Try with this block range [0x.., 0x..]."
    // (zkEVM: the same without a range)
    (
        "infura",
        "query return more than # result",
        Hint::SuggestedRange,
    ),
    // "requested too many blocks from 100 to 5000, maximum is set to 2048"
    ("avalanche", "request too many block", Hint::LastNumber),
    // -32614 "eth_getLogs is limited to a 10,000 range"; "eth_getLogs and eth_newFilter are
    // limited to a 10,000 blocks range" (also 1RPC, Blast)
    ("quicknode", "limit to a #", Hint::Number),
    // "eth_getLogs is limited to 1024 block range"
    ("blockpi", "limit to # block", Hint::Number),
    // "please limit the query to at most 1000 blocks"
    (
        "coinbase",
        "limit the query to at most # block",
        Hint::Number,
    ),
    // "Maximum allowed number of requested blocks is 1000"
    (
        "thirdweb",
        "maximum allow number of request block is #",
        Hint::Number,
    ),
    // "ranges over 10000 blocks are not supported on freetier"
    ("drpc", "range over # block", Hint::Number),
    // "eth_getLogs range is too large, max is 10k blocks"
    ("merkle", "too large maximum is #", Hint::Number),
    // "block range is too wide (maximum 1024)"; ankr -32600 "block range is too wide"
    ("ankr", "block range is too wide", Hint::LastNumber),
    // Cloudflare "Exceeded maximum block range: 800"; NodeReal -32000 "exceed maximum block
    // range: 5000"; reth/Hyperliquid "query exceeds max block range 100000"; PublicNode
    // "maximum block range: 50000"
    ("max-block-range", "maximum block range", Hint::LastNumber),
    // Cloudflare "Max range: 3500"
    ("cloudflare", "maximum range #", Hint::Number),
    // "block range greater than 10000 max"
    ("swell", "block range greater than #", Hint::Number),
    // "block range exceeds 1000"
    ("somnia", "block range exceed #", Hint::Number),
    // "query must be smaller than size 1024"
    ("harmony", "query must be smaller than size #", Hint::Number),
    // "you can make eth_getLogs requests with up to a 5000 block range"
    ("aurora", "up to a # block range", Hint::Number),
    // "maximum [from, to] blocks distance: 10000"
    (
        "ankr-distance",
        "maximum from to block distance #",
        Hint::Number,
    ),
    // Blast (paid) "requested range exceeds the range allowed for your plan (5000 > 1000)"
    (
        "blast",
        "exceed the range allow for your plan",
        Hint::LastNumber,
    ),
    // geth -32602 "query exceeds max results 20000" (also LlamaRPC, Ankr)
    ("geth", "exceed maximum result", Hint::None),
    // besu -32005 "Requested range exceeds maximum range limit"
    ("besu", "exceed maximum range limit", Hint::None),
    // Arbitrum "logs matched by query exceeds limit of 10000"; "... exceeds limit of 10000"
    ("limit-of", "exceed limit of", Hint::None),
    // Chainstack "Block range limit exceeded."
    ("chainstack", "block range limit exceed", Hint::None),
    // OP "backend response too large"
    ("optimism", "response too large", Hint::None),
    // 1RPC "response size should not greater than 10000000 bytes"; "response size exceeded"
    ("response-size", "response size", Hint::None),
    // OP/Base "Block range is too large", "block range too large", "range is too large"
    ("range-too-large", "range too large", Hint::None),
    ("range-too-large", "range is too large", Hint::None),
    // "too many blocks requested"
    ("too-many-blocks", "too many block", Hint::None),
];

/// Recognises a range or size limit in a JSON-RPC error (`code` is kept for the log only).
pub fn recognise(_code: i64, message: &str) -> Option<Limit> {
    let tokens = words(message);
    let (style, hint, at) = WORDINGS
        .iter()
        .find_map(|(style, pattern, hint)| find(&tokens, pattern).map(|at| (*style, *hint, at)))?;
    let max_blocks = match hint {
        Hint::None => None,
        Hint::SuggestedRange => {
            // `[0x0, 0xffffffffffffffff]` spans one block more than u64 holds: saturate.
            suggested_range(&message.to_ascii_lowercase())
                .map(|(from, to)| (to - from).saturating_add(1))
        }
        Hint::Number => at,
        Hint::LastNumber => tokens.iter().rev().find_map(Token::number),
    };
    Some(Limit {
        style,
        max_blocks: max_blocks.filter(|n| *n > 0),
    })
}

/// A normalised word of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Number(u64),
}

impl Token {
    fn number(&self) -> Option<u64> {
        match self {
            Token::Number(n) => Some(*n),
            Token::Word(_) => None,
        }
    }
}

/// The message as words: lowercase, split at anything that is not a letter or digit, thousands
/// separators dropped ("10,000"), "10k" read as 10000, `0x` numbers read as hex, and endings
/// removed so that inflections compare equal ("exceeded" = "exceeds" = "exceed", "blocks" =
/// "block"); "max" is "maximum".
fn words(message: &str) -> Vec<Token> {
    let lower = message.to_ascii_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut cleaned = String::with_capacity(chars.len());
    for (i, c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if matches!(c, ',' | '_' | '.') && between_digits {
            continue;
        }
        cleaned.push(*c);
    }
    cleaned
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if let Some(hex) = w.strip_prefix("0x") {
                if let Ok(n) = u64::from_str_radix(hex, 16) {
                    return Token::Number(n);
                }
            }
            if let Ok(n) = w.parse::<u64>() {
                return Token::Number(n);
            }
            if let Some(n) = w.strip_suffix('k').and_then(|d| d.parse::<u64>().ok()) {
                return Token::Number(n.saturating_mul(1000));
            }
            Token::Word(stem(w))
        })
        .collect()
}

/// A word without its inflection ending.
fn stem(w: &str) -> String {
    if w == "max" {
        return "maximum".into();
    }
    let mut w = w;
    if w.len() > 5 {
        w = w.strip_suffix("ing").unwrap_or(w);
    }
    if w.len() > 4 && !w.ends_with("eed") {
        w = w.strip_suffix("ed").unwrap_or(w);
    }
    if w.len() > 3 && !w.ends_with("ss") {
        w = w.strip_suffix('s').unwrap_or(w);
    }
    w.to_owned()
}

/// Where `pattern` occurs in `tokens` (its words next to each other): `Some(number at '#')`, or
/// `Some(None)` for a pattern without `#`.
fn find(tokens: &[Token], pattern: &str) -> Option<Option<u64>> {
    let want: Vec<Option<String>> = pattern
        .split(' ')
        .map(|w| (w != "#").then(|| stem(w)))
        .collect();
    tokens.windows(want.len()).find_map(|window| {
        let mut number = None;
        for (token, want) in window.iter().zip(&want) {
            match (token, want) {
                (Token::Word(w), Some(x)) if w == x => {}
                (Token::Number(n), None) => number = Some(*n),
                _ => return None,
            }
        }
        Some(number)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as the providers send them.
    const SAMPLES: &[(i64, &str, &str, Option<u64>)] = &[
        (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x10, 0x1f]", "alchemy", Some(16)),
        (-32005, "query returned more than 10000 results. Try with this block range [0x3A2F1, 0x3A2F9].", "infura", Some(9)),
        (-32005, "query returned more than 10000 results", "infura", None),
        (-32614, "eth_getLogs is limited to a 10,000 range", "quicknode", Some(10_000)),
        (-32614, "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range", "quicknode", Some(10_000)),
        (-32600, "block range is too wide", "ankr", None),
        (-32600, "block range is too wide (maximum 1024)", "ankr", Some(1024)),
        (-32000, "exceed maximum block range: 5000", "max-block-range", Some(5000)),
        (-32047, "Exceeded maximum block range: 800", "max-block-range", Some(800)),
        (-32602, "query exceeds max block range 100000", "max-block-range", Some(100_000)),
        (-32602, "MAXIMUM BLOCK RANGE: 50,000", "max-block-range", Some(50_000)),
        (-32000, "Max range: 3500", "cloudflare", Some(3500)),
        (-32602, "query exceeds max results 20000", "geth", None),
        (-32005, "Requested range exceeds maximum range limit", "besu", None),
        (-32602, "eth_getLogs block range exceeds limit of 10000", "limit-of", None),
        (-32000, "logs matched by query exceeds limit of 10000", "limit-of", None),
        (-32000, "Block range limit exceeded.", "chainstack", None),
        (-32008, "response size exceeded", "response-size", None),
        (-32000, "response size should not greater than 10000000 bytes", "response-size", None),
        (-32000, "backend response too large", "optimism", None),
        (-32000, "block range too large", "range-too-large", None),
        (-32602, "Block range is too large", "range-too-large", None),
        (-32000, "requested too many blocks from 100 to 5000, maximum is set to 2048", "avalanche", Some(2048)),
        (-32602, "eth_getLogs is limited to 1024 block range", "blockpi", Some(1024)),
        (-32602, "please limit the query to at most 1000 blocks", "coinbase", Some(1000)),
        (-32602, "Maximum allowed number of requested blocks is 1000", "thirdweb", Some(1000)),
        (35, "ranges over 10000 blocks are not supported on freetier", "drpc", Some(10_000)),
        (-32000, "eth_getLogs range is too large, max is 10k blocks", "merkle", Some(10_000)),
        (-32000, "block range greater than 10000 max", "swell", Some(10_000)),
        (-32000, "block range exceeds 1000", "somnia", Some(1000)),
        (-32000, "query must be smaller than size 1024", "harmony", Some(1024)),
        (-32000, "you can make eth_getLogs requests with up to a 5000 block range", "aurora", Some(5000)),
        (-32000, "maximum [from, to] blocks distance: 10000", "ankr-distance", Some(10_000)),
        (-32000, "requested range exceeds the range allowed for your plan (5000 > 1000)", "blast", Some(1000)),
        (-32000, "too many blocks requested", "too-many-blocks", None),
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
        assert!(styles.len() >= 25, "{styles:?}");
    }

    #[test]
    fn inflections_case_and_number_formats_do_not_matter() {
        for message in [
            "EXCEEDED MAXIMUM BLOCK RANGE: 800",
            "exceeds max block range 800",
            "Exceeding the maximum block range (800)",
            "error: exceeded maximum block-range: 800.",
            "maximum block range: 0x320",
        ] {
            let got = recognise(-32000, message).unwrap_or_else(|| panic!("{message}"));
            assert_eq!(got.max_blocks, Some(800), "{message}");
        }
        assert_eq!(
            recognise(-32614, "eth_getLogs is limited to a 10.000 range").map(|l| l.max_blocks),
            Some(Some(10_000))
        );
    }

    #[test]
    fn other_errors_are_not_limits() {
        for message in [
            "daily request count exceeded, request rate limited",
            "header not found",
            "execution reverted",
            "invalid params",
            "Too Many Requests",
            "exceeded the quota usage",
            "block not found",
            "max fee per gas less than block base fee",
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
        // A hostile provider's widest range saturates instead of overflowing.
        let whole = recognise(
            -32005,
            "query returned more than 10000 results. Try with this block range [0x0, 0xffffffffffffffff].",
        )
        .expect("recognised");
        assert_eq!(whole.max_blocks, Some(u64::MAX));
        assert_eq!(words("limited to a 10,000 range")[3], Token::Number(10_000));
    }
}
