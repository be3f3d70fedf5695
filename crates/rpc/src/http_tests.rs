//! The response cap against a real HTTP server that answers in the ways providers do: with a
//! length, chunked, chunked and then hanging, and with a JSON-RPC error behind an HTTP error.

use std::{convert::Infallible, time::Duration};

use alloy::rpc::{
    client::RpcClient,
    json_rpc::{Id, Request, RequestPacket, RpcError as AlloyRpcError, SerializedRequest},
};
use axum::{body::Body, http::StatusCode, response::Response, routing::post, Router};
use bytes::Bytes;
use futures::StreamExt;
use tower::Service;

use super::CappedHttp;
use crate::RpcError;

/// A JSON-RPC answer to id 1 whose result is a string of `len` bytes.
fn answer(len: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":"{}"}}"#,
        "a".repeat(len)
    )
}

/// Serves `respond` on a local port and returns the URL.
async fn serve(respond: fn() -> Response) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/", post(move || async move { respond() }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/").parse().unwrap()
}

/// A body sent in chunks of `chunk` bytes without a length; `hang` keeps it open afterwards.
fn chunked(text: String, chunk: usize, hang: bool) -> Body {
    let pieces: Vec<Result<Bytes, Infallible>> = text
        .into_bytes()
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures::stream::iter(pieces).then(|c| async {
        // Separate writes, so the client sees separate chunks.
        tokio::time::sleep(Duration::from_millis(5)).await;
        c
    });
    if hang {
        Body::from_stream(stream.chain(futures::stream::pending()))
    } else {
        Body::from_stream(stream)
    }
}

/// Sends one request through the capped transport, classified as the indexer classifies it.
async fn ask(url: url::Url, cap: u64) -> Result<String, RpcError> {
    let client = RpcClient::new(CappedHttp::new(reqwest::Client::new(), url, cap), true);
    let call = client.request::<_, String>("eth_test", ());
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(r) => r.map_err(|e| RpcError::from_alloy("p", "eth_test", e)),
        Err(_) => panic!("the transport waited for a body it should have abandoned"),
    }
}

fn assert_range_limit(r: Result<String, RpcError>) {
    match r {
        Err(RpcError::RangeLimit { message, .. }) => {
            assert!(message.contains("max_response_bytes"), "{message}")
        }
        other => panic!("expected a response-size limit, got {other:?}"),
    }
}

#[tokio::test]
async fn an_answer_with_a_length_past_the_cap_is_not_read() {
    let url = serve(|| Response::new(Body::from(answer(10_000)))).await;
    assert_range_limit(ask(url.clone(), 1_000).await);
    // Within the cap the same answer is read whole.
    assert_eq!(ask(url, 100_000).await.unwrap().len(), 10_000);
}

#[tokio::test]
async fn a_chunked_answer_is_counted_while_it_is_read() {
    let url = serve(|| Response::new(chunked(answer(10_000), 1_000, false))).await;
    assert_range_limit(ask(url.clone(), 4_000).await);
    assert_eq!(ask(url, 20_000).await.unwrap().len(), 10_000);
}

#[tokio::test]
async fn a_chunked_answer_that_never_ends_is_abandoned_at_the_cap() {
    // A peer that keeps the body open after the cap: the request must end at the cap, not at
    // the peer's pleasure.
    let url = serve(|| Response::new(chunked(answer(10_000), 1_000, true))).await;
    assert_range_limit(ask(url, 4_000).await);
}

#[tokio::test]
async fn a_json_rpc_error_behind_an_http_error_is_an_answer() {
    let url = serve(|| {
        let mut r = Response::new(Body::from(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"query returned more than 10000 results"}}"#,
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    })
    .await;
    match ask(url, 100_000).await {
        Err(RpcError::RangeLimit { .. }) => {}
        other => panic!("expected the provider's range limit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_truncated_body_is_an_invalid_answer_not_a_result() {
    let url = serve(|| Response::new(Body::from(r#"{"jsonrpc":"2.0","id":1,"result":"aaa"#))).await;
    let mut transport = CappedHttp::new(reqwest::Client::new(), url, 100_000);
    let req: SerializedRequest = Request::new("eth_test", Id::Number(1), ())
        .try_into()
        .unwrap();
    let r = transport.call(RequestPacket::Single(req)).await;
    match r {
        Err(AlloyRpcError::DeserError { .. }) => {}
        other => panic!("expected a deserialization error, got {other:?}"),
    }
}
