//! The AsyncAPI 3.0 document of Hookline's Kafka interface: the events topic, its
//! `hookline.v1.Event` envelope (protobuf, with the schema of `proto/hookline/v1`), and one
//! message per event type of the catalog with its payload's JSON Schema per version.
//! Served at `GET /v1/asyncapi.json` from the live catalog; `docs/asyncapi.json` is the
//! document of an empty catalog (the envelope alone), checked by a test.

use hookline_proto::v1;
use serde_json::{json, Map, Value};

/// The document for `topic` (the events topic) and the catalog's `types`.
pub fn document(topic: &str, types: &[v1::EventType]) -> Value {
    let mut messages = Map::new();
    messages.insert(
        "event".into(),
        json!({
            "name": "hookline.v1.Event",
            "title": "An event (any type)",
            "summary": "The envelope every producer publishes: id, type, tenant, payload bytes, attributes (`version` names the payload's version).",
            "contentType": "application/x-protobuf",
            "payload": {
                "schemaFormat": "application/vnd.google.protobuf;version=3",
                "schema": "See proto/hookline/v1/hookline.proto, message hookline.v1.Event"
            },
            "bindings": {"kafka": {"key": {"type": "string", "description": "The event id (recommended), or its ordering_key"}, "bindingVersion": "0.5.0"}}
        }),
    );
    for t in types {
        for v in &t.versions {
            let Ok(schema) = serde_json::from_str::<Value>(&v.schema_json) else { continue };
            let key = format!("{}.v{}", t.name, v.version);
            let examples: Vec<Value> = v
                .examples_json
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .map(|payload| json!({"payload": payload}))
                .collect();
            messages.insert(
                key.clone(),
                json!({
                    "name": t.name,
                    "title": format!("{} (version {})", t.name, v.version),
                    "summary": t.description,
                    "description": format!(
                        "The JSON payload (`Event.payload`) of events typed `{}`, with attribute `version` = `{}`{}.",
                        t.name, v.version, if v.version == 1 { " or none" } else { "" }
                    ),
                    "contentType": "application/json",
                    "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12", "schema": schema},
                    "examples": examples,
                    "deprecated": t.deprecated || v.deprecated,
                }),
            );
        }
    }
    let refs: Vec<Value> = messages.keys().map(|k| json!({"$ref": format!("#/channels/events/messages/{k}")})).collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Hookline events",
            "version": "1",
            "description": "What platform services publish to Hookline over Kafka. Each record of the events topic is a protobuf hookline.v1.Event; its payload is described per event type below (the event-type catalog, docs/contracts.md)."
        },
        "defaultContentType": "application/x-protobuf",
        "channels": {
            "events": {
                "address": topic,
                "title": "The events topic",
                "messages": Value::Object(messages.clone()),
            }
        },
        "operations": {
            "publishEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Publish an event: Hookline delivers it as a signed webhook to every endpoint subscribed to its type.",
                "messages": refs,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/asyncapi.json` is the document of an empty catalog, byte for byte. After a
    /// change here, refresh it: `UPDATE_DOCS=1 cargo test -p hookline-api asyncapi`.
    #[test]
    fn the_published_asyncapi_document_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&document("hookline.events", &[])).expect("serializes");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.json");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, format!("{generated}\n")).expect("writes docs/asyncapi.json");
        }
        let published = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            published.trim_end() == generated.trim_end(),
            "docs/asyncapi.json is stale; the generated one is:\n{generated}"
        );
    }

    #[test]
    fn each_version_of_a_type_is_a_message() {
        let t = v1::EventType {
            name: "order.created".into(),
            versions: vec![
                v1::EventTypeVersion { version: 1, schema_json: r#"{"type":"object"}"#.into(), ..Default::default() },
                v1::EventTypeVersion { version: 2, schema_json: r#"{"type":"object","required":["total"]}"#.into(), ..Default::default() },
            ],
            ..Default::default()
        };
        let doc = document("p.events", &[t]);
        let messages = &doc["channels"]["events"]["messages"];
        assert_eq!(messages["order.created.v2"]["payload"]["schema"]["required"], json!(["total"]));
        assert_eq!(doc["operations"]["publishEvent"]["messages"].as_array().map(Vec::len), Some(3));
        assert_eq!(doc["channels"]["events"]["address"], "p.events");
    }
}
