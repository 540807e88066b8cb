//! The sender: reads `Delivery` records, signs and POSTs each to its endpoint, writes one
//! `Attempt` record per attempt, and dead-letters what did not succeed.
//!
//! - [`client`]: the pooled HTTP client and its SSRF-checking resolver.
//! - [`attempt`]: one signed request and the classification of its result.
//! - this file: the consuming loop, per-endpoint concurrency limits, attempt and DLQ
//!   records, and offsets stored only for finished deliveries.
//!
//! A delivery's offset is released only after it succeeded or its dead letter is
//! acknowledged by Kafka, so a crash at any point re-sends (never drops) it.

pub mod attempt;
pub mod client;

use attempt::{AttemptReport, Attempter};
use dashmap::DashMap;
use hookline_core::address::{AddressPolicy, Cidr};
use hookline_core::config::{Config, Topics};
use hookline_core::outcome::Class;
use hookline_proto::v1::{self, DeadLetterReason, Outcome};
use hookline_proto::Message as _;
use hookline_runtime::kafka::{self, OwnedRecord};
use hookline_runtime::offsets::OffsetTracker;
use hookline_runtime::registry::{self, EndpointEntry, EndpointRegistry};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::time::now_ms;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("kafka client setup")]
    Setup(#[from] KafkaError),
    #[error("tls setup")]
    Tls(#[from] rustls::Error),
    #[error("a dead letter could not be written; stopping so the delivery is read again")]
    DeadLetter(#[source] KafkaError),
}

/// Extra time on top of the request timeout that shutdown waits for in-flight deliveries.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);

/// What every delivery task shares.
struct Shared {
    registry: Arc<EndpointRegistry>,
    attempter: Attempter,
    producer: FutureProducer,
    topics: Topics,
    tracker: OffsetTracker,
    endpoint_limits: DashMap<String, Arc<Semaphore>>,
    default_per_endpoint: usize,
    fatal: mpsc::Sender<KafkaError>,
}

/// Runs the sender until `shutdown`, resolving hosts with the system resolver.
pub async fn run(cfg: Config, registry: Arc<EndpointRegistry>, shutdown: Shutdown) -> Result<(), SenderError> {
    let policy = Arc::new(address_policy(&cfg));
    run_with_resolver(cfg, registry, client::PolicyResolver::system(Arc::clone(&policy)), policy, shutdown).await
}

/// The SSRF policy the configuration asks for (validated at load, so entries parse).
pub fn address_policy(cfg: &Config) -> AddressPolicy {
    let allow = cfg.sender.allowed_cidrs.iter().filter_map(|c| c.parse::<Cidr>().ok()).collect();
    AddressPolicy::new(allow, cfg.sender.allow_loopback)
}

/// Runs the sender with a chosen resolver (tests answer DNS themselves).
pub async fn run_with_resolver(
    cfg: Config,
    registry: Arc<EndpointRegistry>,
    resolver: client::PolicyResolver,
    policy: Arc<AddressPolicy>,
    shutdown: Shutdown,
) -> Result<(), SenderError> {
    let topics = cfg.topics();
    let consumer = Arc::new(kafka::group_consumer(&cfg.kafka, &topics.group("sender"), "hookline-sender")?);
    let producer = kafka::producer(&cfg.kafka, "hookline-sender")?;
    let settings = client::ClientSettings {
        connect_timeout: Duration::from_millis(cfg.sender.connect_timeout_ms),
        pool_max_idle_per_host: cfg.sender.pool_max_idle_per_host,
    };
    let request_timeout = Duration::from_millis(cfg.sender.request_timeout_ms);
    let attempter = Attempter::new(client::build(resolver, &settings)?, policy, request_timeout);
    let window = Arc::new(Semaphore::new(cfg.sender.max_in_flight));
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<KafkaError>(1);
    let shared = Arc::new(Shared {
        registry: Arc::clone(&registry),
        attempter,
        producer,
        topics: topics.clone(),
        tracker: OffsetTracker::new(Arc::clone(&consumer)),
        endpoint_limits: DashMap::new(),
        default_per_endpoint: cfg.sender.max_in_flight_per_endpoint,
        fatal: fatal_tx,
    });

    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = registry.wait_ready() => {}
    }
    consumer.subscribe(&[&topics.deliveries])?;
    tracing::info!(topic = %topics.deliveries, "sender started");

    let result = loop {
        shared.tracker.forget_revoked();
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(error) = fatal_rx.recv() => break Err(SenderError::DeadLetter(error)),
            permit = Arc::clone(&window).acquire_owned() => permit.expect("semaphore never closed"),
        };
        let message = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(error) = fatal_rx.recv() => break Err(SenderError::DeadLetter(error)),
            message = consumer.recv() => message,
        };
        let record = match message {
            Ok(m) => OwnedRecord::from_message(&m),
            Err(error) => {
                tracing::warn!(%error, "consume error");
                continue;
            }
        };
        shared.tracker.begin(&record.topic, record.partition, record.offset);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            deliver(&shared, &record).await;
            drop(permit);
        });
    };

    let all = u32::try_from(cfg.sender.max_in_flight).unwrap_or(u32::MAX);
    if tokio::time::timeout(request_timeout + DRAIN_MARGIN, window.acquire_many(all)).await.is_err() {
        tracing::warn!(in_flight = shared.tracker.in_flight(), "shutdown: deliveries still in flight; they will be sent again");
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
    tracing::info!("sender stopped");
    result
}

