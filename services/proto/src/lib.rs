//! The Hookline wire contract (`proto/hookline/v1/hookline.proto`), compiled with prost.
//!
//! Every topic carries one of these messages; `docs/contract.md` describes the fields and
//! the evolution rules. Payload bytes are opaque: nothing here decodes them.
#![allow(clippy::all)]

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hookline.v1.rs"));
}

pub use prost::Message;

impl v1::DeadLetterReason {
    /// Every reason a dead letter can carry (not `Unspecified`).
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=i32::from(u8::MAX)).map_while(|i| Self::try_from(i).ok())
    }

    /// The reason's short name, the same in metrics, logs and the API (`exhausted`,
    /// `endpoint_gone` ...). The match has no wildcard so a new reason must be named here.
    pub fn label(self) -> &'static str {
        use v1::DeadLetterReason as R;
        match self {
            R::Unspecified => "unspecified",
            R::UndecodableEvent => "undecodable_event",
            R::InvalidEvent => "invalid_event",
            R::UndecodableDelivery => "undecodable_delivery",
            R::Exhausted => "exhausted",
            R::PermanentFailure => "permanent_failure",
            R::EndpointGone => "endpoint_gone",
            R::BlockedByPolicy => "blocked_by_policy",
            R::EndpointNotFound => "endpoint_not_found",
            R::EndpointDisabled => "endpoint_disabled",
            R::EmptyRecord => "empty_record",
            R::PayloadTooLarge => "payload_too_large",
            R::UnsupportedFraming => "unsupported_framing",
            R::UnreadableRecord => "unreadable_record",
            R::SchemaViolation => "schema_violation",
            R::TransformError => "transform_error",
        }
    }
}

/// The attempts in one record of the attempts topic: an [`v1::AttemptBatch`], or a bare
/// [`v1::Attempt`] as senders before batching wrote them (an empty record holds none).
pub fn attempts_in(bytes: &[u8]) -> Result<Vec<v1::Attempt>, prost::DecodeError> {
    encoded_attempts(&bytes::Bytes::copy_from_slice(bytes))?.into_iter().map(v1::Attempt::decode).collect()
}

/// The attempts of an attempts-topic record as [`attempts_in`] finds them, each left encoded
/// as a slice of `record` (nothing copied); a bare attempt is the record itself, decoded by
/// whoever reads it.
pub fn encoded_attempts(record: &bytes::Bytes) -> Result<Vec<bytes::Bytes>, prost::DecodeError> {
    let batch = EncodedAttemptBatch::decode(record.clone())?;
    if !batch.attempts.is_empty() || record.is_empty() {
        return Ok(batch.attempts);
    }
    Ok(vec![record.clone()])
}

/// Appends `attempt` to an [`v1::AttemptBatch`] record being built in `record`, with
/// `fields` after it: more fields of the same attempt, already encoded (its request
/// headers, [`push_request_header`]). The record decodes as the batch of the attempts
/// appended, each with its `fields` merged in.
pub fn append_attempt(record: &mut Vec<u8>, attempt: &v1::Attempt, fields: &[u8]) {
    // AttemptBatch.attempts: field 15, length-delimited.
    record.push((15 << 3) | 2);
    prost::encode_length_delimiter(attempt.encoded_len() + fields.len(), record).expect("a Vec grows as needed");
    attempt.encode(record).expect("a Vec grows as needed");
    record.extend_from_slice(fields);
}

/// Appends one entry of [`v1::Attempt::request_headers`] to `fields`, encoded as it is in
/// an attempt (field 14, a map entry of two strings): for [`append_attempt`], or for
/// [`Message::merge`] into an `Attempt`. Costs no allocation beyond `fields` growing.
pub fn push_request_header(fields: &mut Vec<u8>, name: &str, value: &str) {
    let string_len = |s: &str| 1 + prost::length_delimiter_len(s.len()) + s.len();
    fields.push((14 << 3) | 2);
    prost::encode_length_delimiter(string_len(name) + string_len(value), fields).expect("a Vec grows as needed");
    // The entry's key is field 1, its value field 2, both length-delimited strings.
    for (key, s) in [((1 << 3) | 2, name), ((2 << 3) | 2, value)] {
        fields.push(key);
        prost::encode_length_delimiter(s.len(), fields).expect("a Vec grows as needed");
        fields.extend_from_slice(s.as_bytes());
    }
}

/// [`v1::AttemptBatch`] with its attempts left encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct EncodedAttemptBatch {
    #[prost(bytes = "bytes", repeated, tag = "15")]
    attempts: Vec<bytes::Bytes>,
}

