//! Delivery reliability against the real Kafka broker: retry tiers, the outcome policy, the
//! DLQ, circuit breakers, bulkheads, poison records and auto-disable. Schedules are
//! compressed to seconds.

mod common;

use common::faulty::{FaultyReceiver, Reply};
use common::{endpoint, event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::{self, DeadLetterReason, Outcome};
use hookline_proto::Message as _;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_go_through_the_tiers_until_success_and_never_early() {
    // A high breaker threshold: this test is about the tiers, not the breaker.
    let p = TestPipeline::builder().retry_schedule(&["1s", "2s"]).breaker(100, 1000).start().await;
    // Two 503s, then success.
    let rx = FaultyReceiver::start(|_, n| if n < 2 { Reply::Status(503) } else { Reply::Status(204) }).await;
    p.add_endpoint("flaky", &rx.url(), &["*"], "", &secret(1)).await;
    let events: Vec<_> = (0..5).map(|i| event(&format!("evt_{i}"), "order.created", "", "{}")).collect();
    p.publish(&events).await;

    eventually("every event delivered", WAIT, || rx.successes().len() == 5).await;
    for e in &events {
        let hits = rx.hits_for(&e.id);
        assert_eq!(hits.len(), 3, "{}: two failures and one success", e.id);
        let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps[0] >= Duration::from_millis(1000), "{}: second attempt after {:?}, due after 1s", e.id, gaps[0]);
        assert!(gaps[1] >= Duration::from_millis(2000), "{}: third attempt after {:?}, due after 2s", e.id, gaps[1]);
        assert!(hits.iter().all(|h| h.body == e.payload), "the body is the same on every attempt");
    }
    let attempts = p.attempts(15).await;
    let outcomes = |o: Outcome| attempts.iter().filter(|a| a.outcome() == o).count();
    assert_eq!((outcomes(Outcome::Retryable), outcomes(Outcome::Success)), (10, 5));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_deliveries_land_in_the_dlq_with_the_last_attempt() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "1s"]).breaker(100, 1000).start().await;
    let rx = FaultyReceiver::start(|_, _| Reply::Status(500)).await;
    p.add_endpoint("down", &rx.url(), &["*"], "", &secret(2)).await;
    let events: Vec<_> = (0..3).map(|i| event(&format!("evt_x{i}"), "order.created", "", "{}")).collect();
    p.publish(&events).await;

    let dead = p.dead_letters(3).await;
    for d in &dead {
        assert_eq!(d.reason(), DeadLetterReason::Exhausted, "{}", d.detail);
        let delivery = d.delivery.as_ref().expect("delivery");
        assert_eq!(delivery.attempt, 3);
        assert!(delivery.first_attempt_at_ms > 0);
        let last = d.last_attempt.as_ref().expect("last attempt");
        assert_eq!((last.status, last.attempt), (500, 3));
        assert!(d.detail.contains("3 attempts failed"), "{}", d.detail);
    }
    for e in &events {
        assert_eq!(rx.hits_for(&e.id).len(), 3, "exactly the scheduled attempts for {}", e.id);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_by_skipping_to_a_long_enough_tier() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "3s"]).start().await;
    let rx = FaultyReceiver::start(|_, n| if n == 0 { Reply::RetryAfter(429, 2) } else { Reply::Status(200) }).await;
    p.add_endpoint("throttled", &rx.url(), &["*"], "", &secret(3)).await;
    p.publish(&[event("evt_ra", "order.created", "", "{}")]).await;

    eventually("delivered after the Retry-After", WAIT, || rx.successes().contains_key("evt_ra")).await;
    let hits = rx.hits_for("evt_ra");
    assert_eq!(hits.len(), 2);
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_secs(2), "the endpoint asked for 2s and got {gap:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_statuses_fail_at_once_and_410_disables_the_endpoint() {
    let p = TestPipeline::start().await;
    let strict = FaultyReceiver::start(|_, _| Reply::Status(422)).await;
    let mut ep = endpoint("strict", &strict.url(), &["order.*"], "", &secret(4));
    ep.permanent_statuses = vec![400, 422];
    p.put_endpoint(ep).await;
    let gone = FaultyReceiver::start(|_, _| Reply::Status(410)).await;
    p.add_endpoint("gone", &gone.url(), &["order.*"], "", &secret(5)).await;
    // The operational event about the disabling is itself a webhook.
    let ops = TestSink::start(&secret(6)).await;
    p.add_endpoint("ops", &ops.url("ops"), &["hookline.endpoint.*"], "", &ops.secret).await;

    p.publish(&[event("evt_p", "order.created", "", "{}")]).await;
    let dead = p.dead_letters(2).await;
    let by = |id: &str| dead.iter().find(|d| d.delivery.as_ref().is_some_and(|x| x.endpoint_id == id)).expect("dead letter");
    assert_eq!(by("strict").reason(), DeadLetterReason::PermanentFailure);
    assert_eq!(by("strict").last_attempt.as_ref().map(|a| (a.status, a.outcome())), Some((422, Outcome::Permanent)));
    assert_eq!(by("gone").reason(), DeadLetterReason::EndpointGone);
    assert_eq!((strict.hits().len(), gone.hits().len()), (1, 1), "no retry after a permanent answer");

    let registry = p.registry.clone();
    eventually("the gone endpoint is disabled", WAIT, || registry.get("gone").is_some_and(|e| e.endpoint.disabled)).await;
    let ledger = ops.ledger.clone();
    eventually("hookline.endpoint.disabled delivered", WAIT, || ledger.summary().unique == 1).await;
    let notice = &ops.ledger.received()[0];
    let body: serde_json::Value = serde_json::from_slice(&notice.body).expect("json");
    assert_eq!(body["endpoint_id"], "gone");

    p.publish(&[event("evt_after_gone", "order.created", "", "{}")]).await;
    eventually("strict gets the next event", WAIT, || strict.hits().len() == 2).await;
    assert_eq!(gone.hits().len(), 1, "a disabled endpoint receives nothing");
    p.stop().await;
}

