//! End-to-end check of every [`Mode`] against a real anvil: each fault must show up on the wire
//! the way the tests of the indexer rely on, and be recorded as the right [`Outcome`].

use std::time::Duration;

use serde_json::{json, Value};

use super::{FaultProxy, Mode, Outcome, RangeStyle, ReceiptLie};
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

#[tokio::test]
async fn receipt_lies_and_a_missing_method_against_anvil() {
    let anvil = Anvil::spawn().await.expect("anvil");
    let to = anvil.accounts()[1];
    anvil
        .send_tx_and_mine(json!({ "to": format!("{to:#x}"), "value": "0x1" }))
        .await
        .expect("a transfer");
    let n = anvil.block_number().await.expect("head");
    let proxy = FaultProxy::start(&anvil.url()).await.expect("proxy");
    let url = proxy.url();
    let receipts = call(1, "eth_getBlockReceipts", json!([format!("{n:#x}")]));
    let (_, honest) = rpc(&url, receipts.clone()).await;
    assert_eq!(honest["result"].as_array().map(Vec::len), Some(1));
    assert_eq!(honest["result"][0]["status"], "0x1");

    proxy.set_mode(Mode::LyingReceipts(ReceiptLie::DropOne));
    let (_, v) = rpc(&url, json!([receipts.clone()])).await;
    assert_eq!(v[0]["result"], json!([]), "{v}");
    proxy.set_mode(Mode::LyingReceipts(ReceiptLie::FlipStatus));
    let (_, v) = rpc(&url, receipts.clone()).await;
    assert_eq!(v["result"][0]["status"], "0x0", "{v}");

    proxy.set_mode(Mode::MethodMissing {
        method: "eth_getBlockReceipts",
    });
    let (_, v) = rpc(
        &url,
        json!([call(2, "eth_blockNumber", json!([])), receipts]),
    )
    .await;
    assert!(v[0]["result"].is_string(), "other calls are answered: {v}");
    assert_eq!(v[1]["error"]["code"], -32601, "{v}");
    let outcomes: Vec<Outcome> = proxy.events().iter().map(|e| e.outcome).collect();
    for name in ["lying_receipts", "method_missing"] {
        assert!(
            outcomes.contains(&Outcome::Faulted(name)),
            "{name} never recorded"
        );
    }
    proxy.shutdown();
}
