//! What every generated event carries, on both paths (HTTP ingest and Kafka), and what
//! `load-tests/ingest.js` sends too: its own creation time in `occurred_at`, inside the
//! JSON `data`, because the `hookline sink --latency-field occurred_at` ledger measures
//! end-to-end latency from it (the webhook body is `data`, byte for byte).

/// `data` of the `seq`-th event of a request (or of a produce run).
pub fn data(occurred_at_ms: i64, seq: u64, pad: &str) -> serde_json::Value {
    serde_json::json!({"occurred_at": occurred_at_ms, "seq": seq, "pad": pad})
}

/// The padding that makes `data` about `payload_bytes` long (as ingest.js pads it: the
/// other fields take about 96 bytes).
pub fn padding(payload_bytes: usize) -> String {
    "x".repeat(payload_bytes.saturating_sub(96))
}

/// A new sampled W3C `traceparent` (random trace and parent ids), so each request or event
/// is traced through router and sender on its own.
pub fn sampled_traceparent() -> String {
    // A zero id is invalid; `| 1` keeps a random id random enough and never zero.
    format!("00-{:032x}-{:016x}-01", rand::random::<u128>() | 1, rand::random::<u64>() | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_carries_its_creation_time_and_is_padded_to_size() {
        let d = data(1_700_000_000_123, 7, &padding(256));
        assert_eq!(d["occurred_at"], 1_700_000_000_123i64);
        assert_eq!(d["seq"], 7);
        let len = d.to_string().len();
        assert!((200..=280).contains(&len), "{len} bytes");
        assert_eq!(padding(10), "");
    }

    #[test]
    fn traceparents_are_sampled_and_well_formed() {
        let t = sampled_traceparent();
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
        assert!(parts[1].chars().chain(parts[2].chars()).all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(sampled_traceparent(), t);
    }
}
