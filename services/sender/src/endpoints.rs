//! Per-endpoint runtime state of one sender: the bulkhead (bounded in-flight requests and a
//! bounded queue), the token bucket, the circuit breaker, and the endpoint's retry schedule.
//! Rebuilt when the endpoint's limits or schedule change.

use dashmap::DashMap;
use hookline_core::breaker::{Admission, Breaker, BreakerSettings, Transition};
use hookline_core::ratelimit::TokenBucket;
use hookline_core::retry::{Delay, RetrySchedule};
use hookline_runtime::registry::EndpointEntry;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What a runtime was built from; a change rebuilds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    max_in_flight: usize,
    rate: u32,
    burst: u32,
    schedule: Vec<String>,
}

pub struct EndpointRuntime {
    shape: Shape,
    /// Requests in flight.
    pub slots: Semaphore,
    /// Deliveries held (waiting or in flight).
    queued: AtomicUsize,
    max_queued: usize,
    breaker: Mutex<Breaker>,
    bucket: Option<Mutex<TokenBucket>>,
    pub schedule: RetrySchedule,
    /// A "failing since" mark was written and not yet cleared (avoids rewriting it).
    pub failing_marked: AtomicBool,
}

/// Holds one queue place; gives it back on drop.
pub struct QueuePlace(Arc<EndpointRuntime>);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EndpointRuntime {
    /// Takes a queue place, or `None` when the endpoint already holds its maximum.
    pub fn try_enqueue(self: &Arc<Self>) -> Option<QueuePlace> {
        let mut current = self.queued.load(Ordering::Acquire);
        loop {
            if current >= self.max_queued {
                return None;
            }
            match self.queued.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(QueuePlace(Arc::clone(self))),
                Err(now) => current = now,
            }
        }
    }

    pub fn admit(&self, now: Instant) -> (Admission, Option<Transition>) {
        self.breaker.lock().admit(now)
    }

    pub fn record(&self, success: bool, probe: bool, now: Instant) -> Option<Transition> {
        self.breaker.lock().record(success, probe, now)
    }

    /// How long to wait before the next request may go, per the token bucket.
    pub fn rate_wait(&self, now: Instant) -> Option<Duration> {
        self.bucket.as_ref().and_then(|b| b.lock().try_take(now).err())
    }
}

pub struct EndpointRuntimes {
    map: DashMap<String, Arc<EndpointRuntime>>,
    default_in_flight: usize,
    max_queued: usize,
    breaker: BreakerSettings,
    global: RetrySchedule,
    tiers: Vec<Delay>,
}

impl EndpointRuntimes {
    pub fn new(default_in_flight: usize, max_queued: usize, breaker: BreakerSettings, global: RetrySchedule) -> Self {
        let tiers = global.tiers();
        Self { map: DashMap::new(), default_in_flight, max_queued, breaker, global, tiers }
    }

    fn shape(&self, entry: &EndpointEntry) -> Shape {
        let limits = entry.endpoint.limits.clone().unwrap_or_default();
        let max_in_flight = match limits.max_in_flight as usize {
            0 => self.default_in_flight,
            n => n,
        };
        Shape { max_in_flight, rate: limits.rate_per_second, burst: limits.burst, schedule: entry.endpoint.retry_schedule.clone() }
    }

    /// The runtime of `entry`'s endpoint, created or rebuilt to match its current settings.
    pub fn get(&self, entry: &EndpointEntry) -> Arc<EndpointRuntime> {
        let shape = self.shape(entry);
        if let Some(rt) = self.map.get(&entry.endpoint.id) {
            if rt.shape == shape {
                return Arc::clone(rt.value());
            }
        }
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
            queued: AtomicUsize::new(0),
            max_queued: self.max_queued.max(shape.max_in_flight),
            breaker: Mutex::new(Breaker::new(self.breaker)),
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
