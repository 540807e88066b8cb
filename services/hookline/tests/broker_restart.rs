//! A Kafka broker restart under load: nothing lost, and an ordered endpoint's lanes keep
//! their order across it. This binary holds this one test only: it stops the shared test
//! broker, and cargo runs test binaries one at a time, so no other test sees it.

mod common;

use common::faulty::{FaultyReceiver, Reply};
use common::lanes::{first_successes, keyed, ordered};
use common::{eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::{self, DeliveryOrdering, LaneBlocked};
use hookline_proto::Message as _;
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
    // Beside it, an ordered endpoint (a lane per ordering key) that takes only the keyed
    // events, published paced across the restart.
    let lanes_rx = FaultyReceiver::start(|_, _| Reply::Status(200)).await;
    let lane_marker = [("lane".to_owned(), "yes".to_owned())];
    let mut lanes = ordered("lanes", &lanes_rx.url(), DeliveryOrdering::Key, 60_000, LaneBlocked::Skip);
    lanes.filter_attributes = lane_marker.iter().cloned().collect();
    p.put_endpoint(lanes).await;
    let keys: Vec<String> = (0..6).map(|k| format!("k{k}")).collect();
    const PER_KEY: usize = 60;
    let publish_lanes = async {
        for i in 0..PER_KEY {
            for k in &keys {
                let e = v1::Event { attributes: lane_marker.iter().cloned().collect(), ..keyed(k, i) };
                p.publish_raw(&e.ordering_key, &e.encode_to_vec()).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

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
    let (published, (), ()) = tokio::join!(publisher, restart, publish_lanes);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let lanes_done = || keys.iter().all(|k| first_successes(&lanes_rx).0.get(k).is_some_and(|s| s.len() == PER_KEY));
    while (published.iter().any(|id| sink.ledger.count(id) == 0) || !lanes_done()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = sink.ledger.summary();
    println!(
        "broker restart ledger: published {}, delivered {} unique, {} duplicates",
        published.len(), summary.unique, summary.duplicates
    );
    let missing: BTreeSet<&String> = published.iter().filter(|id| sink.ledger.count(id) == 0).collect();
    assert!(missing.is_empty(), "{} lost across a broker restart: {missing:?}", missing.len());
    let (firsts, breaches) = first_successes(&lanes_rx);
    println!("ordered lanes across the restart: {} keys x {PER_KEY} events, {} requests, {} order breaches", keys.len(), lanes_rx.hits().len(), breaches.len());
    assert!(breaches.is_empty(), "order breaches across a broker restart: {breaches:?}");
    for k in &keys {
        assert_eq!(firsts.get(k), Some(&(0..PER_KEY).collect::<Vec<_>>()), "key {k} lost or out of order across a broker restart");
    }
    p.stop().await;
}
