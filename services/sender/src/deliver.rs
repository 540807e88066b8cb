//! One delivery record, handled to its end: delivered; forwarded to the next retry tier
//! (after a retryable failure, or without an attempt when the endpoint's breaker is open or
//! its queue is full); or dead-lettered. The record's offset is released only after that
//! end is acknowledged by Kafka.

use crate::attempt::{AttemptReport, Attempter};
use crate::attempt_log::AttemptLog;
use crate::endpoints::{EndpointRuntime, EndpointRuntimes, Place};
use crate::workers::Ended;
use hookline_core::breaker::{Admission, Transition};
use hookline_core::config::Topics;
use hookline_core::failover::{Choice, Target};
use hookline_core::ops::{EndpointDisabled, OpsEvent};
use hookline_core::outcome::Class;
use hookline_core::recent::{pair_key, RecentDeliveries};
use hookline_core::retry::{due_at_ms, Delay};
use hookline_core::verdict::{self, AfterAttempt, AfterDeferral, Admit, Gate};
use hookline_proto::v1::{self, DeadLetterReason, Outcome};
use hookline_proto::Message as _;
use hookline_runtime::kafka::{self, OwnedRecord};
use hookline_runtime::metric_catalog::{self, Series};
use hookline_runtime::offsets::OffsetTracker;
use hookline_runtime::registry::{self, EndpointEntry, EndpointRegistry};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::time::now_ms;
use hookline_runtime::traces::{self, Attribute};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use hookline_runtime::kafka::FutureProducer;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Kafka header carrying a tier record's due time (ms since epoch), so the intake loop
/// can hold a tier partition without decoding the record.
pub const DUE_HEADER: &str = "hookline-due-ms";

/// What every delivery task shares.
pub struct Shared {
    pub registry: Arc<EndpointRegistry>,
    pub attempter: Attempter,
    pub producer: FutureProducer,
    /// Where attempt records go (batched).
    pub attempts: AttemptLog,
    pub topics: Topics,
    pub endpoints: EndpointRuntimes,
    pub jitter: f64,
    pub disable_after_ms: i64,
    /// How long a breaker stays closed before `hookline.endpoint.recovered` (`breaker.recovered_after_ms`).
    pub recovered_after_ms: i64,
    /// Send each attempt's trace context to the endpoint (`traces.propagate_to_endpoints`).
    pub propagate_trace: bool,
    pub fatal: mpsc::Sender<KafkaError>,
    pub shutdown: Shutdown,
    /// Pairs delivered recently: a re-routed copy of one is not sent again.
    pub recent: parking_lot::Mutex<RecentDeliveries>,
    /// The last sequence of each ordered lane (the `webhook-sequence-previous` header).
    pub sequences: crate::ordered::Sequences,
    /// Ordered lanes moved to the parked topic.
    pub parking: crate::parked::Parking,
    /// The per-attempt metrics' handles.
    pub meters: Meters,
}

/// The metrics every attempt records, their handles registered once per sender rather than
/// on each delivery (about 3% of a delivery's CPU at fan-out 10, docs/performance.md).
pub struct Meters {
    attempts: Series<metrics::Counter>,
    attempt_duration: Series<metrics::Histogram>,
    first_attempt_delay: metrics::Histogram,
    delivery_latency: Series<metrics::Histogram>,
}

impl Meters {
    /// Registers the handles with the recorder installed now.
    pub fn register() -> Self {
        Self {
            attempts: metric_catalog::SENDER_ATTEMPTS.series(),
            attempt_duration: metric_catalog::SENDER_ATTEMPT_DURATION.series(),
            first_attempt_delay: metric_catalog::SENDER_FIRST_ATTEMPT_DELAY.get(),
            delivery_latency: metric_catalog::DELIVERY_LATENCY.series(),
        }
    }
}

/// How a record ended.
enum Done {
    /// Delivered, forwarded or dead-lettered: the offset may be released.
    Finished,
    /// Shutdown came before the attempt: the offset stays, the next owner reads it again.
    Abandoned,
    /// An ordered lane's head: attempt it again after this long, holding the lane.
    Again(Box<v1::Delivery>, Duration),
    /// An ordered lane's head to park, as it is now (its attempts so far).
    Park(Box<OwnedRecord>),
}

