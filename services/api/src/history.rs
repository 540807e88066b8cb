//! What the API knows about deliveries, materialised from the attempts and DLQ topics with
//! bounded memory: the last N attempts per endpoint, the attempts of the last M events, and
//! the last K dead letters. Rebuilt at start from `api.history_lookback_ms` back, then kept
//! live; every API replica builds its own from the topics. An attempt is held as its
//! encoded record and the few fields the views sort by ([`Held`]), and decoded in full only
//! when it is shown: a sender's every attempt passes through here, few are ever looked at.

use bytes::Bytes;
use hookline_core::keyed::{get_or_default, KeyedMap};
use hookline_proto::{v1, AttemptHead};
use hookline_proto::Message as _;
use hookline_runtime::shutdown::Shutdown;
use parking_lot::Mutex;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use crate::series::{Point, Series};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

/// An attempt as the history holds it: its head, and its encoded record (a slice of the
/// attempts-topic record it came in, shared with the others of that record). A record, one
/// endpoint's batch of at most 256 KiB, is freed when no view holds any of its attempts: so
/// memory holds, per endpoint, about one batch more than the views show.
pub struct Held {
    head: AttemptHead,
    raw: Bytes,
}

impl Held {
    fn decode(raw: Bytes) -> Result<Self, prost::DecodeError> {
        Ok(Self { head: AttemptHead::decode(raw.clone())?, raw })
    }

    /// The whole attempt (`None` if a field past the head does not decode: not shown).
    fn attempt(&self) -> Option<v1::Attempt> {
        v1::Attempt::decode(self.raw.clone()).ok()
    }
}

impl std::ops::Deref for Held {
    type Target = AttemptHead;
    fn deref(&self) -> &AttemptHead {
        &self.head
    }
}

#[cfg(test)]
impl From<v1::Attempt> for Held {
    fn from(attempt: v1::Attempt) -> Self {
        Self::decode(attempt.encode_to_vec().into()).expect("an encoded attempt decodes")
    }
}

/// An endpoint's last attempts, oldest first, with their cursors.
type Recent = VecDeque<(u64, Arc<Held>)>;

pub struct History {
    // Every view shares each attempt.
    per_endpoint: Mutex<KeyedMap<Recent>>,
    per_event: Mutex<EventIndex>,
    dead: Mutex<DeadLetters>,
    charts: Mutex<Charts>,
    per_endpoint_cap: usize,
    dead_cap: usize,
    /// Numbers items in arrival order: the cursors of the paginated views.
    seq: AtomicU64,
}

/// Attempts by event id; the oldest event is forgotten first, when either the events or
/// the attempts held pass their cap (at fan-out 10, 100,000 events are 1,000,000 attempts).
struct EventIndex {
    map: KeyedMap<Vec<Arc<Held>>>,
    /// Event ids by first arrival, with their cursor.
    order: VecDeque<(u64, String)>,
    cap: usize,
    attempts: usize,
    attempts_cap: usize,
}

impl EventIndex {
    fn push(&mut self, seq: u64, attempt: Arc<Held>) {
        // The event's id is copied only for an event not seen before (fan-out 10: one
        // attempt in ten), not for each attempt.
        match self.map.get_mut(&attempt.event_id) {
            Some(attempts) => attempts.push(attempt),
            None => {
                self.order.push_back((seq, attempt.event_id.clone()));
                self.map.insert(attempt.event_id.clone(), vec![attempt]);
            }
        }
        self.attempts += 1;
        // The newest event always stays, however many attempts it has.
        while (self.order.len() > self.cap || self.attempts > self.attempts_cap) && self.order.len() > 1 {
            let Some((_, old)) = self.order.pop_front() else { break };
            self.attempts -= self.map.remove(&old).map_or(0, |a| a.len());
        }
    }
}

