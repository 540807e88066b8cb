//! The sender's decisions about one delivery, as plain functions: whether to attempt it,
//! what an attempt's result means for the breaker, and where the delivery goes next. The
//! sender's `deliver` carries the verdicts out (requests, produces, endpoint writes) and
//! decides nothing itself.

use crate::breaker::Admission;
use crate::outcome::Class;
use crate::retry::{next_step, Delay, NextStep, RetrySchedule};
use hookline_proto::v1::DeadLetterReason;

/// Before anything else: can the delivery's endpoint take it at all?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Proceed,
    DeadLetter(DeadLetterReason, String),
}

/// `endpoint` is `None` when it no longer exists, else whether it is disabled.
pub fn gate(endpoint_id: &str, disabled: Option<bool>) -> Gate {
    match disabled {
        None => Gate::DeadLetter(DeadLetterReason::EndpointNotFound, format!("endpoint {endpoint_id} does not exist")),
        Some(true) => Gate::DeadLetter(DeadLetterReason::EndpointDisabled, format!("endpoint {endpoint_id} is disabled")),
        Some(false) => Gate::Proceed,
    }
}

/// Whether to make the request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Attempt it; `probe` when it is the half-open breaker's probe.
    Attempt { probe: bool },
    /// Move it on without a request (recorded as deferred), for this reason.
    Defer(&'static str),
}

/// The bulkhead said whether the endpoint's queue had room (`queued`); the breaker gave its
/// admission. A stalled endpoint's overflow and an open breaker's work are deferred.
pub fn admit(queued: bool, admission: Admission) -> Admit {
    match (queued, admission) {
        (false, _) => Admit::Defer("endpoint stalled with a full queue"),
        (true, Admission::Reject) => Admit::Defer("circuit breaker open"),
        (true, Admission::Probe) => Admit::Attempt { probe: true },
        (true, Admission::Attempt) => Admit::Attempt { probe: false },
    }
}

/// Whether an attempt's result counts against the endpoint's breaker: only what says the
/// endpoint is down (5xx, timeouts, connection errors). A 4xx, 429 included, comes from a
/// running endpoint.
pub fn breaker_failure(class: Class, status: u16) -> bool {
    matches!(class, Class::Retryable { .. }) && !(400..500).contains(&status)
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    Retry { attempt: u32, tier: Delay },
    /// To the DLQ. `exhausted`: the endpoint's failing period starts (or, past its limit,
    /// the endpoint is disabled). `gone`: the endpoint asked to be removed: disable it.
    DeadLetter { reason: DeadLetterReason, detail: String, exhausted: bool, gone: bool },
}

/// The verdict on attempt number `attempt` (1-based) whose result was `class`, with the
/// attempt's error text for the dead letter.
pub fn after_attempt(schedule: &RetrySchedule, attempt: u32, class: Class, error: &str) -> AfterAttempt {
    let dead = |reason, detail, exhausted, gone| AfterAttempt::DeadLetter { reason, detail, exhausted, gone };
    match class {
        Class::Success => AfterAttempt::Delivered,
        Class::Retryable { retry_after } => match next_step(schedule, attempt.max(1), retry_after) {
            NextStep::Retry { attempt, tier } => AfterAttempt::Retry { attempt, tier },
            NextStep::Exhausted => dead(
                DeadLetterReason::Exhausted,
                format!("{} attempts failed; last: {error}", attempt.max(1)),
                true,
                false,
            ),
        },
        Class::Permanent => dead(DeadLetterReason::PermanentFailure, format!("{error} (configured as permanent)"), false, false),
        Class::BlockedByPolicy => dead(DeadLetterReason::BlockedByPolicy, error.to_owned(), false, false),
        Class::Gone => dead(DeadLetterReason::EndpointGone, format!("{error}; endpoint disabled"), false, true),
    }
}

/// Where a deferred delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDeferral {
    /// Through the tier of its next step, keeping its attempt number: only real attempts
    /// count against the schedule.
    Forward { attempt: u32, tier: Delay },
    /// Deferred for longer than the schedule's whole span: exhausted.
    Exhausted(String),
}