/// Delivers one record of ordered `lane` (or of none) to its end, and marks it finished in
/// `tracker` (its consumer's offsets). [`Ended::Abandoned`] when it was abandoned (shutdown,
/// or its partition is no longer ours): its offset stays for the next owner;
/// [`Ended::Park`] when a lane's head has failed for `sender.lane_park_after_ms`: the worker
/// parks it, with the lane behind it.
pub async fn deliver(shared: &Shared, tracker: &OffsetTracker, record: &OwnedRecord, lane: Option<String>) -> Ended {
    // An ordered lane goes on only while its partition is ours: a record of a revoked
    // partition is left to the new owner, which delivers the lane in order.
    let ours = || tracker.owns(&record.topic, record.partition) && shared.parking.is_current(record);
    if lane.is_some() && !ours() {
        return Ended::Abandoned;
    }
    // From the record's `Bytes`: the event's payload is a slice of it, not a copy.
    let mut result = match v1::Delivery::decode(record.value.clone().unwrap_or_default()) {
        // A parked head comes back with its next attempt's time: it keeps its schedule.
        Ok(delivery) if delivery.event.is_some() && shared.parking.is_parked_record(record) && delivery.next_attempt_at_ms > now_ms() => {
            let wait = Duration::from_millis((delivery.next_attempt_at_ms - now_ms()).max(0) as u64);
            Ok(Done::Again(Box::new(delivery), wait))
        }
        Ok(delivery) if delivery.event.is_some() => handle(shared, record, delivery).await,
        Ok(_) => undecodable(shared, record, "delivery has no event".into()).await,
        Err(error) => undecodable(shared, record, format!("not a hookline.v1.Delivery: {error}")).await,
    };
    // An ordered lane's head is retried in place, for as long as its partition is ours, or
    // until it has failed for long enough to park. Never a head read back from the parked
    // topic, nor one whose later deliveries were already parked (the endpoint held too many):
    // parked behind them, it would come after them; they come back behind it instead.
    while let Ok(Done::Again(delivery, wait)) = result {
        let since = if delivery.first_attempt_at_ms > 0 { delivery.first_attempt_at_ms } else { record.timestamp_ms };
        let parkable = |lane: &&str| !shared.parking.is_parked_record(record) && !shared.parking.lane_is_parked(record, lane);
        let now = now_ms();
        // It parks at its due time if that comes before its next attempt.
        let park = lane
            .as_deref()
            .filter(parkable)
            .and_then(|lane| hookline_core::lane::park_due(since, shared.parking.park_after_ms).map(|due| (lane, (due - now).max(0))))
            .filter(|(_, in_ms)| *in_ms < wait.as_millis() as i64);
        let nap = park.map_or(wait, |(_, in_ms)| Duration::from_millis(in_ms as u64));
        result = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => Ok(Done::Abandoned),
            _ = tokio::time::sleep(nap) => match (ours(), park) {
                (false, _) => Ok(Done::Abandoned),
                // Unless the lane was parked behind it meanwhile (its endpoint held too many).
                (true, Some((lane, _))) if !shared.parking.lane_is_parked(record, lane) => Ok(Done::Park(Box::new(OwnedRecord {
                    value: Some(delivery.encode_to_vec().into()),
                    ..record.clone()
                }))),
                (true, _) => handle(shared, record, *delivery).await,
            },
        };
    }
    match result {
        Ok(Done::Finished) => {
            if let Some(lane) = lane {
                shared.sequences.ended(&String::from_utf8_lossy(&record.key), &lane, crate::parked::sequence(record));
            }
            tracker.complete(&record.topic, record.partition, record.offset);
            if shared.parking.is_parked_record(record) {
                shared.parking.ended(record);
            }
            Ended::Done
        }
        Ok(Done::Park(head)) => {
            tracing::warn!(
                endpoint_id = %String::from_utf8_lossy(&record.key), lane = lane.as_deref().unwrap_or_default(), offset = record.offset,
                "ordered lane parked: its head keeps failing; the lane waits on the parked topic"
            );
            Ended::Park(head)
        }
        Ok(Done::Abandoned | Done::Again(..)) => Ended::Abandoned,
        Err(error) => {
            hookline_runtime::intake::stop_on(&shared.fatal, error, record);
            Ended::Abandoned
        }
    }
}

