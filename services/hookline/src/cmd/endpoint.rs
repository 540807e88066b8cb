//! `hookline endpoint create|list|delete`: endpoints written straight to the compacted
//! endpoints topic (the management API writes the same records, under the same rules).

use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::config::Config;
use hookline_core::endpoint_rules::WritePolicy;
use hookline_core::signing::secret_from_bytes;
use hookline_proto::v1;
use hookline_runtime::registry::{self, EndpointRegistry, SecretKeys};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::{endpoint_check, kafka, time::now_ms};
use serde_json::json;
use std::sync::Arc;

// Parsed once per process; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum EndpointCommand {
    /// Create an endpoint (or replace one: --id and --replace). Prints it with its secret.
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
    /// Replace the endpoint with this --id if there is one (refused otherwise). It keeps its
    /// secrets unless --secret is given, and what only the API sets (failover, auth, ...).
    #[arg(long, requires = "id")]
    pub replace: bool,
    /// Allow http:// and loopback URLs, as `hookline dev` does (otherwise the API's rules:
    /// api.require_https, and the sender's address policy).
    #[arg(long)]
    pub dev: bool,
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

/// The rules the API applies to an endpoint it is given (`core::endpoint_rules`, through
/// `hookline_runtime::endpoint_check`, as the API calls it), with `api.require_https` and the
/// sender's SSRF policy from this configuration. Every problem at once, each naming its field.
pub async fn check(config: &Config, endpoint: &v1::Endpoint) -> Result<(), Vec<String>> {
    let addresses = hookline_sender::address_policy(config);
    let policy = WritePolicy { require_https: config.api.require_https, addresses: &addresses };
    endpoint_check::check(endpoint, &policy).await.map(|_| ()).map_err(|p| p.iter().map(ToString::to_string).collect())
}

/// `endpoint` as the replacement of `existing`: what the command line sets comes from
/// `endpoint`; the secrets (unless `new_secret`), the creation time and what only the API
/// sets (failover, authentication, health, content filter, ...) stay as they were, so the
/// receiver keeps verifying.
pub fn replacing(existing: &v1::Endpoint, endpoint: v1::Endpoint, new_secret: bool) -> v1::Endpoint {
    let mut out = existing.clone();
    if new_secret {
        out.secrets = endpoint.secrets;
    }
    out.tenant = endpoint.tenant;
    out.url = endpoint.url;
    out.event_types = endpoint.event_types;
    out.headers = endpoint.headers;
    out.limits = endpoint.limits;
    out.description = endpoint.description;
    out.filter_attributes = endpoint.filter_attributes;
    out.retry_schedule = endpoint.retry_schedule;
    out.permanent_statuses = endpoint.permanent_statuses;
    out.ordering = endpoint.ordering;
    out.lane_max_block_ms = endpoint.lane_max_block_ms;
    out.on_lane_blocked = endpoint.on_lane_blocked;
    out.updated_at_ms = endpoint.updated_at_ms;
    out
}

