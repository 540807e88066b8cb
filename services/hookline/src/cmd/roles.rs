//! `hookline router`, `hookline sender` and `hookline replay`: one role per process, for
//! scale-out by replicas (replay: one replica).

use hookline_core::config::Config;
use hookline_runtime::admin;
use hookline_runtime::health::Health;
use hookline_runtime::preflight::{self, Access, Acls, Attempt, Operation};
use hookline_runtime::registry::{self, EndpointRegistry, SecretKeys};
use hookline_runtime::shutdown::{self, Shutdown};
use std::sync::Arc;

/// Roles that write endpoints, so store signing secrets in the endpoints topic.
const WRITES_ENDPOINTS: &[&str] = &["api", "sender", "dev"];

/// The endpoint registry's follower: a failure stops the process, and
/// [`Follower::finished`] says why (e.g. a secret sealed with a key that is not configured).
pub struct Follower(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Follower {
    /// Resolves once the follower has stopped (after the shutdown), with its failure.
    pub async fn finished(self) -> anyhow::Result<()> {
        self.0.await?
    }
}

/// Loads the secret keys and starts the endpoint registry's follower.
pub fn start_registry(config: &Config, role: &'static str, shutdown: &Shutdown) -> anyhow::Result<(Arc<EndpointRegistry>, Follower)> {
    let keys = SecretKeys::load(&config.secrets)?;
    if !keys.seals() && WRITES_ENDPOINTS.contains(&role) {
        tracing::warn!(
            "no secrets.current_key: endpoint signing secrets are stored in clear in the endpoints topic \
             (see docs/operations.md#secrets-at-rest)"
        );
    }
    let registry = EndpointRegistry::with_keys(keys);
    let (kafka, topic) = (config.kafka.clone(), config.topics().endpoints);
    let (reg, stop) = (Arc::clone(&registry), shutdown.clone());
    let follower = tokio::spawn(async move {
        let followed = registry::follow(&kafka, &topic, &format!("hookline-{role}-endpoints"), reg, stop.clone()).await;
        if let Err(error) = &followed {
            tracing::error!(error = %format!("{error:#}"), "endpoint registry stopped; shutting down");
            stop.cancel();
        }
        followed
    });
    Ok((registry, Follower(follower)))
}

/// Starts the admin listener (`/healthz`, `/readyz`, `/metrics`) unless it is turned off.
pub async fn start_admin(
    config: &Config,
    health: &Arc<Health>,
    registry: &Arc<EndpointRegistry>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    admin::metrics_recorder();
    let Some(listen) = config.admin.listen else { return Ok(()) };
    admin::serve(listen, Arc::clone(health), Arc::clone(registry), shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("admin listener on {listen}: {e}"))?;
    Ok(())
}

/// Checks, within a bound, that Kafka lets the role do what `access` lists: a refusal or a
/// missing topic stops the process with what to grant or create, instead of a role that
/// waits forever. A signal ends the wait.
pub async fn preflight(config: &Config, access: &Access, shutdown: &Shutdown) -> anyhow::Result<()> {
    tokio::select! {
        checked = preflight::check(&config.kafka, access) => checked.map(drop).map_err(Into::into),
        _ = shutdown.cancelled() => Ok(()),
    }
}

/// Runs one role as the whole process: the access check, the registry, the admin listener,
/// then `run` until a signal (or its own failure).
async fn role<Fut, E>(
    config: Config,
    access: Access,
    run: impl FnOnce(Config, Arc<EndpointRegistry>, Arc<Health>, Shutdown) -> Fut,
) -> anyhow::Result<()>
where
    Fut: std::future::Future<Output = Result<(), E>>,
    anyhow::Error: From<E>,
{
    let shutdown = shutdown::on_signal();
    preflight(&config, &access, &shutdown).await?;
    let acls = Acls::new(&config.kafka);
    let (registry, follower) = start_registry(&config, access.role, &shutdown)?;
    let health = Health::new();
    start_admin(&config, &health, &registry, &shutdown).await?;
    let result = run(config, registry, health, shutdown.clone()).await;
    shutdown.cancel();
    // A refused registry is why the role stopped: say that first.
    follower.finished().await?;
    result.map_err(|error| refused_write(anyhow::Error::from(error), &acls, &access))
}

/// A role stops on a failed produce; when Kafka refused it, say which ACL is missing (the
/// error does not say which of the role's topics it was).
fn refused_write(error: anyhow::Error, acls: &Acls, access: &Access) -> anyhow::Error {
    let refused = error
        .chain()
        .find_map(|e| e.downcast_ref::<rdkafka::error::KafkaError>())
        .and_then(|kafka| acls.explain(kafka, &Attempt::new(Operation::Write, &access.writes)));
    match refused {
        Some(r) => anyhow::Error::new(r).context(error.to_string()),
        None => error,
    }
}

pub async fn router(config: Config) -> anyhow::Result<()> {
    let access = Access::router(&config);
    role(config, access, hookline_router::run).await
}

pub async fn sender(config: Config) -> anyhow::Result<()> {
    let access = Access::sender(&config);
    role(config, access, hookline_sender::run).await
}

pub async fn replay(config: Config) -> anyhow::Result<()> {
    let access = Access::replay(&config);
    role(config, access, hookline_replay::run).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    #[test]
    fn a_refused_produce_stops_the_role_naming_the_acl() {
        let config = Config::default();
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        let error = anyhow::Error::from(hookline_router::RouterError::Produce(refused));
        let explained = refused_write(error, &Acls::new(&config.kafka), &Access::router(&config));
        assert_eq!(
            format!("{explained:#}"),
            "a produce failed after librdkafka's retries; stopping so the event is read again: kafka: not authorized \
             to Write one of the topics hookline.deliveries, hookline.dlq (TOPIC_AUTHORIZATION_FAILED): grant the \
             principal Write on the prefixed topic \"hookline.\" — see docs/operations.md#kafka-acls"
        );
        // Anything else is left as it was.
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let error = anyhow::Error::from(hookline_router::RouterError::Produce(down));
        let kept = refused_write(error, &Acls::new(&config.kafka), &Access::router(&config));
        let kept = format!("{kept:#}");
        assert!(kept.contains("MessageTimedOut") && !kept.contains("not authorized"), "{kept}");
    }
}
