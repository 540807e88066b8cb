//! A bound on duplicates: work finished beyond the committed offset is remembered in the
//! commit metadata and not redone by the partition's next owner, and copies of events that a
//! restarted router routes again are recognised by the sender that delivered them.

mod common;

use common::procs::Role;
use common::{eventually, secret, TestPipeline, TestSink};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A receiver that accepts connections and never answers: a delivery to it holds the head
/// of its partition until the request times out. Counts the connections it took.
fn hanging_receiver() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16) {
            held.push(stream);
            counter.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_secs(600));
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_finished_behind_a_stuck_head_is_not_redone_after_kill_9() {
    // One deliveries partition: the slow endpoint's delivery is its head.
    let p = TestPipeline::builder().without_roles().deliveries_partitions(1).request_timeout_ms(120_000).start().await;
    let (hang, accepted) = hanging_receiver();
    let sink = TestSink::start(&secret(1)).await;
    p.add_endpoint("slow", &format!("http://{hang}/slow"), &["slow.*"], "", &secret(2)).await;
    p.add_endpoint("fast", &sink.url("fast"), &["fast.*"], "", &sink.secret).await;
    let _router = Role::start("router", &p.config);
    let mut sender = Role::start("sender", &p.config);

    p.publish(&[common::event("evt_slow", "slow.created", "", "{}")]).await;
    let events: Vec<_> = (0..200).map(|i| common::event(&format!("evt_fast_{i:03}"), "fast.created", "", "{}")).collect();
    p.publish(&events).await;
    let ledger = sink.ledger.clone();
    eventually("the fast endpoint got its 200", WAIT, || ledger.summary().unique >= 200).await;
    // The finished work behind the stuck head is committed within a second.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = accepted.load(Ordering::SeqCst);
    sender.kill9_and_restart();
    // Once the group gives the partition to the new sender (after the dead one's session
    // times out), it retries the slow delivery and skips the work that was done.
    eventually("the new sender retries the head", WAIT, || accepted.load(Ordering::SeqCst) > before).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = sink.ledger.summary();
    println!("kill -9 behind a stuck head: 200 delivered, {} duplicates after the restart", s.duplicates);
    assert_eq!((s.unique, s.duplicates), (200, 0), "{s:?}");
    drop(sender);
}

