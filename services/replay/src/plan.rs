//! The pure part of a replay: which requests are valid, what to do with each source record,
//! and how far a job has got. No IO.

use hookline_core::matching::{EventKey, EventTypePattern};
use hookline_proto::v1::{self, DeadLetterReason, ReplaySource, ReplayState};
use hookline_runtime::registry::EndpointRegistry;

/// One broken rule of a replay request: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

/// Dead letters a job may name one by one.
pub const MAX_EVENT_IDS: usize = 1_000;

/// Checks a request on its own (the API also checks that the endpoint exists).
pub fn validate(request: &v1::ReplayRequest, max_rate_per_second: u32) -> Result<(), Vec<Invalid>> {
    let mut errors = Vec::new();
    let mut fail = |field: &'static str, problem: String| errors.push(Invalid { field, problem });
    let source = request.source();
    if source == ReplaySource::Unspecified {
        fail("source", "must be dlq or events".into());
    }
    if source == ReplaySource::Events && request.endpoint_id.is_empty() {
        fail("endpoint_id", "is required to replay events: name the endpoint to backfill".into());
    }
    if source == ReplaySource::Events && !request.reasons.is_empty() {
        fail("reasons", "only applies to source dlq".into());
    }
    if source == ReplaySource::Events && !request.event_ids.is_empty() {
        fail("event_ids", "only applies to source dlq".into());
    }
    if request.event_ids.len() > MAX_EVENT_IDS {
        fail("event_ids", format!("at most {MAX_EVENT_IDS} (replay a filter for more)"));
    }
    if request.from_ms < 0 {
        fail("from", "must not be negative".into());
    }
    if request.to_ms <= request.from_ms {
        fail("to", format!("must be after from ({})", request.from_ms));
    }
    for (i, text) in request.event_types.iter().enumerate() {
        if let Err(e) = EventTypePattern::parse(text) {
            fail("event_types", format!("[{i}] {text:?} {e}"));
        }
    }
    for reason in &request.reasons {
        if DeadLetterReason::try_from(*reason).map_or(true, |r| r == DeadLetterReason::Unspecified) {
            fail("reasons", format!("{reason} is not a dead-letter reason"));
        }
    }
    if !(1..=max_rate_per_second).contains(&request.rate_per_second) {
        fail("rate_per_second", format!("must be between 1 and {max_rate_per_second}"));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// What to do with one source record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Produce this delivery.
    Replay(Box<v1::Delivery>),
    /// Outside the request's filter.
    Filtered,
    /// In the filter, but it cannot be delivered; the reason is logged and counted.
    Unreplayable(&'static str),
}

/// A request's filter, parsed once per job.
pub struct Selector {
    id: String,
    source: ReplaySource,
    endpoint_id: String,
    patterns: Vec<EventTypePattern>,
    reasons: Vec<i32>,
    tenant: String,
    event_ids: std::collections::HashSet<String>,
    from_ms: i64,
    to_ms: i64,
}

impl Selector {
    /// Assumes `request` passed [`validate`]; a pattern that does not parse is ignored.
    pub fn new(request: &v1::ReplayRequest) -> Self {
        Self {
            id: request.id.clone(),
            source: request.source(),
            endpoint_id: request.endpoint_id.clone(),
            patterns: request.event_types.iter().filter_map(|t| EventTypePattern::parse(t).ok()).collect(),
            reasons: request.reasons.clone(),
            tenant: request.tenant.clone(),
            event_ids: request.event_ids.iter().cloned().collect(),
            from_ms: request.from_ms,
            to_ms: request.to_ms,
        }
    }

    pub fn source(&self) -> ReplaySource {
        self.source
    }

    fn in_range(&self, timestamp_ms: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&timestamp_ms)
    }

    /// No endpoint, tenant or event filter: an unreadable dead letter is in this job's range
    /// (and reported as unreplayable), not outside its filter.
    fn takes_any_dead_letter(&self) -> bool {
        self.endpoint_id.is_empty() && self.tenant.is_empty() && self.event_ids.is_empty()
    }

    /// The event passes the type, tenant and event-id filters.
    fn event_wanted(&self, event: &v1::Event) -> bool {
        (self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(&event.r#type)))
            && (self.tenant.is_empty() || event.tenant == self.tenant)
            && (self.event_ids.is_empty() || self.event_ids.contains(&event.id))
    }

    /// A fresh first attempt of `event` for `endpoint_id`, marked as this job's.
    fn delivery(&self, event: v1::Event, endpoint_id: &str, now_ms: i64) -> Decision {
        Decision::Replay(Box::new(v1::Delivery {
            event: Some(event),
            endpoint_id: endpoint_id.to_owned(),
            attempt: 1,
            created_at_ms: now_ms,
            replay_id: self.id.clone(),
            ..Default::default()
        }))
    }

    fn endpoint_problem(registry: &EndpointRegistry, endpoint_id: &str) -> Option<&'static str> {
        match registry.get(endpoint_id) {
            None => Some("endpoint deleted"),
            Some(e) if e.endpoint.disabled => Some("endpoint disabled"),
            Some(_) => None,
        }
    }

    /// A record of the DLQ topic, written at `timestamp_ms`. The event goes out again from
    /// attempt 1 with its own id, so receivers deduplicate it like any retry.
    pub fn dead_letter(&self, value: &[u8], timestamp_ms: i64, registry: &EndpointRegistry, now_ms: i64) -> Decision {
        if !self.in_range(timestamp_ms) {
            return Decision::Filtered;
        }
        let Ok(dead) = <v1::DeadLetter as prost::Message>::decode(value) else {
            return if self.takes_any_dead_letter() { Decision::Unreplayable("not a DeadLetter") } else { Decision::Filtered };
        };
        if !self.reasons.is_empty() && !self.reasons.contains(&dead.reason) {
            return Decision::Filtered;
        }
        let Some(delivery) = dead.delivery else {
            // Undecodable input (an event or delivery that never parsed): nothing to send.
            return if self.takes_any_dead_letter() { Decision::Unreplayable("undecodable input") } else { Decision::Filtered };
        };
        if !self.endpoint_id.is_empty() && delivery.endpoint_id != self.endpoint_id {
            return Decision::Filtered;
        }
        let Some(event) = delivery.event else {
            return Decision::Unreplayable("dead letter without its event");
        };
        if !self.event_wanted(&event) {
            return Decision::Filtered;
        }
        if let Some(problem) = Self::endpoint_problem(registry, &delivery.endpoint_id) {
            return Decision::Unreplayable(problem);
        }
        self.delivery(event, &delivery.endpoint_id, now_ms)
    }

    /// A record of the events topic, written at `timestamp_ms`: delivered to the job's
    /// endpoint if that endpoint's subscription takes it (what it would have received).
    pub fn event(&self, value: &[u8], timestamp_ms: i64, registry: &EndpointRegistry, now_ms: i64) -> Decision {
        if !self.in_range(timestamp_ms) {
            return Decision::Filtered;
        }
        // Read as the router reads (framing, rules, size): what it dead-lettered is not replayed.
        let Ok(read) = hookline_core::event::read(Some(value), hookline_core::config::MAX_PAYLOAD_BYTES_LIMIT) else {
            return Decision::Filtered;
        };
        let event = read.event;
        if !self.event_wanted(&event) {
            return Decision::Filtered;
        }
        if let Some(problem) = Self::endpoint_problem(registry, &self.endpoint_id) {
            return Decision::Unreplayable(problem);
        }
        let key = EventKey { tenant: &event.tenant, event_type: &event.r#type, attributes: &event.attributes };
        if !registry.subscribed(&self.endpoint_id, key) {
            return Decision::Filtered;
        }
        self.delivery(event, &self.endpoint_id, now_ms)
    }
}

/// Records read of the range so far, and the range's size.
pub fn progress(status: &v1::ReplayStatus) -> (u64, u64) {
    status.partitions.iter().fold((0, 0), |(done, total), p| {
        let size = (p.end_offset - p.start_offset).max(0) as u64;
        let read = (p.next_offset - p.start_offset).clamp(0, p.end_offset - p.start_offset) as u64;
        (done + read, total + size)
    })
}

/// Whether every partition has been read to its end.
pub fn finished(status: &v1::ReplayStatus) -> bool {
    status.partitions.iter().all(|p| p.next_offset >= p.end_offset)
}

/// Whether a job in this state will do no more work.
pub fn is_terminal(state: ReplayState) -> bool {
    matches!(state, ReplayState::Completed | ReplayState::Cancelled | ReplayState::Failed)
}

/// Lower-case name of a state, as the API shows it.
pub fn state_name(state: ReplayState) -> &'static str {
    match state {
        ReplayState::Pending => "pending",
        ReplayState::Running => "running",
        ReplayState::Completed => "completed",
        ReplayState::Cancelled => "cancelled",
        ReplayState::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn request(source: ReplaySource) -> v1::ReplayRequest {
        v1::ReplayRequest {
            id: "rp_1".into(),
            source: source as i32,
            from_ms: 1_000,
            to_ms: 2_000,
            rate_per_second: 100,
            ..Default::default()
        }
    }

    fn registry(endpoints: &[(&str, &[&str], bool)]) -> std::sync::Arc<EndpointRegistry> {
        let r = EndpointRegistry::new();
        for (id, types, disabled) in endpoints {
            let e = v1::Endpoint {
                id: (*id).into(),
                url: "https://example.com/hook".into(),
                event_types: types.iter().map(|t| (*t).to_owned()).collect(),
                secrets: vec![v1::Secret { key: SECRET.into(), ..Default::default() }],
                disabled: *disabled,
                ..Default::default()
            };
            r.apply(id.as_bytes(), Some(&e.encode_to_vec())).expect("valid endpoint");
        }
        r
    }

    fn event(id: &str, t: &str) -> v1::Event {
        v1::Event { id: id.into(), r#type: t.into(), payload: b"{}".to_vec().into(), ..Default::default() }
    }

    fn dead(endpoint: &str, t: &str, reason: DeadLetterReason) -> Vec<u8> {
        v1::DeadLetter {
            delivery: Some(v1::Delivery {
                event: Some(event("evt_1", t)),
                endpoint_id: endpoint.into(),
                attempt: 8,
                first_attempt_at_ms: 900,
                last_error: "HTTP 500".into(),
                ..Default::default()
            }),
            reason: reason as i32,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn requests_name_every_broken_rule() {
        assert_eq!(validate(&request(ReplaySource::Dlq), 1_000), Ok(()));
        let mut bad = request(ReplaySource::Events);
        bad.to_ms = 500;
        bad.rate_per_second = 0;
        bad.event_types = vec!["order..x".into()];
        bad.reasons = vec![99];
        let fields: Vec<&str> = validate(&bad, 1_000).expect_err("invalid").iter().map(|e| e.field).collect();
        assert_eq!(fields, ["endpoint_id", "reasons", "to", "event_types", "reasons", "rate_per_second"]);
        assert_eq!(validate(&request(ReplaySource::Unspecified), 1_000).expect_err("no source")[0].field, "source");
    }

    #[test]
    fn a_dead_letter_goes_out_again_from_attempt_one_with_its_event_id() {
        let reg = registry(&[("ep1", &["*"], false)]);
        let s = Selector::new(&request(ReplaySource::Dlq));
        let Decision::Replay(d) = s.dead_letter(&dead("ep1", "order.created", DeadLetterReason::Exhausted), 1_500, &reg, 7) else {
            panic!("replayed");
        };
        assert_eq!((d.attempt, d.first_attempt_at_ms, d.last_error.as_str(), d.created_at_ms), (1, 0, "", 7));
        assert_eq!((d.endpoint_id.as_str(), d.replay_id.as_str()), ("ep1", "rp_1"));
        assert_eq!(d.event.map(|e| e.id), Some("evt_1".into()));
    }

    #[test]
    fn the_dlq_filter_applies_endpoint_reason_type_and_time() {
        let reg = registry(&[("ep1", &["*"], false), ("ep2", &["*"], false), ("off", &["*"], true)]);
        let mut r = request(ReplaySource::Dlq);
        r.endpoint_id = "ep1".into();
        r.reasons = vec![DeadLetterReason::Exhausted as i32];
        r.event_types = vec!["order.*".into()];
        let s = Selector::new(&r);
        let exhausted = DeadLetterReason::Exhausted;
        let replayed = |d: Decision| matches!(d, Decision::Replay(_));
        assert!(replayed(s.dead_letter(&dead("ep1", "order.paid", exhausted), 1_000, &reg, 0)));
        assert_eq!(s.dead_letter(&dead("ep1", "order.paid", exhausted), 2_000, &reg, 0), Decision::Filtered, "to is exclusive");
        assert_eq!(s.dead_letter(&dead("ep1", "order.paid", exhausted), 999, &reg, 0), Decision::Filtered);
        assert_eq!(s.dead_letter(&dead("ep2", "order.paid", exhausted), 1_500, &reg, 0), Decision::Filtered);
        assert_eq!(s.dead_letter(&dead("ep1", "user.new", exhausted), 1_500, &reg, 0), Decision::Filtered);
        assert_eq!(
            s.dead_letter(&dead("ep1", "order.paid", DeadLetterReason::PermanentFailure), 1_500, &reg, 0),
            Decision::Filtered
        );
        assert_eq!(s.dead_letter(b"\xff garbage", 1_500, &reg, 0), Decision::Filtered, "not this endpoint's");

        let all = Selector::new(&request(ReplaySource::Dlq));
        assert_eq!(all.dead_letter(&dead("gone", "a", exhausted), 1_500, &reg, 0), Decision::Unreplayable("endpoint deleted"));
        assert_eq!(all.dead_letter(&dead("off", "a", exhausted), 1_500, &reg, 0), Decision::Unreplayable("endpoint disabled"));
        assert_eq!(all.dead_letter(b"\xff garbage", 1_500, &reg, 0), Decision::Unreplayable("not a DeadLetter"));
        let undecodable = v1::DeadLetter { reason: DeadLetterReason::UndecodableEvent as i32, ..Default::default() };
        assert_eq!(all.dead_letter(&undecodable.encode_to_vec(), 1_500, &reg, 0), Decision::Unreplayable("undecodable input"));
    }

    #[test]
    fn a_job_may_name_its_tenant_and_dead_letters() {
        let reg = registry(&[("ep1", &["*"], false)]);
        let mut r = request(ReplaySource::Dlq);
        r.event_ids = vec!["evt_1".into()];
        let exhausted = DeadLetterReason::Exhausted;
        assert!(matches!(Selector::new(&r).dead_letter(&dead("ep1", "a", exhausted), 1_500, &reg, 0), Decision::Replay(_)));
        r.event_ids = vec!["evt_2".into()];
        assert_eq!(Selector::new(&r).dead_letter(&dead("ep1", "a", exhausted), 1_500, &reg, 0), Decision::Filtered);
        assert_eq!(Selector::new(&r).dead_letter(b"\xff garbage", 1_500, &reg, 0), Decision::Filtered);
        let mut t = request(ReplaySource::Dlq);
        t.tenant = "acme".into();
        assert_eq!(Selector::new(&t).dead_letter(&dead("ep1", "a", exhausted), 1_500, &reg, 0), Decision::Filtered, "another tenant's");
        let mut events = request(ReplaySource::Events);
        events.endpoint_id = "ep1".into();
        events.event_ids = vec!["evt_1".into()];
        assert_eq!(validate(&events, 1_000).expect_err("dlq only")[0].field, "event_ids");
    }

    #[test]
    fn an_event_is_backfilled_only_if_the_endpoint_subscribes_to_it() {
        let reg = registry(&[("ep1", &["order.*"], false), ("off", &["*"], true)]);
        let mut r = request(ReplaySource::Events);
        r.endpoint_id = "ep1".into();
        let s = Selector::new(&r);
        let bytes = |t: &str| event("evt_9", t).encode_to_vec();
        let Decision::Replay(d) = s.event(&bytes("order.created"), 1_200, &reg, 5) else { panic!("replayed") };
        assert_eq!((d.endpoint_id.as_str(), d.attempt, d.replay_id.as_str()), ("ep1", 1, "rp_1"));
        assert_eq!(s.event(&bytes("user.created"), 1_200, &reg, 5), Decision::Filtered, "not subscribed");
        assert_eq!(s.event(&bytes("order.created"), 2_500, &reg, 5), Decision::Filtered, "after the range");
        assert_eq!(s.event(b"\xff", 1_200, &reg, 5), Decision::Filtered, "garbage was never deliverable");
        assert_eq!(s.event(&bytes("bad..type"), 1_200, &reg, 5), Decision::Filtered);

        r.event_types = vec!["order.paid".into()];
        assert_eq!(Selector::new(&r).event(&bytes("order.created"), 1_200, &reg, 5), Decision::Filtered, "narrowed by event_types");
        r.endpoint_id = "off".into();
        assert_eq!(Selector::new(&r).event(&bytes("order.paid"), 1_200, &reg, 5), Decision::Unreplayable("endpoint disabled"));
    }

    #[test]
    fn progress_counts_what_was_read_of_each_partition() {
        let part = |start, end, next| v1::ReplayPartition { partition: 0, start_offset: start, end_offset: end, next_offset: next };
        let mut status = v1::ReplayStatus { partitions: vec![part(10, 20, 15), part(0, 0, 0), part(5, 9, 9)], ..Default::default() };
        assert_eq!(progress(&status), (9, 14));
        assert!(!finished(&status));
        status.partitions[0].next_offset = 20;
        assert!(finished(&status));
        assert_eq!(progress(&status), (14, 14));
        assert!(finished(&v1::ReplayStatus::default()), "an empty range is done at once");
        assert!(is_terminal(ReplayState::Cancelled) && !is_terminal(ReplayState::Running));
    }
}
