//! Operational webhooks: what Hookline says about a tenant's endpoints, published as events
//! of that tenant (`hookline.endpoint.disabled`, `.enabled`, `.failing`, `.recovered`,
//! `hookline.delivery.exhausted`), so the tenant can subscribe an endpoint of its own to
//! them. This module builds them (type, stable id, JSON payload) and decides, from the
//! circuit breaker's transitions, when an endpoint starts and stops failing; publishing is
//! IO and lives in `runtime::ops`.
//!
//! Every type is in the `hookline.` namespace, which user events cannot use (the HTTP
//! ingest refuses it), and nothing about a `hookline.*` event's own delivery produces
//! another operational event, so an ops endpoint that fails cannot feed itself.

use crate::event::MAX_ID_LEN;
use hookline_proto::v1;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The namespace of every operational event type.
pub const NAMESPACE: &str = "hookline.";

/// Whether `event_type` is in Hookline's own namespace.
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with(NAMESPACE)
}

/// One operational event, before it is an `Event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OpsEvent {
    Disabled(EndpointDisabled),
    Enabled(EndpointEnabled),
    Failing(EndpointFailing),
    Recovered(EndpointRecovered),
    Exhausted(DeliveryExhausted),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointDisabled {
    pub endpoint_id: String,
    pub url: String,
    pub reason: String,
    pub failing_since_ms: i64,
    pub disabled_at_ms: i64,
    /// `updated_at_ms` of the endpoint copy the disabling changed: the same for racing
    /// senders and restarts, different for every disabling.
    #[serde(skip)]
    pub version_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointEnabled {
    pub endpoint_id: String,
    pub url: String,
    pub enabled_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointFailing {
    pub endpoint_id: String,
    pub url: String,
    /// Which URL's breaker opened: `primary` or `failover`.
    pub target: String,
    pub failing_since_ms: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointRecovered {
    pub endpoint_id: String,
    pub url: String,
    pub failing_since_ms: i64,
    pub recovered_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryExhausted {
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub attempts: u32,
    pub last_error: String,
    /// The dead letter's reason (`exhausted`) and its detail.
    pub dead_letter_reason: String,
    pub detail: String,
    pub dead_at_ms: i64,
    /// Tells a replayed delivery's exhaustion from the first one's.
    #[serde(skip)]
    pub first_attempt_at_ms: i64,
    #[serde(skip)]
    pub replay_id: String,
}

impl OpsEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            OpsEvent::Disabled(_) => "hookline.endpoint.disabled",
            OpsEvent::Enabled(_) => "hookline.endpoint.enabled",
            OpsEvent::Failing(_) => "hookline.endpoint.failing",
            OpsEvent::Recovered(_) => "hookline.endpoint.recovered",
            OpsEvent::Exhausted(_) => "hookline.delivery.exhausted",
        }
    }

    /// The event id: a function of what happened, so racing senders and a restarted one
    /// publish the same id and receivers deduplicate on `webhook-id`.
    pub fn id(&self) -> String {
        let plain = match self {
            OpsEvent::Disabled(d) => {
                format!("evt_endpoint_disabled_{}_{}", d.endpoint_id, d.version_ms)
            }
            OpsEvent::Enabled(e) => {
                format!("evt_endpoint_enabled_{}_{}", e.endpoint_id, e.enabled_at_ms)
            }
            OpsEvent::Failing(f) => format!(
                "evt_endpoint_failing_{}_{}",
                f.endpoint_id, f.failing_since_ms
            ),
            OpsEvent::Recovered(r) => format!(
                "evt_endpoint_recovered_{}_{}",
                r.endpoint_id, r.failing_since_ms
            ),
            OpsEvent::Exhausted(x) => {
                let digest = Sha256::new()
                    .chain_update(x.endpoint_id.as_bytes())
                    .chain_update([0])
                    .chain_update(x.event_id.as_bytes())
                    .chain_update([0])
                    .chain_update(x.first_attempt_at_ms.to_be_bytes())
                    .chain_update(x.replay_id.as_bytes())
                    .finalize();
                return format!("evt_delivery_exhausted_{}", hex(&digest[..16]));
            }
        };
        if plain.len() <= MAX_ID_LEN {
            return plain;
        }
        // A very long endpoint id: keep the id within the limit, still stable.
        let digest = Sha256::digest(plain.as_bytes());
        format!(
            "evt_{}_{}",
            self.event_type()
                .trim_start_matches(NAMESPACE)
                .replace('.', "_"),
            hex(&digest[..16])
        )
    }

    /// The event to publish for `tenant` (the endpoint's), as `source` at `at_ms`.
    pub fn to_event(
        &self,
        tenant: &str,
        source: &str,
        at_ms: i64,
    ) -> Result<v1::Event, serde_json::Error> {
        Ok(v1::Event {
            id: self.id(),
            r#type: self.event_type().into(),
            tenant: tenant.to_owned(),
            source: source.to_owned(),
            occurred_at_ms: at_ms,
            content_type: "application/json".into(),
            payload: self.payload()?.into(),
            ..Default::default()
        })
    }
}

impl OpsEvent {
    /// The JSON body: the event's fields and its `type`, so a receiver can dispatch on it.
    fn payload(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), self.event_type().into());
        if let serde_json::Value::Object(fields) = serde_json::to_value(self)? {
            body.extend(fields);
        }
        serde_json::to_vec(&body)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the breaker of an endpoint's URL in use said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It opened: the URL is down.
    Opened,
    /// Its probe succeeded and it closed.
    Closed,
    /// A request succeeded with the breaker closed.
    Success,
}