/// Records in a topic (the sum of its partitions' high watermarks).
fn records_in(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    (0..partitions).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks").1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_routed_again_after_a_router_kill_9_are_not_sent_again() {
    // The router commits nothing by itself for a minute: its restart routes everything again.
    let p = TestPipeline::builder().without_roles().kafka_client("auto.commit.interval.ms", "60000").start().await;
    let sink = TestSink::start(&secret(3)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["*"], "", &sink.secret).await;
    let mut router = Role::start("router", &p.config);
    let _sender = Role::start("sender", &p.config);

    const N: usize = 300;
    p.publish_paced("evt_rr", N, 1_000.0).await;
    let ledger = sink.ledger.clone();
    eventually("every event delivered", WAIT, || ledger.summary().unique >= N as u64).await;
    router.kill9_and_restart();
    let topics = p.config.topics();
    let (bootstrap, partitions) = (p.config.kafka.bootstrap_servers.clone(), p.config.kafka.partitions.deliveries);
    common::eventually_async("the restarted router routed events again", WAIT, || {
        let (b, t) = (bootstrap.clone(), topics.deliveries.clone());
        async move { tokio::task::spawn_blocking(move || records_in(&b, &t, partitions)).await.expect("join") > N as i64 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let copies = records_in(&bootstrap, &topics.deliveries, partitions) - N as i64;
    let s = sink.ledger.summary();
    println!("router kill -9: {copies} deliveries routed again, {} sent twice", s.duplicates);
    assert_eq!((s.unique, s.duplicates), (N as u64, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_still_holds_when_the_endpoint_moves_to_another_sender() {
    let p = TestPipeline::builder().without_roles().deliveries_partitions(4).start().await;
    let sink = TestSink::start(&secret(4)).await;
    let mut endpoint = common::endpoint("limited", &sink.url("limited"), &["*"], "", &sink.secret);
    endpoint.limits = Some(hookline_proto::v1::Limits { rate_per_second: 20, burst: 5, ..Default::default() });
    p.put_endpoint(endpoint).await;
    let _router = Role::start("router", &p.config);
    let first = Role::start("sender", &p.config);

    const N: usize = 240;
    p.publish_paced("evt_rl", N, 1_000.0).await;
    let ledger = sink.ledger.clone();
    eventually("a quarter delivered", WAIT, || ledger.summary().unique >= (N / 4) as u64).await;
    // A second sender joins: the group rebalances and the endpoint's partition may move.
    let second = Role::start("sender", &p.config);
    eventually("every event delivered", Duration::from_secs(90), || ledger.summary().unique >= N as u64).await;

    let mut arrivals: Vec<i64> = sink.ledger.received().iter().map(|r| r.arrived_at_ms).collect();
    arrivals.sort_unstable();
    // Most deliveries in any one second: the rate, plus the burst once, plus one bucket's
    // burst more if the endpoint moved (its new owner starts with a full bucket).
    let busiest = arrivals.iter().enumerate().map(|(i, &t)| arrivals[i..].iter().take_while(|&&u| u < t + 1_000).count()).max().unwrap_or(0);
    let span_s = (arrivals[arrivals.len() - 1] - arrivals[0]) as f64 / 1000.0;
    println!("rate limit 20/s (burst 5) across a rebalance: {N} in {span_s:.1} s, busiest second {busiest}");
    assert!(busiest <= 20 + 5 + 5, "busiest second had {busiest} deliveries");
    assert!(span_s >= (N as f64 - 10.0) / 20.0 - 1.0, "{N} deliveries took only {span_s:.1} s at 20/s");
    drop((first, second));
}

/// KIP-848's consumer group protocol, the opt-in of docs/operations.md: the brokers assign,
/// and the sender's rebalance callbacks (finished work read at assignment, the parked
/// partitions that follow the deliveries ones, the commit on revocation) run as they do
/// under the classic protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_on_the_consumer_group_protocol_hand_partitions_over_without_loss_or_duplicates() {
    let p = TestPipeline::builder().without_roles().deliveries_partitions(4).kafka_client("group.protocol", "consumer").start().await;
    let sink = TestSink::start(&secret(5)).await;
    for i in 0..4 {
        let id = format!("kip848-{i}");
        p.add_endpoint(&id, &sink.url(&id), &["*"], "", &sink.secret).await;
    }
    let _router = Role::start("router", &p.config);
    let mut first = Role::start("sender", &p.config);

    // A third of the events to each shape of the group: one sender, two (the brokers moved
    // some partitions to the newcomer, while events flow), and the newcomer alone after the
    // first left gracefully (at its commits).
    const N: usize = 100;
    let ledger = sink.ledger.clone();
    let delivered = |phases: usize| (N * 4 * phases) as u64;
    p.publish_paced("evt_kip848_a", N, 100.0).await;
    eventually("the first third delivered", WAIT, || ledger.summary().unique >= delivered(1)).await;
    let _second = Role::start("sender", &p.config);
    // The brokers give the newcomer its share at a heartbeat (5 s by default): its
    // assignment, and the first sender's revocation of what it gave up, are logged.
    let moved = |log: &str| {
        let of_deliveries = |what: &str| {
            log.lines().filter(|l| l.contains(what) && l.contains(".deliveries") && l.contains("\"client\":\"hookline-sender\"")).count()
        };
        of_deliveries("partitions assigned") >= 2 && of_deliveries("partitions revoked") >= 1
    };
    eventually("partitions moved to the second sender", WAIT, || moved(&first.log())).await;
    p.publish_paced("evt_kip848_b", N, 100.0).await;
    eventually("the second third delivered", WAIT, || ledger.summary().unique >= delivered(2)).await;
    assert!(first.terminate().is_some_and(|s| s.success()), "the first sender drains and exits 0");
    p.publish_paced("evt_kip848_c", N, 100.0).await;
    eventually("every delivery", WAIT, || ledger.summary().unique >= delivered(3)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = ledger.summary();
    assert_eq!((summary.unique, summary.duplicates, summary.invalid_signatures), (delivered(3), 0, 0), "{summary:?}");
}
