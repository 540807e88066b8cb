//! Ordered lanes: which lane a delivery belongs to, and what a lane's head does after a
//! failed attempt. A lane has one delivery in flight; its head is retried in place, on the
//! endpoint's schedule, never through the retry tiers (which would reorder it), until it
//! succeeds or the lane is blocked. No IO here.

use crate::retry::{next_step, NextStep, RetrySchedule};
use hookline_proto::v1::{DeliveryOrdering, Event};
use std::collections::HashMap;
use std::time::Duration;

/// The lane of a delivery of `event` to an endpoint with `ordering`, or `None` when the
/// endpoint is not ordered. Under `KEY`, an event without an ordering key is a lane of its
/// own (its id).
pub fn lane_of(ordering: DeliveryOrdering, endpoint_id: &str, event: &Event) -> Option<String> {
    match ordering {
        DeliveryOrdering::None => None,
        DeliveryOrdering::Endpoint => Some(endpoint_id.to_owned()),
        DeliveryOrdering::Key if event.ordering_key.is_empty() => Some(event.id.clone()),
        DeliveryOrdering::Key => Some(event.ordering_key.clone()),
    }
}

/// What a lane's head does after a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadStep {
    /// Attempt again, as attempt `attempt`, after `wait`, holding the lane.
    Retry { attempt: u32, wait: Duration },
    /// The lane is blocked: skip the head or halt, as the endpoint says. The text says why.
    Blocked(String),
}

/// The step after attempt `attempt` (1-based) of a lane's head failed retryably at `now_ms`;
/// the head was first attempted at `first_at_ms`. The lane is blocked when the schedule has
/// no attempt left, or when the next one would come later than `max_block_ms` after the
/// first (0: the schedule's span). A `Retry-After` hint lengthens the wait, as it skips
/// steps for unordered deliveries.
pub fn after_head_failure(
    schedule: &RetrySchedule,
    attempt: u32,
    first_at_ms: i64,
    now_ms: i64,
    max_block_ms: i64,
    retry_after: Option<Duration>,
    error: &str,
) -> HeadStep {
    let attempt = attempt.max(1);
    let limit = if max_block_ms > 0 { max_block_ms } else { i64::try_from(schedule.span().as_millis()).unwrap_or(i64::MAX) };
    match next_step(schedule, attempt, retry_after) {
        NextStep::Retry { attempt: next, tier } => {
            let wait = tier.duration().max(retry_after.unwrap_or_default());
            let next_at = now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            if next_at.saturating_sub(first_at_ms) > limit {
                HeadStep::Blocked(format!(
                    "ordered lane blocked: the head failed for {} ms, and its next attempt would pass the lane's {limit} ms limit; last: {error}",
                    now_ms - first_at_ms
                ))
            } else {
                HeadStep::Retry { attempt: next, wait }
            }
        }
        NextStep::Exhausted => HeadStep::Blocked(format!("ordered lane blocked: {attempt} attempts failed; last: {error}")),
    }
}

/// When a lane's head that has been failing (or waiting) since `since_ms` moves to the
/// parked topic, with the lane behind it, rather than waiting in place and holding its
/// partition's commit and the sender's window. `None` for `park_after_ms` 0 (never on time).
pub fn park_due(since_ms: i64, park_after_ms: i64) -> Option<i64> {
    (park_after_ms > 0 && since_ms > 0).then(|| since_ms.saturating_add(park_after_ms))
}

/// Which lanes are parked, per deliveries partition: how many of each lane's deliveries wait
/// on the parked topic (produced there and not yet ended). A lane is parked while any does,
/// and then its new deliveries are parked too, behind them; it unparks when the last ends.
/// Keyed partition, then endpoint id, then lane, so that the check made for every ordered
/// delivery ([`Self::is_parked`]) looks up borrowed names and allocates nothing.
#[derive(Debug, Default)]
pub struct ParkedLanes {
    waiting: HashMap<i32, HashMap<String, HashMap<String, u64>>>,
}

impl ParkedLanes {
    pub fn is_parked(&self, partition: i32, endpoint_id: &str, lane: &str) -> bool {
        self.waiting.get(&partition).and_then(|endpoints| endpoints.get(endpoint_id)).is_some_and(|lanes| lanes.contains_key(lane))
    }

    /// One more delivery of the lane waits on the parked topic.
    pub fn parked(&mut self, partition: i32, endpoint_id: &str, lane: &str) {
        let lanes = self.waiting.entry(partition).or_default().entry(endpoint_id.to_owned()).or_default();
        *lanes.entry(lane.to_owned()).or_default() += 1;
    }

    /// A parked delivery of the lane ended (delivered, skipped, or finished before); `true`
    /// when that was the lane's last and it is no longer parked. An end the counts do not
    /// know (its partition was reassigned meanwhile) changes nothing.
    pub fn ended(&mut self, partition: i32, endpoint_id: &str, lane: &str) -> bool {
        let Some(endpoints) = self.waiting.get_mut(&partition) else { return false };
        let Some(lanes) = endpoints.get_mut(endpoint_id) else { return false };
        let Some(n) = lanes.get_mut(lane) else { return false };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        lanes.remove(lane);
        if lanes.is_empty() {
            endpoints.remove(endpoint_id);
            if endpoints.is_empty() {
                self.waiting.remove(&partition);
            }
        }
        true
    }

    /// The partition went to another sender: its lanes are the new owner's to count.
    pub fn forget(&mut self, partition: i32) {
        self.waiting.remove(&partition);
    }