/// The last dead letters, and which (event, endpoint) pairs they hold.
#[derive(Default)]
struct DeadLetters {
    list: VecDeque<(u64, v1::DeadLetter)>,
    pairs: HashMap<(String, String), u32>,
}

fn dead_pair(d: &v1::DeadLetter) -> Option<(String, String)> {
    let delivery = d.delivery.as_ref()?;
    Some((delivery.event.as_ref()?.id.clone(), delivery.endpoint_id.clone()))
}

/// Per-minute charts, and the event types seen (per tenant), bounded.
#[derive(Default)]
struct Charts {
    endpoints: KeyedMap<Series>,
    pipeline: Series,
    types: TypesSeen,
}

const TYPES_KEPT: usize = 10_000;

/// The event types seen, by tenant then type: an attempt of a type already seen is counted
/// without building a key. At most `TYPES_KEPT`; the type seen longest ago makes room.
#[derive(Default)]
struct TypesSeen {
    by_tenant: KeyedMap<KeyedMap<TypeSeen>>,
    len: usize,
}

impl TypesSeen {
    fn record(&mut self, tenant: &str, event_type: &str, at_ms: i64) {
        let known = self.by_tenant.get(tenant).is_some_and(|types| types.contains_key(event_type));
        if !known {
            if self.len >= TYPES_KEPT {
                self.forget_oldest();
            }
            self.len += 1;
        }
        let seen = get_or_default(get_or_default(&mut self.by_tenant, tenant), event_type);
        if !known {
            (seen.tenant, seen.event_type) = (tenant.to_owned(), event_type.to_owned());
        }
        seen.attempts += 1;
        seen.last_seen_ms = seen.last_seen_ms.max(at_ms);
    }

    fn forget_oldest(&mut self) {
        let Some((tenant, event_type)) =
            self.values().min_by_key(|t| t.last_seen_ms).map(|t| (t.tenant.clone(), t.event_type.clone()))
        else {
            return;
        };
        if let Some(types) = self.by_tenant.get_mut(&tenant) {
            types.remove(&event_type);
            if types.is_empty() {
                self.by_tenant.remove(&tenant);
            }
        }
        self.len -= 1;
    }

    fn values(&self) -> impl Iterator<Item = &TypeSeen> {
        self.by_tenant.values().flat_map(KeyedMap::values)
    }
}

/// An event type as the attempts show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeSeen {
    pub tenant: String,
    pub event_type: String,
    pub attempts: u64,
    pub last_seen_ms: i64,
}

/// Filters of `GET /v1/dlq`.
#[derive(Debug, Default, Clone)]
pub struct DeadLetterFilter {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub event_id: Option<String>,
    pub reason: Option<v1::DeadLetterReason>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only items older than this cursor (the `next` of the previous page).
    pub before: Option<u64>,
    pub limit: usize,
}

/// Where a delivery (an event to one endpoint) stands, as its attempts and dead letters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The last attempt succeeded.
    Delivered,
    /// It failed and will be tried again (or is being retried in its ordered lane).
    Pending,
    /// It is in the DLQ, or failed in a way that sends it there.
    Dead,
}

impl DeliveryStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Delivered, Self::Pending, Self::Dead].into_iter().find(|s| s.name() == text)
    }
}

/// One endpoint's part of an event's fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySummary {
    pub endpoint_id: String,
    pub status: DeliveryStatus,
    /// Real attempts (deferrals excluded).
    pub attempts: u32,
    pub last_status: u32,
    pub last_at_ms: i64,
    pub next_attempt_at_ms: Option<i64>,
}

/// An event of the event log: its fan-out to every endpoint that has attempted it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub cursor: u64,
    pub event_id: String,
    pub event_type: String,
    pub tenant: String,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// Dead if a delivery is, else pending if one is, else delivered.
    pub status: DeliveryStatus,
    pub deliveries: Vec<DeliverySummary>,
}

