//! The example producers of docs/producers/ (Java kafka-clients, Go franz-go, Python
//! confluent-kafka; built and run by scripts/producers.sh) publish to a real pipeline on the real
//! broker, and what they acknowledged arrives: every codec of every language, exactly once, signed,
//! with the body byte for byte; with and without a record key; with a `traceparent` header (sent on
//! to the endpoint); a payload of 1,000,000 bytes; transactions whose aborted events never arrive;
//! and values in Confluent Schema Registry framing (Confluent's own serializer and hand-written
//! frames), where a frame naming another message than `Event` is dead-lettered.
//!
//! Each test has its own pipeline (topic prefix). The programs are built once per test binary
//! (`scripts/producers.sh build`: fast when nothing changed, minutes on a fresh cache).

mod common;

use common::{eventually, secret, TestPipeline, TestSink};
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_sink::Received;
use rdkafka::producer::FutureRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const COUNT: usize = 20;
const BIG: usize = 1_000_000;
const WAIT: Duration = Duration::from_secs(120);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/producers.sh")
}

/// `scripts/producers.sh build`, once per test binary; every test fails with its error if it failed.
fn built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let out = std::process::Command::new("bash").arg(script()).arg("build").output().expect("bash runs");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("scripts/producers.sh build failed:\n{}", String::from_utf8_lossy(&out.stderr)))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// What one run of a producer printed: the ids it saw acknowledged (`ok`) and aborted.
#[derive(Debug, Default)]
struct Run {
    ok: Vec<String>,
    aborted: Vec<String>,
}

/// Runs `scripts/producers.sh run LANG -- ARGS`; fails the test unless it exits 0.
async fn produce(lang: &str, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(script()).args(["run", lang, "--"]).args(args).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{lang} {args:?} still running after 180 s"))
        .expect("bash runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{lang} {args:?} exited with {}:\n{stderr}\n{stdout}", out.status);
    let mut run = Run::default();
    for line in stdout.lines() {
        match line.split_once(' ') {
            Some(("ok", id)) => run.ok.push(id.to_owned()),
            Some(("aborted", id)) => run.aborted.push(id.to_owned()),
            _ => panic!("{lang}: unexpected output line {line:?}\n{stdout}"),
        }
    }
    run
}

/// The arguments every run shares.
fn args<'a>(p: &'a TopicsOf, codec: &'a str, count: &'a str, prefix: &'a str) -> Vec<&'a str> {
    vec!["--bootstrap", &p.bootstrap, "--topic", &p.events, "--codec", codec, "--count", count, "--id-prefix", prefix]
}

struct TopicsOf {
    bootstrap: String,
    events: String,
}

fn topics_of(p: &TestPipeline) -> TopicsOf {
    TopicsOf { bootstrap: p.config.kafka.bootstrap_servers.clone(), events: p.config.topics().events }
}

