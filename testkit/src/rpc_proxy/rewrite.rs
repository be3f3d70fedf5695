//! The faults that edit JSON-RPC answers call by call, so a batch can come back partly faulted
//! as it does from real providers: a node behind the head, range-limit refusals, logs hidden
//! from answers, lying receipts, and corrupted block hashes.

use hyper::StatusCode;
use serde_json::{json, Value};

use super::faults::{RangeStyle, ReceiptLie};
use super::state::Shared;
use super::upstream::{forward_calls, parse_quantity, true_head};

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
pub(super) async fn behind_node(
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
pub(super) async fn range_limited(
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

/// The answers in `v` (one answer or a batch) to the calls of `method` among `calls`, by id.
fn answers_to<'a>(v: &'a mut Value, calls: &[Value], method: &str) -> Vec<&'a mut Value> {
    let ids: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"] == method)
        .map(|c| &c["id"])
        .collect();
    let answers: Vec<&mut Value> = match v {
        Value::Array(items) => items.iter_mut().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    answers
        .into_iter()
        .filter(|a| ids.contains(&&a["id"]))
        .collect()
}

/// Empties the result of each `eth_getLogs` answer in `v` (one answer or a batch) with
/// probability `per_mille / 1000`; true if a non-empty answer was emptied.
pub(super) fn hide_logs(v: &mut Value, calls: &[Value], per_mille: u32) -> bool {
    let mut any = false;
    for a in answers_to(v, calls, "eth_getLogs") {
        let lie = per_mille >= 1000 || rand::random_range(0..1000) < per_mille;
        if lie && a["result"].as_array().is_some_and(|l| !l.is_empty()) {
            a["result"] = json!([]);
            any = true;
        }
    }
    any
}

/// Answers the calls of `method` as a node without it; `None` when the request has none.
pub(super) async fn without_method(
    shared: &Shared,
    request: &Value,
    calls: Vec<Value>,
    method: &str,
) -> Result<Option<Value>, StatusCode> {
    if !calls.iter().any(|c| c["method"] == method) {
        return Ok(None);
    }
    let forward: Vec<Value> = calls
        .iter()
        .filter(|c| c["method"] != method)
        .cloned()
        .collect();
    let mut answers = forward_calls(shared, &forward).await?.into_iter();
    let out = calls
        .iter()
        .map(|c| {
            if c["method"] == method {
                let message = format!("the method {method} does not exist/is not available");
                json!({"jsonrpc": "2.0", "id": c["id"], "error": {"code": -32601, "message": message}})
            } else {
                answers.next().unwrap_or(Value::Null)
            }
        })
        .collect();
    Ok(Some(shape(request, out)))
}

/// Alters each non-empty `eth_getBlockReceipts` answer in `v` as `lie` says; true if any was.
pub(super) fn lie_about_receipts(v: &mut Value, calls: &[Value], lie: ReceiptLie) -> bool {
    let mut any = false;
    for a in answers_to(v, calls, "eth_getBlockReceipts") {
        let Some(receipts) = a["result"].as_array_mut().filter(|r| !r.is_empty()) else {
            continue;
        };
        match lie {
            ReceiptLie::DropOne => {
                receipts.pop();
            }
            ReceiptLie::FlipStatus => {
                let flipped = if receipts[0]["status"] == "0x1" {
                    "0x0"
                } else {
                    "0x1"
                };
                receipts[0]["status"] = json!(flipped);
            }
        }
        any = true;
    }
    any
}

/// Flips the last byte of every block hash in `v`; true if there was any.
pub(super) fn corrupt_hashes(v: &mut Value) -> bool {
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
