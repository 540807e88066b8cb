//! Rules a published event must follow before it is routed, and how an events-topic
//! record becomes an event ([`read`]). A record breaking them is dead-lettered by the router
//! with the message from [`Rejection`], which names the field and what to change.

use crate::framing::{self, FramingError};
use crate::matching::{validate_event_type, PatternError};
use hookline_proto::v1;
use prost::Message as _;

/// Default of `router.max_payload_bytes`: Kafka's default record size limit.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Longest accepted event id, in bytes.
pub const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("id: must not be empty")]
    MissingId,
    #[error("id: {0} bytes is over the limit of {MAX_ID_LEN}")]
    IdTooLong(usize),
    #[error("id: only printable ASCII without spaces is allowed (it becomes the webhook-id header)")]
    IdNotPrintable,
    #[error("type: {0}")]
    BadType(PatternError),
    #[error("content_type: {0}")]
    BadContentType(String),
    #[error("ordering_key: at most {MAX_ID_LEN} bytes of printable ASCII without spaces")]
    BadOrderingKey,
}

/// Why an events-topic record is not routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the record has no value (a tombstone or an empty message): publish an encoded hookline.v1.Event")]
    Empty,
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("not a hookline.v1.Event{}: {error}", framed_note(*.schema_id))]
    Undecodable { error: String, schema_id: Option<u32> },
    #[error(transparent)]
    Invalid(#[from] EventError),
    #[error("payload: {size} bytes is over the limit of {limit} (router.max_payload_bytes)")]
    TooLarge { size: usize, limit: usize },
}

fn framed_note(schema_id: Option<u32>) -> String {
    schema_id.map(|id| format!(" inside Confluent Schema Registry framing (schema id {id})")).unwrap_or_default()
}

/// An event read from a record.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadEvent<'a> {
    pub event: v1::Event,
    /// The event's protobuf encoding with any framing removed: what deliveries embed.
    pub encoded: &'a [u8],
    /// The Schema Registry schema id, when the producer used Confluent's serializer.
    pub schema_id: Option<u32>,
}

/// Reads one events-topic record value: unframes it (plain protobuf, or Confluent Schema
/// Registry framing around message index `[0]`, which `hookline.v1.Event` is in its file),
/// decodes the `Event` and checks its rules and size.
pub fn read(value: Option<&[u8]>, max_payload_bytes: usize) -> Result<ReadEvent<'_>, Rejection> {
    let value = value.filter(|v| !v.is_empty()).ok_or(Rejection::Empty)?;
    let (encoded, schema_id) = match framing::unframe(value)? {
        framing::Framing::Plain(bytes) => (bytes, None),
        framing::Framing::SchemaRegistry { schema_id, message } => (message, Some(schema_id)),
    };
    let event =
        v1::Event::decode(encoded).map_err(|error| Rejection::Undecodable { error: error.to_string(), schema_id })?;
    if event.payload.len() > max_payload_bytes {
        return Err(Rejection::TooLarge { size: event.payload.len(), limit: max_payload_bytes });
    }
    validate(&event.id, &event.r#type)?;
    validate_content_type(&event.content_type)?;
    Ok(ReadEvent { event, encoded, schema_id })
}

/// Top-level media types registered with IANA (RFC 6838 section 4.2).
const MEDIA_TYPES: [&str; 11] =
    ["application", "audio", "example", "font", "haptics", "image", "message", "model", "multipart", "text", "video"];

/// Checks an event's `content_type`: empty (JSON), or a media type `type/subtype[; k=v]*`
/// with a registered top-level type. It becomes the `content-type` header as it is.
pub fn validate_content_type(content_type: &str) -> Result<(), EventError> {
    if content_type.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| Err(EventError::BadContentType(format!("{content_type:?} {why}")));
    if content_type.len() > 256 {
        return bad("is longer than 256 bytes");
    }
    if !content_type.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
        return bad("has characters a header cannot carry");
    }
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((top, sub)) = essence.split_once('/') else {
        return bad("is not a media type such as application/json");
    };
    let restricted_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !restricted_name(top) || !restricted_name(sub) {
        return bad("is not a media type such as application/json");
    }
    if !MEDIA_TYPES.contains(&top.to_ascii_lowercase().as_str()) {
        return bad(&format!("has an unknown top-level type {top:?} (use one of {})", MEDIA_TYPES.join(", ")));
    }
    for param in parts {
        let param = param.trim();
        match param.split_once('=') {
            Some((k, v)) if restricted_name(k) && !v.is_empty() => {}
            _ => return bad(&format!("has a parameter {param:?} that is not name=value")),
        }
    }
    Ok(())
}

