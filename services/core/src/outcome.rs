//! How one HTTP attempt's result is classified, once, as data. The sender acts on the
//! class, never on status codes or error strings.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Success,
    /// May succeed later; `retry_after` is the endpoint's own hint.
    Retryable { retry_after: Option<Duration> },
    /// Retrying will not help (a status the endpoint configured as permanent).
    Permanent,
    /// 410 Gone: the endpoint asked to stop receiving.
    Gone,
    /// The SSRF policy refused every address.
    BlockedByPolicy,
}

/// Longest `Retry-After` honoured; a longer hint is clamped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// Classifies a received status. 2xx succeed; 410 is gone; a status the endpoint lists as
/// permanent is permanent; everything else (3xx: redirects are never followed; 408, 429,
/// 5xx; other 4xx) is retryable, honouring `Retry-After` when present.
pub fn classify_status(status: u16, permanent: &[u16], retry_after: Option<Duration>) -> Class {
    match status {
        200..=299 => Class::Success,
        410 => Class::Gone,
        s if permanent.contains(&s) => Class::Permanent,
        _ => Class::Retryable { retry_after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)) },
    }
}

/// Parses `Retry-After` as delay-seconds. (An HTTP-date is converted by the caller, which
/// owns the clock, into seconds first.)
pub fn parse_retry_after_secs(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        let none = None;
        assert_eq!(classify_status(200, &[], none), Class::Success);
        assert_eq!(classify_status(204, &[], none), Class::Success);
        assert_eq!(classify_status(301, &[], none), Class::Retryable { retry_after: None });
        assert_eq!(classify_status(410, &[410], none), Class::Gone);
        assert_eq!(classify_status(400, &[], none), Class::Retryable { retry_after: None });
        assert_eq!(classify_status(400, &[400, 422], none), Class::Permanent);
        assert_eq!(classify_status(503, &[], none), Class::Retryable { retry_after: None });
        let hint = Some(Duration::from_secs(30));
        assert_eq!(classify_status(429, &[], hint), Class::Retryable { retry_after: hint });
        let huge = Some(Duration::from_secs(10 * 24 * 3600));
        assert_eq!(classify_status(429, &[], huge), Class::Retryable { retry_after: Some(MAX_RETRY_AFTER) });
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after_secs(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after_secs("-1"), None);
        assert_eq!(parse_retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
