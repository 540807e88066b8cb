//! `/v1/events`: HTTP ingest for producers that do not speak Kafka, and per-event history.

use crate::auth::{Publish, Read};
use crate::models::*;
use crate::history::{DeliveryStatus, EventFilter};
use crate::problem::{ApiJson, ApiQuery, FieldError, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::future::try_join_all;
use hookline_proto::v1::{self, SchemaValidation};
use hookline_runtime::catalog::{Catalog, Checked};
use hookline_proto::Message as _;
use hookline_runtime::kafka;
use hookline_runtime::time::now_ms;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Key → (event id, accepted at), and the keys in the order they were accepted.
type Claims = (HashMap<String, (String, i64)>, VecDeque<(String, i64)>);

/// Remembers accepted idempotency keys for a window, bounded in count (oldest forgotten).
pub struct Idempotency {
    inner: Mutex<Claims>,
    window_ms: i64,
    cap: usize,
}

impl Idempotency {
    pub fn new(window_ms: i64, cap: usize) -> Self {
        Self { inner: Mutex::default(), window_ms, cap }
    }

    /// The event id already accepted under `key` within the window, or records `id` for it.
    pub fn claim(&self, key: &str, id: &str, now: i64) -> Option<String> {
        let mut guard = self.inner.lock();
        let (map, order) = &mut *guard;
        while let Some((old, at)) = order.front() {
            if now - *at <= self.window_ms && order.len() < self.cap {
                break;
            }
            if map.get(old).is_some_and(|(_, t)| t == at) {
                map.remove(old);
            }
            order.pop_front();
        }
        if let Some((existing, at)) = map.get(key) {
            if now - *at <= self.window_ms {
                return Some(existing.clone());
            }
        }
        map.insert(key.to_owned(), (id.to_owned(), now));
        order.push_back((key.to_owned(), now));
        None
    }
}

/// The caller's W3C trace context (`traceparent`, `tracestate` request headers), carried by
/// the events it publishes so their delivery is traced under it.
fn trace_of(headers: &HeaderMap) -> Option<v1::TraceContext> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let traceparent = get("traceparent");
    (!traceparent.is_empty()).then(|| v1::TraceContext { traceparent, tracestate: get("tracestate") })
}

