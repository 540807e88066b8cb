//! The management API (`hookline api`, also inside `hookline dev`): endpoints and their
//! secrets, HTTP ingest, delivery history and the DLQ, as JSON over HTTP with bearer-token
//! auth and `application/problem+json` errors. The OpenAPI document is generated from the
//! handlers (`GET /v1/openapi.json`, and `docs/openapi.json`).
//!
//! - [`endpoints`], [`events`], [`dlq`]: the routes.
//! - [`models`]: request and response bodies with their schemas.
//! - [`auth`]: tokens and scopes, and [`portal`] sessions scoped to one tenant; [`problem`]: errors.
//! - [`console`]: the operator console and consumer portal (a single-page app embedded in the binary).
//! - [`stats`]: charts, event types seen, `/v1/me` and portal sessions; [`series`]: per-minute charts.
//! - [`history`]: attempts and dead letters materialised from their topics.

// `Problem` (about 128 bytes) is every handler's error: the response to a refused request,
// built once on that cold path. Boxing it would change every handler for no measured gain.
#![allow(clippy::result_large_err)]

pub mod asyncapi;
pub mod auth;
pub mod console;
pub mod dlq;
pub mod endpoint_auth;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod history;
pub mod models;
pub mod portal;
pub mod problem;
pub mod replays;
pub mod series;
pub mod stats;

use auth::Auth;
use axum::extract::DefaultBodyLimit;
use axum::Json;
use events::Idempotency;
use history::History;
use hookline_core::address::AddressPolicy;
use hookline_core::config::{Config, Topics};
use hookline_runtime::registry::EndpointRegistry;
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::kafka::FutureProducer;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub topics: Topics,
    pub registry: Arc<EndpointRegistry>,
    pub producer: FutureProducer,
    pub auth: Auth,
    pub history: Arc<History>,
    pub idempotency: Idempotency,
    pub policy: AddressPolicy,
    pub endpoint_locks: endpoints::EndpointLocks,
    /// Replay jobs, read from the replays topic.
    pub replays: Arc<hookline_replay::jobs::JobStore>,
    /// The event-type catalog, read from its topic.
    pub catalog: Arc<hookline_runtime::catalog::Catalog>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Hookline API", description = "Manage webhook endpoints, publish events over HTTP, and inspect deliveries.", version = "1"),
    modifiers(&BearerAuth),
    tags(
        (name = "endpoints", description = "Webhook endpoints and their subscriptions"),
        (name = "events", description = "HTTP ingest"),
        (name = "history", description = "Delivery attempts and statistics"),
        (name = "dlq", description = "Dead letters"),
        (name = "replays", description = "Replay jobs: dead letters again, or an endpoint's backfill from the events topic"),
        (name = "portal", description = "Consumer-portal sessions, and who the caller is"),
        (name = "event-types", description = "The event-type catalog: descriptions, JSON Schemas per version, examples, validation"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(endpoints::get, endpoints::update, endpoints::delete))
        .routes(routes!(endpoints::secret))
        .routes(routes!(endpoints::rotate))
        .routes(routes!(endpoints::send_test))
        .routes(routes!(endpoints::attempts))
        .routes(routes!(endpoints::stats))
        .routes(routes!(endpoints::series))
        .routes(routes!(events::ingest, events::search))
        .routes(routes!(events::ingest_batch))
        .routes(routes!(events::attempts))
        .routes(routes!(dlq::list))
        .routes(routes!(replays::create, replays::list))
        .routes(routes!(replays::get, replays::cancel))
        .routes(routes!(stats::throughput))
        .routes(routes!(stats::event_types))
        .routes(routes!(stats::me))
        .routes(routes!(stats::create_session))
        .routes(routes!(event_types::list))
        .routes(routes!(event_types::get, event_types::put, event_types::delete))
        .routes(routes!(endpoints::preview))
        .routes(routes!(endpoints::preview_draft))
}

/// The OpenAPI document, generated from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole HTTP application over `state`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let max_body = state.config.api.max_body_bytes;
    let (router, spec) = routes().split_for_parts();
    let spec = Arc::new(spec);
    router
        .route("/v1/openapi.json", axum::routing::get(move || async move { Json(spec.as_ref().clone()) }))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/v1/asyncapi.json",
            axum::routing::get(|axum::extract::State(s): axum::extract::State<Arc<AppState>>, _: auth::ReadAll| async move {
                Json(asyncapi::document(&s.topics.events, &s.catalog.all()))
            }),
        )
        .merge(console::routes(state.config.api.portal_frame_ancestors.clone()))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Builds the state: producer, address policy, history views (fed until `shutdown`).
pub fn state(config: Config, registry: Arc<EndpointRegistry>, auth: Auth, shutdown: &Shutdown) -> anyhow::Result<Arc<AppState>> {
    let topics = config.topics();
    let producer = hookline_runtime::kafka::request_producer(&config.kafka, "hookline-api")?;
    let a = &config.api;
    let history = Arc::new(History::new(a.history_per_endpoint, a.history_events, a.history_attempts, a.dlq_kept));
    for (topic, is_attempts) in [(topics.attempts.clone(), true), (topics.dlq.clone(), false)] {
        let (kafka, h, stop, lookback) = (config.kafka.clone(), Arc::clone(&history), shutdown.clone(), a.history_lookback_ms);
        tokio::spawn(async move {
            let apply = |bytes: &[u8]| {
                if is_attempts { history::apply_attempt(&h, bytes) } else { history::apply_dead_letter(&h, bytes) }
            };
            if let Err(error) = history::follow(&kafka, &topic, lookback, apply, stop).await {
                tracing::error!(%error, topic, "history follower stopped");
            }
        });
    }
    let policy = hookline_sender::address_policy(&config);
    let replays = hookline_replay::jobs::start_store(&config.kafka, &topics.replays, "hookline-api-replays", shutdown);
    let catalog = hookline_runtime::catalog::Catalog::new();
    let (c, kafka, topic, stop) = (Arc::clone(&catalog), config.kafka.clone(), topics.event_types.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = hookline_runtime::catalog::follow(&kafka, &topic, "hookline-api-catalog", c, stop).await {
            tracing::error!(%error, "event-type catalog follower stopped");
        }
    });
    Ok(Arc::new(AppState {
        idempotency: Idempotency::new(a.idempotency_window_ms, a.idempotency_max_keys),
        topics,
        registry,
        producer,
        auth,
        history,
        policy,
        config,
        endpoint_locks: endpoints::EndpointLocks::default(),
        replays,
        catalog,
    }))
}

/// Serves the API on `api.listen` until `shutdown`; returns the bound address at once.
pub async fn serve(state: Arc<AppState>, shutdown: Shutdown) -> anyhow::Result<SocketAddr> {
    let listen: SocketAddr = state.config.api.listen;
    let listener = hookline_runtime::net::listen(listen).map_err(|e| anyhow::anyhow!("api on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = app(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(error) = served {
            tracing::error!(%error, "api listener stopped");
        }
    });
    tracing::info!(%addr, "api listening");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the generated document, byte for byte. After changing a route
    /// or a model, refresh it: `hookline api openapi > docs/openapi.json`.
    #[test]
    fn the_published_openapi_document_is_the_generated_one() {
        let published = include_str!("../../../docs/openapi.json");
        let generated = super::openapi().to_pretty_json().expect("serializes");
        assert!(
            published.trim_end() == generated.trim_end(),
            "docs/openapi.json is stale: run `hookline api openapi > docs/openapi.json`"
        );
    }
}
