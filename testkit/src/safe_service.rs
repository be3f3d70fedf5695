//! A local Safe Transaction Service for tests: it validates proposals the way the real service
//! does (camelCase fields, checksummed addresses, the `contractTransactionHash` recomputed by the
//! Safe itself on the chain, a signature that recovers to `sender`, `sender` an owner or a
//! delegate) and answers 201 or 422 with reasons. Tests can make the next requests fail.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use alloy::dyn_abi::DynSolValue;
use alloy::primitives::{Address, Signature, B256, U256};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::abi;
use crate::anvil::Anvil;

/// What the service holds and how it will answer next.
#[derive(Default)]
pub struct ServiceState {
    /// Accepted proposals (request bodies), in order.
    pub accepted: Vec<Value>,
    /// Every POST: (status answered, body).
    pub requests: Vec<(u16, Value)>,
    /// Statuses to answer the next POSTs with, before any validation (e.g. 503, 422).
    pub fail_next: VecDeque<(u16, Value)>,
    /// Registered delegates: (safe, delegate).
    pub delegates: Vec<(Address, Address)>,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<ServiceState>>,
    rpc: String,
}

pub struct SafeService {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ServiceState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SafeService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SafeService {
    /// Serves on a free loopback port, reading the Safe through the node at `rpc`.
    pub async fn start(rpc: &str) -> anyhow::Result<SafeService> {
        let state = Arc::new(Mutex::new(ServiceState::default()));
        let ctx = Ctx {
            state: state.clone(),
            rpc: rpc.to_owned(),
        };
        let app = Router::new()
            .route("/api/v2/safes/{safe}/multisig-transactions/", post(propose))
            .route("/api/v2/delegates/", get(delegates))
            .route("/api/v1/multisig-transactions/{hash}/", get(transaction))
            .with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SafeService { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn accepted(&self) -> Vec<Value> {
        self.state.lock().expect("service state").accepted.clone()
    }

    pub fn requests(&self) -> Vec<(u16, Value)> {
        self.state.lock().expect("service state").requests.clone()
    }

    pub fn fail_next(&self, status: u16, body: Value) {
        self.state
            .lock()
            .expect("service state")
            .fail_next
            .push_back((status, body));
    }
}

fn authorized(ctx: &Ctx, headers: &HeaderMap) -> bool {
    let key = ctx.state.lock().expect("service state").api_key.clone();
    match key {
        None => true,
        Some(k) => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {k}")),
    }
}

/// A checksummed address, or the reason it is not one.
fn checksummed(v: &Value) -> Result<Address, String> {
    let s = v.as_str().ok_or("not a string")?;
    let a: Address = s.parse().map_err(|e| format!("{e}"))?;
    if a.to_checksum(None) != s {
        return Err(format!("Address {s} is not checksumed"));
    }
    Ok(a)
}

fn uint(v: &Value) -> Result<U256, String> {
    match v {
        Value::Number(n) => n.as_u64().map(U256::from).ok_or("not an integer".into()),
        Value::String(s) => s.parse().map_err(|e| format!("{e}")),
        _ => Err("not a number".into()),
    }
}

async fn propose(
    State(ctx): State<Ctx>,
    Path(safe): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let (status, answer) = if !authorized(&ctx, &headers) {
        (
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        )
    } else {
        let injected = ctx
            .state
            .lock()
            .expect("service state")
            .fail_next
            .pop_front();
        match injected {
            Some(r) => r,
            None => match validate(&ctx, &safe, &body).await {
                Ok(()) => (201, Value::Null),
                Err(reasons) => (422, Value::Object(reasons)),
            },
        }
    };
    let mut st = ctx.state.lock().expect("service state");
    st.requests.push((status, body.clone()));
    if status == 201 {
        st.accepted.push(body);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(answer),
    )
}

async fn validate(ctx: &Ctx, safe_path: &str, body: &Value) -> Result<(), Map<String, Value>> {
    let mut errors = Map::new();
    let mut err = |field: &str, msg: String| {
        errors
            .entry(field.to_owned())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("array")
            .push(json!(msg));
    };
    let safe = match checksummed(&json!(safe_path)) {
        Ok(a) => Some(a),
        Err(e) => {
            err("safe", e);
            None
        }
    };
    let required = [
        "to",
        "value",
        "data",
        "operation",
        "safeTxGas",
        "baseGas",
        "gasPrice",
        "gasToken",
        "refundReceiver",
        "nonce",
        "contractTransactionHash",
        "sender",
        "signature",
    ];
    for f in required {
        if body.get(f).is_none() {
            err(f, "This field is required.".into());
        }
    }
    let mut addr = |f: &str| match checksummed(&body[f]) {
        Ok(a) => Some(a),
        Err(e) => {
            err(f, e);
            None
        }
    };
    let (to, gas_token, refund, sender) = (
        addr("to"),
        addr("gasToken"),
        addr("refundReceiver"),
        addr("sender"),
    );
    let mut num = |f: &str| match uint(&body[f]) {
        Ok(n) => Some(n),
        Err(e) => {
            err(f, e);
            None
        }
    };
    let (value, op, safe_tx_gas, base_gas, gas_price, nonce) = (
        num("value"),
        num("operation"),
        num("safeTxGas"),
        num("baseGas"),
        num("gasPrice"),
        num("nonce"),
    );
    let data = match &body["data"] {
        Value::Null => Some(Vec::new()),
        Value::String(s) => alloy::primitives::hex::decode(s).ok(),
        _ => None,
    };
    if data.is_none() {
        err("data", "not hex".into());
    }
    let claimed: Option<B256> = body["contractTransactionHash"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let signature = body["signature"]
        .as_str()
        .and_then(|s| alloy::primitives::hex::decode(s).ok());
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(safe), Some(to), Some(gt), Some(rr), Some(sender)) =
        (safe, to, gas_token, refund, sender)
    else {
        return Err(errors);
    };
    let (Some(value), Some(op), Some(stg), Some(bg), Some(gp), Some(nonce), Some(data)) =
        (value, op, safe_tx_gas, base_gas, gas_price, nonce, data)
    else {
        return Err(errors);
    };
    let Ok(node) = Anvil::connect(&ctx.rpc).await else {
        errors.insert("nonFieldErrors".into(), json!(["node unreachable"]));
        return Err(errors);
    };
    let hash_call = abi::call(
        "getTransactionHash(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,uint256)",
        &[
            abi::address(to),
            abi::uint256(value),
            DynSolValue::Bytes(data),
            DynSolValue::Uint(op, 8),
            abi::uint256(stg),
            abi::uint256(bg),
            abi::uint256(gp),
            abi::address(gt),
            abi::address(rr),
            abi::uint256(nonce),
        ],
    );
    let theirs = match crate::safe::call_word(&node, safe, &hash_call).await {
        Ok(h) => h,
        Err(e) => {
            errors.insert("safe".into(), json!([format!("not a Safe: {e}")]));
            return Err(errors);
        }
    };
    if claimed != Some(theirs) {
        errors.insert(
            "contractTransactionHash".into(),
            json!([format!(
                "Contract-transaction-hash={theirs} does not match provided contract-tx-hash={}",
                body["contractTransactionHash"]
            )]),
        );
        return Err(errors);
    }
    let recovered = signature
        .as_deref()
        .and_then(|s| Signature::from_raw(s).ok())
        .and_then(|s| s.recover_address_from_prehash(&theirs).ok());
    if recovered != Some(sender) {
        errors.insert(
            "nonFieldErrors".into(),
            json!([format!(
                "Signature does not match sender={sender} (recovered {recovered:?})"
            )]),
        );
        return Err(errors);
    }
    let owner = crate::safe::call_word(
        &node,
        safe,
        &abi::call("isOwner(address)", &[abi::address(sender)]),
    )
    .await
    .map(|w| w != B256::ZERO)
    .unwrap_or(false);
    let delegate = ctx
        .state
        .lock()
        .expect("service state")
        .delegates
        .contains(&(safe, sender));
    if !owner && !delegate {
        errors.insert(
            "nonFieldErrors".into(),
            json!([format!("User={sender} is not an owner or a delegate")]),
        );
        return Err(errors);
    }
    Ok(())
}

async fn delegates(
    State(ctx): State<Ctx>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let safe: Option<Address> = q.get("safe").and_then(|s| s.parse().ok());
    let delegate: Option<Address> = q.get("delegate").and_then(|s| s.parse().ok());
    let st = ctx.state.lock().expect("service state");
    let results: Vec<Value> = st
        .delegates
        .iter()
        .filter(|(s, d)| safe.is_none_or(|x| x == *s) && delegate.is_none_or(|x| x == *d))
        .map(|(s, d)| json!({"safe": s.to_checksum(None), "delegate": d.to_checksum(None)}))
        .collect();
    Json(json!({"count": results.len(), "results": results}))
}

async fn transaction(
    State(ctx): State<Ctx>,
    Path(hash): Path<String>,
) -> (StatusCode, Json<Value>) {
    let st = ctx.state.lock().expect("service state");
    match st.accepted.iter().find(|b| {
        b["contractTransactionHash"]
            .as_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&hash))
    }) {
        Some(b) => (
            StatusCode::OK,
            Json(json!({
                "safeTxHash": hash,
                "confirmations": [{"owner": b["sender"], "signature": b["signature"]}],
            })),
        ),
        None => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))),
    }
}
