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
    let batch = v1::AttemptBatch::decode(bytes)?;
    if !batch.attempts.is_empty() || bytes.is_empty() {
        return Ok(batch.attempts);
    }
    Ok(vec![v1::Attempt::decode(bytes)?])
}

#[cfg(test)]
mod tests {
    use super::v1::{self, DeadLetterReason};
    use super::{attempts_in, Message as _};

    fn attempt(id: &str) -> v1::Attempt {
        v1::Attempt { event_id: id.into(), endpoint_id: "ep".into(), attempt: 2, status: 503, ..Default::default() }
    }

    #[test]
    fn a_record_holds_a_batch_or_one_bare_attempt() {
        let batch = v1::AttemptBatch { attempts: vec![attempt("a"), attempt("b")] };
        assert_eq!(attempts_in(&batch.encode_to_vec()).unwrap(), batch.attempts);
        assert_eq!(attempts_in(&attempt("old").encode_to_vec()).unwrap(), vec![attempt("old")]);
        assert_eq!(attempts_in(&[]).unwrap(), vec![]);
        assert!(attempts_in(b"\xff\xff not protobuf").is_err());
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
