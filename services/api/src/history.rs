//! What the API knows about deliveries, materialised from the attempts and DLQ topics with
//! bounded memory: the last N attempts per endpoint, the attempts of the last M events, and
//! the last K dead letters. Rebuilt at start from `api.history_lookback_ms` back, then kept
//! live; every API replica builds its own from the topics.

use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::shutdown::Shutdown;
use parking_lot::Mutex;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub struct History {
    // Both views share each attempt.
    per_endpoint: Mutex<HashMap<String, VecDeque<Arc<v1::Attempt>>>>,
    per_event: Mutex<EventIndex>,
    dead: Mutex<VecDeque<v1::DeadLetter>>,
    per_endpoint_cap: usize,
    dead_cap: usize,
}

/// Attempts by event id; the oldest event is forgotten first, when either the events or
/// the attempts held pass their cap (at fan-out 10, 100,000 events are 1,000,000 attempts).
struct EventIndex {
    map: HashMap<String, Vec<Arc<v1::Attempt>>>,
    order: VecDeque<String>,
    cap: usize,
    attempts: usize,
    attempts_cap: usize,
}

impl EventIndex {
    fn push(&mut self, attempt: Arc<v1::Attempt>) {
        if !self.map.contains_key(&attempt.event_id) {
            self.order.push_back(attempt.event_id.clone());
        }
        self.map.entry(attempt.event_id.clone()).or_default().push(attempt);
        self.attempts += 1;
        // The newest event always stays, however many attempts it has.
        while (self.order.len() > self.cap || self.attempts > self.attempts_cap) && self.order.len() > 1 {
            let Some(old) = self.order.pop_front() else { break };
            self.attempts -= self.map.remove(&old).map_or(0, |a| a.len());
        }
    }
}

/// Filters of `GET /v1/dlq`.
#[derive(Debug, Default, Clone)]
pub struct DeadLetterFilter {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: Option<v1::DeadLetterReason>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: usize,
}

/// Success rate and latency of one endpoint over a recent window.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub attempts: usize,
    pub successes: usize,
    pub latency_ms: Option<[u32; 3]>,
}

impl History {
    pub fn new(per_endpoint: usize, events: usize, attempts: usize, dead: usize) -> Self {
        let index = EventIndex { map: HashMap::new(), order: VecDeque::new(), cap: events, attempts: 0, attempts_cap: attempts };
        Self {
            per_endpoint: Mutex::default(),
            per_event: Mutex::new(index),
            dead: Mutex::default(),
            per_endpoint_cap: per_endpoint,
            dead_cap: dead,
        }
    }

    pub fn record_attempt(&self, attempt: v1::Attempt) {
        let attempt = Arc::new(attempt);
        {
            let mut per = self.per_endpoint.lock();
            let list = per.entry(attempt.endpoint_id.clone()).or_default();
            if list.len() == self.per_endpoint_cap {
                list.pop_front();
            }
            list.push_back(Arc::clone(&attempt));
        }
        self.per_event.lock().push(attempt);
    }

    pub fn record_dead_letter(&self, dead: v1::DeadLetter) {
        let mut list = self.dead.lock();
        if list.len() == self.dead_cap {
            list.pop_front();
        }
        list.push_back(dead);
    }

    /// The endpoint's most recent attempts, newest first.
    pub fn endpoint_attempts(&self, endpoint_id: &str, limit: usize) -> Vec<v1::Attempt> {
        let per = self.per_endpoint.lock();
        per.get(endpoint_id).map(|l| l.iter().rev().take(limit).map(|a| (**a).clone()).collect()).unwrap_or_default()
    }

    /// Every attempt recorded for the event, in order.
    pub fn event_attempts(&self, event_id: &str) -> Vec<v1::Attempt> {
        self.per_event.lock().map.get(event_id).map(|l| l.iter().map(|a| (**a).clone()).collect()).unwrap_or_default()
    }

