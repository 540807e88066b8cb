//! The router: reads `hookline.v1.Event` records from the events topic, matches each against
//! the endpoint registry and produces one `Delivery` per matched endpoint to the deliveries
//! topic, keyed by endpoint id so all of an endpoint's work shares a partition.
//!
//! An event's offset is stored only after every one of its produces is acknowledged. A
//! record that does not decode, or breaks the event rules, is dead-lettered with the reason
//! and the partition moves on. The event's bytes are forwarded exactly as published: the
//! `Delivery` embeds them without decoding and re-encoding the payload (see [`fanout`]).

pub mod fanout;

use fanout::{delivery_record, Routed};
use prost::Message as _;
use futures::future::try_join_all;
use hookline_core::config::Config;
use hookline_runtime::catalog::Catalog;
use hookline_runtime::consume::Role;
use hookline_runtime::intake::{stop_on, Intake, Next};
use hookline_runtime::health::Health;
use hookline_runtime::kafka::{self, OwnedRecord};
use hookline_runtime::metric_catalog;
use hookline_runtime::registry::EndpointRegistry;
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::time::now_ms;
use hookline_runtime::traces::{self, Attribute};
use rdkafka::error::KafkaError;
use hookline_runtime::kafka::FutureProducer;
use rdkafka::message::OwnedHeaders;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("kafka client setup")]
    Setup(#[from] KafkaError),
    #[error("a produce failed after librdkafka's retries; stopping so the event is read again")]
    Produce(#[source] KafkaError),
}

/// How long shutdown waits for in-flight produces before giving up on them (they are read
/// again by the next owner of the partition).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the router until `shutdown`. The registry must be fed by
/// [`hookline_runtime::registry::follow`]; routing starts once it is ready.
pub async fn run(
    cfg: Config,
    registry: Arc<EndpointRegistry>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), RouterError> {
    let topics = cfg.topics();
    let producer = kafka::producer(&cfg.kafka, "hookline-router")?;
    let mut intake = Intake::new(Role::Router, &cfg, cfg.router.max_in_flight_events, producer.clone(), health, shutdown.clone())?;
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<KafkaError>(1);

    // The event-type catalog: schemas to enforce, read like the endpoints.
    let catalog = Catalog::new();
    let (c, kafka_cfg, topic, stop) = (Arc::clone(&catalog), cfg.kafka.clone(), topics.event_types.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = hookline_runtime::catalog::follow(&kafka_cfg, &topic, "hookline-router-catalog", c, stop).await {
            tracing::error!(%error, "event-type catalog follower stopped");
        }
    });
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { tokio::join!(registry.wait_ready(), catalog.position.wait_ready()) } => {}
    }
    intake.subscribe(&[&topics.events])?;

    let result = loop {
        let (record, permit) = match intake.next(fatal_rx.recv()).await {
            Ok(Next::Record(record, permit)) => (record, permit),
            Ok(Next::Revoked(_)) => continue,
            Ok(Next::Stop) => break Ok(()),
            Ok(Next::Side(error)) => break Err(RouterError::Produce(error.unwrap_or(KafkaError::Canceled))),
            Err(error) => break Err(RouterError::Produce(error)),
        };
        if !intake.take(&record) {
            continue; // routed by the partition's previous owner, past its commit
        }
        let acks = match route(&record, &registry, &catalog, &producer, &topics, cfg.router.max_payload_bytes).await {
            Ok(acks) => acks,
            Err(error) => break Err(RouterError::Produce(error)),
        };
        let tracker = Arc::clone(intake.tracker());
        let fatal_tx = fatal_tx.clone();
        tokio::spawn(async move {
            match try_join_all(acks).await {
                Ok(_) => tracker.complete(&record.topic, record.partition, record.offset),
                Err(error) => stop_on(&fatal_tx, error, &record),
            }
            drop(permit);
        });
    };

    // Stop taking work; let in-flight produces finish so their offsets are stored.
    intake.drain(DRAIN_TIMEOUT).await;
    tracing::info!("router stopped");
    result
}

