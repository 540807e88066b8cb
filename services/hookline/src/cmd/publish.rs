//! `hookline publish`: produce events to the events topic from the command line; the
//! smallest publish path, and (with `--count`) a load generator.

use anyhow::Context as _;
use futures::stream::{FuturesUnordered, StreamExt};
use hookline_core::event;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::{kafka, time::now_ms};
use rdkafka::producer::FutureProducer;
use std::time::{Duration, Instant};

use super::endpoint::key_value;
use hookline_core::config::Config;

#[derive(clap::Args)]
pub struct PublishArgs {
    /// Event type, e.g. `order.created`.
    #[arg(long = "type")]
    pub event_type: String,
    /// The JSON payload, delivered byte for byte.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Event id (default: a new `evt_...` id; ignored with --count > 1).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long, default_value = "hookline-cli")]
    pub source: String,
    /// Attribute `key=value` (repeatable), for subscription filters.
    #[arg(long = "attr", value_parser = key_value)]
    pub attributes: Vec<(String, String)>,
    /// Publish this many events (each with its own id).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Events per second (0: as fast as Kafka takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// Acknowledgements awaited at most at once.
const WINDOW: usize = 20_000;

pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

pub async fn run(config: Config, args: PublishArgs) -> anyhow::Result<()> {
    event::validate("x", &args.event_type).context("--type")?;
    serde_json::from_str::<serde_json::Value>(&args.data).context("--data must be valid JSON")?;
    if let Some(id) = &args.id {
        event::validate(id, &args.event_type).context("--id")?;
    }
    let producer = kafka::producer(&config.kafka, "hookline-publish")?;
    let topic = config.topics().events;
    let template = v1::Event {
        id: String::new(),
        r#type: args.event_type.clone(),
        tenant: args.tenant.clone(),
        source: args.source.clone(),
        content_type: "application/json".into(),
        payload: args.data.clone().into_bytes().into(),
        attributes: args.attributes.iter().cloned().collect(),
        ..Default::default()
    };
    let single_id = if args.count == 1 { args.id.clone() } else { None };
    let started = Instant::now();
    let events = (0..args.count).map(|_| {
        let mut e = template.clone();
        e.id = single_id.clone().unwrap_or_else(new_event_id);
        e.occurred_at_ms = now_ms();
        e
    });
    let published = publish(&producer, &topic, events, args.rate).await?;
    let secs = started.elapsed().as_secs_f64();
    if args.count == 1 {
        println!("published {}", single_id.unwrap_or_else(|| "1 event".into()));
    } else {
        println!("published {published} events to {topic} in {secs:.2}s ({:.0}/s)", published as f64 / secs.max(1e-9));
    }
    Ok(())
}

/// Produces `events` keyed by id, keeping up to [`WINDOW`] acknowledgements in flight, at
/// most `rate` per second when `rate > 0`. Returns how many were acknowledged.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: impl Iterator<Item = v1::Event>,
    rate: f64,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut acks = FuturesUnordered::new();
    let mut done = 0u64;
    for (i, e) in events.enumerate() {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        while acks.len() >= WINDOW {
            acks.next().await.transpose().context("publish")?;
            done += 1;
        }
        let ack = kafka::enqueue(producer, topic, &e.id, &e.encode_to_vec(), None).await?;
        acks.push(kafka::acked(ack));
    }
    while let Some(r) = acks.next().await {
        r.context("publish")?;
        done += 1;
    }
    Ok(done)
}
