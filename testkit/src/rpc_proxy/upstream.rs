//! Talking to the real node behind the proxy: raw forwarding of a request body, batches of
//! individual calls matched back by id, and the node's true head, which the rewriting faults
//! measure their lies against.

use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use super::state::Shared;

/// Sends `body` to the node as is.
pub(super) async fn forward_raw(shared: &Shared, body: Bytes) -> (StatusCode, Bytes) {
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
pub(super) async fn forward_calls(
    shared: &Shared,
    calls: &[Value],
) -> Result<Vec<Value>, StatusCode> {
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

pub(super) async fn true_head(shared: &Shared) -> Result<u64, StatusCode> {
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

pub(super) fn parse_quantity(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}
