//! The admin listener of every role: `/healthz` (live: loops are ticking), `/readyz`
//! (ready: registry loaded, partitions assigned) and `/metrics` (Prometheus text).

use crate::health::Health;
use crate::registry::EndpointRegistry;
use crate::shutdown::Shutdown;
use crate::time::now_ms;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Buckets of the histograms that say how late webhooks are, in seconds: 50 ms to 1 h
/// (the default buckets stop at 30 s, where a webhook's lateness starts to matter).
pub const LATENESS_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// The histograms measured in [`LATENESS_BUCKETS`] (the sender's `lateness` module).
pub const LATENESS_HISTOGRAMS: &[&str] =
    &["hookline_delivery_latency_seconds", "hookline_sender_first_attempt_delay_seconds"];

/// Installs the process-wide Prometheus recorder (once; later calls reuse it).
pub fn metrics_recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new()
                .set_buckets(&[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .expect("static buckets are valid");
            for name in LATENESS_HISTOGRAMS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), LATENESS_BUCKETS)
                    .expect("static buckets are valid");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A second recorder (several test pipelines in one process) is refused; fine.
            let _ = metrics::set_global_recorder(recorder);
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
    let listener = tokio::net::TcpListener::bind(listen).await?;
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
    metrics::gauge!("hookline_registry_endpoints").set(s.registry.len() as f64);
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}
