//! Ordered lanes as a receiver sees them: events keyed by their ordering key, and the order
//! in which each key's events were first answered 2xx.

use super::faulty::{FaultyReceiver, Reply};
use super::{endpoint, event, secret, TestPipeline};
use hookline_proto::v1::{self, DeliveryOrdering, LaneBlocked};
use hookline_proto::Message as _;
use std::collections::HashMap;

/// An ordered endpoint taking `order.*`.
pub fn ordered(id: &str, url: &str, ordering: DeliveryOrdering, max_block_ms: i64, blocked: LaneBlocked) -> v1::Endpoint {
    v1::Endpoint {
        ordering: ordering as i32,
        lane_max_block_ms: max_block_ms,
        on_lane_blocked: blocked as i32,
        ..endpoint(id, url, &["order.*"], "", &secret(5))
    }
}

/// Event `i` of key `k`: id `evt_<k>_<i>`, ordering key `k`.
pub fn keyed(key: &str, i: usize) -> v1::Event {
    v1::Event { ordering_key: key.into(), ..event(&format!("evt_{key}_{i:04}"), "order.created", "", "{}") }
}

/// Publishes `per_key` events for each key, interleaved, each keyed by its ordering key.
pub async fn publish_keyed(p: &TestPipeline, keys: &[String], per_key: usize) {
    for i in 0..per_key {
        for k in keys {
            let e = keyed(k, i);
            p.publish_raw(&e.ordering_key, &e.encode_to_vec()).await;
        }
    }
}

/// (key, index) of a webhook id `evt_<key>_<index>`.
pub fn key_and_index(id: &str) -> (String, usize) {
    let (rest, index) = id.rsplit_once('_').expect("evt_<key>_<i>");
    (rest.trim_start_matches("evt_").to_owned(), index.parse().expect("index"))
}

/// Per key, the order in which events were first answered 2xx, and every request made
/// for an event after a later event of its key had already succeeded (an order breach).
pub fn first_successes(rx: &FaultyReceiver) -> (HashMap<String, Vec<usize>>, Vec<String>) {
    let mut firsts: HashMap<String, Vec<usize>> = HashMap::new();
    let mut breaches = Vec::new();
    for hit in rx.hits() {
        let (key, i) = key_and_index(&hit.webhook_id);
        let seen = firsts.entry(key.clone()).or_default();
        let ok = matches!(hit.reply, Reply::Status(200..=299));
        if seen.contains(&i) {
            continue; // a repeat of a delivered event (at-least-once): receivers dedupe on webhook-id
        }
        if seen.last().is_some_and(|&last| last > i) {
            breaches.push(format!("{} requested after {key}#{} succeeded", hit.webhook_id, seen.last().unwrap_or(&0)));
        }
        if ok {
            seen.push(i);
        }
    }
    (firsts, breaches)
}
