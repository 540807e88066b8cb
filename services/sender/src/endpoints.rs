//! Per-endpoint runtime state of one sender: the bulkhead (bounded in-flight requests and a
//! bounded queue), the token bucket, the circuit breaker, and the endpoint's retry schedule.
//! Rebuilt when the endpoint's limits or schedule change.

use dashmap::DashMap;
use hookline_core::breaker::{Admission, Breaker, BreakerSettings, Transition};
use hookline_core::failover::{Choice, Route, Switch, Target};
use hookline_core::ops::{HealthChange, HealthEpisode, Signal};
use hookline_core::ratelimit::TokenBucket;
use hookline_core::retry::{Delay, RetrySchedule};
use hookline_runtime::registry::EndpointEntry;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// An endpoint with requests in flight and no answer for this long is stalled: its
/// overflow moves to the retry tier instead of waiting in the sender.
pub const STALL_AFTER_MS: i64 = 1_000;

/// What a runtime was built from; a change rebuilds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    max_in_flight: usize,
    rate: u32,
    burst: u32,
    schedule: Vec<String>,
    failover_url: String,
    failover_after: u32,
}

pub struct EndpointRuntime {
    shape: Shape,
    /// Requests in flight.
    pub slots: Semaphore,
    /// Places for deliveries held (waiting or in flight).
    places: Semaphore,
    /// When the last request of this endpoint finished (ms since epoch).
    last_answer_ms: AtomicI64,
    breaker: Mutex<Breaker>,
    /// The failover URL's own breaker (unused without one).
    failover_breaker: Mutex<Breaker>,
    /// Which URL deliveries go to.
    route: Mutex<Route>,
    /// When `hookline.endpoint.failing` / `.recovered` are due.
    episode: Mutex<HealthEpisode>,
    bucket: Option<Mutex<TokenBucket>>,
    pub schedule: RetrySchedule,
    /// A "failing since" mark was written and not yet cleared (avoids rewriting it).
    pub failing_marked: AtomicBool,
}

/// Where a delivery stands in its endpoint's queue.
pub enum Place<'a> {
    Held(SemaphorePermit<'a>),
    /// The queue is full and the endpoint is stalled or its breaker is open: move on.
    Overflow,
}

