//! A fault-injecting JSON-RPC proxy in front of an EVM node (anvil, in the tests).
//!
//! Tests give the indexer the proxy's URL instead of the node's and switch its [`Mode`] at any
//! time to reproduce what public providers do: rate limiting with `Retry-After`, 5xx, connection
//! resets, requests that never get an answer, a node answering as of an older block, a load
//! balancer whose backend has not reached a block yet (empty logs while the head looks current),
//! range-limit errors in each provider's own wording, and wrong block hashes.
//!
//! HTTP-level faults apply to the whole request; the others apply per call, so a JSON-RPC batch
//! can come back partly faulted, as it does from real providers. Every request is recorded as a
//! [`ProxyEvent`] so tests can measure how fast the client turned away from a faulty provider.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// What the proxy did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the node, unchanged.
    Forwarded,
    /// A fault was injected: `rate_limited`, `server_error`, `reset`, `hang`, `stale_head`,
    /// `empty_logs`, `range_limit`, `wrong_hash` or `lying_logs`.
    Faulted(&'static str),
}

/// One HTTP request the proxy received.
#[derive(Debug, Clone)]
pub struct ProxyEvent {
    pub arrived: Instant,
    /// When the answer was sent (for `reset` and `hang`, when the fault was injected).
    pub finished: Instant,
    /// The JSON-RPC methods in the request, in order (several for a batch).
    pub methods: Vec<String>,
    /// The `(fromBlock, toBlock)` of each numbered `eth_getLogs` in the request.
    pub log_ranges: Vec<(u64, u64)>,
    pub outcome: Outcome,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    mode: Mutex<Mode>,
    events: Mutex<Vec<ProxyEvent>>,
    stop: CancellationToken,
}

/// The proxy; it stops serving when dropped or shut down.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to the JSON-RPC endpoint `upstream`.
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            client,
            mode: Mutex::new(Mode::Pass),
            events: Mutex::new(Vec::new()),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy { addr, shared })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode.lock().expect("mode lock").clone()
    }

    /// Every request received so far.
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.shared.events.lock().expect("events lock").clone()
    }

    /// How many HTTP requests arrived (a batch counts once).
    pub fn requests(&self) -> usize {
        self.shared.events.lock().expect("events lock").len()
    }

    /// Stops listening and drops every open connection, hanging ones included.
    pub fn shutdown(&self) {
        self.shared.stop.cancel();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
        Mode::RateLimited { .. } | Mode::ServerError | Mode::Reset | Mode::Hang => {
            unreachable!("HTTP-level faults answered above")
        }
    };
    record(Outcome::Forwarded);
    reply(result.0, result.1)
}

/// Sends `body` to the node as is.
async fn forward_raw(shared: &Shared, body: Bytes) -> (StatusCode, Bytes) {
    let sent = shared
        .client
        .post(&shared.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match resp.bytes().await {
                Ok(b) => (status, b),
                Err(_) => (StatusCode::BAD_GATEWAY, Bytes::new()),
            }
        }
        Err(_) => (StatusCode::BAD_GATEWAY, Bytes::new()),
    }
}

/// Sends JSON-RPC `calls` (as a batch) and returns the answers in the same order.
async fn forward_calls(shared: &Shared, calls: &[Value]) -> Result<Vec<Value>, StatusCode> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let (status, text) =
        forward_raw(shared, Bytes::from(Value::from(calls.to_vec()).to_string())).await;
    if !status.is_success() {
        return Err(StatusCode::BAD_GATEWAY);
    }
    let answers: Vec<Value> = serde_json::from_slice(&text).map_err(|_| StatusCode::BAD_GATEWAY)?;
    // A batch's answers may come back in any order: match them by id.
    Ok(calls
        .iter()
        .map(|c| {
            answers
                .iter()
                .find(|a| a["id"] == c["id"])
                .cloned()
                .unwrap_or_else(|| json!({"jsonrpc": "2.0", "id": c["id"], "result": null}))
        })
        .collect())
}

async fn true_head(shared: &Shared) -> Result<u64, StatusCode> {
    let answer = forward_calls(
        shared,
        &[json!({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})],
    )
    .await?;
    answer[0]["result"]
        .as_str()
        .and_then(parse_quantity)
        .ok_or(StatusCode::BAD_GATEWAY)
}

