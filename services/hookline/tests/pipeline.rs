//! End-to-end tests against the real Kafka broker: events in, signed webhooks out.

mod common;

use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::{DeadLetterReason, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_endpoint_receives_each_event_signed_and_unchanged() {
    let p = TestPipeline::start().await;
    // (id, patterns, tenant): orders, creations and users, one tenant's everything, and one
    // endpoint nothing matches.
    let specs: [(&str, &[&str], &str); 4] = [
        ("orders", &["order.*"], ""),
        ("created-users", &["order.created", "user.*"], ""),
        ("acme-all", &["*"], "acme"),
        ("billing", &["billing.*"], ""),
    ];
    let mut sinks = BTreeMap::new();
    for (i, (id, patterns, tenant)) in specs.iter().enumerate() {
        let sink = TestSink::start(&secret(i as u8 + 1)).await;
        p.add_endpoint(id, &sink.url(id), patterns, tenant, &sink.secret).await;
        sinks.insert(*id, sink);
    }

    let types = ["order.created", "order.paid", "user.deleted", "misc.thing"];
    let events: Vec<_> = (0..60)
        .map(|i| {
            let tenant = if i % 3 == 0 { "acme" } else { "other" };
            // Bodies with odd spacing and unicode: they must arrive byte for byte.
            let body = format!("{{ \"seq\" : {i},\n \"note\": \"caf\u{e9} \u{1f680}\" }}");
            event(&format!("evt_{i:03}"), types[i % types.len()], tenant, &body)
        })
        .collect();
    p.publish(&events).await;

    let expected = |endpoint: &str| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| match endpoint {
                "orders" => e.r#type.starts_with("order."),
                "created-users" => e.r#type == "order.created" || e.r#type.starts_with("user."),
                "acme-all" => e.tenant == "acme",
                _ => false,
            })
            .map(|e| e.id.clone())
            .collect()
    };
    for (id, sink) in &sinks {
        let want = expected(id).len() as u64;
        let ledger = sink.ledger.clone();
        eventually(&format!("{want} deliveries to {id}"), WAIT, || ledger.summary().unique >= want).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (id, sink) in &sinks {
        let received = sink.ledger.received();
        let got: BTreeSet<String> = received.iter().map(|r| r.webhook_id.clone()).collect();
        assert_eq!(got, expected(id), "endpoint {id} got exactly its matching events");
        let verifier = standardwebhooks::Webhook::new(&sink.secret).expect("secret");
        for r in &received {
            let published = events.iter().find(|e| e.id == r.webhook_id).expect("published event");
            assert_eq!(r.body, published.payload, "body of {} arrives unchanged", r.webhook_id);
            assert!(r.signature_valid, "sink verified {}", r.webhook_id);
            let mut headers = http::HeaderMap::new();
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                headers.insert(name, r.headers[name].clone());
            }
            verifier.verify(&r.body, &headers).expect("standardwebhooks verifies the delivery");
            assert_eq!(r.headers["content-type"], "application/json");
            assert!(r.headers["user-agent"].to_str().expect("ascii").starts_with("hookline/"));
            assert_eq!(r.path, format!("/{id}"));
        }
    }
    assert_eq!(sinks["billing"].ledger.summary().received, 0, "non-matching endpoint gets nothing");
    // Every consumer of both roles counts toward readiness; the sender's parked-lanes
    // consumer, which reads by assignment, must not hold it back.
    let report = p.health.report(true, hookline_runtime::time::now_ms());
    assert!(report.ready, "the roles are ready once they deliver: {:?}", report.problems);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_added_while_running_receives_later_events_without_restart() {
    let p = TestPipeline::start().await;
    // The witness shows when evt_early has been routed, before the late endpoint exists.
    let witness = TestSink::start(&secret(8)).await;
    p.add_endpoint("witness", &witness.url("w"), &["*"], "", &witness.secret).await;
    let early = event("evt_early", "order.created", "", "{}");
    p.publish(std::slice::from_ref(&early)).await;
    let ledger = witness.ledger.clone();
    eventually("evt_early routed", WAIT, || ledger.count("evt_early") == 1).await;

    let sink = TestSink::start(&secret(9)).await;
    p.add_endpoint("late", &sink.url("late"), &["order.*"], "", &sink.secret).await;
    let late = event("evt_late", "order.created", "", r#"{"late": true}"#);
    p.publish(std::slice::from_ref(&late)).await;

    let ledger = sink.ledger.clone();
    eventually("the late endpoint receives evt_late", WAIT, || ledger.count("evt_late") == 1).await;
    assert_eq!(sink.ledger.count("evt_early"), 0, "events routed before the endpoint existed are not sent");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_events_topic_is_dead_lettered_and_later_events_still_flow() {
    let p = TestPipeline::start().await;
    let sink = TestSink::start(&secret(3)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["*"], "", &sink.secret).await;

    // Both go to the same partition (same key), garbage first.
    p.publish_raw("k", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not protobuf").await;
    p.publish_raw("k", &hookline_proto::Message::encode_to_vec(&event("", "order.created", "", "{}"))).await;
    let after = event("evt_after", "order.created", "", "{}");
    p.publish_raw("k", &hookline_proto::Message::encode_to_vec(&after)).await;

    let ledger = sink.ledger.clone();
    eventually("the event after the garbage is delivered", WAIT, || ledger.count("evt_after") == 1).await;
    let dead = p.dead_letters(2).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::UndecodableEvent);
    let source = dead[0].source.as_ref().expect("source coordinates");
    assert!(source.raw_value.ends_with(b"not protobuf"), "raw bytes kept for inspection");
    assert_eq!(source.topic, p.config.topics().events);
    assert_eq!(dead[1].reason(), DeadLetterReason::InvalidEvent);
    assert_eq!(dead[1].detail, "id: must not be empty");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_dead_lettered_with_its_attempt() {
    let p = TestPipeline::start().await;
    // The receiver knows another secret, so it answers 401 like a real one would.
    let sink = TestSink::start(&secret(4)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["*"], "", &secret(5)).await;
    p.publish(&[event("evt_rejected", "order.created", "", "{}")]).await;

    // The test schedule is 1s, 1s: three attempts, then the DLQ.
    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::Exhausted);
    let delivery = dead[0].delivery.as_ref().expect("delivery kept");
    assert_eq!(delivery.endpoint_id, "ep");
    assert_eq!(delivery.attempt, 3);
    assert_eq!(delivery.event.as_ref().map(|e| e.id.as_str()), Some("evt_rejected"));
    let last = dead[0].last_attempt.as_ref().expect("last attempt");
    assert_eq!((last.status, last.outcome(), last.attempt), (401, Outcome::Retryable, 3));
    let attempts = p.attempts(3).await;
    assert!(attempts.iter().all(|a| a.event_id == "evt_rejected" && a.status == 401));
    assert_eq!(sink.ledger.summary().invalid_signatures, 3);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_endpoints_are_blocked_outside_dev_mode() {
    let p = TestPipeline::builder().allow_loopback(false).start().await;
    let sink = TestSink::start(&secret(6)).await;
    p.add_endpoint("local", &sink.url("x"), &["*"], "", &sink.secret).await;
    p.add_endpoint("by-name", &format!("http://localhost:{}/x", sink.addr.port()), &["*"], "", &sink.secret).await;
    p.publish(&[event("evt_ssrf", "order.created", "", "{}")]).await;

    let dead = p.dead_letters(2).await;
    for d in &dead {
        assert_eq!(d.reason(), DeadLetterReason::BlockedByPolicy, "{}", d.detail);
        assert_eq!(d.last_attempt.as_ref().map(|a| a.outcome()), Some(Outcome::BlockedByPolicy));
        assert!(d.detail.contains("loopback"), "{}", d.detail);
    }
    assert_eq!(sink.ledger.summary().received, 0);
    p.stop().await;
}
