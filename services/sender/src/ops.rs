//! The sender's operational webhooks: `hookline.endpoint.failing` and `.recovered` from the
//! breaker of the URL in use (debounced by `core::ops::HealthEpisode`), and
//! `hookline.delivery.exhausted` for a dead-lettered delivery. Each is published through
//! `runtime::ops::publish`, as an event of the endpoint's tenant. Nothing here fires for a
//! delivery of a `hookline.*` event, so an operations endpoint's own failures never
//! produce more operational events.

use crate::deliver::{change_endpoint, Shared};
use crate::endpoints::EndpointRuntime;
use hookline_core::breaker::Transition;
use hookline_core::failover::{Choice, Switch, Target};
use hookline_core::ops::{
    self, DeliveryExhausted, EndpointFailing, EndpointRecovered, HealthChange, OpsEvent, Signal,
};
use hookline_proto::v1::{self, DeadLetterReason};
use hookline_runtime::registry::EndpointEntry;
use hookline_runtime::time::now_ms;

pub(crate) const SOURCE: &str = "hookline-sender";

/// Publishes `event` for `tenant`; a failure is logged by `publish` and goes no further.
pub(crate) async fn publish(shared: &Shared, tenant: &str, event: &OpsEvent) {
    let _ = hookline_runtime::ops::publish(
        &shared.producer,
        &shared.topics.events,
        tenant,
        SOURCE,
        now_ms(),
        event,
    )
    .await;
}

/// What an attempt told the endpoint's runtime.
pub(crate) struct Answered {
    /// The URL it went to.
    pub via: Choice,
    /// The change of that URL's breaker.
    pub transition: Option<Transition>,
    /// The change of the URL deliveries go to.
    pub switch: Option<Switch>,
    pub success: bool,
}

/// After an attempt of an `event_type` event: logs a change of URL, and publishes
/// `failing` / `recovered` when the endpoint's failing period starts or ends.
pub(crate) async fn after_attempt(
    shared: &Shared,
    entry: &EndpointEntry,
    rt: &EndpointRuntime,
    event_type: &str,
    answered: Answered,
) {
    let Answered {
        via,
        transition,
        switch,
        success,
    } = answered;
    if let Some(switch) = switch {
        let to = match switch {
            Switch::ToFailover => Target::Failover,
            Switch::BackToPrimary => Target::Primary,
        };
        hookline_runtime::metric_catalog::SENDER_FAILOVER_SWITCHES.with([to.label()]).increment(1);
        tracing::warn!(endpoint_id = %entry.endpoint.id, to = to.label(), "deliveries switched URL");
    }
    if ops::is_operational(event_type) {
        return;
    }
    let signal = match transition {
        // With a failover URL, the primary's breaker opening moves deliveries, it does not
        // make the endpoint fail.
        Some(Transition::Opened { .. }) if via.target == Target::Primary && rt.has_failover() => {
            return
        }
        Some(Transition::Opened { .. }) => Signal::Opened,
        Some(Transition::Closed) => Signal::Closed,
        _ if success && !rt.breaker_open_for(via.target) => Signal::Success,
        _ => return,
    };
    let now = now_ms();
    let endpoint = &entry.endpoint;
    match rt.health(
        endpoint.unhealthy_since_ms,
        signal,
        now,
        shared.recovered_after_ms,
    ) {
        None => {}
        Some(HealthChange::Failing { since_ms }) => {
            let mark =
                |e: &mut v1::Endpoint| std::mem::replace(&mut e.unhealthy_since_ms, since_ms) == 0;
            if change_endpoint(shared, entry, "mark unhealthy", mark)
                .await
                .is_some()
            {
                let event = OpsEvent::Failing(EndpointFailing {
                    endpoint_id: endpoint.id.clone(),
                    url: rt.url(entry, via.target).to_owned(),
                    target: via.target.label().into(),
                    failing_since_ms: since_ms,
                    reason: "circuit breaker opened".into(),
                });
                publish(shared, &endpoint.tenant, &event).await;
            }
        }
        Some(HealthChange::Recovered { since_ms }) => {
            let clear = |e: &mut v1::Endpoint| {
                let ours = e.unhealthy_since_ms == since_ms;
                if ours {
                    e.unhealthy_since_ms = 0;
                }
                ours
            };
            if change_endpoint(shared, entry, "clear unhealthy", clear)
                .await
                .is_some()
            {
                let event = OpsEvent::Recovered(EndpointRecovered {
                    endpoint_id: endpoint.id.clone(),
                    url: endpoint.url.clone(),
                    failing_since_ms: since_ms,
                    recovered_at_ms: now,
                });
                publish(shared, &endpoint.tenant, &event).await;
            }
        }
    }
}

/// After a dead letter: `hookline.delivery.exhausted` when the delivery used up its
/// schedule, unless it carried an operational event.
pub(crate) async fn dead_lettered(
    shared: &Shared,
    delivery: &v1::Delivery,
    reason: DeadLetterReason,
    detail: &str,
    last_attempt: Option<&v1::Attempt>,
    dead_at_ms: i64,
) {
    let Some(event) = delivery.event.as_ref() else {
        return;
    };
    if reason != DeadLetterReason::Exhausted || ops::is_operational(&event.r#type) {
        return;
    }
    let Some(entry) = shared.registry.get(&delivery.endpoint_id) else {
        return;
    };
    let exhausted = OpsEvent::Exhausted(DeliveryExhausted {
        event_id: event.id.clone(),
        event_type: event.r#type.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        attempts: delivery.attempt.max(1),
        last_error: last_attempt.map_or_else(|| delivery.last_error.clone(), |a| a.error.clone()),
        dead_letter_reason: reason.label().into(),
        detail: detail.to_owned(),
        dead_at_ms,
        first_attempt_at_ms: delivery.first_attempt_at_ms,
        replay_id: delivery.replay_id.clone(),
    });
    publish(shared, &entry.endpoint.tenant, &exhausted).await;
}