fn parse_quantity(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// A block parameter as a number; tags other than `earliest` mean the head.
fn block_param(v: &Value, head: u64) -> u64 {
    match v.as_str() {
        Some("earliest") => 0,
        Some(s) => parse_quantity(s).unwrap_or(head),
        None => head,
    }
}

fn answer(call: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
}

/// Rebuilds the caller's shape: a batch answers with an array, a single call with an object.
fn shape(request: &Value, mut answers: Vec<Value>) -> Value {
    if request.is_array() {
        Value::Array(answers)
    } else {
        answers.pop().unwrap_or(Value::Null)
    }
}

/// Answers as a node whose newest block is `head - behind`. With `stale` it also says so in
/// `eth_blockNumber` and `latest`; otherwise only blocks and logs beyond it are missing.
/// Returns the answer and whether anything differs from what the node itself would have said.
async fn behind_node(
    shared: &Shared,
    request: &Value,
    calls: Vec<Value>,
    behind: u64,
    stale: bool,
) -> Result<(Value, bool), StatusCode> {
    let head = true_head(shared).await?;
    let seen = head.saturating_sub(behind);
    let mut altered = false;
    let mut out: Vec<Option<Value>> = vec![None; calls.len()];
    let mut forward = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let params = &call["params"];
        match call["method"].as_str().unwrap_or_default() {
            "eth_blockNumber" if stale => {
                out[i] = Some(answer(call, json!(format!("{seen:#x}"))));
                altered |= seen != head;
            }
            "eth_getBlockByNumber" => {
                let n = block_param(&params[0], head);
                let tag = params[0].as_str().is_some_and(|s| !s.starts_with("0x"));
                if tag && stale {
                    let mut c = call.clone();
                    c["params"][0] = json!(format!("{seen:#x}"));
                    altered |= seen != head;
                    forward.push((i, c));
                } else if !tag && n > seen {
                    out[i] = Some(answer(call, Value::Null));
                    altered = true;
                } else {
                    forward.push((i, call.clone()));
                }
            }
            _ => forward.push((i, call.clone())),
        }
    }
    let sent: Vec<Value> = forward.iter().map(|(_, c)| c.clone()).collect();
    let answers = forward_calls(shared, &sent).await?;
    for ((i, call), mut a) in forward.into_iter().zip(answers) {
        if call["method"] == "eth_getLogs" {
            if let Some(logs) = a["result"].as_array_mut() {
                let before = logs.len();
                logs.retain(|l| {
                    l["blockNumber"]
                        .as_str()
                        .and_then(parse_quantity)
                        .is_none_or(|n| n <= seen)
                });
                altered |= logs.len() != before;
            }
        }
        out[i] = Some(a);
    }
    let answers = out.into_iter().map(|a| a.unwrap_or(Value::Null)).collect();
    Ok((shape(request, answers), altered))
}

/// If any `eth_getLogs` call spans more than `max_blocks`, the refusal to send back (per call in
/// the provider's wording, or a whole-request 413); `None` when the request is within limits.
async fn range_limited(
    shared: &Shared,
    request: &Value,
    calls: Vec<Value>,
    max_blocks: u64,
    style: RangeStyle,
) -> Result<Option<(StatusCode, String)>, StatusCode> {
    let needs_head = calls.iter().any(|c| {
        c["method"] == "eth_getLogs"
            && c["params"][0].get("blockHash").is_none()
            && ["fromBlock", "toBlock"].iter().any(|k| {
                !c["params"][0][k]
                    .as_str()
                    .is_some_and(|s| s.starts_with("0x"))
            })
    });
    let head = if needs_head {
        true_head(shared).await?
    } else {
        0
    };
    // (from, span) of each refused call.
    let refused: Vec<Option<u64>> = calls
        .iter()
        .map(|c| {
            let filter = &c["params"][0];
            if c["method"] != "eth_getLogs" || filter.get("blockHash").is_some() {
                return None;
            }
            let from = block_param(&filter["fromBlock"], head);
            let to = block_param(&filter["toBlock"], head);
            let span = to.saturating_sub(from) + 1;
            (span > max_blocks).then_some(from)
        })
        .collect();
    if refused.iter().all(Option::is_none) {
        return Ok(None);
    }
    if style == RangeStyle::Http413 {
        let (_, text) = style.error(max_blocks, 0);
        return Ok(Some((StatusCode::PAYLOAD_TOO_LARGE, text)));
    }
    let forward: Vec<Value> = calls
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c.clone())
        .collect();
    let mut answers = forward_calls(shared, &forward).await?.into_iter();
    let out: Vec<Value> = calls
        .iter()
        .zip(&refused)
        .map(|(c, r)| match r {
            Some(from) => {
                let (code, message) = style.error(max_blocks, *from);
                json!({"jsonrpc": "2.0", "id": c["id"], "error": {"code": code, "message": message}})
            }
            None => answers.next().unwrap_or(Value::Null),
        })
        .collect();
    Ok(Some((StatusCode::OK, shape(request, out).to_string())))
}

