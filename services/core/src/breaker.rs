//! A per-endpoint circuit breaker that trips on a sick endpoint, not an unlucky one.
//!
//! Closed, it counts the calls of a sliding window (`window`, in ten buckets). It opens when
//! the window holds at least `min_calls` calls and `failure_rate` of them failed, or, for an
//! endpoint too quiet to fill the window, after `failure_threshold` consecutive failures.
//! An endpoint that fails one call in five at any volume therefore stays closed; one that
//! is down opens within `min_calls` calls (or `failure_threshold`, when quiet). Open, it
//! rejects until a cool-down ends; half-open, one probe decides: success closes it with an
//! empty window, failure re-opens it for a cool-down twice as long (up to a cap).
//! Time is a parameter; nothing here reads a clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it while the window holds fewer than `min_calls`.
    pub failure_threshold: u32,
    /// The sliding window over which the failure rate is measured.
    pub window: Duration,
    /// Calls the window must hold before its failure rate can open the breaker.
    pub min_calls: u32,
    /// Share of failed calls (0 to 1) in a full-enough window that opens it.
    pub failure_rate: f64,
    pub initial_cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(30),
            min_calls: 20,
            failure_rate: 0.5,
            initial_cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant, cooldown: Duration },
    HalfOpen { cooldown: Duration },
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Attempt,
    /// The one request that decides whether the endpoint is back.
    Probe,
    /// Do not attempt; move the work on (to a retry tier).
    Reject,
}

/// A state change worth logging and exporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cooldown: Duration },
    HalfOpened,
    Closed,
}

const BUCKETS: usize = 10;

/// Calls and failures of the last `window`, in buckets of a tenth of it.
#[derive(Debug, Clone)]
struct Window {
    bucket: Duration,
    /// The first time seen; bucket numbers count from it.
    epoch: Option<Instant>,
    /// (bucket number, calls, failures) per slot.
    slots: [(u64, u32, u32); BUCKETS],
}

impl Window {
    fn new(window: Duration) -> Self {
        let bucket = (window / BUCKETS as u32).max(Duration::from_millis(1));
        Self { bucket, epoch: None, slots: [(0, 0, 0); BUCKETS] }
    }

    fn number(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        (now.saturating_duration_since(epoch).as_nanos() / self.bucket.as_nanos()) as u64
    }

    fn add(&mut self, now: Instant, failed: bool) {
        let n = self.number(now);
        let slot = &mut self.slots[(n % BUCKETS as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u32::from(failed);
    }

    /// (calls, failures) in the buckets of the window that ends at `now`.
    fn totals(&mut self, now: Instant) -> (u32, u32) {
        let n = self.number(now);
        self.slots
            .iter()
            .filter(|s| s.0 + (BUCKETS as u64) > n && s.0 <= n)
            .fold((0, 0), |(c, f), s| (c + s.1, f + s.2))
    }

    fn clear(&mut self) {
        self.slots = [(0, 0, 0); BUCKETS];
        self.epoch = None;
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    consecutive: u32,
    window: Window,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, state: State::Closed, consecutive: 0, window: Window::new(settings.window) }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed)
    }

