//! How late deliveries are: the signals behind "webhooks are late". Two histograms, both
//! without an endpoint or event label (bounded: `attempt` is `first` or `retry`):
//!
//! - `hookline_delivery_latency_seconds`: from the event's `occurred_at_ms` to the 2xx
//!   that delivered it, recorded once per delivery, by the attempt that succeeds.
//! - `hookline_sender_first_attempt_delay_seconds`: from the delivery's creation by the
//!   router (`created_at_ms`; the event's time when a record has none) to its first
//!   attempt: how long deliveries wait for a sender, whatever the endpoint answers.
//!
//! Replays are left out: their events are old by design. The catalog gives these two
//! their own buckets, 50 ms to 1 h ([`hookline_runtime::metric_catalog::LATENESS_BUCKETS`]).

use hookline_proto::v1;
use hookline_runtime::metric_catalog::Series;
use metrics::Histogram;

/// Seconds from `from_ms` to `now_ms`; `None` when `from_ms` is unknown (0 or less). A
/// `from_ms` in the future (a producer's clock ahead of ours) counts as no delay.
pub fn seconds_since(from_ms: i64, now_ms: i64) -> Option<f64> {
    (from_ms > 0).then(|| (now_ms.saturating_sub(from_ms)).max(0) as f64 / 1000.0)
}

/// `first` for a delivery's first attempt, `retry` for a later one.
pub fn attempt_label(attempt: u32) -> &'static str {
    if attempt <= 1 {
        "first"
    } else {
        "retry"
    }
}

/// When the first attempt of `delivery` started waiting: the router's `created_at_ms`, or
/// the event's time for a record without it.
pub fn waiting_since_ms(delivery: &v1::Delivery) -> i64 {
    match delivery.created_at_ms {
        0 => delivery.event.as_ref().map_or(0, |e| e.occurred_at_ms),
        created => created,
    }
}

/// Records the first-attempt delay of `delivery`, about to be attempted at `now_ms`, if this
/// is its first attempt (deferrals do not count as attempts) and it is not a replay.
/// `delay` is [`hookline_runtime::metric_catalog::SENDER_FIRST_ATTEMPT_DELAY`]'s handle.
pub fn record_first_attempt(delay: &Histogram, delivery: &v1::Delivery, now_ms: i64) {
    if delivery.attempt > 1 || !delivery.replay_id.is_empty() {
        return;
    }
    if let Some(s) = seconds_since(waiting_since_ms(delivery), now_ms) {
        delay.record(s);
    }
}

/// Records the end-to-end latency of `delivery`, delivered (a 2xx) at `now_ms`.
/// `latency` is [`hookline_runtime::metric_catalog::DELIVERY_LATENCY`]'s series.
pub fn record_delivered(latency: &Series<Histogram>, delivery: &v1::Delivery, now_ms: i64) {
    if !delivery.replay_id.is_empty() {
        return;
    }
    let occurred = delivery.event.as_ref().map_or(0, |e| e.occurred_at_ms);
    if let Some(s) = seconds_since(occurred, now_ms) {
        latency.of(attempt_label(delivery.attempt)).record(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_since_a_known_time_never_negative() {
        assert_eq!(seconds_since(1_000, 3_500), Some(2.5));
        assert_eq!(seconds_since(5_000, 3_500), Some(0.0), "a clock ahead of ours is no delay");
        assert_eq!(seconds_since(0, 3_500), None, "unknown time: not recorded");
        assert_eq!(seconds_since(-1, 3_500), None);
    }

    #[test]
    fn first_attempt_waits_from_the_routers_creation_or_the_event() {
        let event = v1::Event { occurred_at_ms: 100, ..Default::default() };
        let mut d = v1::Delivery { event: Some(event), created_at_ms: 250, ..Default::default() };
        assert_eq!(waiting_since_ms(&d), 250);
        d.created_at_ms = 0;
        assert_eq!(waiting_since_ms(&d), 100);
    }

    #[test]
    fn attempt_labels_are_bounded() {
        assert_eq!(attempt_label(0), "first");
        assert_eq!(attempt_label(1), "first");
        assert_eq!(attempt_label(2), "retry");
        assert_eq!(attempt_label(40), "retry");
    }
}