/// Handles one deliveries record to the end: delivered, or dead-lettered. Only then is its
/// offset released.
async fn deliver(shared: &Shared, record: &OwnedRecord) {
    let finished = match v1::Delivery::decode(record.value.as_deref().unwrap_or_default()) {
        Ok(delivery) if delivery.event.is_some() => attempt_delivery(shared, record, delivery).await,
        Ok(_) => {
            let detail = "delivery has no event".to_owned();
            dead_letter(shared, record, None, DeadLetterReason::UndecodableDelivery, detail, None).await
        }
        Err(error) => {
            let detail = format!("not a hookline.v1.Delivery: {error}");
            dead_letter(shared, record, None, DeadLetterReason::UndecodableDelivery, detail, None).await
        }
    };
    match finished {
        Ok(()) => shared.tracker.complete(&record.topic, record.partition, record.offset),
        Err(error) => {
            tracing::error!(%error, partition = record.partition, offset = record.offset, "dead letter not written");
            let _ = shared.fatal.try_send(error);
        }
    }
}

async fn attempt_delivery(shared: &Shared, record: &OwnedRecord, delivery: v1::Delivery) -> Result<(), KafkaError> {
    let Some(entry) = shared.registry.get(&delivery.endpoint_id) else {
        let detail = format!("endpoint {} does not exist", delivery.endpoint_id);
        return dead_letter(shared, record, Some(delivery), DeadLetterReason::EndpointNotFound, detail, None).await;
    };
    if entry.endpoint.disabled {
        let detail = format!("endpoint {} is disabled", delivery.endpoint_id);
        return dead_letter(shared, record, Some(delivery), DeadLetterReason::EndpointDisabled, detail, None).await;
    }
    let event = delivery.event.as_ref().expect("checked by the caller");
    let limit = endpoint_limit(shared, &entry);
    let report = {
        let _slot = limit.acquire().await.expect("semaphore never closed");
        shared.attempter.attempt(&entry, event, now_ms()).await
    };
    let attempt = attempt_record(&delivery, &report);
    write_attempt(shared, &attempt).await;
    tracing::debug!(
        event_id = %event.id, endpoint_id = %delivery.endpoint_id, status = report.status,
        latency_ms = attempt.latency_ms, class = ?report.class, "attempt"
    );
    let (reason, detail) = match report.class {
        Class::Success => return Ok(()),
        Class::Retryable { .. } => {
            (DeadLetterReason::Exhausted, format!("{} (this sender has no retry tiers: one attempt)", report.error))
        }
        Class::Permanent => (DeadLetterReason::PermanentFailure, report.error.clone()),
        Class::BlockedByPolicy => (DeadLetterReason::BlockedByPolicy, report.error.clone()),
        Class::Gone => {
            disable_gone(shared, &entry).await;
            (DeadLetterReason::EndpointGone, format!("{}; endpoint disabled", report.error))
        }
    };
    tracing::warn!(event_id = %event.id, endpoint_id = %delivery.endpoint_id, reason = ?reason, %detail, "delivery dead-lettered");
    dead_letter(shared, record, Some(delivery), reason, detail, Some(attempt)).await
}

