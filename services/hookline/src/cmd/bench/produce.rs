//! `hookline bench produce`: the Kafka-path load generator. Produces `hookline.v1.Event`s
//! straight to the events topic, as a platform service would, at a constant rate (or in the
//! burst shape) or as fast as Kafka takes them (`--rate 0`), through `hookline publish`'s
//! produce loop (many sends in flight, never one awaited at a time). Each event's JSON
//! payload carries `occurred_at` like the ingest generator's, for the sink's latency ledger.
//!
//! Unlike the HTTP generator this one cannot drop an arrival: a producer that Kafka holds
//! back (a full local queue, or the window of unacknowledged sends) sends late, and
//! `max_schedule_lag_ms` says by how much.

use super::event;
use super::LoadArgs;
use super::summary;
use crate::cmd::publish;
use hookline_core::config::Config;
use hookline_proto::v1;
use hookline_runtime::kafka;
use rdkafka::producer::Producer as _;
use std::time::{Duration, Instant};

pub async fn run(config: &Config, args: LoadArgs) -> anyhow::Result<()> {
    args.validate()?;
    let producer = kafka::producer(&config.kafka, "hookline-bench")?;
    let topic = config.topics().events;
    let template = v1::Event {
        r#type: args.event_type.clone(),
        source: "hookline-bench".into(),
        content_type: "application/json".into(),
        ..Default::default()
    };
    let pad = event::padding(args.payload_bytes);
    let schedule = args.schedule(args.rate);
    ready(&producer, &topic).await?;
    let cpu_before = summary::cpu_seconds();
    let started = Instant::now();
    let due: Box<dyn Iterator<Item = Duration> + Send + '_> = if args.rate > 0.0 {
        Box::new(schedule.arrivals())
    } else {
        let length = schedule.length();
        Box::new(std::iter::from_fn(move || (started.elapsed() < length).then_some(Duration::ZERO)))
    };
    let (template, pad, traced) = (&template, pad.as_str(), args.traced);
    let items = (0..).zip(due).map(move |(seq, due)| {
        (due, move || {
            let mut e = publish::stamped(template);
            e.payload = event::data(e.occurred_at_ms, seq, pad).to_string().into_bytes().into();
            if traced {
                e.trace = Some(v1::TraceContext { traceparent: event::sampled_traceparent(), tracestate: String::new() });
            }
            e
        })
    });
    let produced = publish::produce(&producer, &topic, items).await?;
    let wall = started.elapsed();
    let failed = produced.failed();
    let report = serde_json::json!({
        "generator": "hookline bench produce",
        "topic": topic,
        "shape": args.shape.name(),
        "offered_events_per_second": args.rate,
        "payload_bytes": args.payload_bytes,
        "traced": args.traced,
        "schedule_seconds": schedule.length().as_secs_f64(),
        "produced": produced.sent,
        "acknowledged": produced.acknowledged,
        "accepted_events": produced.acknowledged,
        "dropped_arrivals": 0,
        "failed": failed,
        "failed_by": produced.failed_by,
        "achieved_events_per_second": produced.acknowledged as f64 / wall.as_secs_f64().max(1e-9),
        // As fast as possible has no schedule to be late for.
        "max_schedule_lag_ms": (args.rate > 0.0).then_some(produced.max_lag.as_secs_f64() * 1000.0),
        "wall_seconds": wall.as_secs_f64(),
        "cpu_seconds": cpu_before.zip(summary::cpu_seconds()).map(|(a, b)| b - a),
    });
    summary::emit(&report, args.summary.as_deref())?;
    anyhow::ensure!(failed == 0, "bench produce: {failed} events not acknowledged");
    Ok(())
}

/// How long a new idempotent producer waits for its producer id before it sends: librdkafka
/// asks for it on a 500 ms timer once a broker is up (librdkafka PR #5032), so without the
/// wait the first sends of every run were acknowledged about 500 ms late, in one burst, and
/// each run started with a second whose p99 was near 1 s.
const PRODUCER_ID_WAIT: Duration = Duration::from_secs(1);

/// Waits until the producer is connected, knows the topic's leaders and (most likely) holds
/// its producer id, before the first event is stamped.
async fn ready(producer: &kafka::FutureProducer, topic: &str) -> anyhow::Result<()> {
    let (producer, topic) = (producer.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), Duration::from_secs(30))).await??;
    tokio::time::sleep(PRODUCER_ID_WAIT).await;
    Ok(())
}
