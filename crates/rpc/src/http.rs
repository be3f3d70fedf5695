//! The HTTP transport under each provider's `RpcClient`: alloy's reqwest transport, with a cap on
//! the size of an answer.
//!
//! Ranges are sized to `range_target_bytes` from what earlier answers held (`range.rs`), but that
//! is an estimate: a long range over a quiet stretch that runs into a burst, or a node without a
//! result limit (anvil, a self-hosted node), could answer with hundreds of megabytes, all of it
//! held at once. Here the body is read chunk by chunk and abandoned past `max_response_bytes`,
//! answered as HTTP 413 (a response-size limit, like a provider's own), which halves the range.
//! So what one request can hold is bounded by configuration, not by the chain.

use std::{task, time::Duration};

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{TransportError, TransportErrorKind, TransportFut},
};
use tower::Service;

/// alloy's `Http<reqwest::Client>` with a response-size cap.
#[derive(Debug, Clone)]
pub(crate) struct CappedHttp {
    client: reqwest::Client,
    url: url::Url,
    max_response_bytes: u64,
}

impl CappedHttp {
    pub(crate) fn new(client: reqwest::Client, url: url::Url, max_response_bytes: u64) -> Self {
        CappedHttp {
            client,
            url,
            max_response_bytes,
        }
    }

    /// Whether the URL names this machine (alloy's polling defaults differ for local nodes).
    pub(crate) fn is_local(&self) -> bool {
        alloy::transports::utils::guess_local_url(self.url.as_str())
    }

    async fn send(self, req: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let mut resp = self
            .client
            .post(self.url)
            .json(&req)
            .headers(req.headers())
            .send()
            .await
            .map_err(TransportErrorKind::custom)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let cap = self.max_response_bytes;
        let read = match resp.content_length() {
            Some(n) if n > cap => return Err(too_large(cap)),
            // The size is known and allowed: read it at once, as alloy does (and parse it where
            // it lies: a copy of a body of megabytes costs more than its HTTP framing).
            Some(_) => resp.bytes().await,
            // A chunked answer: count while reading, and stop at the cap.
            None => {
                let mut body = Vec::new();
                loop {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            if (body.len() + chunk.len()) as u64 > cap {
                                // Dropping the response closes the connection unread.
                                return Err(too_large(cap));
                            }
                            body.extend_from_slice(&chunk);
                        }
                        Ok(None) => break Ok(bytes::Bytes::from(body)),
                        Err(err) => break Err(err),
                    }
                }
            }
        };
        let body = match read {
            Ok(body) => body,
            Err(err) if !status.is_success() => {
                return Err(TransportErrorKind::http_error_with_retry_after(
                    status.as_u16(),
                    format!("<failed to read response body: {err}>"),
                    retry_after,
                ))
            }
            Err(err) => return Err(TransportErrorKind::custom(err)),
        };
        if !status.is_success() {
            // A JSON-RPC error sent with an HTTP error status is still an answer (as alloy).
            if let Ok(response) = serde_json::from_slice::<ResponsePacket>(&body) {
                if response.is_error() {
                    return Ok(response);
                }
            }
            return Err(TransportErrorKind::http_error_with_retry_after(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|err| TransportError::deser_err(err, String::from_utf8_lossy(&body)))
    }
}

/// A response-size limit in the words `RpcError` classifies (HTTP 413).
fn too_large(cap: u64) -> TransportError {
    TransportErrorKind::http_error(
        413,
        format!("response larger than chains.max_response_bytes = {cap} bytes: not read further"),
    )
}

impl Service<RequestPacket> for CappedHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
