//! Ordered lanes against the real Kafka broker: per-key order at the receiver under
//! failures and restarts, a blocked lane skipping its head or halting, and a neighbour
//! endpoint unaffected while a lane is blocked.

mod common;

use common::faulty::{FaultyReceiver, Reply};
use common::lanes::{first_successes, key_and_index, ordered, publish_keyed};
use common::procs::Role;
use common::{event, eventually, secret, TestPipeline};
use hookline_proto::v1::{DeadLetterReason, DeliveryOrdering, LaneBlocked};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_holds_at_the_receiver_under_failures_and_sender_restarts() {
    // Ten retries, and a breaker that a run of failures does not open: the point here is
    // order, not blocking (the tests below block lanes on purpose). A head that failed for
    // 300 ms parks its lane (one head in nine or so), so parked lanes go through the
    // restarts and rebalances too.
    let p = TestPipeline::builder().without_roles().retry_schedule(&["200ms"; 10]).breaker(20, 1_000).lane_park_after_ms(300).start().await;
    println!("logs: {}", std::env::temp_dir().join(format!("hookline-test-{}", p.config.kafka.topic_prefix)).display());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&calls);
    // One request in three fails (503), at random.
    let rx = FaultyReceiver::start(move |_, _| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if common::splitmix(n).is_multiple_of(3) { Reply::Status(503) } else { Reply::Status(200) }
    })
    .await;
    p.put_endpoint(ordered("keyed", &rx.url(), DeliveryOrdering::Key, 60_000, LaneBlocked::Skip)).await;
    // Several roles on one machine: no admin listener (they would share its port).
    let mut config = p.config.clone();
    config.admin.listen = None;
    let _router = Role::start("router", &config);
    let mut senders = [Role::start("sender", &config), Role::start("sender", &config)];

    let keys: Vec<String> = (0..8).map(|k| format!("k{k}")).collect();
    const PER_KEY: usize = 40;
    publish_keyed(&p, &keys[..4], PER_KEY).await;
    // Restart each sender once while the lanes are busy (graceful: the group rebalances).
    senders[0].terminate();
    senders[0] = Role::start("sender", &config);
    publish_keyed(&p, &keys[4..], PER_KEY).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    senders[1].terminate();
    senders[1] = Role::start("sender", &config);

    let mut shown = std::time::Instant::now();
    eventually("every event of every key delivered", WAIT * 2, || {
        let (firsts, _) = first_successes(&rx);
        if shown.elapsed() > Duration::from_secs(10) {
            shown = std::time::Instant::now();
            let counts: Vec<_> = keys.iter().map(|k| firsts.get(k).map_or(0, Vec::len)).collect();
            println!("delivered per key so far: {counts:?}; dead letters {}", p.dead_letter_count());
        }
        keys.iter().all(|k| firsts.get(k).is_some_and(|s| s.len() == PER_KEY))
    })
    .await;
    let (firsts, breaches) = first_successes(&rx);
    let requests = calls.load(std::sync::atomic::Ordering::Relaxed);
    let parked = p.record_count(&p.config.topics().parked, p.config.kafka.partitions.deliveries);
    println!("ordered lanes: {} keys x {PER_KEY} events, {requests} requests, {parked} deliveries parked, {} order breaches", keys.len(), breaches.len());
    assert!(breaches.is_empty(), "order breaches: {breaches:?}");
    for k in &keys {
        assert_eq!(firsts[k], (0..PER_KEY).collect::<Vec<_>>(), "key {k} delivered out of order");
    }
    assert_eq!(p.dead_letter_count(), 0, "no lane was blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_lane_skips_its_head_and_a_neighbour_on_the_partition_keeps_its_latency() {
    let p = TestPipeline::builder().deliveries_partitions(1).retry_schedule(&["200ms"; 10]).start().await;
    // The ordered endpoint fails event 3 always.
    let lane_rx = FaultyReceiver::start(|id, _| if id.ends_with("_0003") { Reply::Status(503) } else { Reply::Status(200) }).await;
    let neighbour = FaultyReceiver::start(|_, _| Reply::Status(200)).await;
    p.put_endpoint(ordered("lane", &lane_rx.url(), DeliveryOrdering::Endpoint, 1_500, LaneBlocked::Skip)).await;

    p.add_endpoint("neighbour", &neighbour.url(), &["other.*"], "", &secret(6)).await;

    // One events partition (the same record key): the lane's order is the publish order.
    publish_keyed(&p, &["lane".to_owned()], 8).await;
    let mut sent = HashMap::new();
    for i in 0..40 {
        let e = event(&format!("evt_n_{i:03}"), "other.created", "", "{}");
        sent.insert(e.id.clone(), e.occurred_at_ms);
        p.publish(&[e]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the lane's other events delivered", WAIT, || lane_rx.successes().len() == 7).await;
    let order: Vec<usize> = lane_rx
        .hits()
        .iter()
        .filter(|h| matches!(h.reply, Reply::Status(200)))
        .map(|h| key_and_index(&h.webhook_id).1)
        .collect();
    assert_eq!(order, [0, 1, 2, 4, 5, 6, 7], "the head was skipped, the rest came in order");
    // The sequence headers let the receiver see the gap: event 4 follows event 3, which it
    // never got; every other delivery follows the one it got before.
    let hits = lane_rx.hits();
    let seq = |i: usize| hits.iter().find(|h| key_and_index(&h.webhook_id).1 == i).and_then(|h| h.sequence).expect("sequence");
    let previous = |i: usize| hits.iter().find(|h| key_and_index(&h.webhook_id).1 == i && matches!(h.reply, Reply::Status(200))).and_then(|h| h.previous_sequence);
    assert_eq!(previous(4), Some(seq(3)), "the skipped head shows as a gap");
    for i in [1, 2, 5, 6, 7] {
        assert_eq!(previous(i), Some(seq(i - 1)), "event {i} follows event {}", i - 1);
    }
    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::Exhausted);
    assert!(dead[0].detail.starts_with("ordered lane blocked"), "{}", dead[0].detail);
    let mut latencies: Vec<i64> = neighbour.hits().iter().map(|h| h.at_ms - sent[&h.webhook_id]).collect();
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100];
    println!("neighbour of a blocked lane: p50 {} ms, p99 {p99} ms", latencies[latencies.len() / 2]);
    assert!(p99 < 1_000, "neighbour p99 {p99} ms while the lane was blocked");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halting_lane_disables_its_endpoint_with_the_event_to_resume_from() {
    let p = TestPipeline::builder().retry_schedule(&["200ms", "200ms", "200ms"]).start().await;
    let rx = FaultyReceiver::start(|id, _| if id.ends_with("_0001") { Reply::Status(500) } else { Reply::Status(200) }).await;
    p.put_endpoint(ordered("halting", &rx.url(), DeliveryOrdering::Endpoint, 0, LaneBlocked::Halt)).await;
    publish_keyed(&p, &["h".to_owned()], 4).await;
    let registry = std::sync::Arc::clone(&p.registry);
    eventually("the endpoint halts (disabled)", WAIT, || registry.get("halting").is_some_and(|e| e.endpoint.disabled)).await;
    assert_eq!(rx.successes().keys().cloned().collect::<Vec<_>>(), ["evt_h_0000"], "nothing after the head was delivered");
    let dead = p.dead_letters(3).await;
    let head = dead.iter().find(|d| d.delivery.as_ref().and_then(|d| d.event.as_ref()).is_some_and(|e| e.id == "evt_h_0001")).expect("the head");
    assert!(head.detail.contains("halted"), "{}", head.detail);
    assert!(dead.iter().filter(|d| d.reason() == DeadLetterReason::EndpointDisabled).count() >= 2, "the rest of the lane waits in the DLQ, in order");
    p.stop().await;
}

/// What `docs/delivery.md` tells an operator to do after a halt: fix the receiver, enable the
/// endpoint, replay its dead letters. The replay goes through the lane: the head first, then
/// the rest in their order, each after the one before it succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_lane_resumes_in_order_from_a_dead_letter_replay() {
    use axum::http::{Method, StatusCode};
    use common::api::{ADMIN, READ};
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};

    let p = TestPipeline::builder().retry_schedule(&["200ms", "200ms"]).start().await;
    let api = p.api(false);
    let _worker = p.replay_worker();
    let fixed = std::sync::Arc::new(AtomicBool::new(false));
    let f = std::sync::Arc::clone(&fixed);
    // Event 1 fails until the receiver is fixed; every later request of the lane counts.
    let rx = FaultyReceiver::start(move |id, _| {
        if id.ends_with("_0001") && !f.load(Ordering::Acquire) { Reply::Status(500) } else { Reply::Status(200) }
    })
    .await;
    p.put_endpoint(ordered("resumable", &rx.url(), DeliveryOrdering::Endpoint, 0, LaneBlocked::Halt)).await;
    let from = hookline_runtime::time::now_ms();
    const EVENTS: usize = 6;
    publish_keyed(&p, &["r".to_owned()], EVENTS).await;
    let registry = std::sync::Arc::clone(&p.registry);
    eventually("the endpoint halts (disabled)", WAIT, || registry.get("resumable").is_some_and(|e| e.endpoint.disabled)).await;
    let dead = p.dead_letters(EVENTS - 1).await;
    assert_eq!(dead.len(), EVENTS - 1, "the head and the lane after it are dead letters");

    fixed.store(true, Ordering::Release);
    let enabled = api.call(Method::PATCH, "/v1/endpoints/resumable", Some(ADMIN), Some(json!({"enabled": true}))).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.json);
    eventually("the endpoint enabled", WAIT, || registry.get("resumable").is_some_and(|e| !e.endpoint.disabled)).await;
    let created = api
        .call(Method::POST, "/v1/replays", Some(ADMIN), Some(json!({"source": "dlq", "endpoint_id": "resumable", "from": from, "rate_per_second": 1000})))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.json);
    let job = created.json["id"].as_str().expect("id").to_owned();
    common::eventually_async("the replay completes", WAIT, || async {
        api.call(Method::GET, &format!("/v1/replays/{job}"), Some(READ), None).await.json["state"] == "completed"
    })
    .await;

    eventually("the whole lane delivered", WAIT, || first_successes(&rx).0.get("r").is_some_and(|s| s.len() == EVENTS)).await;
    let (firsts, breaches) = first_successes(&rx);
    assert_eq!(firsts["r"], (0..EVENTS).collect::<Vec<_>>(), "the replayed lane came in order, its head first");
    assert!(breaches.is_empty(), "order breaches: {breaches:?}");
    p.stop().await;
}