pub(crate) fn to_event(catalog: &Catalog, e: IngestEvent, index: Option<usize>, trace: Option<v1::TraceContext>) -> Result<v1::Event, Problem> {
    let field = |f: &str| index.map_or_else(|| f.to_owned(), |i| format!("events[{i}].{f}"));
    let id = e.id.unwrap_or_else(|| format!("evt_{}", uuid::Uuid::now_v7().simple()));
    let checked = hookline_core::event::validate(&id, &e.event_type)
        .and_then(|()| hookline_core::event::validate_ordering_key(&e.ordering_key));
    if let Err(error) = checked {
        let text = error.to_string();
        let (f, problem) = text.split_once(": ").unwrap_or(("type", text.as_str()));
        return Err(Problem::field(field(f), problem));
    }
    if hookline_core::ops::is_operational(&e.event_type) {
        // Operational events are Hookline's own: a forged one would reach ops endpoints.
        return Err(Problem::field(field("type"), "is in the hookline.* namespace, reserved for Hookline's operational events"));
    }
    let version = hookline_core::contracts::version::of_event(&e.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .map_err(|err| Problem::field(field("attributes.version"), err.to_string()))?;
    // The type's schema, if the catalog has one it enforces: refused here, before Kafka.
    if let Checked::Invalid(SchemaValidation::Enforce, violations) = catalog.validate(&e.event_type, version, e.data.get().as_bytes()) {
        return Err(Problem::schema_violation(&field("data"), &violations));
    }
    Ok(v1::Event {
        id,
        r#type: e.event_type,
        tenant: e.tenant,
        source: if e.source.is_empty() { "hookline-api".into() } else { e.source },
        occurred_at_ms: e.occurred_at.unwrap_or_else(now_ms),
        content_type: "application/json".into(),
        // The caller's JSON text exactly as sent.
        payload: e.data.get().as_bytes().to_vec().into(),
        attributes: e.attributes.into_iter().collect(),
        trace,
        ordering_key: e.ordering_key,
    })
}

async fn produce(state: &AppState, events: &[v1::Event]) -> Result<(), Problem> {
    let mut acks = Vec::with_capacity(events.len());
    for e in events {
        // Keyed by the ordering key when there is one, so one key's events share a partition.
        let key = if e.ordering_key.is_empty() { &e.id } else { &e.ordering_key };
        let ack = kafka::enqueue(&state.producer, &state.topics.events, key, &e.encode_to_vec(), None)
            .await
            .map_err(|err| Problem::unavailable(format!("events topic: {err}")))?;
        acks.push(kafka::acked(ack));
    }
    try_join_all(acks).await.map_err(|err| Problem::unavailable(format!("events topic: {err}")))?;
    hookline_runtime::metric_catalog::API_EVENTS_INGESTED.get().increment(events.len() as u64);
    Ok(())
}

#[utoipa::path(post, operation_id = "publish_event", path = "/v1/events", tag = "events",
    request_body = IngestEvent,
    params(("Idempotency-Key" = Option<String>, Header, description = "Accept this request once within the idempotency window")),
    responses(
        (status = 202, description = "Durably written to the events topic (or already accepted under this key or id)", body = Accepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn ingest(
    State(s): State<Arc<AppState>>,
    _: Publish,
    headers: HeaderMap,
    ApiJson(body): ApiJson<IngestEvent>,
) -> Result<(StatusCode, HeaderMap, Json<Accepted>), Problem> {
    let caller_id = body.id.clone();
    let event = to_event(&s.catalog, body, None, trace_of(&headers))?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("key:{k}"))
        .or_else(|| caller_id.map(|id| format!("id:{id}")));
    let mut out = HeaderMap::new();
    if let Some(key) = &key {
        if let Some(existing) = s.idempotency.claim(key, &event.id, now_ms()) {
            out.insert("idempotent-replayed", http::HeaderValue::from_static("true"));
            return Ok((StatusCode::ACCEPTED, out, Json(Accepted { id: existing })));
        }
    }
    produce(&s, std::slice::from_ref(&event)).await?;
    Ok((StatusCode::ACCEPTED, out, Json(Accepted { id: event.id })))
}

#[utoipa::path(post, operation_id = "publish_events", path = "/v1/events/batch", tag = "events",
    request_body = IngestBatch,
    responses(
        (status = 202, description = "Every event durably written (ids in request order)", body = AcceptedBatch),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn ingest_batch(
    State(s): State<Arc<AppState>>,
    _: Publish,
    headers: HeaderMap,
    ApiJson(body): ApiJson<IngestBatch>,
) -> Result<(StatusCode, Json<AcceptedBatch>), Problem> {
    let trace = trace_of(&headers);
    if !(1..=1000).contains(&body.events.len()) {
        return Err(Problem::field("events", format!("has {} events; send 1 to 1000", body.events.len())));
    }
    let mut events = Vec::with_capacity(body.events.len());
    let mut errors: Vec<FieldError> = Vec::new();
    let mut caller_ids = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.into_iter().enumerate() {
        caller_ids.push(e.id.clone());
        match to_event(&s.catalog, e, Some(i), trace.clone()) {
            Ok(ev) => events.push(ev),
            // A schema violation is reported alone, with its violations.
            Err(p) if !p.violations.is_empty() => return Err(p),
            Err(p) => errors.extend(p.errors),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let now = now_ms();
    let mut ids = Vec::with_capacity(events.len());
    let mut fresh = Vec::with_capacity(events.len());
    for (event, caller_id) in events.into_iter().zip(caller_ids) {
        match caller_id.and_then(|id| s.idempotency.claim(&format!("id:{id}"), &event.id, now)) {
            Some(existing) => ids.push(existing),
            None => {
                ids.push(event.id.clone());
                fresh.push(event);
            }
        }
    }
    produce(&s, &fresh).await?;
    Ok((StatusCode::ACCEPTED, Json(AcceptedBatch { ids })))
}

#[utoipa::path(get, operation_id = "list_event_attempts", path = "/v1/events/{id}/attempts", tag = "history", params(("id" = String, Path)),
    responses((status = 200, description = "Every attempt of this event, per endpoint, oldest first", body = AttemptList),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn attempts(State(s): State<Arc<AppState>>, Read(access): Read, Path(id): Path<String>) -> Json<AttemptList> {
    let seen = s.history.event_attempts(&id).into_iter().filter(|a| access.sees(&a.tenant));
    Json(AttemptList { data: seen.map(|a| AttemptView::from(&a)).collect(), next: None })
}

#[utoipa::path(get, operation_id = "search_events", path = "/v1/events", tag = "history", params(EventQuery),
    responses((status = 200, description = "The event log: each event's fan-out to its endpoints, newest first", body = EventList),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn search(State(s): State<Arc<AppState>>, Read(access): Read, ApiQuery(q): ApiQuery<EventQuery>) -> Result<Json<EventList>, Problem> {
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(
            DeliveryStatus::parse(text).ok_or_else(|| Problem::field("status", format!("{text:?} is not one of delivered, pending, dead")))?,
        ),
    };
    let filter = EventFilter {
        event_id: q.event_id,
        endpoint_id: q.endpoint_id,
        event_type: q.event_type,
        tenant: access.tenant_filter(q.tenant)?,
        status,
        from_ms: q.from,
        to_ms: q.to,
        before: Problem::cursor(q.after.as_deref())?,
        limit: Problem::limit(q.limit, 50, 200)?,
    };
    let (page, next) = s.history.events(&filter);
    Ok(Json(EventList { data: page.iter().map(EventSummaryView::from).collect(), next: next.map(|n| n.to_string()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_within_the_window_and_bounded() {
        let i = Idempotency::new(1_000, 2);
        assert_eq!(i.claim("a", "evt_1", 0), None);
        assert_eq!(i.claim("a", "evt_2", 500), Some("evt_1".into()));
        assert_eq!(i.claim("a", "evt_3", 1_501), None, "outside the window it is new again");
        assert_eq!(i.claim("b", "evt_4", 1_502), None);
        assert_eq!(i.claim("c", "evt_5", 1_503), None);
        assert_eq!(i.claim("a", "evt_6", 1_504), None, "the oldest key was forgotten at the cap");
    }
}
