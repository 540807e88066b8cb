//! Operational webhooks end to end on the real broker: a tenant's operations endpoint,
//! subscribed to `hookline.*`, hears about its own failing endpoint (failing, exhausted,
//! recovered, disabled, enabled) and about nothing of another tenant's endpoint.

mod common;

use axum::http::Method;
use common::api::ADMIN;
use common::faulty::{FaultyReceiver, Reply};
use common::{event, eventually, secret, TestPipeline, TestSink};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const DOWN: u8 = 0;
const UP: u8 = 1;
const GONE: u8 = 2;

/// (type, endpoint id) of what `sink` received, once per `webhook-id` as a receiver that
/// deduplicates keeps it (two deliveries racing to disable an endpoint publish one id twice).
fn notices(sink: &TestSink) -> Vec<(String, String)> {
    let mut ids = std::collections::HashSet::new();
    sink.ledger
        .received()
        .iter()
        .filter(|r| ids.insert(r.webhook_id.clone()))
        .map(|r| {
            assert!(
                r.signature_valid,
                "operational webhooks are signed like any other"
            );
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["endpoint_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn count(sink: &TestSink, event_type: &str) -> usize {
    notices(sink)
        .iter()
        .filter(|(t, _)| t == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_hears_about_its_own_failing_endpoint_and_nothing_else() {
    let p = TestPipeline::builder()
        .retry_schedule(&["1s"])
        .breaker(2, 300)
        .recovered_after_ms(500)
        .start()
        .await;
    let mode = Arc::new(AtomicU8::new(DOWN));
    let m = Arc::clone(&mode);
    let acme = FaultyReceiver::start(move |_, _| match m.load(Ordering::SeqCst) {
        DOWN => Reply::Status(503),
        UP => Reply::Status(200),
        _ => Reply::Status(410),
    })
    .await;
    let globex = FaultyReceiver::start(|_, _| Reply::Status(503)).await;
    p.add_endpoint("acme_orders", &acme.url(), &["order.*"], "acme", &secret(1))
        .await;
    p.add_endpoint(
        "globex_orders",
        &globex.url(),
        &["order.*"],
        "globex",
        &secret(2),
    )
    .await;
    let acme_ops = TestSink::start(&secret(3)).await;
    p.add_endpoint(
        "acme_ops",
        &acme_ops.url("ops"),
        &["hookline.*"],
        "acme",
        &acme_ops.secret,
    )
    .await;
    let globex_ops = TestSink::start(&secret(4)).await;
    p.add_endpoint(
        "globex_ops",
        &globex_ops.url("ops"),
        &["hookline.*"],
        "globex",
        &globex_ops.secret,
    )
    .await;

    // Down: the breaker opens (failing) and every delivery is exhausted.
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(event(
            &format!("evt_acme_{i}"),
            "order.created",
            "acme",
            "{}",
        ));
        events.push(event(
            &format!("evt_globex_{i}"),
            "order.created",
            "globex",
            "{}",
        ));
    }
    p.publish(&events).await;
    eventually("acme: failing and 3 exhausted", WAIT, || {
        count(&acme_ops, "hookline.endpoint.failing") == 1
            && count(&acme_ops, "hookline.delivery.exhausted") == 3
    })
    .await;
    eventually(
        "globex: its own notices, to its own ops endpoint",
        WAIT,
        || {
            count(&globex_ops, "hookline.endpoint.failing") == 1
                && count(&globex_ops, "hookline.delivery.exhausted") == 3
        },
    )
    .await;
    let registry = p.registry.clone();
    assert!(
        registry
            .get("acme_orders")
            .is_some_and(|e| e.endpoint.unhealthy_since_ms > 0),
        "the failing period is recorded"
    );

    // Up: once the breaker has stayed closed for 500 ms, recovered (one, however many
    // deliveries succeed).
    mode.store(UP, Ordering::SeqCst);
    let mut i = 0;
    let started = tokio::time::Instant::now();
    while count(&acme_ops, "hookline.endpoint.recovered") == 0 {
        assert!(
            started.elapsed() < WAIT,
            "no recovered within {WAIT:?}: {:?}",
            notices(&acme_ops)
        );
        p.publish(&[event(
            &format!("evt_acme_up_{i}"),
            "order.created",
            "acme",
            "{}",
        )])
        .await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("the period is cleared", WAIT, || {
        registry
            .get("acme_orders")
            .is_some_and(|e| e.endpoint.unhealthy_since_ms == 0)
    })
    .await;

    // Gone: disabled. Then an operator enables it again through the API: enabled.
    mode.store(GONE, Ordering::SeqCst);
    p.publish(&[event("evt_acme_gone", "order.created", "acme", "{}")])
        .await;
    let registry = p.registry.clone();
    eventually("acme_orders disabled", WAIT, || {
        registry
            .get("acme_orders")
            .is_some_and(|e| e.endpoint.disabled)
    })
    .await;
    let started = tokio::time::Instant::now();
    while count(&acme_ops, "hookline.endpoint.disabled") != 1 {
        assert!(
            started.elapsed() < WAIT,
            "no disabled notice: {:?} hits {:?}",
            notices(&acme_ops),
            acme.hits()
                .iter()
                .map(|h| (h.webhook_id.clone(), h.reply))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api = p.api(false);
    let seen = api.call(Method::GET, "/v1/endpoints/acme_orders", Some(ADMIN), None).await;
    assert_eq!(seen.json["disabled_reason"], "answered 410 Gone", "{}", seen.json);
    // The operator fixes the receiver before enabling it. Deliveries deferred to a retry
    // tier while the breaker was open may still be due; against a receiver still answering
    // 410 they would disable it again, rightly, with a second notice.
    mode.store(UP, Ordering::SeqCst);
    let reply = api
        .call(
            Method::PATCH,
            "/v1/endpoints/acme_orders",
            Some(ADMIN),
            Some(serde_json::json!({"enabled": true})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert!(reply.json["disabled_reason"].is_null(), "{}", reply.json);
    eventually("enabled", WAIT, || {
        count(&acme_ops, "hookline.endpoint.enabled") == 1
    })
    .await;

    // Give a stray notice time to arrive, then check the whole ledger.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen = notices(&acme_ops);
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("hookline.delivery.exhausted", 3),
        ("hookline.endpoint.disabled", 1),
        ("hookline.endpoint.enabled", 1),
        ("hookline.endpoint.failing", 1),
        ("hookline.endpoint.recovered", 1),
    ]
    .iter()
    .flat_map(|(t, n)| std::iter::repeat_n((t.to_string(), "acme_orders".to_string()), *n))
    .collect();
    assert_eq!(
        seen, expected,
        "acme's ops endpoint hears exactly about acme_orders"
    );
    assert!(notices(&globex_ops)
        .iter()
        .all(|(_, ep)| ep == "globex_orders"));
    p.stop().await;
}
