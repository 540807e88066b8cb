//! Whatever producers write to the events topic: every codec, records the client cannot
//! read at all, and bad input. Each bad record is dead-lettered with a reason a person can
//! act on, and the partition moves on.

mod common;

use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1::DeadLetterReason;
use hookline_proto::Message as _;
use hookline_runtime::{kafka, topics};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A producer as a platform team might configure it: its own codec, batching everything
/// it is given within 200 ms into one batch per partition.
fn foreign_producer(bootstrap: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "200")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Publishes `events` with `key` (so one partition, in order) in one batch.
async fn publish_batch(producer: &FutureProducer, topic: &str, key: &str, events: &[hookline_proto::v1::Event]) {
    let mut acks = Vec::new();
    for e in events {
        acks.push(kafka::acked(kafka::enqueue(producer, topic, key, &e.encode_to_vec(), None).await.expect("enqueue")));
    }
    for a in acks {
        a.await.expect("acked");
    }
}

fn events(prefix: &str, n: usize) -> Vec<hookline_proto::v1::Event> {
    (0..n).map(|i| event(&format!("{prefix}_{i:02}"), "order.created", "", &format!("{{\"i\":{i}}}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_batches_followed_by_plain_events_are_all_delivered() {
    let p = TestPipeline::start().await;
    let sink = TestSink::start(&secret(1)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["order.*"], "", &sink.secret).await;
    let topic = p.config.topics().events;
    // The stall this reproduces: zstd batches on every partition, then plain events.
    let zstd = foreign_producer(&p.config.kafka.bootstrap_servers, "zstd");
    for key in ["a", "b", "c", "d"] {
        publish_batch(&zstd, &topic, key, &events(&format!("zstd_{key}"), 20)).await;
    }
    let plain = foreign_producer(&p.config.kafka.bootstrap_servers, "none");
    publish_batch(&plain, &topic, "a", &events("plain", 30)).await;

    let ledger = sink.ledger.clone();
    eventually("110 events delivered", WAIT, || ledger.summary().unique >= 110).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = sink.ledger.summary();
    assert_eq!((s.unique, s.duplicates, s.invalid_signatures), (110, 0, 0), "{s:?}");
    p.stop().await;
}

/// The broker's data folder of the test Kafka (`scripts/kafka.sh` keeps it per port).
fn broker_data_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HOOKLINE_TEST_KAFKA_DATA") {
        return dir.into();
    }
    let port = common::bootstrap().rsplit(':').next().unwrap_or("9092").to_owned();
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/kafka-state")).join(port).join("data")
}

/// Damages the first zstd frame in the partition's log segment, as a disk or a buggy
/// producer could. The broker serves the file as it is, so every client fetches the damage.
fn corrupt_first_zstd_frame(topic: &str, partition: i32) -> usize {
    let segment = broker_data_dir().join(format!("{topic}-{partition}")).join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap_or_else(|e| panic!("{}: {e}", segment.display()));
    let at = bytes.windows(4).position(|w| w == [0x28, 0xb5, 0x2f, 0xfd]).expect("a zstd frame in the segment");
    // The frame header descriptor's reserved bit: every zstd decoder must refuse the frame.
    // (Damage inside a compressed block can instead decompress to records librdkafka cannot
    // parse, which it retries silently without reporting an error: see docs/operations.md.)
    bytes[at + 4] |= 0x08;
    std::fs::write(&segment, &bytes).expect("write segment");
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_batch_is_dead_lettered_by_its_coordinates_and_skipped() {
    let builder = TestPipeline::builder();
    let config = builder.config().clone();
    topics::ensure(&config).await.expect("topics");
    let topic = config.topics().events;
    // Written before the router runs, so the damage is there before anything reads it.
    let zstd = foreign_producer(&config.kafka.bootstrap_servers, "zstd");
    publish_batch(&zstd, &topic, "k", &events("broken", 20)).await;
    let partition = (0..config.kafka.partitions.events)
        .find(|p| broker_data_dir().join(format!("{topic}-{p}")).join("00000000000000000000.log").metadata().is_ok_and(|m| m.len() > 0))
        .expect("the partition that got the batch");
    corrupt_first_zstd_frame(&topic, partition);
    let plain = foreign_producer(&config.kafka.bootstrap_servers, "none");
    publish_batch(&plain, &topic, "k", &events("after", 10)).await;

    let p = builder.start().await;
    let sink = TestSink::start(&secret(2)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["order.*"], "", &sink.secret).await;
    let ledger = sink.ledger.clone();
    eventually("the 10 events after the damaged batch are delivered", WAIT, || ledger.summary().unique >= 10).await;
    let received: Vec<String> = sink.ledger.received().iter().map(|r| r.webhook_id.clone()).collect();
    assert!(received.iter().all(|id| id.starts_with("after_")), "{received:?}");

    let dead = p.dead_letters(1).await;
    assert_eq!(dead[0].reason(), DeadLetterReason::UnreadableRecord);
    let source = dead[0].source.as_ref().expect("coordinates");
    assert_eq!((source.topic.as_str(), source.partition, source.offset), (topic.as_str(), partition, 0));
    assert!(dead[0].detail.starts_with(&format!("20 record(s) at offsets 0..=19 of {topic}/{partition}")), "{}", dead[0].detail);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_from_producers_gets_a_reason_and_the_partition_moves_on() {
    let p = TestPipeline::builder().max_payload_bytes(1000).start().await;
    let sink = TestSink::start(&secret(3)).await;
    p.add_endpoint("ep", &sink.url("ep"), &["*"], "", &sink.secret).await;

    let mut no_type = event("evt_no_type", "", "", "{}");
    no_type.r#type.clear();
    let mut weird_type = event("evt_weird_ct", "order.created", "", "{}");
    weird_type.content_type = "jason".into();
    let too_large = event("evt_large", "order.created", "", &format!("{{\"pad\":\"{}\"}}", "x".repeat(1000)));
    let other_message = [&[0u8, 0, 0, 0, 9, 2, 2][..], &event("evt_other", "order.created", "", "{}").encode_to_vec()].concat();
    let framed = [&[0u8, 0, 0, 0, 9, 0][..], &event("evt_framed", "order.created", "", "{}").encode_to_vec()].concat();
    // Same key: one partition, in this order.
    p.publish_raw("k", b"").await;
    p.publish_raw("k", &event("", "order.created", "", "{}").encode_to_vec()).await;
    p.publish_raw("k", &no_type.encode_to_vec()).await;
    p.publish_raw("k", &weird_type.encode_to_vec()).await;
    p.publish_raw("k", &too_large.encode_to_vec()).await;
    p.publish_raw("k", &other_message).await;
    p.publish_raw("k", &framed).await;
    p.publish_raw("k", &event("evt_after", "order.created", "", "{}").encode_to_vec()).await;

    let ledger = sink.ledger.clone();
    eventually("the framed event and the one after the bad ones arrive", WAIT, || {
        ledger.count("evt_framed") == 1 && ledger.count("evt_after") == 1
    })
    .await;
    let framed_body = sink.ledger.received().into_iter().find(|r| r.webhook_id == "evt_framed").expect("framed").body;
    assert_eq!(framed_body, b"{}".as_slice(), "the framing is not part of the payload");

    let dead = p.dead_letters(6).await;
    let got: Vec<(DeadLetterReason, &str)> = dead.iter().map(|d| (d.reason(), d.detail.as_str())).collect();
    let expect = [
        (DeadLetterReason::EmptyRecord, "the record has no value (a tombstone or an empty message)"),
        (DeadLetterReason::InvalidEvent, "id: must not be empty"),
        (DeadLetterReason::InvalidEvent, "type: "),
        (DeadLetterReason::InvalidEvent, "content_type: \"jason\" is not a media type"),
        (DeadLetterReason::PayloadTooLarge, "payload: 1010 bytes is over the limit of 1000 (router.max_payload_bytes)"),
        (DeadLetterReason::UnsupportedFraming, "Confluent Schema Registry framing (schema id 9) names message [1]"),
    ];
    for ((reason, detail), (want_reason, want_start)) in got.iter().zip(expect) {
        assert_eq!(*reason, want_reason, "{detail}");
        assert!(detail.starts_with(want_start), "{want_reason:?}: {detail:?} should start with {want_start:?}");
    }
    assert!(dead[4].source.as_ref().expect("source").raw_value.is_empty(), "oversized values stay out of the DLQ");
    p.stop().await;
}

#[test]
fn version_names_the_kafka_client_and_every_codec_it_reads() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookline")).arg("--version").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("librdkafka 2."), "{text}");
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(text.contains(codec), "{codec} missing from {text}");
    }
}
