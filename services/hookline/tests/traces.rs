//! OpenTelemetry traces end to end, into an OTLP/HTTP receiver: an event carrying a W3C
//! trace context gets a route span (child of the producer's span) and one deliver span per
//! attempt (children of the route span, retries included); the endpoint receives each
//! attempt's context as `traceparent`; an event without a trace context makes no span; an
//! event published over HTTP is traced under the request's `traceparent`.
//! Its own test binary: the tracer provider is global to the process.

mod common;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use common::api::PUBLISH;
use axum::routing::post;
use common::faulty::{FaultyReceiver, Reply};
use common::{event, eventually, secret, TestPipeline};
use hookline_core::config::TracesConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use parking_lot::Mutex;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    failed: bool,
}

/// An OTLP/HTTP traces receiver on 127.0.0.1:0 (`POST /v1/traces`, protobuf).
async fn collector() -> (String, Arc<Mutex<Vec<Exported>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = Arc::clone(&store);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
                for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                                Some(Value::StringValue(s)) => s,
                                Some(Value::IntValue(i)) => i.to_string(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    store.lock().push(Exported {
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        attributes,
                        failed: span.status.as_ref().is_some_and(|s| s.code == 2),
                    });
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/traces"), spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_event_is_followed_through_router_sender_and_its_retry() {
    let (endpoint, spans) = collector().await;
    let p = TestPipeline::builder().retry_schedule(&["1s"]).traces(&endpoint).start().await;
    let cfg = TracesConfig { otlp_endpoint: endpoint, ..p.config.traces.clone() };
    let traces = hookline_runtime::traces::init(&cfg, "test").expect("exporter").expect("enabled");
    // First attempt 500, the retry 200.
    let rx = FaultyReceiver::start(|_, n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    p.add_endpoint("traced", &rx.url(), &["order.*"], "", &secret(31)).await;

    let mut traced = event("evt_traced", "order.created", "", "{}");
    traced.trace = Some(hookline_proto::v1::TraceContext {
        traceparent: format!("00-{TRACE_ID}-{PRODUCER_SPAN}-01"),
        tracestate: String::new(),
    });
    p.publish(&[traced, event("evt_untraced", "order.created", "", "{}")]).await;
    eventually("both attempts of the traced event and the untraced one", WAIT, || {
        rx.hits_for("evt_traced").len() == 2 && rx.hits_for("evt_untraced").len() == 2
    })
    .await;
    let exported = || spans.lock().clone();
    eventually("three spans exported", WAIT, || {
        traces.flush();
        exported().len() >= 3
    })
    .await;

    let all = exported();
    assert!(all.iter().all(|s| s.trace_id == TRACE_ID), "only the traced event makes spans: {all:#?}");
    let route: Vec<_> = all.iter().filter(|s| s.name == "hookline.route").collect();
    assert_eq!(route.len(), 1, "{all:#?}");
    let route = route[0];
    assert_eq!(route.parent, PRODUCER_SPAN, "the route span is the producer's child");
    assert_eq!(route.attributes["hookline.event_id"], "evt_traced");
    assert_eq!(route.attributes["hookline.endpoints_matched"], "1");
    let mut deliver: Vec<_> = all.iter().filter(|s| s.name == "hookline.deliver").cloned().collect();
    deliver.sort_by_key(|s| s.attributes["hookline.attempt"].clone());
    assert_eq!(deliver.len(), 2, "{all:#?}");
    for (span, (attempt, status, failed)) in deliver.iter().zip([("1", "500", true), ("2", "200", false)]) {
        assert_eq!(span.parent, route.span_id, "each attempt is the route span's child, the retry too");
        assert_eq!(span.attributes["hookline.attempt"], attempt);
        assert_eq!(span.attributes["http.response.status_code"], status);
        assert_eq!(span.attributes["hookline.endpoint_id"], "traced");
        assert_eq!(span.failed, failed);
    }
    // The endpoint got each attempt's own context (propagate_to_endpoints = true).
    let sent: Vec<String> = rx.hits_for("evt_traced").iter().map(|h| h.traceparent.clone().expect("traceparent sent")).collect();
    let expected: Vec<String> = deliver.iter().map(|s| format!("00-{TRACE_ID}-{}-01", s.span_id)).collect();
    assert_eq!(sent, expected);
    assert!(rx.hits_for("evt_untraced").iter().all(|h| h.traceparent.is_none()), "no context, nothing sent");

    // HTTP ingest: the request's own traceparent becomes the event's trace context.
    let api = p.api(false);
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body = r#"{"type": "order.paid", "id": "evt_http", "data": {}}"#;
    let accepted = api.call_raw(Method::POST, "/v1/events", Some(PUBLISH), Some(body), &[("traceparent", caller)]).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json);
    eventually("the ingested event's route span", WAIT, || {
        traces.flush();
        exported().iter().any(|s| s.name == "hookline.route" && s.trace_id == "0af7651916cd43dd8448eb211c80319c")
    })
    .await;
    let route = exported().into_iter().find(|s| s.trace_id == "0af7651916cd43dd8448eb211c80319c" && s.name == "hookline.route");
    assert_eq!(route.map(|s| (s.parent, s.attributes["hookline.event_id"].clone())), Some(("b7ad6b7169203331".into(), "evt_http".into())));
    p.stop().await;
    drop(traces);
}