async fn undecodable(shared: &Shared, record: &OwnedRecord, detail: String) -> Result<Done, KafkaError> {
    tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, %detail, "poison record dead-lettered");
    dead_letter(shared, record, None, DeadLetterReason::UndecodableDelivery, detail, None).await
}

async fn handle(shared: &Shared, record: &OwnedRecord, delivery: v1::Delivery) -> Result<Done, KafkaError> {
    let pair = pair_key(&delivery.event.as_ref().expect("checked by the caller").id, &delivery.endpoint_id);
    // What the router produced (a first attempt, not a replay) and this sender already
    // delivered is a copy routed again after a router restart.
    if delivery.attempt <= 1 && delivery.replay_id.is_empty() && shared.recent.lock().contains(pair) {
        metric_catalog::SENDER_DUPLICATES_SUPPRESSED.get().increment(1);
        tracing::debug!(endpoint_id = %delivery.endpoint_id, offset = record.offset, "copy of a delivered event not sent again");
        return Ok(Done::Finished);
    }
    let entry = shared.registry.get(&delivery.endpoint_id);
    if let Gate::DeadLetter(reason, detail) = verdict::gate(&delivery.endpoint_id, entry.as_ref().map(|e| e.endpoint.disabled)) {
        return dead_letter(shared, record, Some(delivery), reason, detail, None).await;
    }
    let entry = entry.expect("the gate passes only an existing endpoint");
    let rt = shared.endpoints.get(&entry);
    // An ordered endpoint's delivery waits where others are deferred (that would reorder).
    let ordered = entry.endpoint.ordering() != v1::DeliveryOrdering::None;
    // Bulkhead: an endpoint holds a bounded share of the sender. A healthy endpoint's
    // excess waits (back-pressure); a stalled or failing one's moves on to the tier.
    let place = tokio::select! {
        place = rt.enqueue(now_ms()) => place,
        _ = shared.shutdown.cancelled() => return Ok(Done::Abandoned),
    };
    let (held, admission, via) = match place {
        Place::Held(permit) => {
            let (via, admission, transition) = rt.admit_routed(Instant::now(), delivery.attempt <= 1);
            log_transition(&entry, transition);
            (Some(permit), admission, via)
        }
        Place::Overflow => (None, Admission::Reject, Choice { target: Target::Primary, probe: false }),
    };
    let probe = match verdict::admit(held.is_some(), admission) {
        Admit::Defer(_) if ordered => return Ok(Done::Again(Box::new(delivery), crate::ordered::WAIT_FOR_ENDPOINT)),
        Admit::Defer(why) => return defer(shared, record, delivery, &rt, why).await,
        Admit::Attempt { probe } => probe,
    };
    let _slot = tokio::select! {
        slot = rt.slots.acquire() => slot.expect("endpoint slots are never closed"),
        _ = shared.shutdown.cancelled() => return Ok(Done::Abandoned),
    };
    // The breaker may have opened while this delivery waited for a slot.
    if !probe && rt.breaker_open_for(via.target) {
        if ordered {
            return Ok(Done::Again(Box::new(delivery), crate::ordered::WAIT_FOR_ENDPOINT));
        }
        return defer(shared, record, delivery, &rt, "circuit breaker open").await;
    }
    while let Some(wait) = rt.rate_wait(Instant::now()) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return Ok(Done::Abandoned),
        }
    }

    let event = delivery.event.as_ref().expect("checked by the caller");
    // The endpoint's payload transformation, before signing: what is signed is what is sent.
    let transformed = match entry.transformed(event) {
        Ok(t) => t,
        Err(error) => {
            metric_catalog::SENDER_TRANSFORM_ERRORS.get().increment(1);
            tracing::warn!(event_id = %event.id, endpoint_id = %delivery.endpoint_id, %error, "payload transformation failed: dead-lettered");
            return dead_letter(shared, record, Some(delivery), DeadLetterReason::TransformError, error.to_string(), None).await;
        }
    };
    let event = transformed.as_ref().unwrap_or(event);
    let span = attempt_span(record, &entry, &delivery);
    let outgoing_trace = span.as_ref().filter(|_| shared.propagate_trace).map(traces::Span::traceparent);
    let url = rt.url(&entry, via.target);
    // An ordered lane's delivery says where it stands in the lane.
    let sequence = match hookline_core::lane::lane_of(entry.endpoint.ordering(), &entry.endpoint.id, event) {
        Some(lane) => shared.sequences.headers(&entry.endpoint.id, &lane, crate::parked::sequence(record)),
        None => Vec::new(),
    };
    crate::lateness::record_first_attempt(&shared.meters.first_attempt_delay, &delivery, now_ms());
    let mut report = shared.attempter.attempt(&entry, url, event, now_ms(), outgoing_trace.as_deref(), &sequence).await;
    rt.answered(now_ms());
    let outcome = outcome_label(report.class);
    if let Some(span) = span {
        if report.status > 0 {
            span.set(Attribute::new("http.response.status_code", i64::from(report.status)));
        }
        span.set(Attribute::new("hookline.outcome", outcome));
        if report.class != Class::Success {
            span.fail(report.error.clone());
        }
        span.end();
    }
    shared.meters.attempts.of(outcome).increment(1);
    shared.meters.attempt_duration.of(outcome).record(report.latency.as_secs_f64());
    let down = verdict::breaker_failure(report.class, report.status);
    let (transition, switch) = rt.record_routed(via.target, !down, probe, Instant::now());
    log_transition(&entry, transition);
    let answered = crate::ops::Answered { via, transition, switch, success: report.class == Class::Success };
    crate::ops::after_attempt(shared, &entry, &rt, &event.r#type, answered).await;
    tracing::debug!(
        event_id = %event.id, endpoint_id = %delivery.endpoint_id, attempt = delivery.attempt,
        status = report.status, latency_ms = report.latency.as_millis() as u64, class = ?report.class, "attempt"
    );
    let after = verdict::after_attempt(&rt.schedule, delivery.attempt, report.class, &report.error);
    let next_attempt_at_ms = match after {
        AfterAttempt::Retry { tier, .. } if !ordered => due_at_ms(now_ms(), tier, shared.jitter, rand::random::<f64>()),
        _ => 0,
    };
    let mut attempt = v1::Attempt { url: url.to_owned(), next_attempt_at_ms, ..attempt_record(&delivery, &mut report) };
    shared.attempts.record(&attempt, &report.request_headers).await;
    // The dead letter carries the last attempt, its headers included; everything else only
    // writes it.
    let last_attempt = (ordered || matches!(after, AfterAttempt::DeadLetter { .. })).then(|| {
        report.request_headers.apply_to(&mut attempt);
        attempt
    });

    let (reason, detail) = match after {
        _ if ordered && matches!(report.class, Class::Retryable { .. }) => {
            let retry_after = if let Class::Retryable { retry_after } = report.class { retry_after } else { None };
            return lane_failure(shared, record, delivery, &entry, &rt, retry_after, &report.error, last_attempt).await;
        }
        AfterAttempt::Delivered => {
            crate::lateness::record_delivered(&shared.meters.delivery_latency, &delivery, now_ms());
            shared.recent.lock().insert(pair);
            clear_failing(shared, &entry, &rt).await;
            return Ok(Done::Finished);
        }
        AfterAttempt::Retry { attempt, tier } => {
            forward(shared, record, delivery, attempt, (tier, next_attempt_at_ms), report.error).await?;
            return Ok(Done::Finished);
        }
        AfterAttempt::DeadLetter { reason, detail, exhausted, gone } => {
            if exhausted {
                mark_failing(shared, &entry, &rt, &delivery).await;
            }
            if gone {
                disable(shared, &entry, "answered 410 Gone", |_| true).await;
            }
            (reason, detail)
        }
    };
    tracing::warn!(event_id = %event.id, endpoint_id = %delivery.endpoint_id, reason = reason.label(), %detail, "delivery dead-lettered");
    dead_letter(shared, record, Some(delivery), reason, detail, last_attempt).await
}

