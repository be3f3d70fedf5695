//! What can go wrong talking to a provider, classified once so that the pool (bench or not), the
//! range planner (shrink or not) and the ingest (retry or stop) all decide from the same facts.

use std::time::Duration;

use alloy::{rpc::json_rpc::RpcError as AlloyRpcError, transports::TransportErrorKind};

use super::limits;

/// An RPC failure, naming the provider (its redacted label) and the method.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The provider did not answer within the chain's `rpc_timeout_s`.
    #[error("{provider}: {method} timed out after {after:?}")]
    Timeout {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called, e.g. `eth_getLogs`.
        method: &'static str,
        /// How long the call waited.
        after: Duration,
    },
    /// No HTTP answer at all: DNS, connect, TLS or a connection reset.
    #[error("{provider}: {method}: connection failed: {message}")]
    Transport {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called.
        method: &'static str,
        /// The chain of underlying errors, outermost first.
        message: String,
    },
    /// An HTTP error status other than 413, 429 and 503 (which are limits).
    #[error("{provider}: {method}: HTTP {status}: {body}")]
    Http {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called.
        method: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 300 characters).
        body: String,
    },
    /// HTTP 429 or 503, or a JSON-RPC error whose code or wording means too many requests.
    #[error("{provider}: {method}: rate limited{}: {message}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called.
        method: &'static str,
        /// The delay the provider asked for (`Retry-After`), when it gave one.
        retry_after: Option<Duration>,
        /// The provider's message (at most 300 characters).
        message: String,
    },
    /// HTTP 413, or a JSON-RPC error whose wording is a known block range or response size
    /// limit: the range planner retries with a smaller range.
    #[error("{provider}: {method}: range or response size limit ({style}): {message}")]
    RangeLimit {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called.
        method: &'static str,
        /// Which provider family's wording was recognised.
        style: &'static str,
        /// Blocks the provider says it accepts, when its message tells.
        max_blocks: Option<u64>,
        /// The provider's message (at most 300 characters).
        message: String,
    },
    /// A JSON-RPC error object that is neither a range nor a rate limit.
    #[error("{provider}: {method}: JSON-RPC error {code}: {message}")]
    Response {
        /// The provider's redacted label.
        provider: String,
        /// The JSON-RPC method called.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The provider's message (at most 300 characters).
        message: String,
    },
    /// The provider answered without the block asked for: its head is behind the chain's.
    #[error("{provider}: does not have block {block} yet (behind the chain)")]
    MissingBlock {
        /// The provider's redacted label.
        provider: String,
        /// Height of the block asked for.
        block: u64,
    },
    /// The answer contradicts the block's own commitments (its `logsBloom`) or a second source.
    #[error("{provider}: inconsistent answer for block {block}: {detail}")]
    Inconsistent {
        /// The provider's redacted label.
        provider: String,
        /// Height of the block.
        block: u64,
        /// What disagreed with what.
        detail: String,
    },
    /// The only provider keeps contradicting the evidence for a block.
    #[error(
        "chain {chain}: {provider}, the only provider, answered block {block} wrongly {times} \
         times ({detail}). Stopping rather than store the block without its logs or with \
         altered transactions: fix the provider or add a second one (if this chain's logsBloom \
         does not cover these logs, set check_logs_bloom = false)"
    )]
    Contradicted {
        /// The chain's name in the config.
        chain: String,
        /// The provider's redacted label.
        provider: String,
        /// Height of the block.
        block: u64,
        /// How many answers for the block were wrong.
        times: u32,
        /// What the last wrong answer contradicted.
        detail: String,
    },
    /// A block's bloom says it may hold logs of interest, the answer has none, and no second
    /// source (another provider, the block's receipts) could tell a lie from a false positive.
    #[error(
        "{provider}: block {block}: its logsBloom may hold logs of the configured contracts but \
         the answer has none, and no second source could settle it ({detail})"
    )]
    Unsettled {
        /// The provider's redacted label.
        provider: String,
        /// Height of the block.
        block: u64,
        /// Why the second sources could not settle it.
        detail: String,
    },
    /// An answer that does not parse as the method's result, a provider on another fork, or a
    /// provider URL or HTTP client that cannot be built.
    #[error("{provider}: {method}: {message}")]
    Invalid {
        /// The provider's redacted label (`-` when no provider is involved).
        provider: String,
        /// The JSON-RPC method called (`connect` while building the clients).
        method: &'static str,
        /// What is wrong with the answer or the setup.
        message: String,
    },
    /// A provider's `eth_chainId` differs from the chain's configured `chain_id`.
    #[error("chain {chain}: eth_chainId of {provider} is {actual}, the config says {expected}")]
    WrongChain {
        /// The chain's name in the config.
        chain: String,
        /// The provider's redacted label.
        provider: String,
        /// The configured `chain_id`.
        expected: u64,
        /// The chain id the provider answered.
        actual: u64,
    },
    /// Every provider of the chain is out of rotation (benched, or lacking what the call needs).
    #[error("chain {chain}: no RPC provider in rotation ({reason})")]
    NoProvider {
        /// The chain's name in the config.
        chain: String,
        /// Why each provider is unavailable.
        reason: String,
    },
    /// Every provider tried failed this call.
    #[error("chain {chain}: no RPC provider answered: {errors}")]
    AllFailed {
        /// The chain's name in the config.
        chain: String,
        /// The providers' errors, joined.
        errors: String,
        /// Every provider gave an answer nothing recognises (see
        /// [`RpcError::is_unrecognised_answer`]).
        unrecognised: bool,
    },
    /// A single block holds more logs of one contract than every provider returns in one
    /// answer, so no range can be small enough.
    #[error(
        "chain {chain}: block {block} alone holds more logs of {address} than any provider returns \
         in one answer ({errors}). Add a provider without this limit or raise it"
    )]
    BlockTooLarge {
        /// The chain's name in the config.
        chain: String,
        /// Height of the block.
        block: u64,
        /// The contract address whose logs do not fit.
        address: String,
        /// The providers' errors, joined.
        errors: String,
    },
}