impl EndpointRuntime {
    /// Takes a place in the endpoint's bounded queue. When it is full, a healthy endpoint
    /// (answering, breaker closed) makes the caller wait, which is back-pressure on the
    /// intake; a stalled or failing one overflows, so it cannot hold the sender's window.
    pub async fn enqueue(&self, now_ms: i64) -> Place<'_> {
        if let Ok(permit) = self.places.try_acquire() {
            return Place::Held(permit);
        }
        if self.is_stalled(now_ms) || self.breaker.lock().is_open() {
            return Place::Overflow;
        }
        match self.places.acquire().await {
            Ok(permit) => Place::Held(permit),
            Err(_) => Place::Overflow,
        }
    }

    fn is_stalled(&self, now_ms: i64) -> bool {
        let busy = self.slots.available_permits() < self.shape.max_in_flight;
        busy && now_ms - self.last_answer_ms.load(Ordering::Relaxed) > STALL_AFTER_MS
    }

    /// Records that a request of this endpoint got its answer (or gave up).
    pub fn answered(&self, now_ms: i64) {
        self.last_answer_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn breaker_open(&self) -> bool {
        self.breaker.lock().is_open()
    }

    pub fn admit(&self, now: Instant) -> (Admission, Option<Transition>) {
        self.breaker.lock().admit(now)
    }

    pub fn record(&self, success: bool, probe: bool, now: Instant) -> Option<Transition> {
        self.breaker.lock().record(success, probe, now)
    }

    fn breaker_of(&self, target: Target) -> &Mutex<Breaker> {
        match target {
            Target::Primary => &self.breaker,
            Target::Failover => &self.failover_breaker,
        }
    }

    /// Chooses the URL of one delivery and asks its breaker. Without a failover URL this is
    /// [`Self::admit`]. With one: the route's choice, except that a primary whose breaker
    /// rejects hands the delivery to the failover (an open breaker says the primary is down,
    /// whatever the route has counted). `first_attempt`: only a first attempt may probe.
    pub fn admit_routed(&self, now: Instant, first_attempt: bool) -> (Choice, Admission, Option<Transition>) {
        let primary = Choice { target: Target::Primary, probe: false };
        if self.shape.failover_url.is_empty() {
            let (admission, transition) = self.admit(now);
            return (primary, admission, transition);
        }
        let choice = self.route.lock().choose(now, first_attempt);
        let (admission, transition) = self.breaker_of(choice.target).lock().admit(now);
        if choice.target == Target::Primary && admission == Admission::Reject {
            let failover = Choice { target: Target::Failover, probe: false };
            let (admission, _) = self.failover_breaker.lock().admit(now);
            return (failover, admission, transition);
        }
        (choice, admission, transition)
    }

    /// Whether the breaker of `target`'s URL is not closed.
    pub fn breaker_open_for(&self, target: Target) -> bool {
        self.breaker_of(target).lock().is_open()
    }

    /// Records an attempt to `target`'s URL in its breaker and in the route.
    pub fn record_routed(&self, target: Target, success: bool, probe: bool, now: Instant) -> (Option<Transition>, Option<Switch>) {
        let transition = self.breaker_of(target).lock().record(success, probe, now);
        let switch = if self.shape.failover_url.is_empty() { None } else { self.route.lock().record(target, !success, now) };
        (transition, switch)
    }

    /// The URL `target` names for `entry`'s endpoint.
    pub fn url<'e>(&self, entry: &'e EndpointEntry, target: Target) -> &'e str {
        match target {
            Target::Failover if !entry.endpoint.failover_url.is_empty() => &entry.endpoint.failover_url,
            _ => &entry.endpoint.url,
        }
    }

    /// Feeds the failing/recovered debounce (`core::ops::HealthEpisode`).
    pub fn health(&self, recorded_since_ms: i64, signal: Signal, now_ms: i64, settle_ms: i64) -> Option<HealthChange> {
        self.episode.lock().observe(recorded_since_ms, signal, now_ms, settle_ms)
    }

    /// Whether a failover URL is configured.
    pub fn has_failover(&self) -> bool {
        !self.shape.failover_url.is_empty()
    }

    /// How long to wait before the next request may go, per the token bucket.
    pub fn rate_wait(&self, now: Instant) -> Option<Duration> {
        self.bucket.as_ref().and_then(|b| b.lock().try_take(now).err())
    }
}

pub struct EndpointRuntimes {
    map: DashMap<String, Arc<EndpointRuntime>, hookline_core::keyed::FastHasher>,
    default_in_flight: usize,
    max_queued: usize,
    breaker: BreakerSettings,
    global: RetrySchedule,
    tiers: Vec<Delay>,
    /// While on a failover URL, how often the primary is probed.
    failover_probe: Duration,
}

impl EndpointRuntimes {
    pub fn new(default_in_flight: usize, max_queued: usize, breaker: BreakerSettings, global: RetrySchedule) -> Self {
        let tiers = global.tiers();
        let failover_probe = Duration::from_secs(30);
        Self { map: DashMap::default(), default_in_flight, max_queued, breaker, global, tiers, failover_probe }
    }

    /// Sets how often a primary is probed while its endpoint is on its failover URL.
    pub fn with_failover_probe(mut self, every: Duration) -> Self {
        self.failover_probe = every;
        self
    }

    /// True when `shape` was built from `entry`'s current settings (checked on every
    /// delivery, so it compares in place instead of building a `Shape`).
    fn is_current(&self, shape: &Shape, entry: &EndpointEntry) -> bool {
        let limits = entry.endpoint.limits.as_ref();
        let max_in_flight = match limits.map_or(0, |l| l.max_in_flight as usize) {
            0 => self.default_in_flight,
            n => n,
        };
        shape.max_in_flight == max_in_flight
            && shape.rate == limits.map_or(0, |l| l.rate_per_second)
            && shape.burst == limits.map_or(0, |l| l.burst)
            && shape.schedule == entry.endpoint.retry_schedule
            && shape.failover_url == entry.endpoint.failover_url
            && shape.failover_after == entry.endpoint.failover_after
    }

    fn shape(&self, entry: &EndpointEntry) -> Shape {
        let limits = entry.endpoint.limits.unwrap_or_default();
        let max_in_flight = match limits.max_in_flight as usize {
            0 => self.default_in_flight,
            n => n,
        };
        Shape {
            max_in_flight,
            rate: limits.rate_per_second,
            burst: limits.burst,
            schedule: entry.endpoint.retry_schedule.clone(),
            failover_url: entry.endpoint.failover_url.clone(),
            failover_after: entry.endpoint.failover_after,
        }
    }

