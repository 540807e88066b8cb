//! What the router does with one record, apart from Kafka IO: decide where it goes, and
//! build the records to produce.

use hookline_core::contracts::version;
use hookline_core::event::{self, Rejection};
use hookline_runtime::catalog::Catalog;
use hookline_core::matching::EventKey;
use hookline_proto::v1::{self, DeadLetterReason};
use hookline_proto::Message as _;
use hookline_runtime::kafka::OwnedRecord;
use hookline_runtime::metric_catalog;
use hookline_runtime::registry::{Admission, EndpointRegistry};

/// Where one events-topic record goes.
#[derive(Debug)]
pub enum Routed {
    /// A valid event and the endpoints subscribed to it (possibly none).
    Deliveries {
        event_id: String,
        event_type: String,
        trace: Option<v1::TraceContext>,
        endpoints: Vec<String>,
        /// Set when the record came in Confluent Schema Registry framing.
        schema_id: Option<u32>,
        /// Bytes of framing before the event's encoding in the record value: deliveries
        /// embed the value from here on.
        frame_len: usize,
    },
    /// Garbage or an invalid event, quarantined.
    Dead(Box<v1::DeadLetter>),
}

pub fn route(record: &OwnedRecord, registry: &EndpointRegistry, catalog: &Catalog, max_payload_bytes: usize, now_ms: i64) -> Routed {
    let read = match event::read(record.value.as_deref(), max_payload_bytes) {
        Ok(read) => read,
        Err(rejection) => return Routed::Dead(Box::new(dead_letter(record, &rejection, now_ms))),
    };
    let frame_len = record.value.as_deref().map_or(0, <[u8]>::len) - read.encoded.len();
    let event = read.event;
    let version = match version::of_event(&event.attributes) {
        Ok(v) => v,
        Err(e) => {
            return Routed::Dead(Box::new(v1::DeadLetter {
                reason: DeadLetterReason::InvalidEvent as i32,
                detail: format!("attributes.version: {e}"),
                source: Some(record.source(true)),
                dead_at_ms: now_ms,
                ..Default::default()
            }))
        }
    };
    if let Err(violation) = catalog.check(&event.r#type, version, &event.payload) {
        return Routed::Dead(Box::new(v1::DeadLetter {
            reason: DeadLetterReason::SchemaViolation as i32,
            detail: violation,
            source: Some(record.source(true)),
            dead_at_ms: now_ms,
            ..Default::default()
        }));
    }
    let mut endpoints = registry.matches(EventKey {
        tenant: &event.tenant,
        event_type: &event.r#type,
        attributes: &event.attributes,
    });
    admit(registry, &event, version, &mut endpoints);
    Routed::Deliveries { event_id: event.id, event_type: event.r#type, trace: event.trace, endpoints, schema_id: read.schema_id, frame_len }
}

/// Keeps the subscribed endpoints whose contract takes the event: the version they pin, and
/// their content filter. A filter that fails on this event (a missing field, a wrong type)
/// does not match, and is counted; it never stops the partition.
fn admit(registry: &EndpointRegistry, event: &v1::Event, version: Option<u32>, endpoints: &mut Vec<String>) {
    let mut view = None;
    endpoints.retain(|id| {
        // Deleted since it matched: the sender decides (it dead-letters with the reason).
        let Some(entry) = registry.get(id) else { return true };
        let reason = match entry.admits(event, version, &mut view) {
            Admission::Admitted => return true,
            Admission::OtherVersion => "version",
            Admission::Filtered => "filter",
            Admission::FilterFailed(error) => {
                metric_catalog::ROUTER_FILTER_ERRORS.with([error.kind.as_str()]).increment(1);
                tracing::debug!(endpoint_id = %id, event_id = %event.id, %error, "content filter failed on this event: no match");
                "filter_error"
            }
        };
        metric_catalog::ROUTER_NOT_ADMITTED.with([reason]).increment(1);
        false
    });
}

/// The dead letter of a record the router refuses. The raw value is kept to be looked at
/// or fixed and replayed, unless it is too large to fit the DLQ topic.
fn dead_letter(record: &OwnedRecord, rejection: &Rejection, now_ms: i64) -> v1::DeadLetter {
    let reason = match rejection {
        Rejection::Empty => DeadLetterReason::EmptyRecord,
        Rejection::Framing(_) => DeadLetterReason::UnsupportedFraming,
        Rejection::Undecodable { .. } => DeadLetterReason::UndecodableEvent,
        Rejection::Invalid(_) => DeadLetterReason::InvalidEvent,
        Rejection::TooLarge { .. } => DeadLetterReason::PayloadTooLarge,
    };
    let keep_value = !matches!(rejection, Rejection::TooLarge { .. });
    v1::DeadLetter {
        reason: reason as i32,
        detail: rejection.to_string(),
        source: Some(record.source(keep_value)),
        dead_at_ms: now_ms,
        ..Default::default()
    }
}

/// Encodes a first-attempt `Delivery` around the event's bytes exactly as published.
///
/// Field 1 (`event`) is written as the raw record value, so the payload is neither decoded
/// nor re-encoded: `Delivery { event: <raw>, endpoint_id, attempt: 1, created_at_ms }`.
/// Protobuf allows fields in any order, so this decodes like any other `Delivery`.
pub fn delivery_record(event_bytes: &[u8], endpoint_id: &str, now_ms: i64) -> Vec<u8> {
    let rest = v1::Delivery {
        event: None,
        endpoint_id: endpoint_id.to_owned(),
        attempt: 1,
        created_at_ms: now_ms,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(event_bytes.len() + 16 + rest.encoded_len());
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(event_bytes.len() as u64, &mut out);
    out.extend_from_slice(event_bytes);
    rest.encode(&mut out).expect("a Vec grows as needed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> v1::Event {
        v1::Event {
            id: "evt_1".into(),
            r#type: "order.created".into(),
            payload: bytes::Bytes::from_static(br#"{"amount": 1.10, "note": "kept as is"}"#),
            attributes: [("region".to_owned(), "eu".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn delivery_embeds_the_event_bytes_unchanged() {
        let raw = event().encode_to_vec();
        let bytes = delivery_record(&raw, "ep1", 42);
        let d = v1::Delivery::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(d.event.as_ref().expect("event").encode_to_vec(), raw);
        assert_eq!(d.event, Some(event()));
        assert_eq!((d.endpoint_id.as_str(), d.attempt, d.created_at_ms), ("ep1", 1, 42));
    }

    const LIMIT: usize = 1 << 20;

    fn record(value: Option<Vec<u8>>) -> OwnedRecord {
        OwnedRecord {
            topic: "t.events".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 1,
            key: b"k".to_vec(),
            value: value.map(Into::into),
            headers: Vec::new(),
        }
    }

    #[test]
    fn garbage_and_invalid_events_are_dead_lettered_with_a_reason() {
        let registry = EndpointRegistry::default();
        let Routed::Dead(dead) = route(&record(Some(b"\xff\xfe garbage".to_vec())), &registry, &Catalog::default(), LIMIT, 9) else {
            panic!("garbage must be dead-lettered");
        };
        assert_eq!(dead.reason(), DeadLetterReason::UndecodableEvent);
        let source = dead.source.expect("source");
        assert_eq!((source.partition, source.offset), (2, 7));
        assert_eq!(source.raw_value, b"\xff\xfe garbage");

        let mut bad = event();
        bad.r#type = "order..created".into();
        let Routed::Dead(dead) = route(&record(Some(bad.encode_to_vec())), &registry, &Catalog::default(), LIMIT, 9) else {
            panic!("invalid event must be dead-lettered");
        };
        assert_eq!(dead.reason(), DeadLetterReason::InvalidEvent);
        assert!(dead.detail.starts_with("type: "), "{}", dead.detail);

        let Routed::Dead(dead) = route(&record(None), &registry, &Catalog::default(), LIMIT, 9) else { panic!("empty value") };
        assert_eq!(dead.reason(), DeadLetterReason::EmptyRecord);
        assert!(dead.detail.contains("tombstone"), "{}", dead.detail);

        let Routed::Dead(dead) = route(&record(Some(event().encode_to_vec())), &registry, &Catalog::default(), 4, 9) else { panic!("too large") };
        assert_eq!(dead.reason(), DeadLetterReason::PayloadTooLarge);
        assert!(dead.source.expect("source").raw_value.is_empty(), "an oversized value is not copied into the DLQ");

        let framed_other = [&[0u8, 0, 0, 0, 3, 2, 2][..], &event().encode_to_vec()].concat();
        let Routed::Dead(dead) = route(&record(Some(framed_other)), &registry, &Catalog::default(), LIMIT, 9) else { panic!("other message") };
        assert_eq!(dead.reason(), DeadLetterReason::UnsupportedFraming);
        assert!(dead.detail.contains("Schema Registry"), "{}", dead.detail);
    }

    #[test]
    fn a_schema_registry_framed_event_is_delivered_without_its_frame() {
        let registry = EndpointRegistry::default();
        let framed = [&[0u8, 0, 0, 0, 3, 0][..], &event().encode_to_vec()].concat();
        let Routed::Deliveries { event_id, schema_id, frame_len, .. } = route(&record(Some(framed)), &registry, &Catalog::default(), LIMIT, 9)
        else {
            panic!("framed event routes");
        };
        assert_eq!((event_id.as_str(), schema_id, frame_len), ("evt_1", Some(3), 6));
    }

    #[test]
    fn a_valid_event_with_no_subscriber_routes_nowhere() {
        let registry = EndpointRegistry::default();
        let Routed::Deliveries { event_id, endpoints, .. } = route(&record(Some(event().encode_to_vec())), &registry, &Catalog::default(), LIMIT, 9)
        else {
            panic!("valid event");
        };
        assert_eq!(event_id, "evt_1");
        assert!(endpoints.is_empty());
    }
}