/// Moves a delivery on without attempting it (recorded as deferred): back through the tier
/// of its next step, with the same attempt number, since only real attempts count. A
/// delivery deferred for longer than its schedule's whole span is exhausted.
async fn defer(
    shared: &Shared,
    record: &OwnedRecord,
    delivery: v1::Delivery,
    rt: &EndpointRuntime,
    why: &str,
) -> Result<Done, KafkaError> {
    let mut report = AttemptReport {
        class: Class::Retryable { retry_after: None },
        status: 0,
        latency: Duration::ZERO,
        error: why.to_owned(),
        excerpt: Vec::new(),
        request_headers: Default::default(),
    };
    let mut attempt = attempt_record(&delivery, &mut report);
    attempt.outcome = Outcome::Deferred as i32;
    shared.meters.attempts.of("deferred").increment(1);
    let after = verdict::after_deferral(&rt.schedule, delivery.attempt, delivery.first_attempt_at_ms, now_ms(), why, &delivery.last_error);
    if let AfterDeferral::Forward { tier, .. } = after {
        attempt.next_attempt_at_ms = due_at_ms(now_ms(), tier, shared.jitter, rand::random::<f64>());
    }
    shared.attempts.record(&attempt, &report.request_headers).await;
    match after {
        AfterDeferral::Forward { attempt: next, tier } => {
            let last_error = if delivery.last_error.is_empty() { why.to_owned() } else { delivery.last_error.clone() };
            forward(shared, record, delivery, next, (tier, attempt.next_attempt_at_ms), last_error).await?;
            Ok(Done::Finished)
        }
        AfterDeferral::Exhausted(detail) => {
            dead_letter(shared, record, Some(delivery), DeadLetterReason::Exhausted, detail, Some(attempt)).await
        }
    }
}

