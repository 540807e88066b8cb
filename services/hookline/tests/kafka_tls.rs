//! Kafka over TLS and SASL_SSL: every client Hookline makes (admin, producers, the registry
//! follower, the router's and the sender's consumers) connects to the broker's TLS listener
//! and verifies its certificate against a CA given in `kafka.client`, or authenticates with
//! SCRAM-SHA-512 on the SASL_SSL listener; a client that does not trust the broker's CA, or
//! has the wrong password, gets nothing. The broker is `scripts/kafka.sh` with
//! KAFKA_SSL_PORT and KAFKA_SASL_PORT (scripts/test.sh sets them, and the env vars below).

mod common;

use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_core::config::Config;
use std::time::Duration;

fn tls_bootstrap() -> String {
    std::env::var("HOOKLINE_TEST_KAFKA_TLS").unwrap_or_else(|_| "127.0.0.1:19094".into())
}

fn test_ca() -> String {
    let ca = std::env::var("HOOKLINE_TEST_KAFKA_CA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/kafka-state/19092/tls/ca.pem").into());
    assert!(std::path::Path::new(&ca).exists(), "no test CA at {ca}: start Kafka with KAFKA_SSL_PORT (scripts/test.sh does)");
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_runs_over_tls() {
    let p = TestPipeline::builder().kafka_tls(&tls_bootstrap(), &test_ca()).start().await;
    let sink = TestSink::start(&secret(41)).await;
    p.add_endpoint("tls", &sink.url("tls"), &["order.*"], "", &sink.secret).await;
    let ids: Vec<String> = (0..20).map(|i| format!("evt_tls_{i}")).collect();
    p.publish(&ids.iter().map(|id| event(id, "order.created", "", "{}")).collect::<Vec<_>>()).await;
    let ledger = sink.ledger.clone();
    eventually("every event delivered through the TLS listener", Duration::from_secs(60), || {
        ids.iter().all(|id| ledger.count(id) == 1)
    })
    .await;
    assert_eq!(sink.ledger.summary().invalid_signatures, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_certificate_is_not_trusted_is_refused() {
    // A CA of our own that never signed the broker's certificate.
    let dir = std::env::temp_dir().join(format!("hookline-untrusted-{}", uuid::Uuid::new_v4().simple()));
    let (untrusted_ca, _) = common::test_ca(&dir);

    let mut config = Config::default();
    config.kafka.bootstrap_servers = tls_bootstrap();
    config.kafka.topic_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    config.kafka.client.insert("security.protocol".into(), "ssl".into());
    config.kafka.client.insert("ssl.ca.location".into(), untrusted_ca.display().to_string());
    let created = tokio::time::timeout(Duration::from_secs(90), hookline_runtime::topics::ensure(&config)).await;
    match created {
        Ok(Ok(report)) => panic!("topics created through an untrusted broker: {report:?}"),
        Ok(Err(error)) => println!("refused as expected: {error}"),
        Err(_) => println!("refused as expected: no answer within 90 s"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn sasl_bootstrap() -> String {
    std::env::var("HOOKLINE_TEST_KAFKA_SASL").unwrap_or_else(|_| "127.0.0.1:19095".into())
}

/// SASL_SSL with SCRAM-SHA-512, the chart's `kafkaSasl` default, as `scripts/kafka.sh` sets it
/// up (user `hookline`); `password` decides whether the broker lets the client in.
fn sasl_config(builder: common::Builder, password: &str) -> common::Builder {
    builder
        .kafka_tls(&sasl_bootstrap(), &test_ca())
        .kafka_client("security.protocol", "SASL_SSL")
        .kafka_client("sasl.mechanism", "SCRAM-SHA-512")
        .kafka_client("sasl.username", "hookline")
        .kafka_client("sasl.password", password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_sasl_ssl_with_scram_and_a_wrong_password_is_refused() {
    let p = sasl_config(TestPipeline::builder(), "hookline-test-secret").start().await;
    let sink = TestSink::start(&secret(42)).await;
    p.add_endpoint("sasl", &sink.url("sasl"), &["order.*"], "", &sink.secret).await;
    p.publish(&[event("evt_sasl", "order.created", "", "{}")]).await;
    let ledger = sink.ledger.clone();
    eventually("delivered through the SASL_SSL listener", Duration::from_secs(60), || ledger.count("evt_sasl") == 1).await;
    p.stop().await;

    let wrong = sasl_config(TestPipeline::builder(), "not-the-password");
    let created = tokio::time::timeout(Duration::from_secs(90), hookline_runtime::topics::ensure(wrong.config())).await;
    assert!(!matches!(created, Ok(Ok(_))), "a wrong SCRAM password must not get in: {created:?}");
}