impl RpcError {
    /// A later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !self.is_fatal()
    }

    /// Retrying cannot help: the configuration points at the wrong chain, or no provider can
    /// serve a block at all.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RpcError::WrongChain { .. }
                | RpcError::BlockTooLarge { .. }
                | RpcError::Contradicted { .. }
        )
    }

    /// The provider itself misbehaved, so it leaves rotation for a while. A range limit is the
    /// provider's policy, answered by a smaller range, not a fault.
    pub fn is_provider_fault(&self) -> bool {
        !matches!(
            self,
            RpcError::RangeLimit { .. }
                | RpcError::NoProvider { .. }
                | RpcError::AllFailed { .. }
                | RpcError::BlockTooLarge { .. }
                | RpcError::WrongChain { .. }
                | RpcError::Contradicted { .. }
                | RpcError::Unsettled { .. }
        )
    }

    /// The provider does not offer the method (JSON-RPC -32601, or a "method not found" /
    /// "not supported" wording): a fact about the provider, for calls with a fallback.
    pub fn is_method_missing(&self) -> bool {
        let RpcError::Response { code, message, .. } = self else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        *code == -32601
            || m.contains("method not found")
            || m.contains("does not exist/is not available")
            || m.contains("not supported")
            || m.contains("unsupported method")
            || m.contains("method not allowed")
            || m.contains("not whitelisted")
    }

    /// An answer the provider did give, but one nothing here recognises: a JSON-RPC error
    /// object outside the wording tables, an HTTP error status other than the rate limits, or
    /// all providers failing with such answers. Repeated on the same range it is read as a limit.
    pub fn is_unrecognised_answer(&self) -> bool {
        match self {
            RpcError::Response { .. } | RpcError::Http { .. } => true,
            RpcError::AllFailed { unrecognised, .. } => *unrecognised,
            _ => false,
        }
    }

    /// The provider the error is about, when it is about one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            RpcError::Timeout { provider, .. }
            | RpcError::Transport { provider, .. }
            | RpcError::Http { provider, .. }
            | RpcError::RateLimited { provider, .. }
            | RpcError::RangeLimit { provider, .. }
            | RpcError::Response { provider, .. }
            | RpcError::MissingBlock { provider, .. }
            | RpcError::Invalid { provider, .. }
            | RpcError::Inconsistent { provider, .. }
            | RpcError::Contradicted { provider, .. }
            | RpcError::Unsettled { provider, .. }
            | RpcError::WrongChain { provider, .. } => Some(provider),
            RpcError::NoProvider { .. }
            | RpcError::AllFailed { .. }
            | RpcError::BlockTooLarge { .. } => None,
        }
    }

    /// The delay the provider asked for (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RpcError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The fault in an operator's words, for health and `status`: timeout, connection reset,
    /// HTTP status, rate limit, inconsistent answers, behind the chain...
    pub fn fault(&self) -> String {
        match self {
            RpcError::Timeout { after, .. } => format!("timeout after {after:?}"),
            RpcError::Transport { message, .. } => {
                let lower = message.to_ascii_lowercase();
                // The HTTP client's own deadline surfaces as a transport error.
                if lower.contains("timed out") || lower.contains("timeout") {
                    "timeout".into()
                } else if lower.contains("reset")
                    || lower.contains("broken pipe")
                    || lower.contains("closed before message completed")
                    || lower.contains("incomplete")
                {
                    "connection reset".into()
                } else if lower.contains("refused") {
                    "connection refused".into()
                } else {
                    "connection failed".into()
                }
            }
            RpcError::Http { status, .. } => format!("HTTP {status}"),
            RpcError::RateLimited { .. } => "rate limited".into(),
            RpcError::RangeLimit { .. } => "range limit".into(),
            RpcError::Response { code, .. } => format!("JSON-RPC error {code}"),
            RpcError::MissingBlock { .. } => "behind the chain".into(),
            RpcError::Inconsistent { .. } | RpcError::Contradicted { .. } => {
                "inconsistent answers".into()
            }
            RpcError::Unsettled { .. } => "unsettled logs".into(),
            RpcError::Invalid { .. } => "invalid answer".into(),
            RpcError::WrongChain { .. } => "wrong chain".into(),
            RpcError::NoProvider { .. } => "no provider in rotation".into(),
            RpcError::AllFailed { .. } => "every provider failed".into(),
            RpcError::BlockTooLarge { .. } => "block too large".into(),
        }
    }

    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Timeout { .. } => "timeout",
            RpcError::Transport { .. } => "transport",
            RpcError::Http { .. } => "http",
            RpcError::RateLimited { .. } => "rate_limited",
            RpcError::RangeLimit { .. } => "range_limit",
            RpcError::Response { .. } => "response",
            RpcError::MissingBlock { .. } => "missing_block",
            RpcError::Invalid { .. } => "invalid",
            RpcError::Inconsistent { .. } => "inconsistent",
            RpcError::Contradicted { .. } => "contradicted",
            RpcError::Unsettled { .. } => "unsettled",
            RpcError::WrongChain { .. } => "wrong_chain",
            RpcError::NoProvider { .. } => "no_provider",
            RpcError::AllFailed { .. } => "all_failed",
            RpcError::BlockTooLarge { .. } => "block_too_large",
        }
    }

    /// Classifies an alloy error of `provider` answering `method`.
    pub fn from_alloy(
        provider: &str,
        method: &'static str,
        e: AlloyRpcError<TransportErrorKind>,
    ) -> RpcError {
        let provider = provider.to_owned();
        match e {
            AlloyRpcError::ErrorResp(payload) => {
                classify_response(provider, method, payload.code, &payload.message)
            }
            AlloyRpcError::Transport(kind) => {
                if let Some(http) = kind.as_http_error() {
                    let body: String = http.body.chars().take(300).collect();
                    return match http.status {
                        429 | 503 => RpcError::RateLimited {
                            provider,
                            method,
                            retry_after: kind.retry_after(),
                            message: format!("HTTP {}: {body}", http.status),
                        },
                        413 => RpcError::RangeLimit {
                            provider,
                            method,
                            style: "http-413",
                            max_blocks: None,
                            message: format!("HTTP 413: {body}"),
                        },
                        status => RpcError::Http {
                            provider,
                            method,
                            status,
                            body,
                        },
                    };
                }
                RpcError::Transport {
                    provider,
                    method,
                    message: error_chain(&kind),
                }
            }
            other => RpcError::Invalid {
                provider,
                method,
                message: other.to_string(),
            },
        }
    }
}

