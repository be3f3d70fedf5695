//! The HTTP endpoint of every long-running process: `/metrics` in the Prometheus text format and
//! `/health` as JSON (200 while healthy or degraded, 503 when unhealthy). Served by the hardened
//! accept loop of [`listener`] (connection cap, header and request timeouts).

mod listener;

use std::net::SocketAddr;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
pub use listener::Limits;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::health::{Health, Report, Status};

/// Histogram buckets of one metric, for [`install_recorder`].
pub type Buckets = (&'static str, &'static [f64]);

/// Installs the global Prometheus recorder (once per process) and returns its handle: latency
/// buckets in seconds for every histogram, except those `custom` gives their own (a depth in
/// blocks, say); `describe` registers the process's metric descriptions.
pub fn install_recorder(custom: &[Buckets], describe: fn()) -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static buckets");
            for (name, buckets) in custom {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
                    .expect("static buckets");
            }
            let handle = builder
                .install_recorder()
                .expect("metrics recorder installs once");
            crate::metrics::describe();
            describe();
            handle
        })
        .clone()
}

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    health: Health,
}

/// Serves until `shutdown` is cancelled. Returns the bound address through `bound`.
pub async fn serve(
    listen: SocketAddr,
    limits: Limits,
    prometheus: PrometheusHandle,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(listen, limits, prometheus, health, Router::new(), shutdown).await
}

/// [`serve`] with the process's own routes (e.g. the watchdog's webhook receiver) beside
/// `/metrics` and `/health`.
pub async fn serve_with(
    listen: SocketAddr,
    limits: Limits,
    prometheus: PrometheusHandle,
    health: Health,
    extra: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health_handler))
        .with_state(AppState { prometheus, health })
        .merge(extra)
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            request_timeout,
        ));
    let task = tokio::spawn(listener::run(listener, app, limits, shutdown));
    Ok((addr, task))
}

/// Answers 408 when a request (reading its body included) takes longer than the limit: a client
/// that sends a body a byte at a time holds a connection no longer than that.
async fn request_timeout(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("request not completed within {} ms", limit.as_millis()),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> String {
    s.prometheus.render()
}

async fn health_handler(State(s): State<AppState>) -> (StatusCode, Json<Report>) {
    let report = s.health.report();
    let code = if report.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(report))
}
