//! Which URL of an endpoint a delivery goes to: the primary, or the failover URL after the
//! primary failed `after` times in a row. While on the failover, one delivery per
//! `probe_every` goes to the primary instead (a probe); a success of the primary switches
//! back. Only a delivery's first attempt may be a probe: a retry always goes to the failover,
//! so on a quiet endpoint (every delivery a probe) deliveries still get through, and a probe
//! costs its delivery at most one retry delay. Only failures that say the primary is down count (5xx, timeouts, connection
//! errors: `verdict::breaker_failure`), so a 4xx from a running primary never moves traffic.
//! Time is a parameter; nothing here reads a clock.

use std::time::{Duration, Instant};

/// Consecutive primary failures that move deliveries to the failover URL when the endpoint
/// names none (`Endpoint.failover_after` = 0).
pub const DEFAULT_AFTER: u32 = 3;

/// Which of the endpoint's URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Primary,
    Failover,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Failover => "failover",
        }
    }
}

/// Where one delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub target: Target,
    /// A delivery sent to the primary while deliveries go to the failover.
    pub probe: bool,
}

/// A change of the URL deliveries go to, worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    ToFailover,
    BackToPrimary,
}

#[derive(Debug, Clone)]
pub struct Route {
    after: u32,
    probe_every: Duration,
    /// Consecutive failures of the primary.
    consecutive: u32,
    on_failover: bool,
    /// When the next probe of the primary may go (while on the failover).
    next_probe: Option<Instant>,
}

impl Route {
    /// `after` 0 means [`DEFAULT_AFTER`].
    pub fn new(after: u32, probe_every: Duration) -> Self {
        let after = if after == 0 { DEFAULT_AFTER } else { after };
        Self {
            after,
            probe_every,
            consecutive: 0,
            on_failover: false,
            next_probe: None,
        }
    }

    pub fn on_failover(&self) -> bool {
        self.on_failover
    }

    /// Chooses the URL of the next delivery at `now` (`may_probe`: it is a first attempt).
    pub fn choose(&mut self, now: Instant, may_probe: bool) -> Choice {
        if !self.on_failover {
            return Choice {
                target: Target::Primary,
                probe: false,
            };
        }
        match self.next_probe {
            _ if !may_probe => Choice {
                target: Target::Failover,
                probe: false,
            },
            Some(at) if now < at => Choice {
                target: Target::Failover,
                probe: false,
            },
            // A probe whose answer never came (shutdown) does not hold the next one back:
            // the next is due one interval later either way.
            _ => {
                self.next_probe = Some(now + self.probe_every);
                Choice {
                    target: Target::Primary,
                    probe: true,
                }
            }
        }
    }

    /// Records how a delivery to `target` went (`down`: the failure says the URL is down).
    pub fn record(&mut self, target: Target, down: bool, now: Instant) -> Option<Switch> {
        if target == Target::Failover {
            return None;
        }
        if !down {
            self.consecutive = 0;
            if self.on_failover {
                self.on_failover = false;
                self.next_probe = None;
                return Some(Switch::BackToPrimary);
            }
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if !self.on_failover && self.consecutive >= self.after {
            self.on_failover = true;
            self.next_probe = Some(now + self.probe_every);
            return Some(Switch::ToFailover);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVERY: Duration = Duration::from_secs(30);

    #[test]
    fn after_n_primary_failures_deliveries_move_and_a_probe_success_brings_them_back() {
        let t0 = Instant::now();
        let mut r = Route::new(3, EVERY);
        let primary = Choice {
            target: Target::Primary,
            probe: false,
        };
        assert_eq!(r.choose(t0, true), primary);
        assert_eq!(r.record(Target::Primary, true, t0), None);
        assert_eq!(
            r.record(Target::Primary, false, t0),
            None,
            "a success resets the run"
        );
        assert_eq!(r.record(Target::Primary, true, t0), None);
        assert_eq!(r.record(Target::Primary, true, t0), None);
        assert_eq!(
            r.record(Target::Primary, true, t0),
            Some(Switch::ToFailover)
        );
        assert_eq!(
            r.choose(t0 + Duration::from_secs(1), true),
            Choice {
                target: Target::Failover,
                probe: false
            }
        );
        assert_eq!(
            r.record(Target::Failover, true, t0),
            None,
            "the failover's failures never move traffic"
        );
        let probe = r.choose(t0 + EVERY, true);
        assert_eq!(
            probe,
            Choice {
                target: Target::Primary,
                probe: true
            }
        );
        assert_eq!(
            r.choose(t0 + EVERY, true),
            Choice {
                target: Target::Failover,
                probe: false
            },
            "one probe per interval"
        );
        assert_eq!(
            r.record(Target::Primary, true, t0 + EVERY),
            None,
            "a failed probe stays on the failover"
        );
        assert_eq!(
            r.choose(t0 + EVERY * 2, false),
            Choice {
                target: Target::Failover,
                probe: false
            },
            "a retry never probes"
        );
        assert_eq!(r.choose(t0 + EVERY * 2, true), probe);
        assert_eq!(
            r.record(Target::Primary, false, t0 + EVERY * 2),
            Some(Switch::BackToPrimary)
        );
        assert_eq!(r.choose(t0 + EVERY * 2, true), primary);
    }

    #[test]
    fn zero_means_the_default() {
        let t0 = Instant::now();
        let mut r = Route::new(0, EVERY);
        let switched = (1..=10).find(|_| r.record(Target::Primary, true, t0).is_some());
        assert_eq!(switched, Some(DEFAULT_AFTER));
    }

    proptest! {
        /// Whatever happens: deliveries leave the primary only after `after` consecutive
        /// primary failures; while on the failover the primary gets at most one delivery
        /// per interval; a primary success always brings deliveries back.
        #[test]
        fn the_route_keeps_its_rules(after in 1u32..6, steps in prop::collection::vec((0u64..20_000, any::<bool>(), any::<bool>()), 1..200)) {
            let t0 = Instant::now();
            let every = Duration::from_secs(10);
            let mut r = Route::new(after, every);
            let mut now = t0;
            let mut run = 0u32;
            let mut last_probe: Option<Instant> = None;
            for (advance_ms, down, to_failover_result) in steps {
                now += Duration::from_millis(advance_ms);
                let first = advance_ms % 3 != 0;
                let choice = r.choose(now, first);
                prop_assert!(first || !choice.probe, "a retry is never a probe");
                if choice.probe {
                    if let Some(p) = last_probe {
                        prop_assert!(now - p >= every, "probes {:?} apart", now - p);
                    }
                    last_probe = Some(now);
                }
                prop_assert_eq!(choice.target == Target::Failover || choice.probe, r.on_failover());
                // Sometimes a result of the other URL arrives (a request started earlier).
                let target = if to_failover_result { Target::Failover } else { choice.target };
                let was = r.on_failover();
                let switch = r.record(target, down, now);
                if target == Target::Primary {
                    run = if down { run + 1 } else { 0 };
                }
                match switch {
                    Some(Switch::ToFailover) => prop_assert!(!was && run >= after),
                    Some(Switch::BackToPrimary) => prop_assert!(was && target == Target::Primary && !down),
                    None => {}
                }
                if target == Target::Primary && !down {
                    prop_assert!(!r.on_failover());
                }
                if r.on_failover() && !was {
                    prop_assert!(run >= after);
                }
            }
        }
    }
}