/// An endpoint's health changed: publish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// A failing period starts (write `unhealthy_since_ms`, publish `endpoint.failing`).
    Failing { since_ms: i64 },
    /// It ended (clear it, publish `endpoint.recovered`).
    Recovered { since_ms: i64 },
}

/// The debounce of `endpoint.failing` / `endpoint.recovered`, per endpoint and sender.
///
/// A failing period starts when the breaker opens and none is open yet; it ends only once
/// the breaker has stayed closed for `settle_ms` and a request then succeeds. A breaker
/// that flaps (opens again within `settle_ms` of closing) stays in the same period, so a
/// flapping endpoint publishes one `failing` and, once it holds, one `recovered`. The
/// period's start is kept in the endpoint (`unhealthy_since_ms`), so a restarted sender or
/// the partition's next owner continues it instead of starting another.
#[derive(Debug, Clone, Default)]
pub struct HealthEpisode {
    /// The period this sender started, until the endpoints topic shows it.
    own: Option<i64>,
    /// The start of the last period this sender ended (the endpoints topic may still show it).
    ended: Option<i64>,
    /// When the breaker last closed within the period.
    closed_at_ms: Option<i64>,
}

impl HealthEpisode {
    /// `recorded_since_ms`: the endpoint's `unhealthy_since_ms` as this sender's registry
    /// has it (0: healthy).
    pub fn observe(
        &mut self,
        recorded_since_ms: i64,
        signal: Signal,
        now_ms: i64,
        settle_ms: i64,
    ) -> Option<HealthChange> {
        // A recorded period no later than the one this sender ended is a stale copy of it.
        let since = if recorded_since_ms > self.ended.unwrap_or(0) {
            recorded_since_ms
        } else {
            self.own.unwrap_or(0)
        };
        match signal {
            Signal::Opened => {
                self.closed_at_ms = None;
                if since != 0 {
                    return None;
                }
                // `ended` stays: the registry may still show the period before this one.
                self.own = Some(now_ms);
                Some(HealthChange::Failing { since_ms: now_ms })
            }
            Signal::Closed => {
                if since != 0 {
                    self.closed_at_ms = Some(now_ms);
                }
                None
            }
            Signal::Success => {
                if since == 0 {
                    return None;
                }
                // A period inherited from another sender, whose breaker never opened here.
                let closed_at = *self.closed_at_ms.get_or_insert(now_ms);
                if now_ms - closed_at < settle_ms {
                    return None;
                }
                self.own = None;
                self.ended = Some(since);
                self.closed_at_ms = None;
                Some(HealthChange::Recovered { since_ms: since })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exhausted(first: i64) -> OpsEvent {
        OpsEvent::Exhausted(DeliveryExhausted {
            event_id: "evt_1".into(),
            event_type: "order.created".into(),
            endpoint_id: "ep_1".into(),
            attempts: 3,
            last_error: "HTTP 503".into(),
            dead_letter_reason: "exhausted".into(),
            detail: "3 attempts failed".into(),
            dead_at_ms: 5,
            first_attempt_at_ms: first,
            replay_id: String::new(),
        })
    }

    #[test]
    fn ids_are_stable_per_happening_and_payloads_are_json() {
        assert_eq!(exhausted(1).id(), exhausted(1).id());
        assert_ne!(
            exhausted(1).id(),
            exhausted(2).id(),
            "a replayed delivery's exhaustion is another event"
        );
        let e = exhausted(1)
            .to_event("acme", "hookline-sender", 9)
            .expect("json");
        assert_eq!(e.r#type, "hookline.delivery.exhausted");
        assert_eq!(e.tenant, "acme");
        let body: serde_json::Value = serde_json::from_slice(&e.payload).expect("json");
        assert_eq!(body["type"], "hookline.delivery.exhausted");
        assert_eq!(body["event_id"], "evt_1");
        assert_eq!(body["attempts"], 3);
        assert_eq!(body["dead_letter_reason"], "exhausted");
        assert!(body.get("first_attempt_at_ms").is_none());
        crate::event::validate(&e.id, &e.r#type).expect("a valid event");
        let long = OpsEvent::Failing(EndpointFailing {
            endpoint_id: "e".repeat(300),
            url: String::new(),
            target: "primary".into(),
            failing_since_ms: 1,
            reason: String::new(),
        });
        assert!(long.id().len() <= MAX_ID_LEN);
        crate::event::validate(&long.id(), long.event_type()).expect("a valid event");
        assert!(is_operational(long.event_type()) && !is_operational("order.hookline"));
    }

    #[test]
    fn a_flapping_breaker_makes_one_failing_and_one_recovered() {
        let mut h = HealthEpisode::default();
        let settle = 60_000;
        assert_eq!(h.observe(0, Signal::Success, 0, settle), None);
        assert_eq!(
            h.observe(0, Signal::Opened, 1_000, settle),
            Some(HealthChange::Failing { since_ms: 1_000 })
        );
        // The registry has not applied the mark yet: still the same period.
        assert_eq!(h.observe(0, Signal::Closed, 6_000, settle), None);
        assert_eq!(
            h.observe(1_000, Signal::Success, 7_000, settle),
            None,
            "closed for 1 s only"
        );
        assert_eq!(
            h.observe(1_000, Signal::Opened, 8_000, settle),
            None,
            "flaps: same period"
        );
        assert_eq!(h.observe(1_000, Signal::Closed, 20_000, settle), None);
        assert_eq!(h.observe(1_000, Signal::Success, 79_999, settle), None);
        assert_eq!(
            h.observe(1_000, Signal::Success, 80_000, settle),
            Some(HealthChange::Recovered { since_ms: 1_000 })
        );
        // The clearing has not been applied yet: no second `recovered`.
        assert_eq!(h.observe(1_000, Signal::Success, 200_000, settle), None);
        assert_eq!(
            h.observe(0, Signal::Opened, 300_000, settle),
            Some(HealthChange::Failing { since_ms: 300_000 })
        );
    }

    #[test]
    fn a_period_inherited_from_another_sender_is_continued() {
        let mut h = HealthEpisode::default();
        assert_eq!(
            h.observe(42, Signal::Opened, 1_000, 10),
            None,
            "no second failing for the same period"
        );
        assert_eq!(h.observe(42, Signal::Success, 2_000, 10), None);
        assert_eq!(
            h.observe(42, Signal::Success, 2_010, 10),
            Some(HealthChange::Recovered { since_ms: 42 })
        );
    }

    proptest! {
        /// Failing and recovered alternate, starting with failing; a recovered names the
        /// period its failing started; and between a recovered and the failing before it
        /// the breaker was closed for at least the settle time.
        #[test]
        fn failing_and_recovered_alternate(signals in prop::collection::vec((0u8..3, 0i64..5_000), 1..300)) {
            let settle = 2_000;
            let mut h = HealthEpisode::default();
            let mut recorded = 0i64;
            // Times are after the epoch: 0 is "no period" in the endpoint record.
            let mut now = 1_000i64;
            let mut open: Option<i64> = None;
            let mut last_closed: Option<i64> = None;
            for (s, advance) in signals {
                now += advance;
                let signal = [Signal::Opened, Signal::Closed, Signal::Success][s as usize];
                if signal == Signal::Closed { last_closed = Some(now); }
                if signal == Signal::Opened { last_closed = None; }
                match h.observe(recorded, signal, now, settle) {
                    Some(HealthChange::Failing { since_ms }) => {
                        prop_assert!(open.is_none());
                        open = Some(since_ms);
                        // Applied by the registry at some point: sometimes at once.
                        if advance % 2 == 0 { recorded = since_ms; }
                    }
                    Some(HealthChange::Recovered { since_ms }) => {
                        prop_assert_eq!(open, Some(since_ms));
                        if let Some(c) = last_closed { prop_assert!(now - c >= settle); }
                        open = None;
                        if advance % 2 == 0 { recorded = 0; }
                    }
                    None => {}
                }
            }
        }
    }
}
