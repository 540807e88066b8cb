//! Ordered lanes: which lane a delivery belongs to, and what a lane's head does after a
//! failed attempt. A lane has one delivery in flight; its head is retried in place, on the
//! endpoint's schedule, never through the retry tiers (which would reorder it), until it
//! succeeds or the lane is blocked. No IO here.

use crate::retry::{next_step, NextStep, RetrySchedule};
use hookline_proto::v1::{DeliveryOrdering, Event};
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
}