/// The verdict on a deferral of a delivery on `attempt`, first attempted (or deferred) at
/// `first_at_ms` (0: never before), at `now_ms`.
pub fn after_deferral(
    schedule: &RetrySchedule,
    attempt: u32,
    first_at_ms: i64,
    now_ms: i64,
    why: &str,
    last_error: &str,
) -> AfterDeferral {
    let since = if first_at_ms > 0 { first_at_ms } else { now_ms };
    let span = i64::try_from(schedule.span().as_millis()).unwrap_or(i64::MAX);
    match schedule.delay_before(attempt.max(2)) {
        Some(tier) if now_ms - since < span => AfterDeferral::Forward { attempt: attempt.max(1), tier },
        _ => AfterDeferral::Exhausted(format!("deferred past the retry schedule ({why}); last error: {last_error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn schedule() -> RetrySchedule {
        RetrySchedule::parse(&["5s", "5m", "30m"]).expect("schedule")
    }

    #[test]
    fn a_missing_or_disabled_endpoint_dead_letters_with_its_reason() {
        assert_eq!(gate("ep", Some(false)), Gate::Proceed);
        assert_eq!(gate("ep", None), Gate::DeadLetter(DeadLetterReason::EndpointNotFound, "endpoint ep does not exist".into()));
        assert_eq!(gate("ep", Some(true)), Gate::DeadLetter(DeadLetterReason::EndpointDisabled, "endpoint ep is disabled".into()));
    }

    #[test]
    fn overflow_and_an_open_breaker_defer_without_a_request() {
        assert_eq!(admit(false, Admission::Attempt), Admit::Defer("endpoint stalled with a full queue"));
        assert_eq!(admit(true, Admission::Reject), Admit::Defer("circuit breaker open"));
        assert_eq!(admit(true, Admission::Probe), Admit::Attempt { probe: true });
        assert_eq!(admit(true, Admission::Attempt), Admit::Attempt { probe: false });
    }

    #[test]
    fn only_signs_of_a_down_endpoint_count_against_the_breaker() {
        let retryable = Class::Retryable { retry_after: None };
        assert!(breaker_failure(retryable, 503));
        assert!(breaker_failure(retryable, 0), "timeouts and connection errors");
        assert!(!breaker_failure(retryable, 429));
        assert!(!breaker_failure(retryable, 404));
        assert!(!breaker_failure(Class::Permanent, 500));
        assert!(!breaker_failure(Class::Success, 200));
    }

    #[test]
    fn each_result_has_its_next_step() {
        let s = schedule();
        let retryable = Class::Retryable { retry_after: None };
        assert_eq!(after_attempt(&s, 1, Class::Success, ""), AfterAttempt::Delivered);
        assert_eq!(after_attempt(&s, 1, retryable, "503"), AfterAttempt::Retry { attempt: 2, tier: "5s".parse().expect("d") });
        let hint = Class::Retryable { retry_after: Some(Duration::from_secs(60)) };
        assert_eq!(after_attempt(&s, 1, hint, "429"), AfterAttempt::Retry { attempt: 3, tier: "5m".parse().expect("d") });
        let AfterAttempt::DeadLetter { reason, detail, exhausted, gone } = after_attempt(&s, 4, retryable, "HTTP 503") else {
            panic!("exhausted");
        };
        assert_eq!((reason, detail.as_str(), exhausted, gone), (DeadLetterReason::Exhausted, "4 attempts failed; last: HTTP 503", true, false));
        assert!(matches!(after_attempt(&s, 1, Class::Gone, "HTTP 410"), AfterAttempt::DeadLetter { reason: DeadLetterReason::EndpointGone, gone: true, .. }));
        assert!(matches!(after_attempt(&s, 1, Class::Permanent, "HTTP 400"), AfterAttempt::DeadLetter { reason: DeadLetterReason::PermanentFailure, exhausted: false, .. }));
        assert!(matches!(after_attempt(&s, 1, Class::BlockedByPolicy, "10.0.0.1"), AfterAttempt::DeadLetter { reason: DeadLetterReason::BlockedByPolicy, .. }));
    }

    #[test]
    fn deferrals_keep_the_attempt_number_until_the_schedule_span_has_passed() {
        let s = schedule();
        let span = s.span().as_millis() as i64;
        assert_eq!(after_deferral(&s, 1, 0, 1_000, "circuit breaker open", ""), AfterDeferral::Forward { attempt: 1, tier: "5s".parse().expect("d") });
        assert_eq!(after_deferral(&s, 3, 1_000, 1_000 + span - 1, "x", ""), AfterDeferral::Forward { attempt: 3, tier: "5m".parse().expect("d") });
        assert_eq!(
            after_deferral(&s, 3, 1_000, 1_000 + span, "circuit breaker open", "HTTP 503"),
            AfterDeferral::Exhausted("deferred past the retry schedule (circuit breaker open); last error: HTTP 503".into())
        );
    }

    proptest! {
        /// A retry always moves forward within the schedule, and a delivery is never
        /// dead-lettered as exhausted before the schedule's last attempt.
        #[test]
        fn retries_advance_and_exhaust_only_at_the_end(attempt in 1u32..12, hint_s in prop::option::of(0u64..100_000), status in 0u16..600) {
            let s = schedule();
            let class = Class::Retryable { retry_after: hint_s.map(Duration::from_secs) };
            match after_attempt(&s, attempt, class, "e") {
                AfterAttempt::Retry { attempt: next, tier } => {
                    prop_assert!(next > attempt && next <= s.attempts());
                    prop_assert_eq!(Some(tier), s.delay_before(next));
                }
                AfterAttempt::DeadLetter { reason, exhausted, .. } => {
                    prop_assert_eq!(reason, DeadLetterReason::Exhausted);
                    prop_assert!(exhausted);
                    prop_assert!(attempt >= s.attempts() || hint_s.is_some());
                }
                AfterAttempt::Delivered => prop_assert!(false, "a failure is never delivered"),
            }
            prop_assert_eq!(breaker_failure(class, status), !(400..500).contains(&status));
        }

        /// Deferrals never raise the attempt number and always end once the span passed.
        #[test]
        fn deferrals_never_use_up_attempts(attempt in 1u32..5, first in 1i64..1_000_000, waited in 0i64..10_000_000) {
            let s = schedule();
            match after_deferral(&s, attempt, first, first + waited, "why", "") {
                AfterDeferral::Forward { attempt: a, .. } => {
                    prop_assert_eq!(a, attempt);
                    prop_assert!(waited < s.span().as_millis() as i64);
                }
                AfterDeferral::Exhausted(_) => prop_assert!(waited >= s.span().as_millis() as i64 || attempt >= s.attempts()),
            }
        }
    }
}