/// The fields of a [`v1::Attempt`] that say what it was and how it went, decoded without
/// the rest (its URL, error, response excerpt and request headers are skipped): what the
/// API's history indexes, counts and summarises attempts by. Same field numbers as
/// `v1::Attempt`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttemptHead {
    #[prost(string, tag = "1")]
    pub event_id: String,
    #[prost(string, tag = "2")]
    pub endpoint_id: String,
    #[prost(string, tag = "3")]
    pub event_type: String,
    #[prost(string, tag = "4")]
    pub tenant: String,
    #[prost(uint32, tag = "5")]
    pub attempt: u32,
    #[prost(enumeration = "v1::Outcome", tag = "6")]
    pub outcome: i32,
    #[prost(uint32, tag = "7")]
    pub status: u32,
    #[prost(uint32, tag = "8")]
    pub latency_ms: u32,
    #[prost(int64, tag = "10")]
    pub at_ms: i64,
    #[prost(int64, tag = "13")]
    pub next_attempt_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::v1::{self, DeadLetterReason};
    use super::{append_attempt, attempts_in, encoded_attempts, push_request_header, AttemptHead, Message as _};

    fn attempt(id: &str) -> v1::Attempt {
        v1::Attempt { event_id: id.into(), endpoint_id: "ep".into(), attempt: 2, status: 503, ..Default::default() }
    }

    #[test]
    fn a_record_holds_a_batch_or_one_bare_attempt() {
        let batch = v1::AttemptBatch { attempts: vec![attempt("a"), attempt("b")] };
        assert_eq!(attempts_in(&batch.encode_to_vec()).expect("decodes"), batch.attempts);
        assert_eq!(attempts_in(&attempt("old").encode_to_vec()).expect("decodes"), vec![attempt("old")]);
        assert_eq!(attempts_in(&[]).expect("decodes"), vec![]);
        assert!(attempts_in(b"\xff\xff not protobuf").is_err());
    }

    #[test]
    fn appended_attempts_and_their_headers_decode_as_prosts_own_batch() {
        let mut headers = Vec::new();
        for (name, value) in [("webhook-id", "a"), ("x-empty", ""), ("x-long", &"v".repeat(300))] {
            push_request_header(&mut headers, name, value);
        }
        let mut record = Vec::new();
        append_attempt(&mut record, &attempt("a"), &headers);
        append_attempt(&mut record, &attempt("b"), &[]);
        let mut with_headers = attempt("a");
        with_headers.request_headers =
            [("webhook-id", "a".to_owned()), ("x-empty", String::new()), ("x-long", "v".repeat(300))].map(|(k, v)| (k.to_owned(), v)).into();
        assert_eq!(attempts_in(&record).expect("decodes"), vec![with_headers.clone(), attempt("b")]);
        let mut merged = attempt("a");
        merged.merge(headers.as_slice()).expect("decodes");
        assert_eq!(merged, with_headers, "the headers merge into an attempt on their own too");
    }

    proptest::proptest! {
        /// Whatever the attempts and headers, a record built by `append_attempt` with
        /// `push_request_header` decodes to them, as prost's own encoding does.
        #[test]
        fn any_appended_attempts_decode_to_themselves(
            attempts in proptest::collection::vec(
                (
                    ".{0,12}", ".{0,12}", proptest::num::u32::ANY, -3i32..9, proptest::num::u32::ANY, proptest::num::i64::ANY, ".{0,40}",
                    proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                    proptest::collection::btree_map("[a-z-]{0,12}", ".{0,80}", 0..6),
                ),
                0..5,
            ),
        ) {
            let mut record = Vec::new();
            let mut expected = Vec::new();
            for (event_id, endpoint_id, status, outcome, latency_ms, at_ms, error, response_excerpt, headers) in attempts {
                let attempt = v1::Attempt { event_id, endpoint_id, status, outcome, latency_ms, at_ms, error, response_excerpt, ..Default::default() };
                let mut fields = Vec::new();
                for (name, value) in &headers {
                    push_request_header(&mut fields, name, value);
                }
                append_attempt(&mut record, &attempt, &fields);
                expected.push(v1::Attempt { request_headers: headers, ..attempt });
            }
            proptest::prop_assert_eq!(attempts_in(&record).expect("decodes"), expected);
        }
    }

    #[test]
    fn encoded_attempts_are_slices_of_the_record_and_their_head_reads_the_same_fields() {
        let full = v1::Attempt {
            event_id: "evt".into(),
            endpoint_id: "ep".into(),
            event_type: "order.created".into(),
            tenant: "acme".into(),
            attempt: 3,
            outcome: v1::Outcome::Retryable.into(),
            status: 503,
            latency_ms: 42,
            error: "503 Service Unavailable".into(),
            at_ms: 1_700_000_000_000,
            response_excerpt: b"busy".to_vec(),
            url: "https://example.com/hook".into(),
            next_attempt_at_ms: 1_700_000_005_000,
            request_headers: [("webhook-id".to_owned(), "evt".to_owned())].into(),
        };
        let record = bytes::Bytes::from(v1::AttemptBatch { attempts: vec![attempt("a"), full.clone()] }.encode_to_vec());
        let encoded = encoded_attempts(&record).expect("decodes");
        assert_eq!(encoded.len(), 2);
        assert!(record.as_ptr_range().contains(&encoded[1].as_ptr()), "a slice of the record, not a copy");
        assert_eq!(v1::Attempt::decode(encoded[1].clone()).expect("decodes"), full);
        let head = AttemptHead::decode(encoded[1].clone()).expect("decodes");
        let expected = AttemptHead {
            event_id: full.event_id.clone(),
            endpoint_id: full.endpoint_id.clone(),
            event_type: full.event_type.clone(),
            tenant: full.tenant.clone(),
            attempt: full.attempt,
            outcome: full.outcome,
            status: full.status,
            latency_ms: full.latency_ms,
            at_ms: full.at_ms,
            next_attempt_at_ms: full.next_attempt_at_ms,
        };
        assert_eq!(head, expected);
        assert_eq!(head.outcome(), v1::Outcome::Retryable);
        let bare = bytes::Bytes::from(attempt("old").encode_to_vec());
        assert_eq!(encoded_attempts(&bare).expect("decodes"), vec![bare.clone()], "a bare attempt is the record itself");
    }

    #[test]
    fn every_reason_label_is_its_proto_name_shortened() {
        let all: Vec<_> = DeadLetterReason::all().collect();
        assert_eq!(all.len(), 15);
        for r in all.into_iter().chain([DeadLetterReason::Unspecified]) {
            assert_eq!(r.label(), r.as_str_name().trim_start_matches("DEAD_LETTER_REASON_").to_ascii_lowercase());
        }
    }
}
