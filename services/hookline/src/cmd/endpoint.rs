//! `hookline endpoint create|list|delete`: endpoints written straight to the compacted
//! endpoints topic (the management API writes the same records).

use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::config::Config;
use hookline_core::signing::secret_from_bytes;
use hookline_proto::v1;
use hookline_runtime::registry::{self, EndpointRegistry, SecretKeys};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::{kafka, time::now_ms};
use serde_json::json;
use std::sync::Arc;

// Parsed once per process; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum EndpointCommand {
    /// Create (or replace, with the same --id) an endpoint. Prints it with its secret.
    Create(CreateArgs),
    /// List endpoints as JSON lines (secrets are not shown).
    List,
    /// Delete an endpoint.
    Delete {
        id: String,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Absolute http(s) URL that receives the webhooks.
    #[arg(long)]
    pub url: String,
    /// Event-type patterns, comma-separated: `order.created`, `order.*`, `*`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub event_types: Vec<String>,
    /// Endpoint id (default: a new `ep_...` id).
    #[arg(long)]
    pub id: Option<String>,
    /// Only events of this tenant (default: every tenant).
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Signing secret `whsec_<base64>` (default: a new random one).
    #[arg(long)]
    pub secret: Option<String>,
    /// Extra request header, `Name=value` (repeatable).
    #[arg(long = "header", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Only events whose attribute matches, `key=value` (repeatable, all must match).
    #[arg(long = "filter", value_parser = key_value)]
    pub filters: Vec<(String, String)>,
    /// Concurrent requests to this endpoint (default: the sender's setting).
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: u32,
    /// Request timeout in ms (default: the sender's setting).
    #[arg(long, default_value_t = 0)]
    pub timeout_ms: u32,
    /// Requests per second at most (token bucket; default: unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Token-bucket burst for --rate (default: one second's worth).
    #[arg(long, default_value_t = 0)]
    pub burst: u32,
    /// Own retry schedule, comma-separated delays before attempts 2, 3, ... (e.g. 5s,5m,1h).
    #[arg(long, value_delimiter = ',')]
    pub retry_schedule: Vec<String>,
    /// Statuses that fail at once instead of retrying, comma-separated (e.g. 400,422).
    #[arg(long, value_delimiter = ',')]
    pub permanent_statuses: Vec<u32>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Ordered delivery: one lane for the endpoint, or one per event ordering key.
    #[arg(long, default_value = "none", value_parser = ["none", "endpoint", "key"])]
    pub ordering: String,
    /// How long an ordered lane's head may fail before the lane is blocked (0: the schedule's span).
    #[arg(long, default_value_t = 0)]
    pub lane_max_block_ms: i64,
    /// What a blocked lane does: skip its head to the DLQ, or halt until re-enabled.
    #[arg(long, default_value = "skip", value_parser = ["skip", "halt"])]
    pub on_lane_blocked: String,
}

pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// A new random `whsec_` secret.
pub fn new_secret() -> String {
    secret_from_bytes(&rand::random::<[u8; 32]>())
}

pub fn new_endpoint(args: CreateArgs) -> v1::Endpoint {
    let now = now_ms();
    v1::Endpoint {
        id: args.id.unwrap_or_else(|| format!("ep_{}", uuid::Uuid::now_v7().simple())),
        tenant: args.tenant,
        url: args.url,
        event_types: args.event_types,
        secrets: vec![v1::Secret { key: args.secret.unwrap_or_else(new_secret), ..Default::default() }],
        headers: args.headers.into_iter().collect(),
        limits: Some(v1::Limits {
            max_in_flight: args.max_in_flight,
            timeout_ms: args.timeout_ms,
            rate_per_second: args.rate,
            burst: args.burst,
        }),
        disabled: false,
        description: args.description,
        filter_attributes: args.filters.into_iter().collect(),
        created_at_ms: now,
        updated_at_ms: now,
        retry_schedule: args.retry_schedule,
        permanent_statuses: args.permanent_statuses,
        failing_since_ms: 0,
        ordering: v1::DeliveryOrdering::from_str_name(&format!("DELIVERY_ORDERING_{}", args.ordering.to_uppercase()))
            .unwrap_or_default() as i32,
        lane_max_block_ms: args.lane_max_block_ms,
        on_lane_blocked: v1::LaneBlocked::from_str_name(&format!("LANE_BLOCKED_{}", args.on_lane_blocked.to_uppercase()))
            .unwrap_or_default() as i32,
        // Failover, health and authentication are set through the API.
        ..Default::default()
    }
}

pub fn to_json(endpoint: &v1::Endpoint, with_secrets: bool) -> serde_json::Value {
    let mut value = json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "tenant": endpoint.tenant,
        "enabled": !endpoint.disabled,
        "headers": endpoint.headers,
        "filter_attributes": endpoint.filter_attributes,
        "description": endpoint.description,
        "limits": endpoint.limits.as_ref().map(|l| json!({
            "max_in_flight": l.max_in_flight, "timeout_ms": l.timeout_ms,
            "rate_per_second": l.rate_per_second, "burst": l.burst,
        })),
        "retry_schedule": endpoint.retry_schedule,
        "permanent_statuses": endpoint.permanent_statuses,
        "failing_since_ms": endpoint.failing_since_ms,
    });
    if with_secrets {
        value["secret"] = json!(endpoint.secrets.last().map(|s| s.key.as_str()));
    }
    value
}

pub async fn run(config: Config, command: EndpointCommand) -> anyhow::Result<()> {
    let topic = config.topics().endpoints;
    match command {
        EndpointCommand::Create(args) => {
            let endpoint = new_endpoint(args);
            let producer = kafka::producer(&config.kafka, "hookline-cli")?;
            registry::put_endpoint(&producer, &topic, &SecretKeys::load(&config.secrets)?, &endpoint).await?;
            println!("{}", to_json(&endpoint, true));
        }
        EndpointCommand::Delete { id } => {
            let registry = load(&config).await?;
            anyhow::ensure!(registry.get(&id).is_some(), "no endpoint with id {id:?}");
            let producer = kafka::producer(&config.kafka, "hookline-cli")?;
            registry::delete_endpoint(&producer, &topic, &id).await?;
            println!("deleted {id}");
        }
        EndpointCommand::List => {
            let registry = load(&config).await?;
            for entry in registry.all() {
                println!("{}", to_json(&entry.endpoint, false));
            }
        }
    }
    Ok(())
}

/// Reads the endpoints topic to its end.
async fn load(config: &Config) -> anyhow::Result<Arc<EndpointRegistry>> {
    let registry = EndpointRegistry::with_keys(SecretKeys::load(&config.secrets)?);
    let stop = Shutdown::new();
    let follower = tokio::spawn({
        let (kafka, topic, registry, stop) =
            (config.kafka.clone(), config.topics().endpoints, Arc::clone(&registry), stop.clone());
        async move { registry::follow(&kafka, &topic, "hookline-cli", registry, stop).await }
    });
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), registry.wait_ready()).await;
    stop.cancel();
    follower.await.context("endpoint reader")??;
    ready.context("the endpoints topic could not be read within 30s (is Kafka up and are topics created?)")?;
    Ok(registry)
}
