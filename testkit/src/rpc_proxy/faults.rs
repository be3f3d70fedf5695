//! The faults a [`FaultProxy`](super::FaultProxy) can inject: the [`Mode`] it is in, and the
//! range-limit wordings of real providers ([`RangeStyle`]). Kept apart from the server so the
//! catalogue tests pick from reads as one list, without the plumbing that carries it out.

/// How the proxy treats the requests it receives from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything unchanged.
    Pass,
    /// HTTP 429 with a `Retry-After` header of this many seconds.
    RateLimited { retry_after_s: u64 },
    /// HTTP 500.
    ServerError,
    /// Read the request, then reset the connection (RST, no response).
    Reset,
    /// Read the request and never answer (the client's timeout is the only way out).
    Hang,
    /// Answer as of `behind` blocks ago: the head is older, newer blocks do not exist and
    /// `eth_getLogs` returns nothing for them.
    StaleHead { behind: u64 },
    /// Report the true head but answer as a backend `behind` blocks behind it: blocks beyond
    /// that are `null` and `eth_getLogs` silently leaves out their logs (the silent-loss case).
    EmptyLogsBeyondHead { behind: u64 },
    /// Refuse `eth_getLogs` spanning more than `max_blocks` blocks with `style`'s error.
    RangeLimit { max_blocks: u64, style: RangeStyle },
    /// Corrupt every block hash in the answers (`hash`, `parentHash`, `blockHash`).
    WrongHash,
    /// A log index that lags the headers: each `eth_getLogs` answer is replaced by `[]` with
    /// probability `per_mille / 1000` (1000: always), while headers and receipts stay true.
    EmptyLogs { per_mille: u32 },
    /// Receipts that lie: each non-empty `eth_getBlockReceipts` answer loses its last receipt
    /// or has its first receipt's status flipped, while blocks and logs stay true.
    LyingReceipts(ReceiptLie),
    /// A node without `method`: its calls are answered with geth's -32601 "does not exist/is
    /// not available", the other calls of a batch are forwarded.
    MethodMissing { method: &'static str },
}

/// How [`Mode::LyingReceipts`] alters a block's receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptLie {
    /// The last receipt of the block is left out.
    DropOne,
    /// The first receipt's status is the other one (a revert reported as a success, or back).
    FlipStatus,
}

/// The range/size-limit errors of common providers and node implementations, in their own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeStyle {
    Alchemy,
    Infura,
    QuickNode,
    Ankr,
    NodeReal,
    Reth,
    Besu,
    /// A generic JSON-RPC "response size exceeded" (-32008).
    ResponseSize,
    /// A gateway refusing the body outright with HTTP 413.
    Http413,
    /// Cloudflare's gateway: "Exceeded maximum block range: N".
    Cloudflare,
    /// A wording no table knows (not in [`RangeStyle::ALL`]): only its repetition on the same
    /// range tells that it is a limit.
    Unrecognised,
}

impl RangeStyle {
    pub const ALL: [RangeStyle; 10] = [
        RangeStyle::Alchemy,
        RangeStyle::Infura,
        RangeStyle::QuickNode,
        RangeStyle::Ankr,
        RangeStyle::NodeReal,
        RangeStyle::Reth,
        RangeStyle::Besu,
        RangeStyle::ResponseSize,
        RangeStyle::Http413,
        RangeStyle::Cloudflare,
    ];

    /// The `(code, message)` this style answers for a range starting at `from` when at most
    /// `max_blocks` blocks are allowed. For [`RangeStyle::Http413`] the code is the HTTP status.
    pub fn error(&self, max_blocks: u64, from: u64) -> (i64, String) {
        let suggested_to = from + max_blocks.max(1) - 1;
        match self {
            RangeStyle::Alchemy => (
                -32602,
                format!(
                    "Log response size exceeded. You can make eth_getLogs requests with up to a \
                     {max_blocks} block range and no limit on the response size, or you can \
                     request any block range with a cap of 10K logs in the response. Based on \
                     your parameters, this block range should work: [{from:#x}, {suggested_to:#x}]"
                ),
            ),
            RangeStyle::Infura => (
                -32005,
                format!(
                    "query returned more than 10000 results. Try with this block range \
                     [{from:#x}, {suggested_to:#x}]."
                ),
            ),
            RangeStyle::QuickNode => (
                -32614,
                format!("eth_getLogs is limited to a {max_blocks} range"),
            ),
            RangeStyle::Ankr => (-32600, "block range is too wide".to_string()),
            RangeStyle::NodeReal => (-32000, format!("exceed maximum block range: {max_blocks}")),
            RangeStyle::Reth => (
                -32602,
                format!("query exceeds max block range {max_blocks}"),
            ),
            RangeStyle::Besu => (
                -32005,
                "Requested range exceeds maximum range limit".to_string(),
            ),
            RangeStyle::ResponseSize => (-32008, "response size exceeded".to_string()),
            RangeStyle::Http413 => (413, "Request Entity Too Large".to_string()),
            RangeStyle::Cloudflare => (
                -32047,
                format!("Exceeded maximum block range: {max_blocks}"),
            ),
            RangeStyle::Unrecognised => (-32000, "backend busy: request too heavy".to_string()),
        }
    }
}
