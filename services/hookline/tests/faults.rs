//! Process faults against the real Kafka broker: `kill -9` of the sender and of the router
//! mid-stream, and the sender's memory with an endpoint down. Roles run as real `hookline`
//! processes; the test keeps a ledger of what was published and what arrived.

mod common;

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