pub async fn run(mut config: Config, command: EndpointCommand) -> anyhow::Result<()> {
    let topic = config.topics().endpoints;
    match command {
        EndpointCommand::Create(args) => {
            if args.dev {
                config.api.require_https = false;
                config.sender.allow_loopback = true;
            }
            let (chosen_id, replace, new_secret) = (args.id.is_some(), args.replace, args.secret.is_some());
            let mut endpoint = new_endpoint(args);
            // Before Kafka is asked anything: a bad endpoint fails at once.
            if let Err(problems) = check(&config, &endpoint).await {
                let hint = if config.api.require_https { "\n(--dev allows http and loopback addresses)" } else { "" };
                anyhow::bail!("invalid endpoint:\n  - {}{hint}", problems.join("\n  - "));
            }
            // A chosen id may be taken; a new random one is not.
            if chosen_id {
                let registry = load(&config).await?;
                match registry.get(&endpoint.id) {
                    Some(existing) if replace => endpoint = replacing(&existing.endpoint, endpoint, new_secret),
                    Some(_) => anyhow::bail!(
                        "endpoint {:?} exists; pass --replace to replace it (it keeps its secret unless --secret is given)",
                        endpoint.id
                    ),
                    None => {}
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn endpoint(args: &[&str]) -> v1::Endpoint {
        let argv = ["create", "--event-types", "order.*"].iter().chain(args);
        new_endpoint(Cli::try_parse_from(argv).expect("arguments").args)
    }

    fn dev() -> Config {
        let mut c = Config::default();
        c.api.require_https = false;
        c.sender.allow_loopback = true;
        c
    }

    // Addresses are IP literals: no test depends on DNS.
    #[tokio::test]
    async fn the_api_rules_apply() {
        let c = Config::default();
        assert_eq!(check(&c, &endpoint(&["--url", "https://93.184.215.14/hooks"])).await, Ok(()));
        let e = check(&c, &endpoint(&["--url", "http://93.184.215.14/hooks"])).await.expect_err("http");
        assert_eq!(e, ["url: must be https"]);
        for url in ["https://127.0.0.1:9000/", "https://10.1.2.3/", "https://169.254.169.254/latest", "https://[::1]/"] {
            let e = check(&c, &endpoint(&["--url", url])).await.expect_err(url);
            assert!(e.len() == 1 && e[0].contains("points at a refused address"), "{url}: {e:?}");
        }
        let e = check(
            &c,
            &endpoint(&["--url", "https://93.184.215.14/", "--header", "Webhook-Signature=x", "--header", "X-Ok=a\nb"]),
        )
        .await
        .expect_err("headers");
        assert_eq!(e, ["headers.Webhook-Signature: is set by Hookline", "headers.X-Ok: is not a valid header value"]);
        // The registry's own rules come first, as in the API.
        let e = check(&c, &endpoint(&["--url", "ftp://example.com/"])).await.expect_err("scheme");
        assert!(e[0].contains("must be an absolute http(s) URL"), "{e:?}");
    }

    #[tokio::test]
    async fn dev_and_allowed_cidrs_let_internal_urls_through() {
        assert_eq!(check(&dev(), &endpoint(&["--url", "http://127.0.0.1:9000/mine"])).await, Ok(()));
        // --dev allows loopback only, never the metadata service.
        assert!(check(&dev(), &endpoint(&["--url", "http://169.254.169.254/"])).await.is_err());
        let mut c = Config::default();
        c.sender.allowed_cidrs = vec!["10.20.0.0/16".parse().expect("cidr")];
        assert_eq!(check(&c, &endpoint(&["--url", "https://10.20.3.4/"])).await, Ok(()));
    }

    #[test]
    fn replacing_keeps_the_secret_and_what_only_the_api_sets() {
        let mut existing = endpoint(&["--url", "https://a.example/", "--id", "ep_1"]);
        existing.created_at_ms = 1;
        existing.failover_url = "https://b.example/".into();
        existing.disabled = true;
        let new = endpoint(&["--url", "https://c.example/", "--id", "ep_1", "--description", "moved"]);
        let replaced = replacing(&existing, new.clone(), false);
        assert_eq!(replaced.secrets, existing.secrets, "the receiver keeps verifying");
        assert_ne!(replaced.secrets, new.secrets);
        assert_eq!((replaced.url.as_str(), replaced.description.as_str()), ("https://c.example/", "moved"));
        assert_eq!((replaced.created_at_ms, replaced.failover_url.as_str(), replaced.disabled), (1, "https://b.example/", true));
        assert_eq!(replacing(&existing, new.clone(), true).secrets, new.secrets, "--secret replaces it");
    }

    #[test]
    fn replace_needs_an_id() {
        assert!(Cli::try_parse_from(["create", "--url", "https://a.example/", "--event-types", "*", "--replace"]).is_err());
    }
}