/// A lane blocked for long, with more deliveries than the sender's window: without parking,
/// its waiting deliveries would take the whole window and stop every endpoint of the
/// sender. Parked, the neighbour keeps going; the lane survives a sender restart while
/// parked (the new sender counts the parked lane before it reads the partition, so the
/// lane's new deliveries queue behind the parked ones) and, once its receiver is back,
/// arrives whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_lane_parks_so_the_sender_goes_on_and_it_resumes_in_order_after_a_restart() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // A window of 40 records; an endpoint holds at most 10.
    let p = TestPipeline::builder()
        .without_roles()
        .deliveries_partitions(1)
        .retry_schedule(&["3s"; 20])
        .sender_window(40)
        .endpoint_queue(4, 10)
        .lane_park_after_ms(1_000)
        .start()
        .await;
    let fixed = std::sync::Arc::new(AtomicBool::new(false));
    let f = std::sync::Arc::clone(&fixed);
    let lane_rx = FaultyReceiver::start(move |_, _| if f.load(Ordering::Acquire) { Reply::Status(200) } else { Reply::Status(503) }).await;
    let neighbour = FaultyReceiver::start(|_, _| Reply::Status(200)).await;
    p.put_endpoint(ordered("parking", &lane_rx.url(), DeliveryOrdering::Endpoint, 600_000, LaneBlocked::Skip)).await;
    p.add_endpoint("neighbour", &neighbour.url(), &["other.*"], "", &secret(6)).await;
    let mut config = p.config.clone();
    config.admin.listen = None;
    let _router = Role::start("router", &config);
    let mut sender = Role::start("sender", &config);

    const FIRST: usize = 100;
    const ALL: usize = 150;
    let publish_lane = |from: usize, to: usize| {
        let p = &p;
        async move {
            for i in from..to {
                let e = common::lanes::keyed("p", i);
                p.publish_raw(&e.ordering_key, &hookline_proto::Message::encode_to_vec(&e)).await;
            }
        }
    };
    // Five first: the head fails for a second and parks, the four behind it follow.
    let parked = p.config.topics().parked;
    publish_lane(0, 5).await;
    eventually("the lane's head and the four behind it parked", WAIT, || p.record_count(&parked, 1) == 5).await;
    // The rest of the lane goes behind them, and the neighbour is not held up.
    publish_lane(5, FIRST).await;
    for i in 0..100 {
        p.publish(&[event(&format!("evt_n_{i:03}"), "other.created", "", "{}")]).await;
    }
    eventually("the neighbour gets every event while the lane is blocked", WAIT, || neighbour.successes().len() == 100).await;
    eventually("the whole lane is parked", WAIT, || p.record_count(&parked, 1) == FIRST as i64).await;
    assert!(lane_rx.successes().is_empty(), "nothing of the lane was delivered yet");

    sender.terminate();
    sender = Role::start("sender", &config);
    publish_lane(FIRST, ALL).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    fixed.store(true, Ordering::Release);

    eventually("the whole lane delivered", WAIT * 2, || first_successes(&lane_rx).0.get("p").is_some_and(|s| s.len() == ALL)).await;
    let (firsts, breaches) = first_successes(&lane_rx);
    assert!(breaches.is_empty(), "order breaches: {breaches:?}");
    assert_eq!(firsts["p"], (0..ALL).collect::<Vec<_>>(), "the lane came whole and in order");
    assert_eq!(p.dead_letter_count(), 0, "nothing was skipped");
    drop(sender);
    p.stop().await;
}
