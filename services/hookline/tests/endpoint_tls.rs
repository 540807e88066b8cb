//! HTTPS endpoints behind a private CA: the sender trusts the CA certificates of
//! `sender.ca_file` besides the public roots, so an internal endpoint with such a
//! certificate gets its deliveries; without the CA, the attempt fails on the certificate
//! and the delivery ends in the DLQ, never delivered to an unverified server.

mod common;

use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::DeadLetterReason;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_behind_a_private_ca_is_reached_only_when_its_ca_is_trusted() {
    let dir = std::env::temp_dir().join(format!("hookline-endpoint-tls-{}", uuid::Uuid::new_v4().simple()));
    let (ca, tls) = common::test_ca(&dir);

    let trusting = TestPipeline::builder().endpoint_ca_file(&ca.display().to_string()).start().await;
    let sink = TestSink::start_with(&secret(51), Some(tls.clone())).await;
    assert!(sink.url("x").starts_with("https://"));
    trusting.add_endpoint("internal", &sink.url("internal"), &["order.*"], "", &sink.secret).await;
    trusting.publish(&[event("evt_https", "order.created", "", "{}")]).await;
    let ledger = sink.ledger.clone();
    eventually("delivered over HTTPS to the private-CA endpoint", Duration::from_secs(60), || ledger.count("evt_https") == 1).await;
    assert_eq!(sink.ledger.summary().invalid_signatures, 0);
    trusting.stop().await;

    // The same endpoint, from a sender that trusts only the public roots.
    let public_only = TestPipeline::builder().retry_schedule(&["1s"]).start().await;
    let other = TestSink::start_with(&secret(52), Some(tls)).await;
    public_only.add_endpoint("internal", &other.url("internal"), &["order.*"], "", &other.secret).await;
    public_only.publish(&[event("evt_untrusted", "order.created", "", "{}")]).await;
    let dead = public_only.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::Exhausted);
    let error = dead[0].last_attempt.as_ref().map(|a| a.error.clone()).unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "the attempt failed on the certificate: {error}");
    assert_eq!(other.ledger.summary().received, 0, "nothing reached a server the sender could not verify");
    public_only.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
