//! Transport layers (tower) under each provider's `RpcClient`: per-provider request counts and
//! latency, measured at the HTTP request (a batch is one request of many calls). Rate limiting is
//! alloy's own `ThrottleLayer`; failover and health live above the transport, in the pool,
//! because they need answers checked against each other (same-provider proof, lag, forks).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use ::metrics::Counter;
use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{TransportError, TransportFut},
};
use tower::{Layer, Service};
use tripwire_runtime::metrics::Family;

use crate::metrics::{MethodMetrics, ProviderCounters, ProviderMetrics};

/// Counts requests and calls and records latency, labelled by chain and provider.
#[derive(Debug, Clone)]
pub(crate) struct MetricsLayer {
    calls: Counter,
    methods: Arc<Family<String, MethodMetrics>>,
}

impl MetricsLayer {
    /// `counters` are the provider's; the layer builds its per-method metrics on first use.
    pub(crate) fn new(chain: &str, provider: &str, counters: &ProviderCounters) -> Self {
        MetricsLayer {
            calls: counters.calls_total.clone(),
            methods: Arc::new(ProviderMetrics::methods(chain, provider)),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`MetricsLayer`] wraps around a transport.
#[derive(Debug, Clone)]
pub(crate) struct MetricsService<S> {
    inner: S,
    layer: MetricsLayer,
}

impl<S> Service<RequestPacket> for MetricsService<S>
where
    S: Service<RequestPacket, Response = ResponsePacket, Error = TransportError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        // A batch is labelled by its log query when it has one (the ingest's range fetch).
        let method: String = match &req {
            RequestPacket::Single(r) => r.method().to_owned(),
            RequestPacket::Batch(calls) => {
                if calls.iter().any(|c| c.method() == "eth_getLogs") {
                    "batch:eth_getLogs".to_owned()
                } else {
                    "batch".to_owned()
                }
            }
        };
        let calls = req.len() as u64;
        let metrics = self.layer.methods.get(&method);
        let calls_total = self.layer.calls.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            metrics.requests_total.increment(1);
            calls_total.increment(calls);
            let started = Instant::now();
            let result = inner.call(req).await;
            metrics
                .latency_seconds
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
