//! `hookline router`, `hookline sender` and `hookline replay`: one role per process, for
//! scale-out by replicas (replay: one replica).

use hookline_core::config::Config;
use hookline_runtime::admin;
use hookline_runtime::health::Health;
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

/// Starts the admin listener (`/healthz`, `/readyz`, `/metrics`) unless it is turned off.
pub async fn start_admin(
    config: &Config,
    health: &Arc<Health>,
    registry: &Arc<EndpointRegistry>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    admin::metrics_recorder();
    if config.admin.listen.is_empty() {
        return Ok(());
    }
    let listen = config.admin.listen.parse()?;
    admin::serve(listen, Arc::clone(health), Arc::clone(registry), shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("admin listener on {listen}: {e}"))?;
    Ok(())
}

/// Runs one role as the whole process: the registry, the admin listener, then `run` until
/// a signal (or its own failure).
async fn role<Fut, E>(
    config: Config,
    name: &'static str,
    run: impl FnOnce(Config, Arc<EndpointRegistry>, Arc<Health>, Shutdown) -> Fut,
) -> anyhow::Result<()>
where
    Fut: std::future::Future<Output = Result<(), E>>,
    anyhow::Error: From<E>,
{
    let shutdown = shutdown::on_signal();
    let registry = start_registry(&config, name, &shutdown);
    let health = Health::new();
    start_admin(&config, &health, &registry, &shutdown).await?;
    let result = run(config, registry, health, shutdown.clone()).await;
    shutdown.cancel();
    Ok(result?)
}

pub async fn router(config: Config) -> anyhow::Result<()> {
    role(config, "router", hookline_router::run).await
}

pub async fn sender(config: Config) -> anyhow::Result<()> {
    role(config, "sender", hookline_sender::run).await
}

pub async fn replay(config: Config) -> anyhow::Result<()> {
    role(config, "replay", hookline_replay::run).await
}
