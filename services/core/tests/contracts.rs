//! The event contracts end to end, as the router and the sender will use them: an event's
//! version picks its schema, the payload is checked once and parsed once, each endpoint's
//! pin and filter decide whether it gets the event, and its transformation shapes the body
//! that is signed and verified by a Standard Webhooks library.

use hookline_core::contracts::filter::{EventView, Filter, FilterOutcome};
use hookline_core::contracts::schema::{SchemaCache, SchemaViolation, DEFAULT_MAX_ERRORS};
use hookline_core::contracts::transform::{EventMeta, MaskKey, Transform, TransformConfig};
use hookline_core::contracts::version;
use hookline_core::signing::{signature_header, SigningKey};
use serde_json::json;
use std::collections::HashMap;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Endpoint {
    pin: Option<u32>,
    filter: Option<Filter>,
    transform: Transform,
    mask_key: MaskKey,
}

impl Endpoint {
    fn new(pin: Option<u32>, filter: Option<&str>, transform: serde_json::Value) -> Self {
        let config: TransformConfig = serde_json::from_value(transform).expect("a transformation");
        Self {
            pin,
            filter: filter.map(|f| Filter::compile(f).expect("the filter compiles")),
            transform: Transform::compile(&config).expect("the transformation is valid"),
            mask_key: MaskKey::new(b"per-endpoint mask key"),
        }
    }
}

struct Event {
    id: &'static str,
    event_type: &'static str,
    attributes: HashMap<String, String>,
    payload: Vec<u8>,
}

fn catalog() -> SchemaCache {
    let mut cache = SchemaCache::new();
    let v1 = json!({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}});
    let v2 = json!({"type": "object", "required": ["amount", "card"],
        "properties": {"amount": {"type": "integer"}, "card": {"type": "object", "required": ["number"]}}});
    cache.insert("order.created", 1, &v1).expect("v1 compiles");
    cache.insert("order.created", 2, &v2).expect("v2 compiles");
    cache
}

/// The router's part: `Err` is a dead letter (`schema_violation`), `Ok` the endpoints
/// (by index) that get a delivery.
fn route(cache: &SchemaCache, endpoints: &[Endpoint], event: &Event) -> Result<Vec<usize>, SchemaViolation> {
    let declared = version::of_event(&event.attributes).expect("a valid version attribute");
    let parsed = match cache.get(event.event_type, version::effective(declared)) {
        Some(schema) => Some(schema.validate_payload(&event.payload, DEFAULT_MAX_ERRORS)?),
        None => serde_json::from_slice(&event.payload).ok(),
    };
    let view = EventView::new(event.id, event.event_type, "", &event.attributes, parsed.as_ref());
    Ok(endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| version::accepts(e.pin, declared))
        .filter(|(_, e)| e.filter.as_ref().is_none_or(|f| f.eval(&view) == FilterOutcome::Match))
        .map(|(i, _)| i)
        .collect())
}

fn order(version: &str, payload: serde_json::Value) -> Event {
    Event {
        id: "evt_42",
        event_type: "order.created",
        attributes: HashMap::from([("version".to_owned(), version.to_owned())]),
        payload: payload.to_string().into_bytes(),
    }
}

#[test]
fn an_event_is_validated_routed_transformed_and_signed() {
    let cache = catalog();
    let endpoints = [
        Endpoint::new(Some(1), None, json!({})),
        Endpoint::new(None, Some("payload.amount >= 100"), json!({"envelope": "standard", "ops": [
            {"op": "mask", "pointer": "/card/number", "with": "hash"},
            {"op": "exclude", "pointers": ["/card/cvc"]}
        ]})),
        Endpoint::new(Some(2), Some("payload.amount < 100"), json!({})),
    ];

    let event = order("2", json!({"amount": 250, "card": {"number": "4111111111111111", "cvc": "123"}}));
    let routed = route(&cache, &endpoints, &event).expect("valid");
    assert_eq!(routed, vec![1], "v1 pin and the small-amount filter do not take it");

    let endpoint = &endpoints[1];
    let meta = EventMeta { id: event.id, event_type: event.event_type, occurred_at_ms: 1_700_000_000_000 };
    let body = endpoint.transform.apply(&meta, &event.payload, Some(&endpoint.mask_key)).expect("transforms");
    let text = std::str::from_utf8(&body).expect("UTF-8");
    assert!(!text.contains("4111111111111111") && !text.contains("\"123\""), "{text}");
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(sent["type"], "order.created");
    assert_eq!(sent["id"], "evt_42");
    assert_eq!(sent["timestamp"], "2023-11-14T22:13:20.000Z");
    assert_eq!(sent["data"]["amount"], 250);
    assert!(sent["data"]["card"]["number"].as_str().is_some_and(|h| h.starts_with("hmac:")));

    // Signed over the transformed body, it verifies with a Standard Webhooks library.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let key = SigningKey::from_secret(SECRET).expect("secret");
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", event.id.parse().expect("header"));
    headers.insert("webhook-timestamp", now.to_string().parse().expect("header"));
    headers.insert("webhook-signature", signature_header([&key], event.id, now, &body).parse().expect("header"));
    let verifier = standardwebhooks::Webhook::new(SECRET).expect("secret");
    verifier.verify(&body, &headers).expect("the transformed body verifies");
}

#[test]
fn an_unversioned_event_is_version_one_and_checked_against_it() {
    let cache = catalog();
    let endpoints = [Endpoint::new(Some(1), None, json!({})), Endpoint::new(Some(2), None, json!({}))];
    let mut event = order("1", json!({"amount": 5}));
    event.attributes.clear();
    assert_eq!(route(&cache, &endpoints, &event).expect("valid against v1"), vec![0]);
}

#[test]
fn an_invalid_event_is_refused_with_its_errors() {
    let cache = catalog();
    let event = order("2", json!({"amount": "lots"}));
    let err = route(&cache, &[], &event).expect_err("invalid against v2");
    let violations = err.violations();
    assert!(violations.iter().any(|v| v.path == "/amount" && v.keyword == "type"), "{violations:?}");
    assert!(violations.iter().any(|v| v.path.is_empty() && v.keyword == "required"), "{violations:?}");

    let mut not_json = order("1", json!({}));
    not_json.payload = b"amount=5".to_vec();
    assert!(matches!(route(&cache, &[], &not_json), Err(SchemaViolation::NotJson { .. })));
}

#[test]
fn a_filter_that_fails_for_one_event_only_skips_that_endpoint() {
    let cache = catalog();
    let endpoints = [Endpoint::new(None, Some("payload.customer.tier == 'gold'"), json!({})), Endpoint::new(None, None, json!({}))];
    let event = order("1", json!({"amount": 5}));
    assert_eq!(route(&cache, &endpoints, &event).expect("valid"), vec![1]);
}