    /// Parked lanes over all partitions (a gauge).
    pub fn lanes(&self) -> usize {
        self.waiting.values().flat_map(HashMap::values).map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schedule() -> RetrySchedule {
        RetrySchedule::parse(&["1s", "5s", "30s"]).expect("schedule")
    }

    fn event(id: &str, key: &str) -> Event {
        Event { id: id.into(), ordering_key: key.into(), ..Default::default() }
    }

    #[test]
    fn the_lane_follows_the_endpoints_ordering() {
        assert_eq!(lane_of(DeliveryOrdering::None, "ep", &event("e1", "k")), None);
        assert_eq!(lane_of(DeliveryOrdering::Endpoint, "ep", &event("e1", "k")).as_deref(), Some("ep"));
        assert_eq!(lane_of(DeliveryOrdering::Key, "ep", &event("e1", "k")).as_deref(), Some("k"));
        assert_eq!(lane_of(DeliveryOrdering::Key, "ep", &event("e1", "")).as_deref(), Some("e1"));
    }

    #[test]
    fn the_head_retries_in_place_on_the_schedule_then_blocks() {
        let s = schedule();
        assert_eq!(after_head_failure(&s, 1, 0, 0, 0, None, "503"), HeadStep::Retry { attempt: 2, wait: Duration::from_secs(1) });
        assert_eq!(after_head_failure(&s, 2, 0, 1_000, 0, None, "503"), HeadStep::Retry { attempt: 3, wait: Duration::from_secs(5) });
        assert_eq!(after_head_failure(&s, 3, 0, 6_000, 0, None, "503"), HeadStep::Retry { attempt: 4, wait: Duration::from_secs(30) });
        assert_eq!(
            after_head_failure(&s, 4, 0, 36_000, 0, None, "HTTP 503"),
            HeadStep::Blocked("ordered lane blocked: 4 attempts failed; last: HTTP 503".into())
        );
    }

    #[test]
    fn max_block_cuts_the_wait_short_and_retry_after_stretches_it() {
        let s = schedule();
        assert!(matches!(after_head_failure(&s, 3, 0, 6_000, 10_000, None, "503"), HeadStep::Blocked(_)));
        assert_eq!(
            after_head_failure(&s, 1, 0, 0, 0, Some(Duration::from_secs(3)), "429"),
            HeadStep::Retry { attempt: 3, wait: Duration::from_secs(5) },
            "a hint skips to the first step that covers it"
        );
    }

    proptest! {
        /// The head never waits past its block limit, and attempts only go up.
        #[test]
        fn a_head_never_outlives_its_limit(attempt in 1u32..6, elapsed in 0i64..100_000, max_block in 0i64..60_000, hint in prop::option::of(0u64..20)) {
            let s = schedule();
            let limit = if max_block > 0 { max_block } else { s.span().as_millis() as i64 };
            match after_head_failure(&s, attempt, 1_000, 1_000 + elapsed, max_block, hint.map(Duration::from_secs), "e") {
                HeadStep::Retry { attempt: next, wait } => {
                    prop_assert!(next > attempt && next <= s.attempts());
                    prop_assert!(elapsed + wait.as_millis() as i64 <= limit);
                }
                HeadStep::Blocked(why) => prop_assert!(why.starts_with("ordered lane blocked")),
            }
        }
    }

    #[test]
    fn a_head_parks_once_it_failed_for_the_limit() {
        assert_eq!(park_due(1_000, 30_000), Some(31_000));
        assert_eq!(park_due(1_000, 0), None, "0: never on time");
        assert_eq!(park_due(0, 30_000), None, "no time to count from");
        assert_eq!(park_due(i64::MAX - 5, 30_000), Some(i64::MAX));
    }

    #[test]
    fn a_lane_stays_parked_until_its_last_parked_delivery_ends() {
        let mut parked = ParkedLanes::default();
        parked.parked(3, "ep", "k1");
        parked.parked(3, "ep", "k1");
        parked.parked(4, "ep", "k1");
        assert!(parked.is_parked(3, "ep", "k1"));
        assert!(!parked.is_parked(3, "ep", "k2"), "another lane of the endpoint is not");
        assert!(!parked.is_parked(3, "other", "k1"), "the same lane name of another endpoint is not");
        assert!(!parked.ended(3, "ep", "k1"));
        assert!(parked.is_parked(3, "ep", "k1"), "one still waits");
        assert!(parked.ended(3, "ep", "k1"), "the last one unparks the lane");
        assert!(!parked.is_parked(3, "ep", "k1"));
        assert!(!parked.ended(3, "ep", "k1"), "an end it does not know changes nothing");
        assert_eq!(parked.lanes(), 1);
        parked.forget(4);
        assert_eq!(parked.lanes(), 0);
    }

    proptest::proptest! {
        /// Whatever the interleaving of parks and ends (ends only of parked deliveries), a
        /// lane is parked exactly while more of its deliveries were parked than ended, and the
        /// gauge counts exactly those lanes.
        #[test]
        fn parked_while_more_parked_than_ended(steps in proptest::collection::vec((0..3usize, proptest::bool::ANY), 0..200)) {
            let lanes = ["a", "b", "c"];
            let mut parked = ParkedLanes::default();
            let mut count = [0u64; 3];
            for (lane, park) in steps {
                if park {
                    parked.parked(0, "ep", lanes[lane]);
                    count[lane] += 1;
                } else if count[lane] > 0 {
                    let unparked = parked.ended(0, "ep", lanes[lane]);
                    count[lane] -= 1;
                    proptest::prop_assert_eq!(unparked, count[lane] == 0);
                }
                for (i, l) in lanes.iter().enumerate() {
                    proptest::prop_assert_eq!(parked.is_parked(0, "ep", l), count[i] > 0);
                }
                proptest::prop_assert_eq!(parked.lanes(), count.iter().filter(|&&n| n > 0).count());
            }
        }
    }
}
