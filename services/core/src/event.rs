//! Rules a published event must follow before it is routed. An event breaking them is
//! dead-lettered by the router with the message from [`EventError`].

use crate::matching::{validate_event_type, PatternError};

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
}