/// A JSON-RPC error object: a range limit (from the wording table), a rate limit, or anything else.
pub(crate) fn classify_response(
    provider: String,
    method: &'static str,
    code: i64,
    message: &str,
) -> RpcError {
    if let Some(limit) = limits::recognise(code, message) {
        return RpcError::RangeLimit {
            provider,
            method,
            style: limit.style,
            max_blocks: limit.max_blocks,
            message: message.chars().take(300).collect(),
        };
    }
    let lower = message.to_ascii_lowercase();
    let rate_limited = matches!(code, -32016 | -32012 | 429)
        || lower.contains("rate limit")
        || lower.contains("too many requests")
        || lower.contains("exceeded the quota")
        || lower.contains("request rate");
    if rate_limited {
        return RpcError::RateLimited {
            provider,
            method,
            retry_after: None,
            message: message.chars().take(300).collect(),
        };
    }
    RpcError::Response {
        provider,
        method,
        code,
        message: message.chars().take(300).collect(),
    }
}

/// The error and its sources on one line ("error sending request: connection reset").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_method_is_told_from_other_refusals() {
        let missing = |code, message: &str| {
            classify_response("p".into(), "eth_getBlockReceipts", code, message).is_method_missing()
        };
        assert!(missing(-32601, "Method not found"));
        assert!(missing(
            -32000,
            "the method eth_getBlockReceipts does not exist/is not available"
        ));
        assert!(missing(-32000, "eth_getBlockReceipts is not supported"));
        assert!(!missing(-32000, "header not found"));
        assert!(
            !missing(-32005, "rate limit exceeded"),
            "a rate limit is not"
        );
    }
}