/// A verdict is about the URL the request went to: an edit made while it was in flight (here
/// the owner moves the endpoint to a working URL) is neither undone nor disabled by the old
/// URL's late 410.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_a_request_is_in_flight_is_not_undone_by_its_verdict() {
    let p = TestPipeline::start().await;
    let old = FaultyReceiver::start(|_, _| Reply::Late(410, 1_500)).await;
    let ep = p.add_endpoint("moving", &old.url(), &["order.*"], "", &secret(7)).await;
    p.publish(&[event("evt_moving", "order.created", "", "{}")]).await;
    eventually("the request is in flight", WAIT, || old.hits().len() == 1).await;

    let new = TestSink::start(&secret(7)).await;
    let moved = v1::Endpoint { url: new.url("moved"), description: "moved by its owner".into(), ..ep };
    p.put_endpoint(moved.clone()).await;
    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::EndpointGone, "the old URL's answer still decides that delivery");
    // Give a wrong write (the old copy, or disabled) time to come back through the topic.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(p.registry.get("moving").map(|e| e.endpoint.clone()), Some(moved), "the edit stands");

    p.publish(&[event("evt_after_move", "order.created", "", "{}")]).await;
    let ledger = new.ledger.clone();
    eventually("the next event goes to the new URL", WAIT, || ledger.count("evt_after_move") == 1).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_defers_work_to_the_tiers_without_attempts() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "1s", "1s"]).breaker(3, 60_000).start().await;
    // A port nobody listens on: connection refused, fast.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    p.add_endpoint("refused", &format!("http://{closed}/hook"), &["*"], "", &secret(7)).await;
    let events: Vec<_> = (0..30).map(|i| event(&format!("evt_b{i:02}"), "order.created", "", "{}")).collect();
    p.publish(&events).await;

    let dead = p.dead_letters(30).await;
    assert!(dead.iter().all(|d| d.reason() == DeadLetterReason::Exhausted), "every event ends in the DLQ");
    // Each delivery is deferred through the tiers until its schedule's span (3 s) is over.
    let deferred_out = dead.iter().filter(|d| d.detail.starts_with("deferred past the retry schedule")).count();
    assert!(deferred_out >= 20, "{deferred_out} of 30 dead-lettered while the breaker was open");
    let records = dead.iter().map(|d| d.last_attempt.as_ref().map_or(0, |a| a.at_ms)).max().unwrap_or(0);
    let attempts = p.attempts(60).await;
    let made = attempts.iter().filter(|a| a.outcome() == Outcome::Retryable && a.at_ms <= records).count();
    let deferred = attempts.iter().filter(|a| a.outcome() == Outcome::Deferred).count();
    // With the breaker open after 3 failures and a 60 s cool-down, only the requests
    // admitted before it opened were made; everything after was deferred.
    assert!(made <= 30, "{made} requests made to a down endpoint");
    assert!(deferred >= 30, "{deferred} steps deferred");
    p.stop().await;
}

