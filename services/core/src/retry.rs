//! The retry schedule and its Kafka tiers.
//!
//! A schedule is the list of delays before attempts 2, 3, ... (attempt 1 is immediate).
//! Every distinct delay is one retry tier (one topic); because all records of a tier have
//! the same delay, the head of each tier partition is always the earliest due, so a tier
//! consumer only ever waits for its head. The set of tiers is global; an endpoint's own
//! schedule is a sequence drawn from that set.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Svix's and the Standard Webhooks recommendation: about 27.5 hours in 8 attempts.
pub const DEFAULT_SCHEDULE: &[&str] = &["5s", "5m", "30m", "2h", "5h", "10h", "10h"];

/// A delay written the way tier topics are named: `250ms`, `5s`, `5m`, `2h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delay(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a delay like 500ms, 5s, 5m, 2h or 1d (a whole number and a unit, at most 30d)")]
pub struct DelayError(String);

/// The longest single delay: a month between two attempts is already past any schedule
/// worth having (and beyond it, numbers overflow).
const MAX_DELAY_MS: u64 = 30 * 86_400_000;

impl Delay {
    pub fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Delay {
    type Err = DelayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| DelayError(s.to_owned()))?;
        let (n, unit) = t.split_at(split);
        let n: u64 = n.parse().map_err(|_| DelayError(s.to_owned()))?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DelayError(s.to_owned())),
        };
        // Checked: a caller can send any number (schemathesis sent 66902704044837d).
        let ms = n.checked_mul(unit_ms).filter(|ms| (1..=MAX_DELAY_MS).contains(ms)).ok_or_else(|| DelayError(s.to_owned()))?;
        Ok(Self(Duration::from_millis(ms)))
    }
}

impl fmt::Display for Delay {
    /// The largest unit that divides the delay evenly, so `300s` and `5m` name one tier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis() as u64;
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// Delays before attempts 2, 3, ...; `attempts()` is their number plus one. In a
/// configuration it is a list of delays (`["5s", "5m"]`), parsed when the file loads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct RetrySchedule {
    delays: Vec<Delay>,
}

impl TryFrom<Vec<String>> for RetrySchedule {
    type Error = ScheduleError;
    fn try_from(delays: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&delays)
    }
}

impl From<RetrySchedule> for Vec<String> {
    fn from(schedule: RetrySchedule) -> Self {
        schedule.delays.iter().map(Delay::to_string).collect()
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE).expect("the default schedule is valid")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("[{0}]: {1}")]
    BadDelay(usize, DelayError),
    #[error("has {0} entries; at most 20 are allowed")]
    TooLong(usize),
}

impl RetrySchedule {
    pub fn parse<S: AsRef<str>>(delays: &[S]) -> Result<Self, ScheduleError> {
        if delays.len() > 20 {
            return Err(ScheduleError::TooLong(delays.len()));
        }
        let delays = delays
            .iter()
            .enumerate()
            .map(|(i, d)| d.as_ref().parse().map_err(|e| ScheduleError::BadDelay(i, e)))
            .collect::<Result<Vec<Delay>, _>>()?;
        Ok(Self { delays })
    }

    pub fn delays(&self) -> &[Delay] {
        &self.delays
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delay before attempt `next` (2-based), or `None` once the schedule is exhausted.
    pub fn delay_before(&self, next: u32) -> Option<Delay> {
        let index = usize::try_from(next.checked_sub(2)?).ok()?;
        self.delays.get(index).copied()
    }

    /// Distinct delays, ascending: one tier topic each.
    pub fn tiers(&self) -> Vec<Delay> {
        let mut tiers = self.delays.clone();
        tiers.sort();
        tiers.dedup();
        tiers
    }

    /// The total time from the first to the last attempt, without jitter.
    pub fn span(&self) -> Duration {
        self.delays.iter().map(|d| d.0).sum()
    }

    /// Maps each delay onto the smallest tier that is at least as long (the schedule of an
    /// endpoint must use the global tiers; a delay longer than every tier uses the longest).
    pub fn snapped_to(&self, tiers: &[Delay]) -> Self {
        let snap = |d: Delay| tiers.iter().copied().find(|t| *t >= d).or_else(|| tiers.last().copied()).unwrap_or(d);
        Self { delays: self.delays.iter().map(|d| snap(*d)).collect() }
    }
}

/// When the next attempt is due: `delay` stretched by `jitter * unit` (both in [0, 1)),
/// never shortened, so a retry is never early.
pub fn due_at_ms(now_ms: i64, delay: Delay, jitter: f64, unit: f64) -> i64 {
    let base = delay.0.as_millis() as f64;
    let extra = base * jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
    now_ms + (base + extra) as i64
}

/// What to do after a failed attempt `attempt` (1-based) under `schedule`, given the
/// endpoint's `Retry-After` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Send attempt `attempt` through tier `tier`.
    Retry { attempt: u32, tier: Delay },
    Exhausted,
}