/// Enqueues every produce of one event (deliveries, or a dead letter) and returns their
/// acknowledgements. `QueueFull` is back-pressure: wait for librdkafka to drain, then retry.
async fn route(
    record: &OwnedRecord,
    registry: &EndpointRegistry,
    catalog: &Catalog,
    producer: &FutureProducer,
    topics: &hookline_core::config::Topics,
    max_payload_bytes: usize,
) -> Result<Vec<impl std::future::Future<Output = Result<(), KafkaError>>>, KafkaError> {
    let routed = fanout::route(record, registry, catalog, max_payload_bytes, now_ms());
    let mut traceparent = record.header("traceparent").map(str::to_owned);
    let mut span = None;
    let mut outgoing: Vec<(String, &str, kafka::At, Vec<u8>)> = Vec::new();
    match routed {
        Routed::Deliveries { event_id, event_type, trace, endpoints, schema_id: _, frame_len } => {
            tracing::debug!(event_id, matched = endpoints.len(), "event routed");
            // A producer's trace context (Kafka header first, then the event's own field)
            // gets a route span; the deliveries carry that span's context to the sender.
            let (tp, ts) = match (&traceparent, &trace) {
                (Some(tp), _) => (tp.as_str(), record.header("tracestate").unwrap_or_default()),
                (None, Some(t)) => (t.traceparent.as_str(), t.tracestate.as_str()),
                (None, None) => ("", ""),
            };
            if let Some(parent) = traces::parent(tp, ts) {
                let attributes = vec![
                    Attribute::new("messaging.system", "kafka"),
                    Attribute::new("messaging.operation.type", "process"),
                    Attribute::new("messaging.destination.name", record.topic.clone()),
                    Attribute::new("messaging.destination.partition.id", record.partition.to_string()),
                    Attribute::new("messaging.kafka.offset", record.offset),
                    Attribute::new("hookline.event_id", event_id.clone()),
                    Attribute::new("hookline.event_type", event_type),
                    Attribute::new("hookline.endpoints_matched", endpoints.len() as i64),
                ];
                let s = traces::Span::start("hookline.route", traces::Kind::Consumer, &parent, attributes);
                traceparent = Some(s.traceparent());
                span = Some(s);
            }
            let result = if endpoints.is_empty() { "unmatched" } else { "routed" };
            metric_catalog::ROUTER_EVENTS.with([result]).increment(1);
            metric_catalog::ROUTER_DELIVERIES.get().increment(endpoints.len() as u64);
            let encoded = &record.value.as_deref().unwrap_or_default()[frame_len..];
            for endpoint_id in endpoints {
                let value = delivery_record(encoded, &endpoint_id, now_ms());
                outgoing.push((endpoint_id, topics.deliveries.as_str(), kafka::At::default(), value));
            }
        }
        Routed::Dead(dead) => {
            metric_catalog::ROUTER_EVENTS.with(["dead_lettered"]).increment(1);
            metric_catalog::ROUTER_DEAD_LETTERS.with([dead.reason().label()]).increment(1);
            tracing::warn!(
                partition = record.partition, offset = record.offset, reason = dead.reason().label(), detail = %dead.detail,
                "event dead-lettered"
            );
            let key = String::from_utf8_lossy(&record.key).into_owned();
            outgoing.push((key, topics.dlq.as_str(), kafka::At::dead_letter(&dead), dead.encode_to_vec()));
        }
    }
    let headers = traceparent.as_deref().map(|tp| {
        OwnedHeaders::new().insert(rdkafka::message::Header { key: "traceparent", value: Some(tp) })
    });
    let mut acks = Vec::with_capacity(outgoing.len());
    for (key, topic, at, value) in outgoing {
        let ack = kafka::enqueue_to(producer, topic, at, &key, &value, headers.clone()).await?;
        acks.push(kafka::acked(ack));
    }
    if let Some(span) = span {
        span.end();
    }
    Ok(acks)
}
