//! The server loop: accepts connections, serves HTTP/1 on each, and answers every request
//! according to the proxy's current [`Mode`]. HTTP-level faults are decided here for the whole
//! request; the per-call faults are delegated to [`super::rewrite`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::faults::Mode;
use super::rewrite::{
    behind_node, corrupt_hashes, hide_logs, lie_about_receipts, range_limited, without_method,
};
use super::state::{Outcome, ProxyEvent, Shared};
use super::upstream::{forward_raw, parse_quantity};

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "fault proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Zero linger turns the close of a `Reset` into a real RST; other closes only happen
        // after the client went away, where a RST harms nobody.
        let _ = stream.set_zero_linger();
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let reset = CancellationToken::new();
            let service = {
                let shared = Arc::clone(&shared);
                let reset = reset.clone();
                hyper::service::service_fn(move |req| {
                    let shared = Arc::clone(&shared);
                    let reset = reset.clone();
                    async move { Ok::<_, Infallible>(handle(&shared, req, &reset).await) }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection future closes the socket: that is how `Reset` and
            // shutdown end a connection, hanging requests included.
            tokio::select! {
                _ = conn => {}
                _ = reset.cancelled() => {}
                _ = shared.stop.cancelled() => {}
            }
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    reset: &CancellationToken,
) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("reading body: {e}")),
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let calls: Vec<Value> = match &parsed {
        Some(Value::Array(calls)) => calls.clone(),
        Some(call @ Value::Object(_)) => vec![call.clone()],
        _ => Vec::new(),
    };
    let methods: Vec<String> = calls
        .iter()
        .map(|c| c["method"].as_str().unwrap_or_default().to_string())
        .collect();
    let log_ranges: Vec<(u64, u64)> = calls
        .iter()
        .filter(|c| c["method"] == "eth_getLogs")
        .filter_map(|c| {
            let f = &c["params"][0];
            Some((
                parse_quantity(f["fromBlock"].as_str()?)?,
                parse_quantity(f["toBlock"].as_str()?)?,
            ))
        })
        .collect();
    let mode = shared.mode.lock().expect("mode lock").clone();
    let record = |outcome: Outcome| {
        shared.events.lock().expect("events lock").push(ProxyEvent {
            arrived,
            finished: Instant::now(),
            methods: methods.clone(),
            log_ranges: log_ranges.clone(),
            outcome,
        });
    };

    match &mode {
        Mode::RateLimited { retry_after_s } => {
            record(Outcome::Faulted("rate_limited"));
            let mut r = reply(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":429,"message":"Too Many Requests"}}"#,
            );
            r.headers_mut().insert(
                "retry-after",
                retry_after_s
                    .to_string()
                    .parse()
                    .expect("digits are a valid header"),
            );
            return r;
        }
        Mode::ServerError => {
            record(Outcome::Faulted("server_error"));
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        Mode::Reset => {
            record(Outcome::Faulted("reset"));
            reset.cancel();
            return std::future::pending().await;
        }
        Mode::Hang => {
            record(Outcome::Faulted("hang"));
            return std::future::pending().await;
        }
        _ => {}
    }
    let Some(parsed) = parsed else {
        // Not JSON: let the node produce its own error.
        let (status, text) = forward_raw(shared, body).await;
        record(Outcome::Forwarded);
        return reply(status, text);
    };

    let result = match mode {
        Mode::Pass => forward_raw(shared, body).await,
        Mode::WrongHash => {
            let (status, text) = forward_raw(shared, body).await;
            match serde_json::from_slice::<Value>(&text) {
                Ok(mut v) if status.is_success() => {
                    if corrupt_hashes(&mut v) {
                        record(Outcome::Faulted("wrong_hash"));
                        return reply(status, v.to_string());
                    }
                    (status, text)
                }
                _ => (status, text),
            }
        }
        Mode::StaleHead { behind } | Mode::EmptyLogsBeyondHead { behind } => {
            let stale = matches!(mode, Mode::StaleHead { .. });
            match behind_node(shared, &parsed, calls, behind, stale).await {
                Ok((answer, altered)) => {
                    let name = if stale { "stale_head" } else { "empty_logs" };
                    let outcome = if altered {
                        Outcome::Faulted(name)
                    } else {
                        Outcome::Forwarded
                    };
                    record(outcome);
                    return reply(StatusCode::OK, answer.to_string());
                }
                Err(status) => (status, Bytes::from_static(b"upstream failed")),
            }
        }
        Mode::RangeLimit { max_blocks, style } => {
            match range_limited(shared, &parsed, calls, max_blocks, style).await {
                Ok(Some((status, answer))) => {
                    record(Outcome::Faulted("range_limit"));
                    return reply(status, answer);
                }
                Ok(None) => forward_raw(shared, body).await,
                Err(status) => (status, Bytes::from_static(b"upstream failed")),
            }
        }
        Mode::EmptyLogs { per_mille } => {
            let (status, text) = forward_raw(shared, body).await;
            match serde_json::from_slice::<Value>(&text) {
                Ok(mut v) if status.is_success() => {
                    if hide_logs(&mut v, &calls, per_mille) {
                        record(Outcome::Faulted("lying_logs"));
                        return reply(status, v.to_string());
                    }
                    (status, text)
                }
                _ => (status, text),
            }
        }
        Mode::LyingReceipts(lie) => {
            let (status, text) = forward_raw(shared, body).await;
            match serde_json::from_slice::<Value>(&text) {
                Ok(mut v) if status.is_success() => {
                    if lie_about_receipts(&mut v, &calls, lie) {
                        record(Outcome::Faulted("lying_receipts"));
                        return reply(status, v.to_string());
                    }
                    (status, text)
                }
                _ => (status, text),
            }
        }
        Mode::MethodMissing { method } => {
            match without_method(shared, &parsed, calls, method).await {
                Ok(Some(answer)) => {
                    record(Outcome::Faulted("method_missing"));
                    return reply(StatusCode::OK, answer.to_string());
                }
                Ok(None) => forward_raw(shared, body).await,
                Err(status) => (status, Bytes::from_static(b"upstream failed")),
            }
        }
        Mode::RateLimited { .. } | Mode::ServerError | Mode::Reset | Mode::Hang => {
            unreachable!("HTTP-level faults answered above")
        }
    };
    record(Outcome::Forwarded);
    reply(result.0, result.1)
}
