//! Process faults against the real Kafka broker: `kill -9` of the sender and of the router
//! mid-stream, `kill -9` of the replay worker mid-job, and the sender's memory with an
//! endpoint down. Roles run as real `hookline`
//! processes; the test keeps a ledger of what was published and what arrived.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, READ};
use common::procs::Role;
use common::{eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::DeadLetterReason;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_sender_and_router_mid_stream_loses_nothing() {
    let p = TestPipeline::builder().without_roles().start().await;
    let sink = TestSink::start(&secret(1)).await;
    p.add_endpoint("ledger", &sink.url("ledger"), &["*"], "", &sink.secret).await;
    let mut router = Role::start("router", &p.config);
    let mut sender = Role::start("sender", &p.config);

    const N: usize = 3_000;
    let publisher = {
        let p = &p;
        async move { p.publish_paced("evt_k", N, 500.0).await }
    };
    let faults = async {
        let ledger = sink.ledger.clone();
        eventually("a third delivered", Duration::from_secs(60), || ledger.summary().unique >= (N / 3) as u64).await;
        sender.kill9_and_restart();
        eventually("two thirds delivered", Duration::from_secs(60), || ledger.summary().unique >= (2 * N / 3) as u64).await;
        router.kill9_and_restart();
    };
    let (published, ()) = tokio::join!(publisher, faults);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while sink.ledger.summary().unique < N as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = sink.ledger.summary();
    println!(
        "kill -9 ledger: published {}, delivered {} unique, {} duplicates, {} invalid signatures",
        published.len(), summary.unique, summary.duplicates, summary.invalid_signatures
    );
    let missing: BTreeSet<&String> = published.iter().filter(|id| sink.ledger.count(id) == 0).collect();
    assert!(missing.is_empty(), "{} lost after kill -9 (logs in {}): {missing:?}", missing.len(), std::env::temp_dir().join(format!("hookline-test-{}", p.config.kafka.topic_prefix)).display());
    assert_eq!(summary.invalid_signatures, 0);
    drop((router, sender));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_replay_worker_mid_job_loses_nothing() {
    let p = TestPipeline::builder().without_roles().start().await;
    let from = hookline_runtime::time::now_ms();
    // No router runs: the events wait in the events topic for the backfill.
    const N: usize = 1_000;
    let published = p.publish_paced("evt_rk", N, 5_000.0).await;
    let sink = TestSink::start(&secret(3)).await;
    p.add_endpoint("backfilled", &sink.url("backfilled"), &["*"], "", &sink.secret).await;
    let _sender = Role::start("sender", &p.config);
    let mut replay = Role::start("replay", &p.config);
    let api = p.api(false);
    let body = serde_json::json!({"source": "events", "endpoint_id": "backfilled", "from": from, "rate_per_second": 250});
    let created = api.call(Method::POST, "/v1/replays", Some(ADMIN), Some(body)).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.json);
    let path = format!("/v1/replays/{}", created.json["id"].as_str().expect("id"));

    let ledger = sink.ledger.clone();
    eventually("a third delivered", Duration::from_secs(60), || ledger.summary().unique >= (N / 3) as u64).await;
    replay.kill9_and_restart();
    let state = || async { api.call(Method::GET, &path, Some(READ), None).await.json };
    common::eventually_async("the job completes after the restart", Duration::from_secs(90), || async { state().await["state"] == "completed" }).await;
    let ledger = sink.ledger.clone();
    eventually("every event delivered", Duration::from_secs(60), || published.iter().all(|id| ledger.count(id) >= 1)).await;
    let done = state().await;
    let summary = sink.ledger.summary();
    println!(
        "replay kill -9 ledger: {N} in range, replayed {} (counted by the job), delivered {} unique, {} duplicates",
        done["progress"]["replayed"], summary.unique, summary.duplicates
    );
    assert_eq!(done["progress"]["read"], N, "{done}");
    assert_eq!((summary.unique, summary.invalid_signatures), (N as u64, 0));
    drop(replay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_memory_stays_bounded_with_an_endpoint_down() {
    let builder = TestPipeline::builder().without_roles().retry_schedule(&["1s", "1s"]).breaker(5, 10_000);
    let p = builder.start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    p.add_endpoint("down", &format!("http://{closed}/hook"), &["*"], "", &secret(2)).await;
    let router = Role::start("router", &p.config);
    let sender = Role::start("sender", &p.config);

    const N: usize = 10_000;
    p.publish_paced("evt_m", N, 2_000.0).await;
    let dead = p.dead_letters(N).await;
    assert!(dead.iter().all(|d| d.reason() == DeadLetterReason::Exhausted));
    let peak_kib = sender.peak_rss_kib().expect("sender is running");
    println!("sender peak RSS with an endpoint down, {N} events through the tiers to the DLQ: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 256 * 1024, "sender peak RSS {peak_kib} KiB");
    drop((router, sender));
}