/// Filters of `GET /v1/events`.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// First attempted at or after (ms) ...
    pub from_ms: Option<i64>,
    /// ... and before (ms).
    pub to_ms: Option<i64>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// Success rate and latency of one endpoint over a recent window.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub attempts: usize,
    pub successes: usize,
    pub latency_ms: Option<[u32; 3]>,
}

/// A page of items and the cursor of the next one.
pub type Page<T> = (Vec<T>, Option<u64>);

/// The newest `limit` of `items` (oldest first, each with its cursor) older than `before`
/// that `keep` keeps, newest first, and the cursor of the next page.
fn page_newest_first<'a, T: 'a, R>(
    items: impl DoubleEndedIterator<Item = (u64, &'a T)>,
    before: Option<u64>,
    limit: usize,
    mut keep: impl FnMut(u64, &'a T) -> Option<R>,
) -> Page<R> {
    let mut out = Vec::new();
    let mut last = None;
    for (seq, item) in items.rev().filter(|(seq, _)| before.is_none_or(|b| *seq < b)) {
        if out.len() == limit {
            return (out, last);
        }
        if let Some(r) = keep(seq, item) {
            out.push(r);
            last = Some(seq);
        }
    }
    (out, None)
}

impl History {
    pub fn new(per_endpoint: usize, events: usize, attempts: usize, dead: usize) -> Self {
        let index = EventIndex { map: KeyedMap::default(), order: VecDeque::new(), cap: events, attempts: 0, attempts_cap: attempts };
        Self {
            per_endpoint: Mutex::default(),
            per_event: Mutex::new(index),
            dead: Mutex::default(),
            charts: Mutex::default(),
            per_endpoint_cap: per_endpoint,
            dead_cap: dead,
            seq: AtomicU64::new(1),
        }
    }

    pub fn record_attempt(&self, attempt: Held) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let attempt = Arc::new(attempt);
        {
            let mut per = self.per_endpoint.lock();
            let list = get_or_default(&mut per, &attempt.endpoint_id);
            if list.len() == self.per_endpoint_cap {
                list.pop_front();
            }
            list.push_back((seq, Arc::clone(&attempt)));
        }
        if attempt.outcome() != v1::Outcome::Deferred {
            let mut charts = self.charts.lock();
            let success = attempt.outcome() == v1::Outcome::Success;
            charts.pipeline.record(attempt.at_ms, success, attempt.latency_ms);
            get_or_default(&mut charts.endpoints, &attempt.endpoint_id).record(attempt.at_ms, success, attempt.latency_ms);
            charts.types.record(&attempt.tenant, &attempt.event_type, attempt.at_ms);
        }
        self.per_event.lock().push(seq, attempt);
    }

    pub fn record_dead_letter(&self, dead: v1::DeadLetter) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let mut d = self.dead.lock();
        if d.list.len() == self.dead_cap {
            if let Some(pair) = d.list.pop_front().and_then(|(_, old)| dead_pair(&old)) {
                if let Some(n) = d.pairs.get_mut(&pair) {
                    *n -= 1;
                    if *n == 0 {
                        d.pairs.remove(&pair);
                    }
                }
            }
        }
        if let Some(pair) = dead_pair(&dead) {
            *d.pairs.entry(pair).or_default() += 1;
        }
        d.list.push_back((seq, dead));
    }

    /// The endpoint's attempts, newest first, a page at a time.
    pub fn endpoint_attempts(&self, endpoint_id: &str, before: Option<u64>, limit: usize) -> Page<v1::Attempt> {
        let per = self.per_endpoint.lock();
        let Some(list) = per.get(endpoint_id) else { return (Vec::new(), None) };
        page_newest_first(list.iter().map(|(seq, a)| (*seq, a)), before, limit, |_, a| a.attempt())
    }

    /// Every attempt recorded for the event, in order.
    pub fn event_attempts(&self, event_id: &str) -> Vec<v1::Attempt> {
        self.per_event.lock().map.get(event_id).map(|l| l.iter().filter_map(|a| a.attempt()).collect()).unwrap_or_default()
    }

    /// Real attempts (not deferrals) of the endpoint since `since_ms`.
    pub fn stats(&self, endpoint_id: &str, since_ms: i64) -> Stats {
        let per = self.per_endpoint.lock();
        let recent: Vec<&Arc<Held>> = per
            .get(endpoint_id)
            .map(|l| l.iter().map(|(_, a)| a).filter(|a| a.at_ms >= since_ms && a.outcome() != v1::Outcome::Deferred).collect())
            .unwrap_or_default();
        let successes = recent.iter().filter(|a| a.outcome() == v1::Outcome::Success).count();
        let mut latencies: Vec<u32> = recent.iter().map(|a| a.latency_ms).collect();
        latencies.sort_unstable();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        let latency_ms = (!latencies.is_empty()).then(|| [pct(50), pct(95), pct(99)]);
        Stats { attempts: recent.len(), successes, latency_ms }
    }

    /// The endpoint's last `minutes` (at most an hour), minute by minute.
    pub fn endpoint_series(&self, endpoint_id: &str, now_ms: i64, minutes: usize) -> Vec<Point> {
        let charts = self.charts.lock();
        charts.endpoints.get(endpoint_id).map(|s| s.points(now_ms, minutes)).unwrap_or_else(|| Series::default().points(now_ms, minutes))
    }

    /// Every endpoint's attempts, minute by minute.
    pub fn pipeline_series(&self, now_ms: i64, minutes: usize) -> Vec<Point> {
        self.charts.lock().pipeline.points(now_ms, minutes)
    }

    /// The event types attempted, most recently seen first, of `tenant` or of every tenant.
    pub fn types_seen(&self, tenant: Option<&str>) -> Vec<TypeSeen> {
        let charts = self.charts.lock();
        let mut seen: Vec<TypeSeen> = charts.types.values().filter(|t| tenant.is_none_or(|x| t.tenant == x)).cloned().collect();
        seen.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.event_type.cmp(&b.event_type)));
        seen
    }

    /// Dead letters matching `filter`, newest first, a page at a time.
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Page<v1::DeadLetter> {
        let d = self.dead.lock();
        page_newest_first(d.list.iter().map(|(seq, x)| (*seq, x)), filter.before, filter.limit, |_, d| {
            let delivery = d.delivery.as_ref();
            let event = delivery.and_then(|x| x.event.as_ref());
            let keep = filter.endpoint_id.as_deref().is_none_or(|id| delivery.is_some_and(|x| x.endpoint_id == id))
                && filter.event_type.as_deref().is_none_or(|t| event.is_some_and(|e| e.r#type == t))
                && filter.tenant.as_deref().is_none_or(|t| event.is_some_and(|e| e.tenant == t))
                && filter.event_id.as_deref().is_none_or(|id| event.is_some_and(|e| e.id == id))
                && filter.reason.is_none_or(|r| d.reason() == r)
                && filter.from_ms.is_none_or(|f| d.dead_at_ms >= f)
                && filter.to_ms.is_none_or(|t| d.dead_at_ms < t);
            keep.then(|| d.clone())
        })
    }

    /// The event log: events matching `filter`, newest first, a page at a time.
    pub fn events(&self, filter: &EventFilter) -> Page<EventSummary> {
        let index = self.per_event.lock();
        let dead = self.dead.lock();
        let matching = |seq: u64, id: &String| -> Option<EventSummary> {
            let attempts = index.map.get(id)?;
            let first = attempts.first()?;
            let cheap = filter.event_type.as_deref().is_none_or(|t| first.event_type == t)
                && filter.tenant.as_deref().is_none_or(|t| first.tenant == t)
                && filter.from_ms.is_none_or(|f| first.at_ms >= f)
                && filter.to_ms.is_none_or(|t| first.at_ms < t)
                && filter.endpoint_id.as_deref().is_none_or(|ep| attempts.iter().any(|a| a.endpoint_id == ep));
            if !cheap {
                return None;
            }
            let summary = summarize(seq, attempts, |endpoint| dead.pairs.contains_key(&(id.clone(), endpoint.to_owned())));
            filter.status.is_none_or(|s| summary.status == s).then_some(summary)
        };
        match &filter.event_id {
            // One event: no scan.
            Some(id) => {
                let found = index.order.iter().find(|(_, x)| x == id).and_then(|(seq, x)| matching(*seq, x));
                (found.into_iter().collect(), None)
            }
            None => page_newest_first(index.order.iter().map(|(seq, id)| (*seq, id)), filter.before, filter.limit, matching),
        }
    }
}

/// The fan-out of one event from its attempts (in order); `is_dead` tells which of its
/// deliveries are in the DLQ.
fn summarize(cursor: u64, attempts: &[Arc<Held>], is_dead: impl Fn(&str) -> bool) -> EventSummary {
    let mut deliveries: Vec<DeliverySummary> = Vec::new();
    for a in attempts {
        let i = match deliveries.iter().position(|d| d.endpoint_id == a.endpoint_id) {
            Some(i) => i,
            None => {
                deliveries.push(DeliverySummary {
                    endpoint_id: a.endpoint_id.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    last_status: 0,
                    last_at_ms: 0,
                    next_attempt_at_ms: None,
                });
                deliveries.len() - 1
            }
        };
        let d = &mut deliveries[i];
        if a.outcome() != v1::Outcome::Deferred {
            d.attempts += 1;
            d.last_status = a.status;
        }
        d.last_at_ms = d.last_at_ms.max(a.at_ms);
        d.next_attempt_at_ms = (a.next_attempt_at_ms > 0).then_some(a.next_attempt_at_ms);
        d.status = match a.outcome() {
            v1::Outcome::Success => DeliveryStatus::Delivered,
            v1::Outcome::Retryable | v1::Outcome::Deferred | v1::Outcome::Unspecified => DeliveryStatus::Pending,
            v1::Outcome::Permanent | v1::Outcome::Gone | v1::Outcome::BlockedByPolicy => DeliveryStatus::Dead,
        };
    }
    for d in &mut deliveries {
        if d.status != DeliveryStatus::Delivered && is_dead(&d.endpoint_id) {
            d.status = DeliveryStatus::Dead;
            d.next_attempt_at_ms = None;
        }
    }
    let status = [DeliveryStatus::Dead, DeliveryStatus::Pending]
        .into_iter()
        .find(|s| deliveries.iter().any(|d| d.status == *s))
        .unwrap_or(DeliveryStatus::Delivered);
    let first = &attempts[0];
    EventSummary {
        cursor,
        event_id: first.event_id.clone(),
        event_type: first.event_type.clone(),
        tenant: first.tenant.clone(),
        first_at_ms: first.at_ms,
        last_at_ms: attempts.iter().map(|a| a.at_ms).max().unwrap_or(first.at_ms),
        status,
        deliveries,
    }
}

/// Reads `topic` from `lookback_ms` ago into `apply`, then live, until `shutdown`.
pub async fn follow(
    cfg: &hookline_core::config::KafkaConfig,
    topic: &str,
    lookback_ms: i64,
    apply: impl Fn(&[u8]),
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let consumer = hookline_runtime::kafka::reader(cfg, &format!("hookline-api-{topic}"))?;
    let assignment = loop {
        match start_positions(&consumer, topic, lookback_ms) {
            Ok(tpl) => break tpl,
            Err(error) => {
                tracing::warn!(%error, topic, "history topic not readable yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    consumer.assign(&assignment)?;
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        match message {
            Ok(m) => apply(m.payload().unwrap_or_default()),
            Err(error) => {
                tracing::warn!(%error, topic, "history read failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn start_positions(
    consumer: &hookline_runtime::kafka::Reader,
    topic: &str,
    lookback_ms: i64,
) -> anyhow::Result<TopicPartitionList> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow::anyhow!("topic {topic} has no partitions yet"))?;
    let since = hookline_runtime::time::now_ms() - lookback_ms;
    let mut times = TopicPartitionList::new();
    for p in 0..partitions {
        times.add_partition_offset(topic, p, Offset::Offset(since))?;
    }
    Ok(consumer.offsets_for_times(times, Duration::from_secs(10))?)
}

/// Takes the attempts of an attempts-topic record (a batch, or one attempt from an older
/// sender) for [`History::record_attempt`]; the record is copied once and its attempts
/// held as slices of it.
pub fn apply_attempt(history: &History, bytes: &[u8]) {
    let record = Bytes::copy_from_slice(bytes);
    for raw in hookline_proto::encoded_attempts(&record).unwrap_or_default() {
        if let Ok(held) = Held::decode(raw) {
            history.record_attempt(held);
        }
    }
}

pub fn apply_dead_letter(history: &History, bytes: &[u8]) {
    if let Ok(d) = v1::DeadLetter::decode(bytes) {
        history.record_dead_letter(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(event: &str, endpoint: &str, outcome: v1::Outcome, latency: u32, at: i64) -> v1::Attempt {
        v1::Attempt {
            event_id: event.into(),
            endpoint_id: endpoint.into(),
            outcome: outcome as i32,
            latency_ms: latency,
            at_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_record_is_shown_whole_attempt_by_attempt() {
        let h = History::new(10, 10, 100, 2);
        let mut full = attempt("e1", "ep", v1::Outcome::Retryable, 7, 5);
        full.url = "https://example.com/hook".into();
        full.error = "503".into();
        full.request_headers = [("webhook-id".to_owned(), "e1".to_owned())].into();
        let second = attempt("e1", "ep", v1::Outcome::Success, 3, 9);
        let batch = v1::AttemptBatch { attempts: vec![full.clone(), second.clone()] };
        apply_attempt(&h, &batch.encode_to_vec());
        apply_attempt(&h, b"\xff\xff not protobuf");
        assert_eq!(h.event_attempts("e1"), [full.clone(), second.clone()]);
        assert_eq!(h.endpoint_attempts("ep", None, 10).0, [second, full]);
        assert_eq!(h.stats("ep", 0).attempts, 2);
    }

    #[test]
    fn memory_is_bounded_and_newest_first() {
        let h = History::new(2, 2, 100, 2);
        for i in 0..5 {
            h.record_attempt(attempt(&format!("e{i}"), "ep", v1::Outcome::Success, 1, i).into());
        }
        let ids: Vec<String> = h.endpoint_attempts("ep", None, 10).0.into_iter().map(|a| a.event_id).collect();
        assert_eq!(ids, ["e4", "e3"]);
        assert!(h.event_attempts("e0").is_empty(), "the oldest event was forgotten");
        assert_eq!(h.event_attempts("e4").len(), 1);
    }

    #[test]
    fn the_event_view_is_bounded_by_attempts_too() {
        // Fan-out 3: each event has three attempts; at most 7 attempts are held.
        let h = History::new(100, 1_000, 7, 1);
        for i in 0..4 {
            for ep in ["a", "b", "c"] {
                h.record_attempt(attempt(&format!("e{i}"), ep, v1::Outcome::Success, 1, i).into());
            }
        }
        let held: Vec<usize> = (0..4).map(|i| h.event_attempts(&format!("e{i}")).len()).collect();
        assert_eq!(held, [0, 0, 3, 3], "whole events go, oldest first, until 7 or fewer are held");
        // An event with more attempts than the cap is still shown while it is the newest.
        let big = History::new(100, 1_000, 2, 1);
        for ep in ["a", "b", "c", "d"] {
            big.record_attempt(attempt("huge", ep, v1::Outcome::Success, 1, 0).into());
        }
        assert_eq!(big.event_attempts("huge").len(), 4);
    }

    #[test]
    fn stats_count_real_attempts_in_the_window() {
        let h = History::new(100, 100, 100, 1);
        h.record_attempt(attempt("a", "ep", v1::Outcome::Retryable, 100, 10).into());
        h.record_attempt(attempt("a", "ep", v1::Outcome::Success, 20, 20).into());
        h.record_attempt(attempt("b", "ep", v1::Outcome::Deferred, 0, 30).into());
        h.record_attempt(attempt("c", "ep", v1::Outcome::Success, 10, 1).into());
        let s = h.stats("ep", 5);
        assert_eq!((s.attempts, s.successes), (2, 1));
        assert_eq!(s.latency_ms, Some([100, 100, 100]));
        assert_eq!(h.stats("other", 0), Stats { attempts: 0, successes: 0, latency_ms: None });
    }

    #[test]
    fn dead_letters_filter() {
        let h = History::new(1, 1, 1, 10);
        for (i, (ep, reason)) in [("a", v1::DeadLetterReason::Exhausted), ("b", v1::DeadLetterReason::EndpointGone)].iter().enumerate() {
            h.record_dead_letter(v1::DeadLetter {
                delivery: Some(v1::Delivery { endpoint_id: ep.to_string(), ..Default::default() }),
                reason: *reason as i32,
                dead_at_ms: i as i64 * 100,
                ..Default::default()
            });
        }
        let all = DeadLetterFilter { limit: 10, ..Default::default() };
        assert_eq!(h.dead_letters(&all).0.len(), 2);
        let by_endpoint = DeadLetterFilter { endpoint_id: Some("b".into()), ..all.clone() };
        assert_eq!(h.dead_letters(&by_endpoint).0[0].reason(), v1::DeadLetterReason::EndpointGone);
        let by_time = DeadLetterFilter { from_ms: Some(50), ..all.clone() };
        assert_eq!(h.dead_letters(&by_time).0.len(), 1);
        let by_reason = DeadLetterFilter { reason: Some(v1::DeadLetterReason::Exhausted), ..all };
        assert_eq!(h.dead_letters(&by_reason).0.len(), 1);
    }

    #[test]
    fn pages_cover_everything_once_newest_first() {
        let h = History::new(1, 1, 1, 1_000);
        for i in 0..25 {
            let delivery = v1::Delivery { endpoint_id: if i % 2 == 0 { "a" } else { "b" }.into(), ..Default::default() };
            h.record_dead_letter(v1::DeadLetter { delivery: Some(delivery), dead_at_ms: i, ..Default::default() });
        }
        let mut filter = DeadLetterFilter { endpoint_id: Some("a".into()), limit: 4, ..Default::default() };
        let mut seen = Vec::new();
        loop {
            let (page, next) = h.dead_letters(&filter);
            assert!(page.len() <= 4);
            seen.extend(page.iter().map(|d| d.dead_at_ms));
            match next {
                Some(cursor) => filter.before = Some(cursor),
                None => break,
            }
        }
        let expected: Vec<i64> = (0..25).rev().filter(|i| i % 2 == 0).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_event_log_shows_each_fan_out_and_its_status() {
        let h = History::new(100, 100, 1_000, 100);
        let mut failed = attempt("e1", "b", v1::Outcome::Retryable, 5, 2);
        failed.next_attempt_at_ms = 60_000;
        h.record_attempt(attempt("e1", "a", v1::Outcome::Success, 5, 1).into());
        h.record_attempt(failed.into());
        h.record_attempt(attempt("e2", "a", v1::Outcome::Success, 5, 3).into());
        h.record_attempt(attempt("e3", "a", v1::Outcome::Retryable, 5, 4).into());
        let dead = v1::Delivery { endpoint_id: "a".into(), event: Some(v1::Event { id: "e3".into(), ..Default::default() }), ..Default::default() };
        h.record_dead_letter(v1::DeadLetter { delivery: Some(dead), ..Default::default() });
        let all = EventFilter { limit: 10, ..Default::default() };
        let (events, next) = h.events(&all);
        assert_eq!(next, None);
        let ids: Vec<(&str, DeliveryStatus)> = events.iter().map(|e| (e.event_id.as_str(), e.status)).collect();
        assert_eq!(ids, [("e3", DeliveryStatus::Dead), ("e2", DeliveryStatus::Delivered), ("e1", DeliveryStatus::Pending)]);
        let e1 = &events[2];
        assert_eq!(e1.deliveries.len(), 2);
        assert_eq!(e1.deliveries[1].next_attempt_at_ms, Some(60_000));
        let pending = EventFilter { status: Some(DeliveryStatus::Pending), ..all.clone() };
        assert_eq!(h.events(&pending).0.len(), 1);
        let to_b = EventFilter { endpoint_id: Some("b".into()), ..all.clone() };
        assert_eq!(h.events(&to_b).0[0].event_id, "e1");
        let one = EventFilter { event_id: Some("e2".into()), ..all.clone() };
        assert_eq!(h.events(&one).0[0].status, DeliveryStatus::Delivered);
        let (first, cursor) = h.events(&EventFilter { limit: 2, ..all.clone() });
        assert_eq!((first.len(), cursor.is_some()), (2, true));
        let (rest, end) = h.events(&EventFilter { limit: 2, before: cursor, ..all });
        assert_eq!((rest.len(), rest[0].event_id.as_str(), end), (1, "e1", None));
        assert_eq!(h.types_seen(None).len(), 1);
    }

    #[test]
    fn the_types_seen_are_bounded_and_the_one_seen_longest_ago_goes_first() {
        let h = History::new(10, 10, 100, 10);
        let typed = |tenant: &str, event_type: &str, at: i64| v1::Attempt {
            tenant: tenant.into(),
            event_type: event_type.into(),
            ..attempt("e", "ep", v1::Outcome::Success, 1, at)
        };
        // The first type is seen again, late.
        for i in 0..TYPES_KEPT as i64 {
            h.record_attempt(typed(&format!("t{}", i % 3), &format!("type.{i}"), i + 10).into());
        }
        h.record_attempt(typed("t0", "type.0", 1_000_000).into());
        h.record_attempt(typed("t1", "new.one", 1_000_001).into());
        let seen = h.types_seen(None);
        assert_eq!(seen.len(), TYPES_KEPT);
        assert_eq!((seen[0].event_type.as_str(), seen[1].event_type.as_str()), ("new.one", "type.0"));
        assert_eq!(seen[1].attempts, 2);
        assert!(!seen.iter().any(|t| t.event_type == "type.1"), "the type seen longest ago made room");
        assert_eq!(h.types_seen(Some("t1")).iter().filter(|t| t.event_type == "new.one").count(), 1);
    }

    #[test]
    fn a_type_seen_again_is_counted_once_and_a_tenant_without_types_goes() {
        let mut types = TypesSeen::default();
        types.record("t1", "a.b", 5);
        types.record("t1", "a.b", 3);
        types.record("t2", "a.b", 7);
        assert_eq!(types.len, 2);
        let t1 = &types.by_tenant["t1"]["a.b"];
        assert_eq!((t1.tenant.as_str(), t1.event_type.as_str(), t1.attempts, t1.last_seen_ms), ("t1", "a.b", 2, 5));
        types.forget_oldest();
        assert!(!types.by_tenant.contains_key("t1"), "t1's only type was seen longest ago");
        assert_eq!((types.len, types.values().count()), (1, 1));
    }
}