    /// How long until an open breaker lets its probe through (`None` when it is not open,
    /// or its probe is due).
    pub fn reopens_in(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Open { until, .. } if until > now => Some(until - now),
            _ => None,
        }
    }

    /// Asks to send one request at `now`.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            State::Closed => (Admission::Attempt, None),
            State::Open { until, cooldown } if now >= until => {
                self.state = State::HalfOpen { cooldown };
                (Admission::Probe, Some(Transition::HalfOpened))
            }
            State::Open { .. } | State::HalfOpen { .. } => (Admission::Reject, None),
        }
    }

    /// Records the result of an admitted request (`probe` when it was the probe).
    pub fn record(&mut self, success: bool, probe: bool, now: Instant) -> Option<Transition> {
        match (self.state, success) {
            (State::Closed, _) => {
                self.window.add(now, !success);
                self.consecutive = if success { 0 } else { self.consecutive + 1 };
                self.trips(now).then(|| self.open(now, self.settings.initial_cooldown))
            }
            (State::HalfOpen { .. }, true) if probe => {
                self.state = State::Closed;
                self.consecutive = 0;
                self.window.clear();
                Some(Transition::Closed)
            }
            (State::HalfOpen { cooldown }, false) if probe => {
                let longer = (cooldown * 2).min(self.settings.max_cooldown);
                Some(self.open(now, longer))
            }
            // Results of requests admitted before the breaker opened change nothing.
            _ => None,
        }
    }

    /// Whether the calls so far say the endpoint is down.
    fn trips(&mut self, now: Instant) -> bool {
        let (calls, failures) = self.window.totals(now);
        if calls >= self.settings.min_calls {
            f64::from(failures) >= self.settings.failure_rate * f64::from(calls)
        } else {
            self.consecutive >= self.settings.failure_threshold
        }
    }

    fn open(&mut self, now: Instant, cooldown: Duration) -> Transition {
        self.state = State::Open { until: now + cooldown, cooldown };
        Transition::Opened { cooldown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            window: Duration::from_secs(30),
            min_calls: 20,
            failure_rate: 0.5,
            initial_cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(12),
        }
    }

    fn open_it(b: &mut Breaker, now: Instant) {
        for _ in 0..3 {
            b.record(false, false, now);
        }
        assert!(b.is_open());
    }

    #[test]
    fn a_quiet_endpoint_opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(true, false, t0), None, "a success resets the run");
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, false, t0), Some(Transition::Opened { cooldown: Duration::from_secs(5) }));
        assert_eq!(b.reopens_in(t0 + Duration::from_secs(1)), Some(Duration::from_secs(4)));
        assert_eq!(b.admit(t0 + Duration::from_secs(4)), (Admission::Reject, None));
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), (Admission::Probe, Some(Transition::HalfOpened)));
        assert_eq!(b.reopens_in(t0 + Duration::from_secs(5)), None);
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), (Admission::Reject, None), "one probe at a time");
        assert_eq!(b.record(true, true, t0 + Duration::from_secs(6)), Some(Transition::Closed));
        assert_eq!(b.admit(t0 + Duration::from_secs(6)), (Admission::Attempt, None));
    }

    #[test]
    fn a_busy_endpoint_opens_on_its_failure_rate_not_on_a_run() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        // 20 calls in the window: a run of 3 failures among them no longer opens it.
        for i in 0..17 {
            assert_eq!(b.record(true, false, t0 + Duration::from_millis(i)), None);
        }
        for i in 17..20 {
            assert_eq!(b.record(false, false, t0 + Duration::from_millis(i)), None);
        }
        // 17 successes: 17 more failures make 20 of 37, over half.
        let opened = (20..40).find(|&i| b.record(false, false, t0 + Duration::from_millis(i)).is_some());
        assert_eq!(opened, Some(33), "opens at the call that makes failures half of the window (17 of 34)");
    }

    #[test]
    fn calls_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        for i in 0..19 {
            b.record(false, false, t0 + Duration::from_millis(i));
            b.record(true, false, t0 + Duration::from_millis(i));
            b.record(true, false, t0 + Duration::from_millis(i));
        }
        assert!(!b.is_open());
        // 40 s later the window is empty: the quiet rule applies again.
        let later = t0 + Duration::from_secs(40);
        b.record(false, false, later);
        b.record(false, false, later);
        assert!(!b.is_open());
        assert_eq!(b.record(false, false, later), Some(Transition::Opened { cooldown: Duration::from_secs(5) }));
    }

    #[test]
    fn cooldown_doubles_up_to_the_cap_while_probes_fail() {
        let mut now = Instant::now();
        let mut b = Breaker::new(settings());
        open_it(&mut b, now);
        let mut cooldowns = Vec::new();
        for _ in 0..4 {
            let State::Open { until, cooldown } = b.state() else { panic!("open") };
            cooldowns.push(cooldown.as_secs());
            now = until;
            assert_eq!(b.admit(now).0, Admission::Probe);
            b.record(false, true, now);
        }
        assert_eq!(cooldowns, [5, 10, 12, 12]);
    }

    #[test]
    fn late_results_of_pre_open_requests_change_nothing() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        open_it(&mut b, t0);
        assert_eq!(b.record(true, false, t0), None);
        assert!(b.is_open());
    }

    #[test]
    fn a_closed_breaker_starts_with_an_empty_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        for i in 0..25 {
            b.record(i % 2 == 0, false, t0);
        }
        assert!(b.is_open(), "half of 20 calls failed");
        let probe_at = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(probe_at).0, Admission::Probe);
        assert_eq!(b.record(true, true, probe_at), Some(Transition::Closed));
        assert_eq!(b.record(false, false, probe_at), None, "the old failures are gone");
        assert_eq!(b.record(false, false, probe_at), None);
    }

    proptest! {
        /// Whatever the timing, an endpoint that never fails twice in a row and follows
        /// each failure with at least two successes (a third of calls or fewer failing) is
        /// never cut off.
        #[test]
        fn a_failure_rate_under_the_threshold_never_opens_it(
            gaps in proptest::collection::vec(2usize..6, 1..200),
            steps_ms in proptest::collection::vec(0u64..5_000, 1..1_000),
        ) {
            let mut b = Breaker::new(settings());
            let mut now = Instant::now();
            let mut step = steps_ms.iter().cycle();
            for successes in gaps {
                for failed in std::iter::once(true).chain(std::iter::repeat_n(false, successes)) {
                    now += Duration::from_millis(*step.next().expect("a cycle never ends"));
                    prop_assert_eq!(b.admit(now).0, Admission::Attempt);
                    prop_assert_eq!(b.record(!failed, false, now), None);
                }
            }
        }

        /// A down endpoint is cut off once its failures match the successes still in the
        /// window (sooner as they age out), or after `failure_threshold` when quiet.
        #[test]
        fn a_down_endpoint_opens_it(
            healthy in 0usize..200,
            step_ms in 0u64..2_000,
        ) {
            let s = settings();
            let mut b = Breaker::new(s);
            let mut now = Instant::now();
            for _ in 0..healthy {
                now += Duration::from_millis(step_ms);
                b.record(true, false, now);
            }
            let most = (healthy as u32).max(s.failure_threshold);
            let opened = (1..=most).find(|_| {
                now += Duration::from_millis(step_ms);
                b.record(false, false, now).is_some()
            });
            prop_assert!(opened.is_some(), "not open after {most} failures");
        }
    }
}
