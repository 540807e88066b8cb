//! A per-endpoint circuit breaker: closed, open after a run of failures, half-open with a
//! single probe after a cool-down that doubles (up to a cap) while the endpoint stays down.
//! Time is a parameter; nothing here reads a clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    pub initial_cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, initial_cooldown: Duration::from_secs(5), max_cooldown: Duration::from_secs(300) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { cooldown: Duration },
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Attempt,
    /// The one request that decides whether the endpoint is back.
    Probe,
    /// Do not attempt; move the work on (to the next retry tier).
    Reject,
}

/// A state change worth logging and exporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cooldown: Duration },
    HalfOpened,
    Closed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, state: State::Closed { failures: 0 } }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }

    /// Asks to send one request at `now`.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            State::Closed { .. } => (Admission::Attempt, None),
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
            (State::Closed { .. }, true) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.settings.failure_threshold {
                    self.open(now, self.settings.initial_cooldown)
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            (State::HalfOpen { .. }, true) if probe => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen { cooldown }, false) if probe => {
                let longer = (cooldown * 2).min(self.settings.max_cooldown);
                self.open(now, longer)
            }
            // Results of requests admitted before the breaker opened change nothing.
            _ => None,
        }
    }

    fn open(&mut self, now: Instant, cooldown: Duration) -> Option<Transition> {
        self.state = State::Open { until: now + cooldown, cooldown };
        Some(Transition::Opened { cooldown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings { failure_threshold: 3, initial_cooldown: Duration::from_secs(5), max_cooldown: Duration::from_secs(12) }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(true, false, t0), None, "a success resets the run");
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, false, t0), Some(Transition::Opened { cooldown: Duration::from_secs(5) }));
        assert_eq!(b.admit(t0 + Duration::from_secs(4)), (Admission::Reject, None));
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), (Admission::Probe, Some(Transition::HalfOpened)));
        assert_eq!(b.admit(t0 + Duration::from_secs(5)), (Admission::Reject, None), "one probe at a time");
        assert_eq!(b.record(true, true, t0 + Duration::from_secs(6)), Some(Transition::Closed));
        assert_eq!(b.admit(t0 + Duration::from_secs(6)), (Admission::Attempt, None));
    }

    #[test]
    fn cooldown_doubles_up_to_the_cap_while_probes_fail() {
        let mut now = Instant::now();
        let mut b = Breaker::new(settings());
        for _ in 0..3 {
            b.record(false, false, now);
        }
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
        for _ in 0..3 {
            b.record(false, false, t0);
        }
        assert_eq!(b.record(true, false, t0), None);
        assert!(b.is_open());
    }
}
