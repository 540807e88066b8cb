//! Event contracts on the real Kafka broker (docs/contracts.md): the catalog with an
//! enforced schema (the HTTP ingest answers 422, the router dead-letters an invalid event
//! from Kafka), a content filter (a failing filter never stops the partition), a masked
//! and renamed field in a standard envelope checked at the receiver with its signature, a
//! version pin, and the dry run.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, PUBLISH, READ};
use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::DeadLetterReason;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_filters_masks_and_pins_hold_from_the_api_to_the_receiver() {
    let p = TestPipeline::start().await;
    let api = p.api(false);

    // The catalog: order.created v1 enforced.
    let schema = json!({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}, "card": {"type": "object"}}});
    let put = api
        .call(Method::PUT, "/v1/event-types/order.created", Some(ADMIN), Some(json!({
            "description": "An order was placed",
            "validation": "enforce",
            "versions": [{"version": 1, "schema": schema, "examples": [{"amount": 250, "card": {"number": "4242424242424242"}}]}],
        })))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let bad_example = api
        .call(Method::PUT, "/v1/event-types/order.paid", Some(ADMIN), Some(json!({"versions": [{"version": 1, "schema": schema, "examples": [{"amount": "x"}]}]})))
        .await;
    assert_eq!(bad_example.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_example.json["errors"][0]["field"], "versions[0].examples[0]", "{}", bad_example.json);
    let remote = api
        .call(Method::PUT, "/v1/event-types/order.paid", Some(ADMIN), Some(json!({"versions": [{"version": 1, "schema": {"$ref": "https://example.com/s.json"}}]})))
        .await;
    assert_eq!(remote.status, StatusCode::UNPROCESSABLE_ENTITY, "a schema never makes the server fetch a URL: {}", remote.json);

    // An endpoint with a filter, and a transformation: a hashed card number, a renamed
    // field, the standard envelope.
    let sink = TestSink::start(&secret(61)).await;
    let transform = json!({"envelope": "standard", "ops": [
        {"op": "mask", "pointer": "/card/number", "with": "hash"},
        {"op": "rename", "from": "/amount", "to": "/total"},
    ]});
    let bad_filter = api
        .call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": sink.url("big"), "event_types": ["order.*"], "filter": "payload.amount >"})))
        .await;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_filter.json["errors"][0]["field"], "filter", "{}", bad_filter.json);
    assert!(bad_filter.json["errors"][0]["problem"].as_str().is_some_and(|p| p.contains("line 1")), "{}", bad_filter.json);
    let created = api
        .call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({
            "url": sink.url("big"), "event_types": ["order.*"], "secret": sink.secret,
            "filter": "payload.amount > 100", "transform": transform,
        })))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let big = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(created.json["transform"], transform);
    // Pinned to version 2: unversioned events (version 1) are not for it.
    let pinned_sink = TestSink::start(&secret(62)).await;
    let pinned = api
        .call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": pinned_sink.url("v2"), "event_types": ["order.*"], "secret": pinned_sink.secret, "version": 2})))
        .await;
    assert_eq!(pinned.status, StatusCode::CREATED, "{}", pinned.json);
    let catalog = api.call(Method::GET, "/v1/event-types/order.created", Some(READ), None).await.json;
    assert_eq!(catalog["versions"][0]["endpoints"], json!([big]), "v1 goes to the unpinned endpoint only: {catalog}");

    // The HTTP ingest refuses an invalid payload with the schema's errors.
    let invalid = api.call(Method::POST, "/v1/events", Some(PUBLISH), Some(json!({"type": "order.created", "data": {"amount": "12"}}))).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.json);
    assert_eq!((invalid.json["violations"][0]["path"].clone(), invalid.json["violations"][0]["keyword"].clone()), (json!("/amount"), json!("type")));

    // The dry run shows the exact body and a signature.
    let card = "4242424242424242";
    let preview = api
        .call(Method::POST, &format!("/v1/endpoints/{big}/preview"), Some(READ), Some(json!({"type": "order.created", "id": "evt_pre", "data": {"amount": 500, "card": {"number": card}}})))
        .await;
    assert_eq!(preview.json["matches"], true, "{}", preview.json);
    assert!(preview.json["headers"]["webhook-signature"].as_str().is_some_and(|s| s.starts_with("v1,")));
    let body: Value = serde_json::from_str(preview.json["body"].as_str().expect("body")).expect("JSON");
    assert_eq!((body["type"].clone(), body["data"]["total"].clone()), (json!("order.created"), json!(500)), "{body}");
    let small = api
        .call(Method::POST, &format!("/v1/endpoints/{big}/preview"), Some(READ), Some(json!({"type": "order.created", "data": {"amount": 5}})))
        .await;
    assert_eq!((small.json["matches"].clone(), small.json["body"].clone()), (json!(false), Value::Null), "{}", small.json);

    // From Kafka: a small order (filtered out), a payload the filter cannot read (enforced
    // schema: dead-lettered before), a big order, an invalid one, and a big one after them.
    p.publish(&[
        event("evt_small", "order.created", "", r#"{"amount": 5}"#),
        event("evt_invalid", "order.created", "", r#"{"amount": "lots"}"#),
        event("evt_big", "order.created", "", &format!(r#"{{"amount": 500, "card": {{"number": "{card}"}}}}"#)),
        event("evt_refund", "order.refunded", "", r#"{"total": 7}"#),
        event("evt_after", "order.created", "", r#"{"amount": 101}"#),
    ])
    .await;
    let ledger = sink.ledger.clone();
    eventually("the big orders arrive", WAIT, || ledger.count("evt_big") == 1 && ledger.count("evt_after") == 1).await;
    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::SchemaViolation);
    assert!(dead[0].detail.contains("/amount (type)"), "{}", dead[0].detail);
    // evt_refund has no `amount`: the filter fails on it, which is no match.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((ledger.count("evt_small"), ledger.count("evt_refund"), ledger.count("evt_invalid")), (0, 0, 0));
    let received = ledger.received().into_iter().find(|r| r.webhook_id == "evt_big").expect("kept");
    assert!(received.signature_valid, "the transformed body is what was signed");
    let text = String::from_utf8_lossy(&received.body).into_owned();
    assert!(!text.contains(card), "the card number never leaves: {text}");
    let got: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!((got["id"].clone(), got["data"]["total"].clone()), (json!("evt_big"), json!(500)), "{got}");
    assert!(got["data"]["card"]["number"].as_str().is_some_and(|h| h.starts_with("hmac:")), "{got}");
    assert!(got["timestamp"].as_str().is_some(), "{got}");
    assert_eq!(pinned_sink.ledger.summary().received, 0, "no version 2 event was published");
    p.stop().await;
}
