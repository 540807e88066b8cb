//! `hookline router` and `hookline sender`: one role per process, for scale-out by replicas.

use hookline_core::config::Config;
use hookline_runtime::registry::{self, EndpointRegistry};
use hookline_runtime::shutdown::{self, Shutdown};
use std::sync::Arc;

/// Starts the endpoint registry's follower; a failed follower stops the process.
pub fn start_registry(config: &Config, role: &'static str, shutdown: &Shutdown) -> Arc<EndpointRegistry> {
    let registry = EndpointRegistry::new();
    let (kafka, topic) = (config.kafka.clone(), config.topics().endpoints);
    let (reg, stop) = (Arc::clone(&registry), shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = registry::follow(&kafka, &topic, &format!("hookline-{role}-endpoints"), reg, stop.clone()).await {
            tracing::error!(%error, "endpoint registry stopped; shutting down");
            stop.cancel();
        }
    });
    registry
}

pub async fn router(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let registry = start_registry(&config, "router", &shutdown);
    let result = hookline_router::run(config, registry, shutdown.clone()).await;
    shutdown.cancel();
    Ok(result?)
}

pub async fn sender(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let registry = start_registry(&config, "sender", &shutdown);
    let result = hookline_sender::run(config, registry, shutdown.clone()).await;
    shutdown.cancel();
    Ok(result?)
}