/// An ordered lane's head failed retryably: again in place, or blocked (skipped to the DLQ,
/// or halting its endpoint).
#[allow(clippy::too_many_arguments)]
async fn lane_failure(
    shared: &Shared,
    record: &OwnedRecord,
    delivery: v1::Delivery,
    entry: &EndpointEntry,
    rt: &EndpointRuntime,
    retry_after: Option<Duration>,
    error: &str,
    last_attempt: Option<v1::Attempt>,
) -> Result<Done, KafkaError> {
    match crate::ordered::after_failure(entry, &rt.schedule, delivery, retry_after, error) {
        crate::ordered::AfterFailure::Again(delivery, wait) => Ok(Done::Again(Box::new(delivery), wait)),
        crate::ordered::AfterFailure::Blocked { delivery, detail, halt } => {
            let action = if halt { "halt" } else { "skip" };
            metric_catalog::SENDER_LANES_BLOCKED.with([action]).increment(1);
            tracing::warn!(endpoint_id = %delivery.endpoint_id, offset = record.offset, action, %detail, "ordered lane blocked");
            if halt {
                disable(shared, entry, &detail, |_| true).await;
            }
            dead_letter(shared, record, Some(delivery), DeadLetterReason::Exhausted, detail, last_attempt).await
        }
    }
}

/// A span for one attempt, under the record's trace context (the router's span; for a
/// delivery without the header, the event's own), if it carries one.
fn attempt_span(record: &OwnedRecord, entry: &EndpointEntry, delivery: &v1::Delivery) -> Option<traces::Span> {
    let event = delivery.event.as_ref()?;
    let (tp, ts) = match (record.header("traceparent"), &event.trace) {
        (Some(tp), _) => (tp, ""),
        (None, Some(t)) => (t.traceparent.as_str(), t.tracestate.as_str()),
        (None, None) => return None,
    };
    let parent = traces::parent(tp, ts)?;
    let host = entry.endpoint.url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned)).unwrap_or_default();
    let mut attributes = vec![
        Attribute::new("http.request.method", "POST"),
        Attribute::new("server.address", host),
        Attribute::new("hookline.endpoint_id", delivery.endpoint_id.clone()),
        Attribute::new("hookline.event_id", event.id.clone()),
        Attribute::new("hookline.attempt", i64::from(delivery.attempt.max(1))),
    ];
    if !delivery.replay_id.is_empty() {
        attributes.push(Attribute::new("hookline.replay_id", delivery.replay_id.clone()));
    }
    Some(traces::Span::start("hookline.deliver", traces::Kind::Client, &parent, attributes))
}