/// The next attempt after a failure. A `Retry-After` hint longer than the next delay skips
/// ahead to the first later step whose delay covers it (tiers are never waited on longer
/// than their delay, which keeps their head-of-partition ordering).
pub fn next_step(schedule: &RetrySchedule, failed_attempt: u32, retry_after: Option<Duration>) -> NextStep {
    let mut next = failed_attempt + 1;
    while let Some(tier) = schedule.delay_before(next) {
        if retry_after.is_none_or(|hint| tier.0 >= hint) || schedule.delay_before(next + 1).is_none() {
            return NextStep::Retry { attempt: next, tier };
        }
        next += 1;
    }
    NextStep::Exhausted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Delay {
        s.parse().expect("delay")
    }

    #[test]
    fn default_schedule_spans_more_than_a_day_in_eight_attempts() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 8);
        assert!(s.span() >= Duration::from_secs(27 * 3600), "{:?}", s.span());
        let tiers: Vec<String> = s.tiers().iter().map(ToString::to_string).collect();
        assert_eq!(tiers, ["5s", "5m", "30m", "2h", "5h", "10h"], "a repeated delay reuses its tier");
    }

    #[test]
    fn delays_parse_and_print_canonically() {
        assert_eq!(d("300s").to_string(), "5m");
        assert_eq!(d("90m").to_string(), "90m");
        assert_eq!(d("1500ms").to_string(), "1500ms");
        assert_eq!(d("24h").to_string(), "1d");
        for bad in ["", "5", "s", "0s", "5 parsecs", "-5s", "1.5s", "31d", "66902704044837d", "18446744073709551615ms0"] {
            assert!(bad.parse::<Delay>().is_err(), "{bad:?}");
        }
        assert_eq!(d("30d").to_string(), "30d", "the longest delay");
        assert!(matches!(RetrySchedule::parse(&["5s", "x"]), Err(ScheduleError::BadDelay(1, _))));
    }

    #[test]
    fn next_step_walks_the_schedule_then_exhausts() {
        let s = RetrySchedule::parse(&["1s", "2s", "2s"]).expect("schedule");
        assert_eq!(next_step(&s, 1, None), NextStep::Retry { attempt: 2, tier: d("1s") });
        assert_eq!(next_step(&s, 3, None), NextStep::Retry { attempt: 4, tier: d("2s") });
        assert_eq!(next_step(&s, 4, None), NextStep::Exhausted);
    }

    #[test]
    fn retry_after_skips_to_a_covering_step_but_never_past_the_last() {
        let s = RetrySchedule::default();
        let hint = Some(Duration::from_secs(60));
        assert_eq!(next_step(&s, 1, hint), NextStep::Retry { attempt: 3, tier: d("5m") });
        let huge = Some(Duration::from_secs(100 * 3600));
        assert_eq!(next_step(&s, 1, huge), NextStep::Retry { attempt: 8, tier: d("10h") });
        assert_eq!(next_step(&s, 8, hint), NextStep::Exhausted);
    }

    #[test]
    fn endpoint_schedules_snap_to_global_tiers() {
        let tiers = RetrySchedule::default().tiers();
        let own = RetrySchedule::parse(&["1s", "10m", "3d"]).expect("schedule");
        let snapped: Vec<String> = own.snapped_to(&tiers).delays().iter().map(ToString::to_string).collect();
        assert_eq!(snapped, ["5s", "30m", "10h"]);
    }

    proptest! {
        #[test]
        fn due_is_never_early_and_jitter_is_bounded(
            now in 0i64..4_000_000_000_000,
            ms in 1u64..100_000_000,
            jitter in 0.0f64..0.5,
            unit in 0.0f64..1.0,
        ) {
            let delay = Delay::from_millis(ms);
            let due = due_at_ms(now, delay, jitter, unit);
            prop_assert!(due >= now + ms as i64);
            prop_assert!(due <= now + (ms as f64 * (1.0 + jitter)) as i64 + 1);
        }

        #[test]
        fn schedule_steps_are_monotone_and_finite(
            delays in prop::collection::vec(prop_oneof![Just("1s"), Just("5s"), Just("1m")], 0..10),
            hint in prop::option::of(0u64..200),
        ) {
            let s = RetrySchedule::parse(&delays).expect("schedule");
            let mut attempt = 1;
            let mut steps = 0;
            while let NextStep::Retry { attempt: next, tier } = next_step(&s, attempt, hint.map(Duration::from_secs)) {
                prop_assert!(next > attempt);
                prop_assert_eq!(Some(tier), s.delay_before(next));
                attempt = next;
                steps += 1;
            }
            prop_assert!(steps <= delays.len());
            prop_assert!(attempt <= s.attempts());
        }
    }
}