/// The flaky endpoint of issue 11: it answers 503 to one request in five. With the old
/// breaker (open after 5 consecutive failures) and a short schedule, about one delivery in
/// six was dead-lettered, most without a request ("deferred past the retry schedule").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_one_request_in_five_keeps_its_breaker_closed_and_loses_nothing() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "1s", "1s"]).breaker(5, 5_000).start().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let rx = FaultyReceiver::start(move |_, _| {
        // One in five at random (a fixed hash of the request number): runs of failures
        // happen, as they do with a real flaky endpoint.
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u64;
        if common::splitmix(n).is_multiple_of(5) { Reply::Status(503) } else { Reply::Status(200) }
    })
    .await;
    p.add_endpoint("flaky", &rx.url(), &["*"], "", &secret(3)).await;
    let events: Vec<_> = (0..8_000).map(|i| event(&format!("evt_f{i:04}"), "order.created", "", "{}")).collect();
    p.publish(&events).await;

    let dead = || p.dead_letter_count() as usize;
    eventually("every event delivered or dead-lettered", WAIT, || rx.successes().len() + dead() == events.len()).await;
    let made = calls.load(std::sync::atomic::Ordering::Relaxed);
    let attempts = p.attempts(made).await;
    let deferred = attempts.iter().filter(|a| a.outcome() == Outcome::Deferred).count();
    let dead = p.dead_letters(dead()).await;
    println!("flaky endpoint: {} events, {made} requests, {deferred} deferred, {} dead letters", events.len(), dead.len());
    assert_eq!(deferred, 0, "the breaker never opened");
    // Only what failed all 4 of its attempts (one in five fails, so about 0.2^4 of them).
    for d in &dead {
        assert!(d.detail.starts_with("4 attempts failed"), "dead-lettered without its attempts: {}", d.detail);
    }
    assert!(dead.len() < 40, "{} dead letters", dead.len());
    p.stop().await;
}

