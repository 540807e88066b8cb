//! When each arrival of an open-model load is due: phases of constant arrival rate, one
//! after another. Arrivals are due at fixed times whatever happened to earlier ones, so a
//! slow system under test meets the same offered load (it cannot slow the generator down).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The rate for the whole duration.
    Steady,
    /// 15 s at the rate, 30 s at ten times the rate, 15 s at the rate (the duration is
    /// not used): the shape of `load-tests/ingest.js`'s burst, in steps instead of its 1 s
    /// ramps.
    Burst,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Burst => "burst",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    per_second: f64,
    length: Duration,
}

impl Phase {
    /// Arrivals in the phase: one at its start, then one every `1 / per_second`.
    fn count(&self) -> u64 {
        if self.per_second <= 0.0 {
            return 0;
        }
        // Less a hair, so that 0.1/s for 30 s is 3 arrivals and not 4 (3.0000000000000004).
        (self.length.as_secs_f64() * self.per_second - 1e-9).ceil().max(0.0) as u64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    phases: Vec<Phase>,
}

impl Schedule {
    /// `per_second` arrivals (requests, or events when each arrival is one) in `shape`.
    pub fn new(shape: Shape, per_second: f64, duration: Duration) -> Self {
        let phase = |per_second, secs| Phase { per_second, length: Duration::from_secs(secs) };
        let phases = match shape {
            Shape::Steady => vec![Phase { per_second, length: duration }],
            Shape::Burst => vec![phase(per_second, 15), phase(per_second * 10.0, 30), phase(per_second, 15)],
        };
        Self { phases }
    }

    /// From the first arrival's due time to the end of the last phase.
    pub fn length(&self) -> Duration {
        self.phases.iter().map(|p| p.length).sum()
    }

    pub fn count(&self) -> u64 {
        self.phases.iter().map(Phase::count).sum()
    }

    /// The due time of every arrival, as an offset from the start, in order.
    pub fn arrivals(&self) -> impl Iterator<Item = Duration> + Send + '_ {
        let mut start = Duration::ZERO;
        self.phases.iter().flat_map(move |p| {
            let (from, rate) = (start, p.per_second);
            start += p.length;
            (0..p.count()).map(move |k| from + Duration::from_secs_f64(k as f64 / rate))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_arrivals_are_evenly_spaced_within_the_duration() {
        let s = Schedule::new(Shape::Steady, 100.0, Duration::from_secs(60));
        let due: Vec<Duration> = s.arrivals().collect();
        assert_eq!(due.len(), 6_000);
        assert_eq!(s.count(), 6_000);
        assert_eq!(due[0], Duration::ZERO);
        assert_eq!(due[1], Duration::from_millis(10));
        assert!(*due.last().expect("arrivals") < Duration::from_secs(60));
        assert!(due.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(s.length(), Duration::from_secs(60));
    }

    #[test]
    fn fractional_rates_and_lengths_count_whole_arrivals() {
        assert_eq!(Schedule::new(Shape::Steady, 0.1, Duration::from_secs(30)).count(), 3);
        assert_eq!(Schedule::new(Shape::Steady, 3.0, Duration::from_millis(500)).count(), 2);
        assert_eq!(Schedule::new(Shape::Steady, 20.0, Duration::from_secs(5)).count(), 100);
        assert_eq!(Schedule::new(Shape::Steady, 0.0, Duration::from_secs(5)).count(), 0);
    }

    #[test]
    fn burst_is_ten_times_the_rate_for_thirty_seconds_between_two_steady_spells() {
        let s = Schedule::new(Shape::Burst, 15.0, Duration::from_secs(999));
        assert_eq!(s.length(), Duration::from_secs(60));
        assert_eq!(s.count(), 15 * 15 + 150 * 30 + 15 * 15);
        let per_second = |from: u64| {
            s.arrivals().filter(|d| *d >= Duration::from_secs(from) && *d < Duration::from_secs(from + 1)).count()
        };
        assert_eq!(per_second(0), 15);
        assert_eq!(per_second(14), 15);
        assert_eq!(per_second(15), 150);
        assert_eq!(per_second(44), 150);
        assert_eq!(per_second(45), 15);
        assert_eq!(per_second(59), 15);
        let due: Vec<Duration> = s.arrivals().collect();
        assert!(due.windows(2).all(|w| w[1] > w[0]), "in order across phases");
    }
}
