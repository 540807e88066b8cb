//! Replay jobs over a pipeline on the real Kafka broker: dead letters delivered again once
//! the endpoint is fixed, an endpoint backfilled from the events topic, a job resumed by a
//! new worker after the old one stopped, cancellation, and bad requests.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, READ};
use common::faulty::{FaultyReceiver, Reply};
use common::{endpoint, event, eventually, eventually_async, secret, TestPipeline, TestSink};
use hookline_runtime::time::now_ms;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn state_of(api: &common::api::TestApi, id: &str) -> Value {
    let got = api.call(Method::GET, &format!("/v1/replays/{id}"), Some(READ), None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    got.json
}

async fn until_state(api: &common::api::TestApi, id: &str, state: &str) -> Value {
    eventually_async(&format!("replay {id} {state}"), WAIT, || async { state_of(api, id).await["state"] == state }).await;
    state_of(api, id).await
}

async fn start(api: &common::api::TestApi, body: Value) -> String {
    let created = api.call(Method::POST, "/v1/replays", Some(ADMIN), Some(body)).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.json);
    created.json["id"].as_str().expect("id").to_owned()
}

/// Events `<prefix>-0..n` of type `order.created`.
async fn publish_orders(p: &TestPipeline, prefix: &str, n: usize) -> Vec<String> {
    let events: Vec<_> = (0..n).map(|i| event(&format!("{prefix}-{i}"), "order.created", "", "{}")).collect();
    p.publish(&events).await;
    events.into_iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_delivered_again_once_the_endpoint_is_fixed() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let _worker = p.replay_worker();
    let fixed = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fixed);
    let flaky = FaultyReceiver::start(move |_, _| Reply::Status(if f.load(Ordering::Acquire) { 200 } else { 400 })).await;
    let broken = FaultyReceiver::start(|_, _| Reply::Status(400)).await;
    for (id, rx) in [("flaky", &flaky), ("broken", &broken)] {
        let mut ep = endpoint(id, &rx.url(), &["order.*"], "", &secret(21));
        ep.permanent_statuses = vec![400];
        p.put_endpoint(ep).await;
    }
    let from = now_ms();
    let ids = publish_orders(&p, "evt_dl", 20).await;
    p.dead_letters(40).await;
    assert!(flaky.successes().is_empty());

    fixed.store(true, Ordering::Release);
    let job = start(&api, json!({"source": "dlq", "endpoint_id": "flaky", "reasons": ["permanent_failure"], "from": from, "rate_per_second": 1000})).await;
    let done = until_state(&api, &job, "completed").await;
    assert_eq!(done["progress"]["replayed"], 20, "{done}");
    assert_eq!(done["progress"]["filtered"], 20, "the other endpoint's dead letters stay: {done}");
    assert_eq!(done["progress"]["read"], done["progress"]["total"]);
    assert!(done["finished_at"].as_i64().is_some());

    eventually("every dead letter delivered, under its own event id", WAIT, || {
        let ok = flaky.successes();
        ids.iter().all(|id| ok.get(id).is_some_and(|n| *n >= 1))
    })
    .await;
    assert_eq!(broken.hits().len(), 20, "not replayed: outside the job's filter");
    let listed = api.call(Method::GET, "/v1/replays", Some(READ), None).await;
    assert_eq!(listed.json["data"][0]["id"], job.as_str());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_endpoint_is_backfilled_with_what_its_subscription_takes() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let _worker = p.replay_worker();
    let from = now_ms();
    let orders = publish_orders(&p, "evt_bf", 10).await;
    p.publish(&(0..5).map(|i| event(&format!("evt_user-{i}"), "user.created", "", "{}")).collect::<Vec<_>>()).await;
    // Published before the endpoint existed: the router had no one to send them to.
    p.routed().await;
    let sink = TestSink::start(&secret(22)).await;
    p.add_endpoint("late", &sink.url("late"), &["order.*"], "", &sink.secret).await;
    let other = TestSink::start(&secret(23)).await;
    p.add_endpoint("bystander", &other.url("bystander"), &["*"], "", &other.secret).await;

    let job = start(&api, json!({"source": "events", "endpoint_id": "late", "from": from})).await;
    let done = until_state(&api, &job, "completed").await;
    assert_eq!((done["progress"]["replayed"].clone(), done["progress"]["filtered"].clone()), (json!(10), json!(5)), "{done}");
    let ledger = sink.ledger.clone();
    eventually("the ten orders arrive, signed", WAIT, || orders.iter().all(|id| ledger.count(id) >= 1)).await;
    let summary = sink.ledger.summary();
    assert_eq!((summary.unique, summary.invalid_signatures), (10, 0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(other.ledger.summary().received, 0, "a backfill goes to its endpoint only");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_resumes_the_job_and_a_cancelled_job_stops() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let from = now_ms();
    let ids = publish_orders(&p, "evt_rs", 300).await;
    let sink = TestSink::start(&secret(24)).await;
    p.add_endpoint("resumed", &sink.url("resumed"), &["order.*"], "", &sink.secret).await;

    // 300 records at 100/s: the first worker stops part-way.
    let worker = p.replay_worker();
    let job = start(&api, json!({"source": "events", "endpoint_id": "resumed", "from": from, "rate_per_second": 100})).await;
    eventually_async("the job has made progress", WAIT, || async { state_of(&api, &job).await["progress"]["replayed"].as_u64() > Some(0) }).await;
    worker.stop().await;
    let paused = state_of(&api, &job).await;
    assert_eq!(paused["state"], "running", "{paused}");
    let read = paused["progress"]["read"].as_u64().expect("read");
    assert!(read < 300, "stopped part-way: {paused}");

    let worker = p.replay_worker();
    let done = until_state(&api, &job, "completed").await;
    assert_eq!(done["progress"]["read"], 300, "{done}");
    let ledger = sink.ledger.clone();
    eventually("every event arrives despite the restart", WAIT, || ids.iter().all(|id| ledger.count(id) >= 1)).await;

    // Cancelled while running: it stops early and says so.
    let slow = start(&api, json!({"source": "events", "endpoint_id": "resumed", "from": from, "rate_per_second": 20})).await;
    until_state(&api, &slow, "running").await;
    let cancelled = api.call(Method::DELETE, &format!("/v1/replays/{slow}"), Some(ADMIN), None).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.json);
    assert_eq!(cancelled.json["cancel_requested"], true);
    let ended = until_state(&api, &slow, "cancelled").await;
    assert!(ended["progress"]["replayed"].as_u64().expect("replayed") < 300, "{ended}");
    let again = api.call(Method::DELETE, &format!("/v1/replays/{slow}"), Some(ADMIN), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.json);
    worker.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replay_requests_get_a_problem_naming_the_field() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    p.add_endpoint("known", "http://127.0.0.1:9/x", &["*"], "", &secret(25)).await;
    let cases = [
        (json!({"source": "events", "from": 0}), "endpoint_id"),
        (json!({"source": "events", "endpoint_id": "nope", "from": 0}), "endpoint_id"),
        (json!({"source": "dlq", "from": 10, "to": 5}), "to"),
        (json!({"source": "dlq", "from": 0, "reasons": ["tired"]}), "reasons[0]"),
        (json!({"source": "dlq", "from": 0, "event_types": ["a..b"]}), "event_types"),
        (json!({"source": "dlq", "from": 0, "rate_per_second": 1_000_000}), "rate_per_second"),
        (json!({"source": "events", "endpoint_id": "known", "from": 0, "reasons": ["exhausted"]}), "reasons"),
    ];
    for (body, field) in cases {
        let r = api.call(Method::POST, "/v1/replays", Some(ADMIN), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.json);
        assert!(r.json["errors"].as_array().expect("errors").iter().any(|e| e["field"] == field), "{body}: {}", r.json);
    }
    let bad_source = api.call(Method::POST, "/v1/replays", Some(ADMIN), Some(json!({"source": "kafka", "from": 0}))).await;
    assert_eq!(bad_source.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad_source.json);
    assert_eq!(api.call(Method::GET, "/v1/replays/rp_nope", Some(READ), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.call(Method::DELETE, "/v1/replays/rp_nope", Some(ADMIN), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.call(Method::POST, "/v1/replays", Some(READ), Some(json!({"source": "dlq", "from": 0}))).await.status, StatusCode::FORBIDDEN);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_deleted_after_the_keep_period() {
    let p = TestPipeline::builder().replay_keep_finished_ms(1_000).start().await;
    let api = p.api(false);
    let _worker = p.replay_worker();
    let now = now_ms();
    // An empty range: completed at once, then kept for a second.
    let job = start(&api, json!({"source": "dlq", "from": now - 1, "to": now})).await;
    until_state(&api, &job, "completed").await;
    eventually_async("the finished job is deleted", WAIT, || async {
        api.call(Method::GET, &format!("/v1/replays/{job}"), Some(READ), None).await.status == StatusCode::NOT_FOUND
    })
    .await;
    p.stop().await;
}

/// A job whose range retention deleted while it was paused (here: `DeleteRecords` up to the
/// end, between two workers) still ends, with what was left, instead of waiting for
/// records that are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_deleted_by_retention_mid_job_still_completes() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::Consumer as _;
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let worker = p.replay_worker();
    let from = now_ms();
    publish_orders(&p, "evt_gone", 40).await;
    let sink = TestSink::start(&secret(26)).await;
    p.add_endpoint("late", &sink.url("late"), &["order.*"], "", &sink.secret).await;
    // One record a second: the job is still reading when the records go.
    let job = start(&api, json!({"source": "events", "endpoint_id": "late", "from": from, "rate_per_second": 1})).await;
    eventually_async("the job is reading", WAIT, || async { state_of(&api, &job).await["progress"]["replayed"].as_u64() > Some(0) }).await;
    worker.stop().await;

    let events = p.config.topics().events;
    let reader = hookline_runtime::kafka::reader(&p.config.kafka, "test-watermarks").expect("reader");
    let mut upto = rdkafka::TopicPartitionList::new();
    for partition in 0..p.config.kafka.partitions.events {
        let (_, high) = reader.fetch_watermarks(&events, partition, Duration::from_secs(10)).expect("watermarks");
        upto.add_partition_offset(&events, partition, rdkafka::Offset::Offset(high)).expect("offset");
    }
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &p.config.kafka.bootstrap_servers)
        .create()
        .expect("admin");
    admin.delete_records(&upto, &AdminOptions::new()).await.expect("records deleted");

    let _worker = p.replay_worker();
    let done = until_state(&api, &job, "completed").await;
    let replayed = done["progress"]["replayed"].as_u64().expect("replayed");
    assert!(replayed < 40, "the deleted records were skipped, not waited for: {done}");
    p.stop().await;
}
