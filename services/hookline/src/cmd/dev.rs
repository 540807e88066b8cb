//! `hookline dev`: every role in one process against a local Kafka. With `--demo` it also
//! runs a sink, registers an endpoint pointing at it, publishes sample events and shows
//! them arriving, signature checked.

use super::{endpoint, publish, roles};
use anyhow::Context as _;
use hookline_core::config::Config;
use hookline_proto::v1;
use hookline_runtime::registry::{self, EndpointRegistry};
use hookline_runtime::shutdown::{self, Shutdown};
use hookline_runtime::{kafka, time::now_ms, topics};
use hookline_sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Also run a demo: a sink, an endpoint for it, and sample events.
    #[arg(long)]
    pub demo: bool,
    /// Where the demo sink listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub demo_sink: SocketAddr,
    /// Demo events to publish, one every 200 ms, then stop (0: keep publishing, one a second).
    #[arg(long, default_value_t = 0)]
    pub demo_events: u64,
}

pub async fn run(mut config: Config, args: DevArgs) -> anyhow::Result<()> {
    config.sender.allow_loopback = true;
    config.api.require_https = false;
    tracing::warn!("dev mode: endpoints on loopback addresses and plain http are allowed");
    for (name, status) in topics::ensure(&config).await.context("creating topics (is Kafka running? scripts/kafka.sh start)")? {
        tracing::info!(topic = %name, ?status, "topic");
    }
    let shutdown = shutdown::on_signal();
    roles::preflight(&config, &hookline_runtime::preflight::Access::dev(&config), &shutdown).await?;
    let (registry, follower) = roles::start_registry(&config, "dev", &shutdown)?;
    let health = hookline_runtime::health::Health::new();
    roles::start_admin(&config, &health, &registry, &shutdown).await?;
    let router = hookline_router::run(config.clone(), Arc::clone(&registry), Arc::clone(&health), shutdown.clone());
    let router = tokio::spawn(async move { Ok::<_, anyhow::Error>(router.await?) });
    let sender = hookline_sender::run(config.clone(), Arc::clone(&registry), Arc::clone(&health), shutdown.clone());
    let sender = tokio::spawn(async move { Ok::<_, anyhow::Error>(sender.await?) });
    let replay = tokio::spawn(hookline_replay::run(config.clone(), Arc::clone(&registry), health, shutdown.clone()));
    let auth = if config.api.tokens.is_empty() {
        tracing::warn!("dev mode: no api.tokens configured, so the API accepts every request");
        hookline_api::auth::Auth::open(hookline_api::portal::SessionKey::from_config(&config.api))
    } else {
        hookline_api::auth::Auth::new(&config.api.tokens, hookline_api::portal::SessionKey::from_config(&config.api))
    };
    let api = hookline_api::state(config.clone(), Arc::clone(&registry), auth, &shutdown)?;
    let api_addr = hookline_api::serve(api, shutdown.clone()).await?;
    // Bound to every interface, reachable on loopback: show the address a person can use.
    let shown = if api_addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], api_addr.port())) } else { api_addr };
    println!("api: http://{shown}/v1/endpoints (OpenAPI: http://{shown}/v1/openapi.json)");
    let demo = args.demo.then(|| {
        let (config, registry, stop) = (config.clone(), Arc::clone(&registry), shutdown.clone());
        // The demo waits on the registry and the sink: it must not outlive a shutdown.
        tokio::spawn(async move {
            tokio::select! {
                result = demo(config, registry, args, stop.clone()) => result,
                _ = stop.cancelled() => Ok(()),
            }
        })
    });

    // The first role to stop (on error, or the signal) stops the others.
    let stops_all = |role: tokio::task::JoinHandle<anyhow::Result<()>>| {
        let stop = shutdown.clone();
        async move {
            let r = role.await;
            stop.cancel();
            r
        }
    };
    let (router_result, sender_result, replay_result) = tokio::join!(stops_all(router), stops_all(sender), stops_all(replay));
    follower.finished().await?;
    if let Some(demo) = demo {
        demo.await.context("demo task")??;
    }
    router_result.context("router task")??;
    sender_result.context("sender task")??;
    replay_result.context("replay task")??;
    Ok(())
}

async fn demo(config: Config, registry: Arc<EndpointRegistry>, args: DevArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let secret = endpoint::new_secret();
    let sink = Sink::bind(args.demo_sink, SinkConfig { secrets: vec![secret.clone()], keep_bodies: false, print: true, latency_field: None, tls: None })
        .await?;
    let addr = sink.local_addr();
    let ledger = sink.ledger();
    let stop = shutdown.clone();
    tokio::spawn(sink.serve(async move { stop.cancelled().await }));

    let producer = kafka::producer(&config.kafka, "hookline-demo")?;
    let now = now_ms();
    let demo_endpoint = v1::Endpoint {
        id: "demo".into(),
        url: format!("http://{addr}/webhooks/demo"),
        event_types: vec!["order.*".into(), "user.signed_up".into()],
        secrets: vec![v1::Secret { key: secret, ..Default::default() }],
        description: "hookline dev --demo".into(),
        created_at_ms: now,
        updated_at_ms: now,
        ..Default::default()
    };
    let written = registry::put_endpoint(&producer, &config.topics().endpoints, registry.secret_keys(), &demo_endpoint).await?;
    registry.wait_applied(written).await;
    println!("demo: endpoint \"demo\" -> {} subscribed to order.*, user.signed_up", demo_endpoint.url);

    let types = ["order.created", "order.paid", "user.signed_up", "invoice.sent"];
    let every = if args.demo_events > 0 { Duration::from_millis(200) } else { Duration::from_secs(1) };
    let mut published = 0u64;
    let mut expected = 0u64;
    let topic = config.topics().events;
    while args.demo_events == 0 || published < args.demo_events {
        let event_type = types[(published % types.len() as u64) as usize];
        let event = v1::Event {
            id: publish::new_event_id(),
            r#type: event_type.into(),
            source: "hookline-demo".into(),
            occurred_at_ms: now_ms(),
            content_type: "application/json".into(),
            payload: format!(r#"{{"seq": {published}, "type": "{event_type}"}}"#).into_bytes().into(),
            ..Default::default()
        };
        println!("demo: publish {} {}", event.id, event_type);
        publish::publish(&producer, &topic, std::iter::once(event), 0.0).await?;
        published += 1;
        expected += u64::from(event_type != "invoice.sent");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
    // A bounded demo waits for its deliveries, reports, and stops the process.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger.summary().unique < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = ledger.summary();
    println!(
        "demo: published {published} events ({expected} matching the demo endpoint); the sink received {} \
         ({} unique, {} invalid signatures)",
        summary.received, summary.unique, summary.invalid_signatures
    );
    shutdown.cancel();
    anyhow::ensure!(summary.unique == expected, "demo: {} of {expected} deliveries arrived", summary.unique);
    Ok(())
}
