//! `hookline publish`: produce events to the events topic from the command line; the
//! smallest publish path, and (with `--count`) a load generator.

use anyhow::Context as _;
use futures::stream::{FuturesUnordered, StreamExt};
use hookline_core::event;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::{kafka, time::now_ms};
use hookline_runtime::kafka::FutureProducer;
use std::collections::BTreeMap;
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
    let (template, single_id_ref) = (&template, &single_id);
    let items = (0..args.count).map(move |i| {
        (paced(i, args.rate), move || {
            let mut e = stamped(template);
            if let Some(id) = single_id_ref {
                e.id.clone_from(id);
            }
            e
        })
    });
    let published = produce(&producer, &topic, items).await?.all_acknowledged()?;
    let secs = started.elapsed().as_secs_f64();
    if args.count == 1 {
        println!("published {}", single_id.unwrap_or_else(|| "1 event".into()));
    } else {
        println!("published {published} events to {topic} in {secs:.2}s ({:.0}/s)", published as f64 / secs.max(1e-9));
    }
    Ok(())
}

/// When the `i`-th of a run at `rate` per second is due (at once when `rate` is 0).
fn paced(i: u64, rate: f64) -> Duration {
    if rate > 0.0 {
        Duration::from_secs_f64(i as f64 / rate)
    } else {
        Duration::ZERO
    }
}

/// A copy of `template` as a new event: its own id, occurred now.
pub fn stamped(template: &v1::Event) -> v1::Event {
    let mut e = template.clone();
    e.id = new_event_id();
    e.occurred_at_ms = now_ms();
    e
}

/// What a run of produces did.
#[derive(Debug, Default)]
pub struct Produced {
    pub sent: u64,
    pub acknowledged: u64,
    /// Produces the broker did not acknowledge, by error.
    pub failed_by: BTreeMap<String, u64>,
    /// How late the latest send went out after its due time (back-pressure from Kafka).
    pub max_lag: Duration,
}

impl Produced {
    pub fn failed(&self) -> u64 {
        self.failed_by.values().sum()
    }

    /// The number acknowledged, or an error naming the failures.
    pub fn all_acknowledged(self) -> anyhow::Result<u64> {
        anyhow::ensure!(self.failed_by.is_empty(), "publish: {} of {} not acknowledged: {:?}", self.failed(), self.sent, self.failed_by);
        Ok(self.acknowledged)
    }
}

/// Produces one event per item, no earlier than its due time (an offset from the start),
/// each built by its closure when it is sent (so its timestamps are the send time) and
/// keyed by its id, keeping up to [`WINDOW`] acknowledgements in flight. A failed
/// acknowledgement is counted; a local produce error (not a full queue, which waits) ends
/// the run.
pub async fn produce<F: FnOnce() -> v1::Event>(
    producer: &FutureProducer,
    topic: &str,
    items: impl Iterator<Item = (Duration, F)>,
) -> anyhow::Result<Produced> {
    let started = Instant::now();
    let mut acks = FuturesUnordered::new();
    let mut out = Produced::default();
    let settle = |out: &mut Produced, r: rdkafka::error::KafkaResult<()>| match r {
        Ok(()) => out.acknowledged += 1,
        Err(e) => *out.failed_by.entry(e.to_string()).or_insert(0) += 1,
    };
    for (due, build) in items {
        let at = started + due;
        if Instant::now() < at {
            tokio::time::sleep_until(at.into()).await;
        }
        while acks.len() >= WINDOW {
            if let Some(r) = acks.next().await {
                settle(&mut out, r);
            }
        }
        out.max_lag = out.max_lag.max(Instant::now().saturating_duration_since(at));
        let e = build();
        let ack = kafka::enqueue(producer, topic, &e.id, &e.encode_to_vec(), None).await.context("publish")?;
        acks.push(kafka::acked(ack));
        out.sent += 1;
    }
    while let Some(r) = acks.next().await {
        settle(&mut out, r);
    }
    Ok(out)
}

/// Produces `events` keyed by id, at most `rate` per second when `rate > 0`; fails if any
/// is not acknowledged. Returns how many were.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: impl Iterator<Item = v1::Event>,
    rate: f64,
) -> anyhow::Result<u64> {
    let items = (0..).zip(events).map(|(i, e)| (paced(i, rate), move || e));
    produce(producer, topic, items).await?.all_acknowledged()
}