/// Empties the result of each `eth_getLogs` answer in `v` (one answer or a batch) with
/// probability `per_mille / 1000`; true if a non-empty answer was emptied.
fn hide_logs(v: &mut Value, calls: &[Value], per_mille: u32) -> bool {
    let log_ids: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"] == "eth_getLogs")
        .map(|c| &c["id"])
        .collect();
    let answers: Vec<&mut Value> = match v {
        Value::Array(items) => items.iter_mut().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    let mut any = false;
    for a in answers {
        if !log_ids.contains(&&a["id"]) {
            continue;
        }
        let lie = per_mille >= 1000 || rand::random_range(0..1000) < per_mille;
        if lie && a["result"].as_array().is_some_and(|l| !l.is_empty()) {
            a["result"] = json!([]);
            any = true;
        }
    }
    any
}

/// Flips the last byte of every block hash in `v`; true if there was any.
fn corrupt_hashes(v: &mut Value) -> bool {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, i| corrupt_hashes(i) | acc),
        Value::Object(map) => {
            let mut any = false;
            for (k, val) in map.iter_mut() {
                if matches!(k.as_str(), "hash" | "parentHash" | "blockHash") {
                    if let Some(s) = val.as_str().filter(|s| s.len() == 66) {
                        let last = u8::from_str_radix(&s[64..], 16).unwrap_or(0) ^ 0xff;
                        *val = json!(format!("{}{last:02x}", &s[..64]));
                        any = true;
                        continue;
                    }
                }
                any |= corrupt_hashes(val);
            }
            any
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anvil::Anvil;

    async fn rpc(url: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("proxy answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn call(id: u64, method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    #[tokio::test]
    async fn every_mode_against_anvil() {
        let anvil = Anvil::spawn().await.expect("anvil");
        anvil.mine(12).await.expect("mine");
        let proxy = FaultProxy::start(&anvil.url()).await.expect("proxy");
        let url = proxy.url();
        let head_call = call(1, "eth_blockNumber", json!([]));

        let (s, v) = rpc(&url, head_call.clone()).await;
        assert_eq!((s, v["result"].as_str()), (200, Some("0xc")));

        proxy.set_mode(Mode::RateLimited { retry_after_s: 7 });
        let resp = reqwest::Client::new()
            .post(&url)
            .json(&head_call)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");

        proxy.set_mode(Mode::ServerError);
        assert_eq!(rpc(&url, head_call.clone()).await.0, 500);

        proxy.set_mode(Mode::Reset);
        let err = reqwest::Client::new()
            .post(&url)
            .json(&head_call)
            .send()
            .await;
        assert!(err.is_err(), "reset must fail the request: {err:?}");

        proxy.set_mode(Mode::Hang);
        let hung = reqwest::Client::new()
            .post(&url)
            .json(&head_call)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(hung.unwrap_err().is_timeout());

        proxy.set_mode(Mode::StaleHead { behind: 4 });
        let batch = json!([
            call(1, "eth_blockNumber", json!([])),
            call(2, "eth_getBlockByNumber", json!(["0xa", false])),
            call(3, "eth_getBlockByNumber", json!(["0x8", false])),
            call(4, "eth_getBlockByNumber", json!(["latest", false])),
        ]);
        let (_, v) = rpc(&url, batch.clone()).await;
        assert_eq!(v[0]["result"], "0x8");
        assert_eq!(v[1]["result"], Value::Null);
        assert_eq!(v[2]["result"]["number"], "0x8");
        assert_eq!(v[3]["result"]["number"], "0x8");

        proxy.set_mode(Mode::EmptyLogsBeyondHead { behind: 4 });
        let (_, v) = rpc(&url, batch).await;
        assert_eq!(v[0]["result"], "0xc");
        assert_eq!(v[1]["result"], Value::Null);
        assert_eq!(v[3]["result"]["number"], "0xc");

        proxy.set_mode(Mode::WrongHash);
        let (_, v) = rpc(&url, call(5, "eth_getBlockByNumber", json!(["0x3", false]))).await;
        proxy.set_mode(Mode::Pass);
        let (_, truth) = rpc(&url, call(5, "eth_getBlockByNumber", json!(["0x3", false]))).await;
        assert_ne!(v["result"]["hash"], truth["result"]["hash"]);
        assert_ne!(v["result"]["parentHash"], truth["result"]["parentHash"]);
        assert_eq!(v["result"]["number"], truth["result"]["number"]);

        for style in RangeStyle::ALL {
            proxy.set_mode(Mode::RangeLimit {
                max_blocks: 5,
                style,
            });
            let wide = call(
                6,
                "eth_getLogs",
                json!([{"fromBlock": "0x1", "toBlock": "0x6"}]),
            );
            let narrow = call(
                7,
                "eth_getLogs",
                json!([{"fromBlock": "0x1", "toBlock": "0x5"}]),
            );
            let (s, v) = rpc(&url, json!([wide, narrow.clone()])).await;
            if style == RangeStyle::Http413 {
                assert_eq!(s, 413);
            } else {
                let (code, message) = style.error(5, 1);
                assert_eq!(v[0]["error"]["code"], code, "{style:?}");
                assert_eq!(v[0]["error"]["message"], message.as_str());
                assert!(v[1]["result"].is_array(), "{style:?}: {v}");
            }
            let (s, v) = rpc(&url, narrow).await;
            assert!(s == 200 && v["result"].is_array(), "{style:?}: {v}");
        }

        let outcomes: Vec<Outcome> = proxy.events().iter().map(|e| e.outcome).collect();
        for name in [
            "rate_limited",
            "server_error",
            "reset",
            "hang",
            "stale_head",
            "empty_logs",
            "wrong_hash",
            "range_limit",
        ] {
            assert!(
                outcomes.contains(&Outcome::Faulted(name)),
                "{name} never recorded"
            );
        }
        assert_eq!(proxy.requests(), outcomes.len());
        proxy.shutdown();
    }
}