/// Produces the delivery's next attempt to its tier, due at `due_ms` (as its attempt record
/// says), and waits for the acknowledgement.
async fn forward(
    shared: &Shared,
    record: &OwnedRecord,
    mut delivery: v1::Delivery,
    attempt: u32,
    (tier, due_ms): (Delay, i64),
    last_error: String,
) -> Result<(), KafkaError> {
    if delivery.first_attempt_at_ms == 0 {
        delivery.first_attempt_at_ms = now_ms();
    }
    delivery.attempt = attempt;
    delivery.last_error = last_error;
    delivery.next_attempt_at_ms = due_ms;
    let due = delivery.next_attempt_at_ms.to_string();
    let mut headers = OwnedHeaders::new().insert(Header { key: DUE_HEADER, value: Some(due.as_str()) });
    // Later attempts stay in the trace of the first (children of the router's span).
    if let Some(tp) = record.header("traceparent") {
        headers = headers.insert(Header { key: "traceparent", value: Some(tp) });
    }
    let topic = shared.topics.retry(tier);
    metric_catalog::SENDER_RETRIES.with([tier.to_string()]).increment(1);
    let ack = kafka::enqueue(&shared.producer, &topic, &delivery.endpoint_id, &delivery.encode_to_vec(), Some(headers)).await?;
    kafka::acked(ack).await
}

fn outcome_label(class: Class) -> &'static str {
    match class {
        Class::Success => "success",
        Class::Retryable { .. } => "retryable",
        Class::Permanent => "permanent",
        Class::Gone => "gone",
        Class::BlockedByPolicy => "blocked_by_policy",
    }
}

fn log_transition(entry: &EndpointEntry, transition: Option<Transition>) {
    let id = &entry.endpoint.id;
    let to = match transition {
        Some(Transition::Opened { .. }) => "open",
        Some(Transition::HalfOpened) => "half_open",
        Some(Transition::Closed) => "closed",
        None => return,
    };
    metric_catalog::SENDER_BREAKER_TRANSITIONS.with([to]).increment(1);
    match transition {
        Some(Transition::Opened { cooldown }) => {
            tracing::warn!(endpoint_id = %id, cooldown_ms = cooldown.as_millis() as u64, "circuit breaker opened")
        }
        Some(Transition::HalfOpened) => tracing::info!(endpoint_id = %id, "circuit breaker half-open: probing"),
        Some(Transition::Closed) => tracing::info!(endpoint_id = %id, "circuit breaker closed"),
        None => {}
    }
}

/// The attempt record of `report` (its excerpt and request headers move into it).
fn attempt_record(delivery: &v1::Delivery, report: &mut AttemptReport) -> v1::Attempt {
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
        response_excerpt: std::mem::take(&mut report.excerpt),
        url: String::new(),
        next_attempt_at_ms: 0,
        // Recorded encoded, apart ([`crate::attempt::RecordedHeaders`]).
        request_headers: Default::default(),
    }
}

async fn dead_letter(
    shared: &Shared,
    record: &OwnedRecord,
    delivery: Option<v1::Delivery>,
    reason: DeadLetterReason,
    detail: String,
    last_attempt: Option<v1::Attempt>,
) -> Result<Done, KafkaError> {
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
        source: Some(record.source(keep_raw)),
        dead_at_ms: now_ms(),
    };
    metric_catalog::SENDER_DEAD_LETTERS.with([reason.label()]).increment(1);
    let at = kafka::At::dead_letter(&dead);
    let ack = kafka::enqueue_to(&shared.producer, &shared.topics.dlq, at, &key, &dead.encode_to_vec(), None).await?;
    kafka::acked(ack).await?;
    if let Some(d) = &dead.delivery {
        crate::ops::dead_lettered(shared, d, reason, &dead.detail, dead.last_attempt.as_ref(), dead.dead_at_ms).await;
    }
    Ok(Done::Finished)
}

