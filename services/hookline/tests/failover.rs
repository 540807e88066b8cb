//! Failover URL end to end on the real broker: the primary answers 503, deliveries move to
//! the failover URL, attempt records name the URL each request went to, and once the
//! primary answers again a probe brings deliveries back to it.

mod common;

use common::faulty::{FaultyReceiver, Reply};
use common::{endpoint, event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::Outcome;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_move_to_the_failover_and_back_when_the_primary_recovers() {
    let p = TestPipeline::builder()
        .retry_schedule(&["1s", "1s", "1s"])
        // The breaker stays closed here: the route alone moves deliveries.
        .breaker(50, 300)
        .failover_probe_ms(400)
        .start()
        .await;
    let up = Arc::new(AtomicBool::new(false));
    let u = Arc::clone(&up);
    let primary = FaultyReceiver::start(move |_, _| {
        if u.load(Ordering::SeqCst) {
            Reply::Status(200)
        } else {
            Reply::Status(503)
        }
    })
    .await;
    let key = secret(9);
    let failover = TestSink::start(&key).await;
    let mut ep = endpoint("dual", &primary.url(), &["order.*"], "", &key);
    ep.failover_url = failover.url("failover");
    ep.failover_after = 2;
    p.put_endpoint(ep).await;

    // Down: after two 503s, deliveries go to the failover URL (signed the same way).
    let down: Vec<_> = (0..5)
        .map(|i| event(&format!("evt_down_{i}"), "order.created", "", "{}"))
        .collect();
    p.publish(&down).await;
    let ledger = failover.ledger.clone();
    eventually("every event delivered through the failover", WAIT, || {
        ledger.summary().unique == 5
    })
    .await;
    assert_eq!(
        failover.ledger.summary().invalid_signatures,
        0,
        "the failover is signed with the endpoint's secret"
    );
    assert!(primary.hits().len() >= 2, "the primary was tried first");
    assert!(primary.successes().is_empty());

    // Up: a probe (one per 400 ms) finds the primary back; deliveries return to it.
    up.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let mut i = 0;
    while primary.successes().is_empty() {
        assert!(
            started.elapsed() < WAIT,
            "the primary never took over again"
        );
        p.publish(&[event(&format!("evt_probe_{i}"), "order.created", "", "{}")])
            .await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let on_failover = failover.ledger.summary().unique;
    let back: Vec<_> = (0..3)
        .map(|i| event(&format!("evt_back_{i}"), "order.created", "", "{}"))
        .collect();
    p.publish(&back).await;
    eventually("the next events go to the primary", WAIT, || {
        back.iter().all(|e| primary.successes().contains_key(&e.id))
    })
    .await;
    assert_eq!(
        failover.ledger.summary().unique,
        on_failover,
        "nothing more went to the failover"
    );

    // Attempt records name the URL of each request.
    let requests = primary.hits().len() + failover.ledger.summary().received as usize;
    let attempts = p.attempts(requests).await;
    let url_of = |outcome: Outcome, url: &str| {
        attempts
            .iter()
            .any(|a| a.outcome() == outcome && a.url == url)
    };
    assert!(
        url_of(Outcome::Retryable, &primary.url()),
        "a failed attempt names the primary"
    );
    assert!(
        url_of(Outcome::Success, &failover.url("failover")),
        "a delivery through the failover names it"
    );
    for e in &back {
        let a = attempts
            .iter()
            .find(|a| a.event_id == e.id)
            .expect("attempt recorded");
        assert_eq!(
            (a.url.as_str(), a.outcome()),
            (primary.url().as_str(), Outcome::Success)
        );
    }
    p.stop().await;
}