    /// The runtime of `entry`'s endpoint, created or rebuilt to match its current settings.
    pub fn get(&self, entry: &EndpointEntry) -> Arc<EndpointRuntime> {
        if let Some(rt) = self.map.get(&entry.endpoint.id) {
            if self.is_current(&rt.shape, entry) {
                return Arc::clone(rt.value());
            }
        }
        let shape = self.shape(entry);
        let schedule = if shape.schedule.is_empty() {
            self.global.clone()
        } else {
            // Validated when the endpoint was written; an unparsable one falls back.
            RetrySchedule::parse(&shape.schedule).map(|s| s.snapped_to(&self.tiers)).unwrap_or_else(|_| self.global.clone())
        };
        let bucket = (shape.rate > 0).then(|| {
            let burst = if shape.burst > 0 { shape.burst } else { shape.rate };
            Mutex::new(TokenBucket::new(f64::from(shape.rate), f64::from(burst), Instant::now()))
        });
        let rt = Arc::new(EndpointRuntime {
            slots: Semaphore::new(shape.max_in_flight),
            places: Semaphore::new(self.max_queued.max(shape.max_in_flight)),
            last_answer_ms: AtomicI64::new(hookline_runtime::time::now_ms()),
            breaker: Mutex::new(Breaker::new(self.breaker)),
            failover_breaker: Mutex::new(Breaker::new(self.breaker)),
            route: Mutex::new(Route::new(shape.failover_after, self.failover_probe)),
            episode: Mutex::new(HealthEpisode::default()),
            bucket,
            schedule,
            failing_marked: AtomicBool::new(entry.endpoint.failing_since_ms != 0),
            shape,
        });
        self.map.insert(entry.endpoint.id.clone(), Arc::clone(&rt));
        rt
    }

    /// Endpoints whose breaker is not closed (for metrics and logs).
    pub fn open_breakers(&self) -> usize {
        self.map.iter().filter(|e| e.value().breaker.lock().is_open()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_proto::v1;

    fn entry() -> EndpointEntry {
        let endpoint = v1::Endpoint {
            id: "ep".into(),
            url: "https://example.com".into(),
            event_types: vec!["*".into()],
            secrets: vec![v1::Secret { key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), ..Default::default() }],
            limits: Some(v1::Limits { max_in_flight: 1, ..Default::default() }),
            ..Default::default()
        };
        EndpointEntry::new(endpoint).expect("valid").0
    }

    #[tokio::test]
    async fn a_full_queue_waits_for_a_healthy_endpoint_and_overflows_for_a_stalled_one() {
        let runtimes = EndpointRuntimes::new(1, 1, BreakerSettings::default(), RetrySchedule::default());
        let rt = runtimes.get(&entry());
        let now = hookline_runtime::time::now_ms();
        let Place::Held(first) = rt.enqueue(now).await else { panic!("an empty queue has room") };
        // Full, but nothing is in flight: a healthy endpoint, so the caller waits.
        let waited = tokio::time::timeout(Duration::from_millis(50), rt.enqueue(now)).await;
        assert!(waited.is_err(), "a healthy endpoint's overflow waits (back-pressure)");
        // A request in flight and no answer for longer than the stall limit: overflow.
        let _slot = rt.slots.acquire().await.expect("slot");
        assert!(matches!(rt.enqueue(now + STALL_AFTER_MS + 1).await, Place::Overflow));
        rt.answered(now + STALL_AFTER_MS + 1);
        let waited = tokio::time::timeout(Duration::from_millis(50), rt.enqueue(now + STALL_AFTER_MS + 2)).await;
        assert!(waited.is_err(), "answering again makes it healthy");
        drop(first);
        assert!(matches!(rt.enqueue(now).await, Place::Held(_)));
    }

    #[test]
    fn a_changed_limit_rebuilds_the_runtime() {
        let runtimes = EndpointRuntimes::new(8, 64, BreakerSettings::default(), RetrySchedule::default());
        let a = runtimes.get(&entry());
        assert!(Arc::ptr_eq(&a, &runtimes.get(&entry())));
        let mut changed = entry().endpoint.clone();
        changed.limits = Some(v1::Limits { max_in_flight: 5, ..Default::default() });
        let b = runtimes.get(&EndpointEntry::new(changed).expect("valid").0);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(b.slots.available_permits(), 5);
    }
}
