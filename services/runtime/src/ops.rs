//! Publishes operational webhooks (`core::ops`) to the events topic, as events of the
//! endpoint's tenant, and waits for Kafka's acknowledgement. The one path the sender and
//! the API both use, so every operational event is built and keyed the same way.

use crate::kafka::{self, FutureProducer};
use hookline_core::ops::OpsEvent;
use hookline_proto::Message as _;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("encoding the payload: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("producing to the events topic: {0}")]
    Produce(#[from] KafkaError),
}

/// Publishes `ops` for `tenant` (the endpoint's) to `events_topic`, keyed by its event id.
/// Failures are logged here; callers go on (an operational event never fails a delivery).
pub async fn publish(
    producer: &FutureProducer,
    events_topic: &str,
    tenant: &str,
    source: &str,
    at_ms: i64,
    ops: &OpsEvent,
) -> Result<(), PublishError> {
    let result = async {
        let event = ops.to_event(tenant, source, at_ms)?;
        let ack = kafka::enqueue(
            producer,
            events_topic,
            &event.id,
            &event.encode_to_vec(),
            None,
        )
        .await?;
        kafka::acked(ack).await?;
        Ok::<_, PublishError>(event.id)
    }
    .await;
    let event_type = ops.event_type();
    match result {
        Ok(id) => {
            crate::metric_catalog::OPS_EVENTS_PUBLISHED.with([event_type]).increment(1);
            tracing::info!(event_type, event_id = %id, "operational event published");
            Ok(())
        }
        Err(error) => {
            tracing::error!(event_type, %error, "operational event not published");
            Err(error)
        }
    }
}