/// The body the producers write for event `i` (documented in docs/producers.md).
fn body(lang: &str, i: usize, size: Option<usize>) -> Vec<u8> {
    let head = format!(r#"{{"i":{i},"lang":"{lang}""#);
    match size {
        None => format!("{head}}}").into_bytes(),
        Some(n) => {
            let open = format!(r#"{head},"pad":""#);
            format!("{open}{}\"}}", "x".repeat(n - open.len() - 2)).into_bytes()
        }
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// What the endpoint should get for one event id.
struct Expected {
    body: Vec<u8>,
    traced: bool,
}

/// One line of the summary table.
struct Row {
    lang: &'static str,
    case: String,
    prefix: String,
    produced: usize,
}

/// Waits until every expected id arrived, then checks each delivery: exactly once, valid
/// signature, the body as produced, a `traceparent` exactly when the producer sent one; and
/// nothing else arrived. Prints the table produced/delivered/duplicates per row.
async fn check_deliveries(sink: &TestSink, expected: &BTreeMap<String, Expected>, rows: &[Row]) {
    let ledger = sink.ledger.clone();
    let want = expected.len() as u64;
    eventually(&format!("{want} deliveries"), WAIT, || ledger.summary().unique >= want).await;
    // Room for a late duplicate to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = ledger.received();
    let mut per_id: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        per_id.entry(r.webhook_id.as_str()).or_default().push(r);
    }
    for row in rows {
        let mine: Vec<_> = per_id.iter().filter(|(id, _)| id.rsplit_once('-').is_some_and(|(p, _)| p == row.prefix)).collect();
        let delivered = mine.len();
        let duplicates: usize = mine.iter().map(|(_, rs)| rs.len() - 1).sum();
        println!(
            "producers: {:<7} {:<45} produced {:>3}  delivered {:>3}  duplicates {}",
            row.lang, row.case, row.produced, delivered, duplicates
        );
    }
    let unexpected: Vec<_> = per_id.keys().filter(|id| !expected.contains_key(**id)).collect();
    assert!(unexpected.is_empty(), "deliveries nobody produced: {unexpected:?}");
    for (id, want) in expected {
        let got = per_id.get(id.as_str()).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got.len(), 1, "{id} arrives exactly once, got {}", got.len());
        let r = got[0];
        assert!(r.signature_valid, "{id}: the sink verified the signature");
        assert!(r.body == want.body, "{id}: body arrives as produced ({} bytes, {} expected)", r.body.len(), want.body.len());
        let traceparent = r.headers.get("traceparent").map(|v| v.to_str().expect("ascii").to_owned());
        if want.traced {
            let tp = traceparent.unwrap_or_else(|| panic!("{id}: the producer's trace context reaches the endpoint"));
            assert!(tp.contains(TRACE_ID), "{id}: traceparent {tp} continues the producer's trace {TRACE_ID}");
        } else {
            assert_eq!(traceparent, None, "{id}: no trace context, none sent");
        }
    }
    let summary = ledger.summary();
    assert_eq!((summary.duplicates, summary.invalid_signatures), (0, 0), "{summary:?}");
}

/// A pipeline that sends the producer's trace context on to endpoints. No exporter is installed
/// in this test binary, so Hookline's spans pass the producer's context through unchanged.
async fn pipeline() -> TestPipeline {
    TestPipeline::builder().traces("").start().await
}

/// Every codec of `lang`, 20 events each (keys and null keys, with and without `traceparent`),
/// then one event with a 1,000,000-byte payload, uncompressed: all of it arrives exactly once.
async fn every_codec(lang: &'static str) {
    built();
    let p = pipeline().await;
    let sink = TestSink::start(&secret(1)).await;
    p.add_endpoint(lang, &sink.url(lang), &["order.created"], "", &sink.secret).await;
    let t = topics_of(&p);
    let (mut expected, mut rows) = (BTreeMap::new(), Vec::new());
    let count = COUNT.to_string();
    for (n, codec) in CODECS.iter().enumerate() {
        let prefix = format!("{lang}-{codec}");
        let (null_key, traced) = (n % 2 == 1, n % 2 == 0);
        let mut a = args(&t, codec, &count, &prefix);
        if null_key {
            a.push("--null-key");
        }
        if traced {
            a.extend(["--traceparent", TRACEPARENT]);
        }
        let run = produce(lang, &a).await;
        let sorted: BTreeSet<_> = run.ok.iter().cloned().collect();
        assert_eq!(sorted, ids(&prefix, COUNT).into_iter().collect(), "{lang} {codec}: every event acknowledged once");
        assert_eq!(run.ok.len(), COUNT);
        for i in 0..COUNT {
            expected.insert(format!("{prefix}-{i}"), Expected { body: body(lang, i, None), traced });
        }
        let case = format!("{codec}{}{}", if null_key { " null-key" } else { " key" }, if traced { " traceparent" } else { "" });
        rows.push(Row { lang, case, prefix, produced: run.ok.len() });
    }
    let prefix = format!("{lang}-big");
    let size = BIG.to_string();
    let mut a = args(&t, "none", "1", &prefix);
    a.extend(["--payload-bytes", &size]);
    let run = produce(lang, &a).await;
    assert_eq!(run.ok, ids(&prefix, 1));
    expected.insert(format!("{prefix}-0"), Expected { body: body(lang, 0, Some(BIG)), traced: false });
    rows.push(Row { lang, case: "none 1,000,000-byte payload".into(), prefix, produced: 1 });

    check_deliveries(&sink, &expected, &rows).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_producer_every_codec_delivered_once() {
    every_codec("java").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_producer_every_codec_delivered_once() {
    every_codec("go").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_producer_every_codec_delivered_once() {
    every_codec("python").await;
}

/// One transaction per event, every third aborted after its record was written: the committed
/// events arrive once, the aborted ones never (the router reads committed records only). A
/// marker written to every partition after the transactions proves the router read past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_deliver_committed_events_and_never_aborted_ones() {
    built();
    let p = pipeline().await;
    let sink = TestSink::start(&secret(2)).await;
    p.add_endpoint("tx", &sink.url("tx"), &["order.created"], "", &sink.secret).await;
    let t = topics_of(&p);
    let (mut expected, mut rows, mut aborted) = (BTreeMap::new(), Vec::new(), Vec::new());
    // The Java producer is the reference; Go and Python do the same.
    for (lang, codec) in [("java", "zstd"), ("go", "lz4"), ("python", "gzip")] {
        let prefix = format!("{lang}-tx");
        let txid = format!("{}-{lang}", p.config.kafka.topic_prefix);
        let mut a = args(&t, codec, "12", &prefix);
        a.extend(["--transactional-id", &txid, "--abort-every", "3"]);
        let run = produce(lang, &a).await;
        let all = ids(&prefix, 12);
        let want_aborted: Vec<_> = all.iter().skip(2).step_by(3).cloned().collect();
        assert_eq!(run.aborted, want_aborted, "{lang}: every third transaction aborted");
        assert_eq!(run.ok, all.iter().filter(|id| !want_aborted.contains(id)).cloned().collect::<Vec<_>>());
        for id in &run.ok {
            let i: usize = id.rsplit_once('-').expect("id").1.parse().expect("index");
            expected.insert(id.clone(), Expected { body: body(lang, i, None), traced: false });
        }
        rows.push(Row { lang, case: format!("{codec} transactions, committed"), prefix, produced: run.ok.len() });
        aborted.extend(run.aborted);
    }
    // A committed marker behind the aborted records in every partition of the events topic.
    for partition in 0..p.config.kafka.partitions.events {
        let marker = common::event(&format!("marker-{partition}"), "order.created", "", "{}");
        let value = marker.encode_to_vec();
        let record = FutureRecord::to(&t.events).partition(partition).key(&marker.id).payload(&value);
        p.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("marker acknowledged");
        expected.insert(marker.id.clone(), Expected { body: b"{}".to_vec(), traced: false });
    }
    check_deliveries(&sink, &expected, &rows).await;
    // The markers came after every aborted record of their partition: had the router taken an
    // aborted record, its delivery would have arrived by now. Give the sender a moment more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrived: Vec<_> = aborted.iter().filter(|id| sink.ledger.count(id) > 0).collect();
    assert!(arrived.is_empty(), "aborted events were delivered: {arrived:?}");
    println!("producers: aborted and never delivered: {} ({})", aborted.len(), aborted.join(" "));
    p.stop().await;
}

/// Values in Confluent Schema Registry framing naming message [0] (hookline.v1.Event) are
/// delivered like plain ones: from Confluent's own ProtobufSerializer (Python) and from the
/// hand-written frames of the Java and Go producers, which are byte for byte the same layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_registry_framed_events_are_delivered() {
    built();
    let p = pipeline().await;
    let sink = TestSink::start(&secret(3)).await;
    p.add_endpoint("sr", &sink.url("sr"), &["order.created"], "", &sink.secret).await;
    let t = topics_of(&p);
    let (mut expected, mut rows) = (BTreeMap::new(), Vec::new());
    let runs = [("python", "zstd", "Confluent ProtobufSerializer"), ("java", "gzip", "hand-written"), ("go", "snappy", "hand-written")];
    for (lang, codec, how) in runs {
        let prefix = format!("{lang}-sr");
        let mut a = args(&t, codec, "10", &prefix);
        a.push("--sr-framing");
        let run = produce(lang, &a).await;
        assert_eq!(run.ok.len(), 10, "{lang}: {run:?}");
        for i in 0..10 {
            expected.insert(format!("{prefix}-{i}"), Expected { body: body(lang, i, None), traced: false });
        }
        rows.push(Row { lang, case: format!("{codec} SR framing [0], {how}"), prefix, produced: 10 });
    }

    // The records as written: magic 0, schema id 1 (the mock registry's first id; the
    // hand-written frames use 1 too), message indexes [0] as the single byte 0, then the Event.
    let records = p.read(&t.events, p.config.kafka.partitions.events, 30, WAIT).await;
    let mut framed_by = BTreeMap::<String, usize>::new();
    for value in &records {
        assert_eq!(value[..6], [0, 0, 0, 0, 1, 0], "Confluent framing of message [0]: {:02x?}", &value[..8]);
        let event = v1::Event::decode(&value[6..]).expect("an Event follows the frame header");
        *framed_by.entry(event.source).or_default() += 1;
    }
    assert_eq!(framed_by, BTreeMap::from([("go".into(), 10), ("java".into(), 10), ("python".into(), 10)]));

    check_deliveries(&sink, &expected, &rows).await;
    p.stop().await;
}

/// A frame naming another message of the schema than hookline.v1.Event ([1] here) is not read
/// as an Event: it is dead-lettered, and the reason names the Schema Registry framing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_registry_frame_of_another_message_is_dead_lettered() {
    built();
    let p = pipeline().await;
    let sink = TestSink::start(&secret(4)).await;
    p.add_endpoint("sr", &sink.url("sr"), &["order.created"], "", &sink.secret).await;
    let t = topics_of(&p);
    let mut produced = Vec::new();
    for (lang, count) in [("python", "2"), ("java", "1"), ("go", "1")] {
        let prefix = format!("{lang}-sr1");
        let mut a = args(&t, "lz4", count, &prefix);
        a.extend(["--sr-framing", "--sr-message-index", "1"]);
        produced.extend(produce(lang, &a).await.ok);
    }
    assert_eq!(produced.len(), 4);
    let dead = p.dead_letters(4).await;
    for d in &dead {
        assert!(d.detail.contains("Schema Registry"), "the reason names the framing: {}", d.detail);
        let raw = &d.source.as_ref().expect("source record").raw_value;
        assert_eq!(raw[..7], [0, 0, 0, 0, 1, 2, 2], "the frame names message [1]");
    }
    println!("producers: SR frame naming [1]: produced {}, dead-lettered {}: {}", produced.len(), dead.len(), dead[0].detail);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.ledger.summary().received, 0, "nothing delivered");
    p.stop().await;
}