/// Checks the id and type of an event.
pub fn validate(id: &str, event_type: &str) -> Result<(), EventError> {
    if id.is_empty() {
        return Err(EventError::MissingId);
    }
    if id.len() > MAX_ID_LEN {
        return Err(EventError::IdTooLong(id.len()));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EventError::IdNotPrintable);
    }
    validate_event_type(event_type).map_err(EventError::BadType)?;
    Ok(())
}

/// Checks an event's ordering key (empty: none), held to the rule of ids.
pub fn validate_ordering_key(key: &str) -> Result<(), EventError> {
    if key.len() > MAX_ID_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EventError::BadOrderingKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_events_and_names_the_broken_field() {
        assert_eq!(validate("evt_1", "order.created"), Ok(()));
        assert_eq!(validate("", "order.created"), Err(EventError::MissingId));
        assert_eq!(validate("a b", "order.created"), Err(EventError::IdNotPrintable));
        assert_eq!(validate(&"x".repeat(300), "a"), Err(EventError::IdTooLong(300)));
        let err = validate("evt_1", "order..x").expect_err("bad type");
        assert!(err.to_string().starts_with("type: "), "{err}");
    }

    #[test]
    fn content_types_are_media_types_with_a_known_top_level_type() {
        for ok in ["", "application/json", "application/cloudevents+json; charset=utf-8", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/vnd.acme.v2+json"] {
            assert_eq!(validate_content_type(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("json", "not a media type"),
            ("foo/bar", "unknown top-level type \"foo\""),
            ("application/json\r\nx-injected: 1", "characters a header cannot carry"),
            ("application/", "not a media type"),
            ("application/json; charset", "not name=value"),
        ] {
            let err = validate_content_type(bad).expect_err(bad).to_string();
            assert!(err.starts_with("content_type: ") && err.contains(says), "{bad}: {err}");
        }
    }

    fn event() -> v1::Event {
        v1::Event { id: "evt_1".into(), r#type: "order.created".into(), payload: b"{}".to_vec().into(), ..Default::default() }
    }

    #[test]
    fn a_plain_event_is_read_with_its_encoding() {
        let bytes = event().encode_to_vec();
        let read = read(Some(&bytes), 1024).expect("reads");
        assert_eq!((read.event, read.encoded, read.schema_id), (event(), bytes.as_slice(), None));
    }

    #[test]
    fn schema_registry_framing_is_taken_off() {
        let bytes = event().encode_to_vec();
        // magic 0, schema id 42, message indexes [0] written as the single byte 0.
        let mut framed = vec![0, 0, 0, 0, 42, 0];
        framed.extend_from_slice(&bytes);
        let read = read(Some(&framed), 1024).expect("reads");
        assert_eq!((read.event, read.encoded, read.schema_id), (event(), bytes.as_slice(), Some(42)));
    }

    #[test]
    fn each_bad_record_gets_a_reason_that_says_what_to_change() {
        assert_eq!(read(None, 10), Err(Rejection::Empty));
        assert_eq!(read(Some(b""), 10), Err(Rejection::Empty));
        assert!(matches!(read(Some(b"\xff\xfe garbage"), 10), Err(Rejection::Undecodable { schema_id: None, .. })));
        let framed_garbage = [0, 0, 0, 0, 7, 0, 0xff, 0xff];
        let err = read(Some(&framed_garbage), 10).expect_err("garbage in a frame");
        assert!(err.to_string().contains("Schema Registry framing (schema id 7)"), "{err}");

        let mut big = event();
        big.payload = vec![b'x'; 11].into();
        assert_eq!(read(Some(&big.encode_to_vec()), 10), Err(Rejection::TooLarge { size: 11, limit: 10 }));
        let mut no_id = event();
        no_id.id.clear();
        assert_eq!(read(Some(&no_id.encode_to_vec()), 10), Err(Rejection::Invalid(EventError::MissingId)));
        let mut no_type = event();
        no_type.r#type.clear();
        assert!(matches!(read(Some(&no_type.encode_to_vec()), 10), Err(Rejection::Invalid(EventError::BadType(_)))));
        let mut weird = event();
        weird.content_type = "foo/bar".into();
        assert!(matches!(read(Some(&weird.encode_to_vec()), 10), Err(Rejection::Invalid(EventError::BadContentType(_)))));
    }
}
