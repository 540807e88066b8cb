//! A Kafka broker restart under load. This binary holds this one test only: it stops the
//! shared test broker, and cargo runs test binaries one at a time, so no other test sees it.

mod common;

use common::{eventually, secret, TestPipeline, TestSink};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

fn kafka(action: &str) {
    let port = common::bootstrap().rsplit(':').next().expect("port").to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/kafka.sh");
    let status = Command::new("bash").arg(script).arg(action).env("KAFKA_PORT", &port).status().expect("kafka.sh");
    assert!(status.success(), "scripts/kafka.sh {action} on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let p = TestPipeline::start().await;
    let sink = TestSink::start(&secret(1)).await;
    p.add_endpoint("ledger", &sink.url("ledger"), &["*"], "", &sink.secret).await;

    const N: usize = 1_500;
    let publisher = p.publish_paced("evt_r", N, 300.0);
    let restart = async {
        let ledger = sink.ledger.clone();
        eventually("some delivered before the restart", Duration::from_secs(60), || ledger.summary().unique >= 300).await;
        tokio::task::spawn_blocking(|| {
            kafka("stop");
            std::thread::sleep(Duration::from_secs(2));
            kafka("start");
        })
        .await
        .expect("restart");
    };
    let (published, ()) = tokio::join!(publisher, restart);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while sink.ledger.summary().unique < N as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = sink.ledger.summary();
    println!(
        "broker restart ledger: published {}, delivered {} unique, {} duplicates",
        published.len(), summary.unique, summary.duplicates
    );
    let missing: BTreeSet<&String> = published.iter().filter(|id| sink.ledger.count(id) == 0).collect();
    assert!(missing.is_empty(), "{} lost across a broker restart: {missing:?}", missing.len());
    p.stop().await;
}