    /// Real attempts (not deferrals) of the endpoint since `since_ms`.
    pub fn stats(&self, endpoint_id: &str, since_ms: i64) -> Stats {
        let per = self.per_endpoint.lock();
        let recent: Vec<&Arc<v1::Attempt>> = per
            .get(endpoint_id)
            .map(|l| l.iter().filter(|a| a.at_ms >= since_ms && a.outcome() != v1::Outcome::Deferred).collect())
            .unwrap_or_default();
        let successes = recent.iter().filter(|a| a.outcome() == v1::Outcome::Success).count();
        let mut latencies: Vec<u32> = recent.iter().map(|a| a.latency_ms).collect();
        latencies.sort_unstable();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        let latency_ms = (!latencies.is_empty()).then(|| [pct(50), pct(95), pct(99)]);
        Stats { attempts: recent.len(), successes, latency_ms }
    }

    /// Dead letters matching `filter`, newest first.
    pub fn dead_letters(&self, filter: &DeadLetterFilter) -> Vec<v1::DeadLetter> {
        let list = self.dead.lock();
        list.iter()
            .rev()
            .filter(|d| {
                let delivery = d.delivery.as_ref();
                let event_type = delivery.and_then(|x| x.event.as_ref()).map(|e| e.r#type.as_str());
                filter.endpoint_id.as_deref().is_none_or(|id| delivery.is_some_and(|x| x.endpoint_id == id))
                    && filter.event_type.as_deref().is_none_or(|t| event_type == Some(t))
                    && filter.reason.is_none_or(|r| d.reason() == r)
                    && filter.from_ms.is_none_or(|f| d.dead_at_ms >= f)
                    && filter.to_ms.is_none_or(|t| d.dead_at_ms < t)
            })
            .take(filter.limit)
            .cloned()
            .collect()
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

/// Decodes an attempts-topic record (a batch, or one attempt from an older sender) for
/// [`History::record_attempt`].
pub fn apply_attempt(history: &History, bytes: &[u8]) {
    for a in hookline_proto::attempts_in(bytes).unwrap_or_default() {
        history.record_attempt(a);
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
    fn memory_is_bounded_and_newest_first() {
        let h = History::new(2, 2, 100, 2);
        for i in 0..5 {
            h.record_attempt(attempt(&format!("e{i}"), "ep", v1::Outcome::Success, 1, i));
        }
        let ids: Vec<String> = h.endpoint_attempts("ep", 10).into_iter().map(|a| a.event_id).collect();
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
                h.record_attempt(attempt(&format!("e{i}"), ep, v1::Outcome::Success, 1, i));
            }
        }
        let held: Vec<usize> = (0..4).map(|i| h.event_attempts(&format!("e{i}")).len()).collect();
        assert_eq!(held, [0, 0, 3, 3], "whole events go, oldest first, until 7 or fewer are held");
        // An event with more attempts than the cap is still shown while it is the newest.
        let big = History::new(100, 1_000, 2, 1);
        for ep in ["a", "b", "c", "d"] {
            big.record_attempt(attempt("huge", ep, v1::Outcome::Success, 1, 0));
        }
        assert_eq!(big.event_attempts("huge").len(), 4);
    }

    #[test]
    fn stats_count_real_attempts_in_the_window() {
        let h = History::new(100, 100, 100, 1);
        h.record_attempt(attempt("a", "ep", v1::Outcome::Retryable, 100, 10));
        h.record_attempt(attempt("a", "ep", v1::Outcome::Success, 20, 20));
        h.record_attempt(attempt("b", "ep", v1::Outcome::Deferred, 0, 30));
        h.record_attempt(attempt("c", "ep", v1::Outcome::Success, 10, 1));
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
        assert_eq!(h.dead_letters(&all).len(), 2);
        let by_endpoint = DeadLetterFilter { endpoint_id: Some("b".into()), ..all.clone() };
        assert_eq!(h.dead_letters(&by_endpoint)[0].reason(), v1::DeadLetterReason::EndpointGone);
        let by_time = DeadLetterFilter { from_ms: Some(50), ..all.clone() };
        assert_eq!(h.dead_letters(&by_time).len(), 1);
        let by_reason = DeadLetterFilter { reason: Some(v1::DeadLetterReason::Exhausted), ..all };
        assert_eq!(h.dead_letters(&by_reason).len(), 1);
    }
}