/// Writes a change to an endpoint through the endpoints topic, so every replica converges.
/// The change applies to the registry's freshest copy, not to the copy this delivery started
/// with: a person may have edited or deleted the endpoint while the request was in flight,
/// and that edit must not be undone. Nothing is written when the endpoint is gone, when its
/// URL is no longer the one this delivery went to (the verdict was about the old URL), or
/// when `change` finds nothing to do. Returns what was written.
pub(crate) async fn change_endpoint(
    shared: &Shared,
    sent_to: &EndpointEntry,
    what: &str,
    change: impl FnOnce(&mut v1::Endpoint) -> bool,
) -> Option<v1::Endpoint> {
    let fresh = shared.registry.get(&sent_to.endpoint.id)?;
    if fresh.endpoint.url != sent_to.endpoint.url {
        return None;
    }
    let mut endpoint = fresh.endpoint.clone();
    if !change(&mut endpoint) {
        return None;
    }
    endpoint.updated_at_ms = now_ms();
    match registry::put_endpoint(&shared.producer, &shared.topics.endpoints, shared.registry.secret_keys(), &endpoint).await {
        Ok(_) => Some(endpoint),
        Err(error) => {
            tracing::error!(endpoint_id = %endpoint.id, %error, what, "endpoint change not written");
            None
        }
    }
}

/// An exhausted delivery: start the endpoint's failing period, or disable it once the
/// period is longer than `retry.disable_after_ms`.
async fn mark_failing(shared: &Shared, entry: &EndpointEntry, rt: &EndpointRuntime, delivery: &v1::Delivery) {
    let since = entry.endpoint.failing_since_ms;
    if since == 0 {
        if !rt.failing_marked.swap(true, Ordering::AcqRel) {
            let started = if delivery.first_attempt_at_ms > 0 { delivery.first_attempt_at_ms } else { now_ms() };
            change_endpoint(shared, entry, "mark failing", |e| {
                let unmarked = e.failing_since_ms == 0;
                if unmarked {
                    e.failing_since_ms = started;
                }
                unmarked
            })
            .await;
        }
    } else if now_ms() - since >= shared.disable_after_ms {
        let days = shared.disable_after_ms as f64 / 86_400_000.0;
        let limit = shared.disable_after_ms;
        // Unless a person re-enabled it meanwhile (which clears the failing period).
        let still_failing = |e: &v1::Endpoint| e.failing_since_ms != 0 && now_ms() - e.failing_since_ms >= limit;
        disable(shared, entry, &format!("every delivery exhausted for {days:.2} days"), still_failing).await;
    }
}

async fn clear_failing(shared: &Shared, entry: &EndpointEntry, rt: &EndpointRuntime) {
    if entry.endpoint.failing_since_ms != 0 && rt.failing_marked.swap(false, Ordering::AcqRel) {
        change_endpoint(shared, entry, "clear failing", |e| std::mem::take(&mut e.failing_since_ms) != 0).await;
    }
}

/// Disables the endpoint (if `still` holds for its freshest copy) and publishes
/// `hookline.endpoint.disabled` to the events topic, so the disabling can itself be
/// delivered as a webhook.
async fn disable(shared: &Shared, entry: &EndpointEntry, why: &str, still: impl FnOnce(&v1::Endpoint) -> bool) {
    if entry.endpoint.disabled {
        return;
    }
    // The version the disabling changed names it: the same for racing senders and a
    // restarted one, another for the next disabling.
    let mut version_ms = 0;
    let change = |e: &mut v1::Endpoint| {
        version_ms = e.updated_at_ms;
        let act = !e.disabled && still(e);
        if act {
            e.disabled_reason = why.to_owned();
        }
        e.disabled = true;
        act
    };
    let Some(endpoint) = change_endpoint(shared, entry, "disable", change).await else {
        return;
    };
    tracing::warn!(endpoint_id = %endpoint.id, reason = why, "endpoint disabled");
    let event = OpsEvent::Disabled(EndpointDisabled {
        endpoint_id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        reason: why.to_owned(),
        failing_since_ms: endpoint.failing_since_ms,
        disabled_at_ms: endpoint.updated_at_ms,
        version_ms,
    });
    crate::ops::publish(shared, &endpoint.tenant, &event).await;
}
