//! The admin listener of every role: `/healthz` (live: loops are ticking), `/readyz`
//! (ready: registry loaded, partitions assigned) and `/metrics` (Prometheus text).

use crate::health::Health;
use crate::metric_catalog::{self, Kind};
use crate::registry::EndpointRegistry;
use crate::shutdown::Shutdown;
use crate::time::now_ms;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::net::SocketAddr;
use std::sync::Arc;

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The Prometheus recorder, each histogram with the buckets the catalog gives it.
pub(crate) fn prometheus_recorder() -> PrometheusRecorder {
    let mut builder = PrometheusBuilder::new();
    for spec in metric_catalog::ALL.iter().filter(|s| s.kind == Kind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(spec.name.to_owned()), spec.buckets)
            .expect("the catalog's histograms have buckets (tested)");
    }
    builder.build_recorder()
}

/// Installs the process-wide Prometheus recorder (once; later calls reuse it) and
/// describes every metric of the catalog to it (`# HELP`, `# TYPE`).
pub fn metrics_recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = prometheus_recorder();
            let handle = recorder.handle();
            // A second recorder (several test pipelines in one process) is refused; fine.
            let _ = metrics::set_global_recorder(recorder);
            metric_catalog::describe_all();
            // Histogram samples pile up until drained. A scrape drains them, but a process
            // nobody scrapes (a laptop, a misconfigured ServiceMonitor) would grow without
            // bound: the 30-minute soak saw ~6.5 MB/min. Drain every 5 s regardless, as the
            // exporter's own listener would.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread not started; histograms drain only on scrape");
            }
            handle
        })
        .clone()
}

#[derive(Clone)]
struct AdminState {
    health: Arc<Health>,
    registry: Arc<EndpointRegistry>,
    metrics: PrometheusHandle,
}

/// Serves the admin endpoints on `listen` until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    registry: Arc<EndpointRegistry>,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let state = AdminState { health, registry, metrics: metrics_recorder() };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state);
    let listener = crate::net::listen(listen)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "admin listening (/healthz /readyz /metrics)");
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(error) = served {
            tracing::error!(%error, "admin listener stopped");
        }
    });
    Ok(addr)
}

async fn healthz(State(s): State<AdminState>) -> impl IntoResponse {
    let report = s.health.report(s.registry.is_ready(), now_ms());
    (if report.live { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(report))
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let report = s.health.report(s.registry.is_ready(), now_ms());
    (if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(report))
}

async fn render_metrics(State(s): State<AdminState>) -> impl IntoResponse {
    metric_catalog::REGISTRY_ENDPOINTS.get().set(s.registry.len() as f64);
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}
