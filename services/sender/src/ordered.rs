//! Deliveries of ordered endpoints (`ordering: endpoint | key`). The worker runs a lane's
//! deliveries one at a time ([`crate::workers`]); here a lane's head is retried in place
//! instead of through the retry tiers, waits instead of being deferred while its endpoint's
//! breaker is open or its queue full, and, once blocked, is skipped to the DLQ or halts its
//! endpoint ([`hookline_core::lane`] decides).

use hookline_core::lane::{self, HeadStep};
use hookline_proto::v1::{self, DeliveryOrdering, LaneBlocked};
use hookline_proto::Message as _;
use hookline_runtime::kafka::OwnedRecord;
use hookline_runtime::registry::{EndpointEntry, EndpointRegistry};
use hookline_runtime::time::now_ms;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// How long a lane's head waits before asking again while its endpoint's breaker is open
/// or its queue is full (it is not deferred: that would reorder the lane).
pub const WAIT_FOR_ENDPOINT: Duration = Duration::from_millis(250);

/// Request headers with which a receiver detects a gap in a lane: this delivery's sequence
/// (its deliveries-topic offset, increasing along a lane) and the sequence of the delivery
/// before it in the lane, when this sender knows it.
pub const SEQUENCE_HEADER: &str = "webhook-sequence";
pub const PREVIOUS_SEQUENCE_HEADER: &str = "webhook-sequence-previous";

/// Lanes whose previous sequence a sender remembers, per endpoint; past it they are
/// forgotten (the next delivery of a forgotten lane is sent without the previous sequence).
const REMEMBERED_LANES: usize = 10_000;

/// The ordered lane of a record, for [`crate::workers::LaneOf`]: `None` for unordered
/// endpoints (the common case: one registry lookup) and for undecodable records.
pub fn lane_of(registry: &EndpointRegistry, record: &OwnedRecord) -> Option<String> {
    let entry = registry.get(std::str::from_utf8(&record.key).ok()?)?;
    match entry.endpoint.ordering() {
        DeliveryOrdering::None => None,
        // The whole endpoint is one lane: no need to decode the record.
        DeliveryOrdering::Endpoint => Some(entry.endpoint.id.clone()),
        ordering @ DeliveryOrdering::Key => {
            let delivery = v1::Delivery::decode(record.value.as_deref().unwrap_or_default()).ok()?;
            lane::lane_of(ordering, &entry.endpoint.id, delivery.event.as_ref()?)
        }
    }
}

/// What happens to an ordered delivery after a retryable failure.
pub enum AfterFailure {
    /// Try again after this long, holding the lane (the delivery carries its new attempt).
    Again(v1::Delivery, Duration),
    /// Blocked: dead-letter the head with this detail (and, when `halt`, disable the endpoint).
    Blocked { delivery: v1::Delivery, detail: String, halt: bool },
}

/// The step after attempt `delivery.attempt` of an ordered delivery failed retryably.
pub fn after_failure(
    entry: &EndpointEntry,
    schedule: &hookline_core::retry::RetrySchedule,
    mut delivery: v1::Delivery,
    retry_after: Option<Duration>,
    error: &str,
) -> AfterFailure {
    let now = now_ms();
    if delivery.first_attempt_at_ms == 0 {
        delivery.first_attempt_at_ms = now;
    }
    let step = lane::after_head_failure(
        schedule,
        delivery.attempt,
        delivery.first_attempt_at_ms,
        now,
        entry.endpoint.lane_max_block_ms,
        retry_after,
        error,
    );
    delivery.last_error = error.to_owned();
    match step {
        HeadStep::Retry { attempt, wait } => {
            delivery.attempt = attempt;
            delivery.next_attempt_at_ms = now + wait.as_millis() as i64;
            AfterFailure::Again(delivery, wait)
        }
        HeadStep::Blocked(why) => {
            let halt = entry.endpoint.on_lane_blocked() == LaneBlocked::Halt;
            let detail = if halt {
                let from = delivery.event.as_ref().map_or(0, |e| e.occurred_at_ms);
                format!(
                    "{why}; the lane halted and its endpoint is disabled: enable it, then replay this endpoint's dead letters (they wait in the DLQ in lane order) and the events published since it halted (from {from})"
                )
            } else {
                format!("{why}; the head was skipped")
            };
            AfterFailure::Blocked { delivery, detail, halt }
        }
    }
}

/// The previous sequence of each lane, per endpoint, as far as this sender saw it.
#[derive(Default)]
pub struct Sequences {
    last: Mutex<HashMap<(String, String), i64>>,
}

impl Sequences {
    /// The headers for a delivery at `offset` in `lane`.
    pub fn headers(&self, endpoint_id: &str, lane: &str, offset: i64) -> Vec<(&'static str, String)> {
        let mut headers = vec![(SEQUENCE_HEADER, offset.to_string())];
        if let Some(previous) = self.last.lock().get(&(endpoint_id.to_owned(), lane.to_owned())) {
            headers.push((PREVIOUS_SEQUENCE_HEADER, previous.to_string()));
        }
        headers
    }

    /// The delivery at `offset` ended (delivered or skipped): the lane's next follows it.
    pub fn ended(&self, endpoint_id: &str, lane: &str, offset: i64) {
        let mut last = self.last.lock();
        if last.len() >= REMEMBERED_LANES {
            last.clear();
        }
        last.insert((endpoint_id.to_owned(), lane.to_owned()), offset);
    }
}