fn endpoint_limit(shared: &Shared, entry: &EndpointEntry) -> Arc<Semaphore> {
    let configured = entry.endpoint.limits.as_ref().map_or(0, |l| l.max_in_flight as usize);
    let permits = if configured > 0 { configured } else { shared.default_per_endpoint };
    Arc::clone(
        shared
            .endpoint_limits
            .entry(entry.endpoint.id.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .value(),
    )
}

fn attempt_record(delivery: &v1::Delivery, report: &AttemptReport) -> v1::Attempt {
    let event = delivery.event.as_ref();
    let outcome = match report.class {
        Class::Success => Outcome::Success,
        Class::Retryable { .. } => Outcome::Retryable,
        Class::Permanent => Outcome::Permanent,
        Class::Gone => Outcome::Gone,
        Class::BlockedByPolicy => Outcome::BlockedByPolicy,
    };
    v1::Attempt {
        event_id: event.map(|e| e.id.clone()).unwrap_or_default(),
        endpoint_id: delivery.endpoint_id.clone(),
        event_type: event.map(|e| e.r#type.clone()).unwrap_or_default(),
        tenant: event.map(|e| e.tenant.clone()).unwrap_or_default(),
        attempt: delivery.attempt.max(1),
        outcome: outcome as i32,
        status: u32::from(report.status),
        latency_ms: u32::try_from(report.latency.as_millis()).unwrap_or(u32::MAX),
        error: report.error.clone(),
        at_ms: now_ms(),
        response_excerpt: report.excerpt.clone(),
    }
}

/// Attempt records are history, not the delivery contract: written without waiting.
async fn write_attempt(shared: &Shared, attempt: &v1::Attempt) {
    let value = attempt.encode_to_vec();
    if let Err(error) = kafka::enqueue(&shared.producer, &shared.topics.attempts, &attempt.endpoint_id, &value, None).await {
        tracing::warn!(%error, "attempt record not written");
    }
}

async fn dead_letter(
    shared: &Shared,
    record: &OwnedRecord,
    delivery: Option<v1::Delivery>,
    reason: DeadLetterReason,
    detail: String,
    last_attempt: Option<v1::Attempt>,
) -> Result<(), KafkaError> {
    let keep_raw = delivery.is_none();
    let key = delivery
        .as_ref()
        .map(|d| d.endpoint_id.clone())
        .unwrap_or_else(|| String::from_utf8_lossy(&record.key).into_owned());
    let dead = v1::DeadLetter {
        delivery,
        reason: reason as i32,
        detail,
        last_attempt,
        source: Some(v1::SourceRecord {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key.clone(),
            raw_value: if keep_raw { record.value.clone().unwrap_or_default() } else { Vec::new() },
        }),
        dead_at_ms: now_ms(),
    };
    let value = dead.encode_to_vec();
    let ack = kafka::enqueue(&shared.producer, &shared.topics.dlq, &key, &value, None).await?;
    kafka::acked(ack).await
}

/// 410 Gone: the endpoint asked to stop. Disable it through the endpoints topic so every
/// replica converges.
async fn disable_gone(shared: &Shared, entry: &EndpointEntry) {
    let mut endpoint = entry.endpoint.clone();
    endpoint.disabled = true;
    endpoint.updated_at_ms = now_ms();
    match registry::put_endpoint(&shared.producer, &shared.topics.endpoints, &endpoint).await {
        Ok(()) => tracing::warn!(endpoint_id = %endpoint.id, "endpoint answered 410 Gone; disabled"),
        Err(error) => tracing::error!(endpoint_id = %endpoint.id, %error, "could not disable gone endpoint"),
    }
}
