//! What can go wrong talking to a provider, classified once so that the pool (bench or not), the
//! range planner (shrink or not) and the ingest (retry or stop) all decide from the same facts.

use std::time::Duration;

use alloy::{rpc::json_rpc::RpcError as AlloyRpcError, transports::TransportErrorKind};

use super::limits;

/// An RPC failure, naming the provider (its redacted label) and the method.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("{provider}: {method} timed out after {after:?}")]
    Timeout {
        provider: String,
        method: &'static str,
        after: Duration,
    },
    #[error("{provider}: {method}: connection failed: {message}")]
    Transport {
        provider: String,
        method: &'static str,
        message: String,
    },
    #[error("{provider}: {method}: HTTP {status}: {body}")]
    Http {
        provider: String,
        method: &'static str,
        status: u16,
        body: String,
    },
    #[error("{provider}: {method}: rate limited{}: {message}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        provider: String,
        method: &'static str,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("{provider}: {method}: range or response size limit ({style}): {message}")]
    RangeLimit {
        provider: String,
        method: &'static str,
        /// Which provider family's wording was recognised.
        style: &'static str,
        /// Blocks the provider says it accepts, when its message tells.
        max_blocks: Option<u64>,
        message: String,
    },
    #[error("{provider}: {method}: JSON-RPC error {code}: {message}")]
    Response {
        provider: String,
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("{provider}: does not have block {block} yet (behind the chain)")]
    MissingBlock { provider: String, block: u64 },
    /// The answer contradicts the block's own commitments (its `logsBloom`) or a second source.
    #[error("{provider}: inconsistent answer for block {block}: {detail}")]
    Inconsistent {
        provider: String,
        block: u64,
        detail: String,
    },
    /// The only provider keeps contradicting the evidence for a block.
    #[error(
        "chain {chain}: {provider}, the only provider, answered block {block} wrongly {times} \
         times ({detail}). Stopping rather than store the block without its logs: fix the \
         provider or add a second one (if this chain's logsBloom does not cover these logs, set \
         check_logs_bloom = false)"
    )]
    Contradicted {
        chain: String,
        provider: String,
        block: u64,
        times: u32,
        detail: String,
    },
    /// A block's bloom says it may hold logs of interest, the answer has none, and no second
    /// source (another provider, the block's receipts) could tell a lie from a false positive.
    #[error(
        "{provider}: block {block}: its logsBloom may hold logs of the configured contracts but \
         the answer has none, and no second source could settle it ({detail})"
    )]
    Unsettled {
        provider: String,
        block: u64,
        detail: String,
    },
    #[error("{provider}: {method}: {message}")]
    Invalid {
        provider: String,
        method: &'static str,
        message: String,
    },
    #[error("chain {chain}: eth_chainId of {provider} is {actual}, the config says {expected}")]
    WrongChain {
        chain: String,
        provider: String,
        expected: u64,
        actual: u64,
    },
    #[error("chain {chain}: no RPC provider in rotation ({reason})")]
    NoProvider { chain: String, reason: String },
    #[error("chain {chain}: no RPC provider answered: {errors}")]
    AllFailed {
        chain: String,
        errors: String,
        /// Every provider gave an answer nothing recognises (see
        /// [`RpcError::is_unrecognised_answer`]).
        unrecognised: bool,
    },
    #[error(
        "chain {chain}: block {block} alone holds more logs of {address} than any provider returns \
         in one answer ({errors}). Add a provider without this limit or raise it"
    )]
    BlockTooLarge {
        chain: String,
        block: u64,
        address: String,
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