/// Down for longer than the breaker's cool-downs (the scaled-down version of an hour
/// within the default schedule's 27 hours), then healthy: every event arrives, and the
/// down endpoint was probed, not hammered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_for_a_while_then_healthy_receives_every_event() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "2s", "5s", "30s"]).breaker(5, 1_000).start().await;
    let healthy_at = std::time::Instant::now() + Duration::from_secs(12);
    let rx = FaultyReceiver::start(move |_, _| {
        if std::time::Instant::now() < healthy_at { Reply::Status(503) } else { Reply::Status(200) }
    })
    .await;
    p.add_endpoint("down", &rx.url(), &["*"], "", &secret(4)).await;
    let events: Vec<_> = (0..100).map(|i| event(&format!("evt_d{i:03}"), "order.created", "", "{}")).collect();
    for chunk in events.chunks(10) {
        p.publish(chunk).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    eventually("every event delivered", WAIT, || rx.successes().len() == events.len()).await;
    let failed = rx.hits().iter().filter(|h| matches!(h.reply, Reply::Status(503))).count();
    println!("down for 12 s: {failed} requests failed while down, {} dead letters", p.dead_letter_count());
    assert_eq!(p.dead_letter_count(), 0, "nothing dead-lettered");
    // Without the breaker each event would have been tried at 0, 1, 3 and 8 s: about 300
    // requests while down. Open, the breaker lets one probe through per cool-down.
    assert!(failed < 100, "{failed} requests to a down endpoint");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_slow_a_healthy_one_on_the_same_partition() {
    // One deliveries partition: both endpoints' work is interleaved in it. A small queue
    // per endpoint, so the hanging one overflows to the retry tier.
    let p = TestPipeline::builder()
        .deliveries_partitions(1)
        .request_timeout_ms(3_000)
        .endpoint_queue(8, 32)
        .breaker(1_000, 1_000)
        .start()
        .await;
    let hanging = FaultyReceiver::start(|_, _| Reply::Hang).await;
    let healthy = FaultyReceiver::start(|_, _| Reply::Status(200)).await;
    p.add_endpoint("hanging", &hanging.url(), &["*"], "", &secret(8)).await;
    p.add_endpoint("healthy", &healthy.url(), &["*"], "", &secret(9)).await;

    // Warm up: both consumers have joined their groups and connections exist.
    p.publish(&[event("evt_warm", "order.created", "", "{}")]).await;
    eventually("warm-up delivered", WAIT, || healthy.successes().contains_key("evt_warm")).await;

    // Latency counts from each event's own timestamp, taken just before it is published.
    let mut events = Vec::new();
    for c in 0..10 {
        let chunk: Vec<_> = (0..20).map(|i| event(&format!("evt_h{c}{i:02}"), "order.created", "", "{}")).collect();
        p.publish(&chunk).await;
        events.extend(chunk);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the healthy endpoint gets all 200", WAIT, || healthy.successes().len() == 201).await;
    let mut latencies: Vec<i64> = healthy
        .hits()
        .iter()
        .filter(|h| h.webhook_id != "evt_warm")
        .map(|h| h.at_ms - events.iter().find(|e| e.id == h.webhook_id).expect("event").occurred_at_ms)
        .collect();
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    println!("healthy endpoint next to a hanging one: p50 {} ms, p99 {} ms, max {} ms", latencies[latencies.len() / 2], p99, latencies[latencies.len() - 1]);
    assert!(p99 < 1_000, "healthy p99 {p99} ms with a hanging neighbour (bound: 1000 ms)");
    // The hanging endpoint held at most its queue; the rest of its work moved on.
    let attempts = p.attempts(250).await;
    let overflowed = attempts
        .iter()
        .filter(|a| a.endpoint_id == "hanging" && a.outcome() == Outcome::Deferred && a.error.contains("stalled"))
        .count();
    assert!(overflowed > 0, "the stalled endpoint's overflow went to the retry tier");
    println!("hanging endpoint: {overflowed} deliveries moved to the retry tier while it was stalled");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_in_the_deliveries_topic_and_a_tier_are_dead_lettered() {
    let p = TestPipeline::start().await;
    let sink = TestSink::start(&secret(10)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["*"], "", &sink.secret).await;
    let topics = p.config.topics();
    let tier = p.config.retry_tiers()[0].1.clone();
    for topic in [&topics.deliveries, &tier] {
        let ack = hookline_runtime::kafka::enqueue(&p.producer, topic, "ep", b"\xff\xff poison", None).await.expect("enqueue");
        hookline_runtime::kafka::acked(ack).await.expect("acked");
    }
    p.publish(&[event("evt_after_poison", "order.created", "", "{}")]).await;

    let ledger = sink.ledger.clone();
    eventually("the next event is still delivered", WAIT, || ledger.count("evt_after_poison") == 1).await;
    let dead = p.dead_letters(2).await;
    let mut sources: Vec<String> = dead
        .iter()
        .map(|d| {
            assert_eq!(d.reason(), DeadLetterReason::UndecodableDelivery);
            let s = d.source.as_ref().expect("source");
            assert_eq!(s.raw_value, b"\xff\xff poison");
            s.topic.clone()
        })
        .collect();
    sources.sort();
    let mut want = vec![topics.deliveries.clone(), tier];
    want.sort();
    assert_eq!(sources, want);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_the_disable_period_is_disabled_and_announced() {
    let p = TestPipeline::builder().retry_schedule(&["1s"]).breaker(100, 1000).disable_after_ms(1_500).start().await;
    let rx = FaultyReceiver::start(|_, _| Reply::Status(500)).await;
    p.add_endpoint("failing", &rx.url(), &["order.*"], "", &secret(11)).await;
    let ops = TestSink::start(&secret(12)).await;
    p.add_endpoint("ops", &ops.url("ops"), &["hookline.endpoint.disabled"], "", &ops.secret).await;

    p.publish(&[event("evt_f1", "order.created", "", "{}")]).await;
    p.dead_letters(1).await;
    let registry = p.registry.clone();
    eventually("failing_since is set", WAIT, || registry.get("failing").is_some_and(|e| e.endpoint.failing_since_ms > 0)).await;
    assert!(!registry.get("failing").expect("endpoint").endpoint.disabled, "not yet past the period");

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    p.publish(&[event("evt_f2", "order.created", "", "{}")]).await;
    eventually("disabled after the period", WAIT, || registry.get("failing").is_some_and(|e| e.endpoint.disabled)).await;
    let ledger = ops.ledger.clone();
    eventually("the disabling is announced as a webhook", WAIT, || ledger.summary().unique >= 1).await;
    // Among the other operational events (failing, exhausted), in any partition.
    let disabled = |bytes: &[u8]| {
        v1::Event::decode(bytes).into_iter().filter(|e| e.r#type == "hookline.endpoint.disabled").collect::<Vec<_>>()
    };
    let found = p.read_items(&p.config.topics().events, p.config.kafka.partitions.events, 1, WAIT, disabled).await;
    let announced = found.first().expect("event published to the events topic");
    assert!(String::from_utf8_lossy(&announced.payload).contains("\"endpoint_id\":\"failing\""));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried_and_then_dead_lettered() {
    let p = TestPipeline::builder().retry_schedule(&["1s", "1s"]).breaker(100, 1_000).start().await;
    // A server that accepts and resets every connection (RST, via SO_LINGER 0).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let resets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = resets.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // SO_LINGER 0 is exactly what makes the close a reset; the blocking-drop caveat
            // of the deprecation does not apply to a zero linger.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    p.add_endpoint("resetting", &format!("http://{addr}/hook"), &["*"], "", &secret(50)).await;
    p.publish(&[event("evt_reset", "order.created", "", "{}")]).await;

    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::Exhausted);
    let last = dead[0].last_attempt.as_ref().expect("last attempt");
    assert_eq!((last.status, last.attempt, last.outcome()), (0, 3, Outcome::Retryable), "{}", last.error);
    assert!(resets.load(std::sync::atomic::Ordering::Relaxed) >= 3, "every attempt reached the server");
    p.stop().await;
}
