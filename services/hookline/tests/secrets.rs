//! Signing secrets sealed at rest, against the real Kafka broker: the endpoints topic never
//! holds a clear secret when a key is configured, deliveries are still signed with the
//! right secret, `hookline secrets reseal` migrates clear records and rotates keys, and a
//! role without the key refuses to start, naming it.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, READ};
use common::faulty::{FaultyReceiver, Reply};
use common::{event, eventually, secret, TestPipeline, TestSink};
use hookline_core::config::{Config, SecretsConfig};
use hookline_proto::v1;
use hookline_proto::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message as _};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const K1: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
const K2: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";

fn keys(current: &str, keys: &[(&str, &str)]) -> SecretsConfig {
    SecretsConfig {
        current_key: current.into(),
        keys: keys.iter().map(|(id, k)| (id.to_string(), k.to_string())).collect(),
        keys_file: String::new(),
    }
}

/// Every record value of one topic, read to its high-water mark.
async fn records(p: &TestPipeline, topic: &str, partitions: i32) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &p.config.kafka.bootstrap_servers).create().expect("consumer");
    let high: i64 =
        (0..partitions).map(|i| consumer.fetch_watermarks(topic, i, Duration::from_secs(10)).expect("watermarks").1).sum();
    p.read(topic, partitions, high as usize, Duration::from_secs(30)).await
}

/// The endpoints topic's records as endpoints, in order.
async fn endpoint_records(p: &TestPipeline) -> Vec<v1::Endpoint> {
    let raw = records(p, &p.config.topics().endpoints, 1).await;
    raw.iter().filter(|r| !r.is_empty()).map(|r| v1::Endpoint::decode(r.as_slice()).expect("endpoint record")).collect()
}

/// The newest record of each endpoint still there (a tombstone removes it).
fn newest(p: &TestPipeline) -> BTreeMap<String, v1::Endpoint> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &p.config.kafka.bootstrap_servers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .create()
        .expect("consumer");
    let topic = p.config.topics().endpoints;
    let (_, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)).expect("watermarks");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut newest = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut next = 0;
    while next < high {
        assert!(std::time::Instant::now() < deadline, "endpoints topic not read within 30 s");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.expect("record");
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        match message.payload().filter(|v| !v.is_empty()) {
            Some(value) => newest.insert(key, v1::Endpoint::decode(value).expect("endpoint record")),
            None => newest.remove(&key),
        };
        next = message.offset() + 1;
    }
    newest
}

fn verifies(r: &hookline_sink::Received, secret: &str) -> bool {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers[name].clone());
    }
    r.signature_valid && standardwebhooks::Webhook::new(secret).expect("secret").verify(&r.body, &headers).is_ok()
}

/// Runs `hookline <args>` with `config` as its file; returns (success, stdout, stderr).
async fn hookline(config: &Config, args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("hookline-secrets-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("hookline.toml");
    std::fs::write(&path, toml::to_string(config).expect("config as toml")).expect("write config");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("HOOKLINE_LOG__FORMAT", "text")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), child)
        .await
        .unwrap_or_else(|_| panic!("hookline {args:?} did not finish within 90 s"))
        .expect("hookline runs");
    let _ = std::fs::remove_dir_all(dir);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_the_topic_never_holds_a_clear_secret_and_deliveries_still_verify() {
    let p = TestPipeline::builder().secrets(keys("k1", &[("k1", K1)])).start().await;
    let orders = TestSink::start(&secret(61)).await;
    p.add_endpoint("orders", &orders.url("o"), &["order.*"], "", &orders.secret).await;
    // Written through the API: created, revealed and rotated; the caller sees clear secrets.
    let api = p.api(false);
    let users = TestSink::start(&secret(62)).await;
    let body = json!({"url": users.url("u"), "event_types": ["user.*"], "secret": users.secret});
    let created = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["secret"], users.secret.as_str());
    let id = created.json["id"].as_str().expect("id").to_owned();
    let shown = api.call(Method::GET, &format!("/v1/endpoints/{id}"), Some(READ), None).await.json.to_string();
    let listed = api.call(Method::GET, "/v1/endpoints", Some(READ), None).await.json.to_string();
    for view in [&shown, &listed] {
        assert!(!view.contains("whsec_") && !view.contains("hlenc:"), "views show no secret, clear or sealed: {view}");
    }
    let revealed = api.call(Method::GET, &format!("/v1/endpoints/{id}/secret"), Some(ADMIN), None).await;
    assert_eq!(revealed.json["secret"], users.secret.as_str(), "an admin still reads the clear secret");
    let rotated = api.call(Method::POST, &format!("/v1/endpoints/{id}/secret/rotate"), Some(ADMIN), None).await;
    let new_secret = rotated.json["secret"].as_str().expect("new secret").to_owned();
    assert!(new_secret.starts_with("whsec_"), "{}", rotated.json);
    // The sender rewrites an endpoint it read (410: disabled): that copy is sealed too.
    let gone = FaultyReceiver::start(|_, _| Reply::Status(410)).await;
    p.add_endpoint("gone", &gone.url(), &["order.*"], "", &secret(63)).await;

    p.publish(&[event("evt_order", "order.created", "", "{}"), event("evt_user", "user.created", "", "{}")]).await;
    let (o, u, r) = (orders.ledger.clone(), users.ledger.clone(), p.registry.clone());
    eventually("orders receives evt_order", WAIT, || o.count("evt_order") == 1).await;
    eventually("users receives evt_user", WAIT, || u.count("evt_user") == 1).await;
    eventually("the sender disables the gone endpoint", WAIT, || r.get("gone").is_some_and(|e| e.endpoint.disabled)).await;
    assert!(verifies(&orders.ledger.received()[0], &orders.secret), "signed with the orders secret");
    let to_users = &users.ledger.received()[0];
    assert!(verifies(to_users, &users.secret) && verifies(to_users, &new_secret), "both secrets of the rotation window sign");
    assert_eq!(r.get("gone").expect("gone").endpoint.secrets[0].key, secret(63), "the registry holds the opened secret");

    let clear = [orders.secret.clone(), users.secret.clone(), new_secret.clone(), secret(63)];
    let raw = records(&p, &p.config.topics().endpoints, 1).await;
    assert!(raw.len() >= 5, "orders, users (created, rotated), gone (created, disabled): {}", raw.len());
    for record in &raw {
        let text = String::from_utf8_lossy(record);
        for s in &clear {
            let base64_part = s.trim_start_matches("whsec_");
            assert!(!text.contains(base64_part), "a record of the endpoints topic holds a clear secret");
        }
    }
    for e in endpoint_records(&p).await {
        assert!(e.secrets.iter().all(|s| s.key.starts_with("hlenc:v1:k1:")), "{} is sealed with k1", e.id);
    }
    assert!(newest(&p)["gone"].disabled, "the sender's rewrite is the newest record, sealed (checked above)");
    let attempts = records(&p, &p.config.topics().attempts, p.config.kafka.partitions.attempts).await;
    assert!(!attempts.is_empty());
    for record in &attempts {
        let text = String::from_utf8_lossy(record);
        assert!(clear.iter().all(|s| !text.contains(s.trim_start_matches("whsec_"))), "attempt records hold no secret");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_seals_clear_records_then_rotates_to_a_new_key_and_the_old_key_can_go() {
    // Before sealing: an installation with clear secrets (and a deleted endpoint).
    let clear = TestPipeline::builder().without_roles().start().await;
    let sink = TestSink::start(&secret(71)).await;
    clear.add_endpoint("ep-a", &sink.url("a"), &["order.*"], "", &sink.secret).await;
    clear.add_endpoint("ep-b", "http://127.0.0.1:9/b", &["user.*"], "", &secret(72)).await;
    clear.add_endpoint("ep-gone", "http://127.0.0.1:9/g", &["user.*"], "", &secret(73)).await;
    let topic = clear.config.topics().endpoints;
    let deleted = hookline_runtime::registry::delete_endpoint(&clear.producer, &topic, "ep-gone").await.expect("delete");
    clear.registry.wait_applied(deleted).await;

    let mut with_k1 = clear.config.clone();
    with_k1.secrets = keys("k1", &[("k1", K1)]);
    let (ok, out, err) = hookline(&with_k1, &["secrets", "reseal"]).await;
    assert!(ok, "reseal: {out}\n{err}");
    assert!(out.contains("resealed      ep-a: clear -> k1") && out.contains("resealed      ep-b: clear -> k1"), "{out}");
    assert!(out.contains("resealed: 2, already under key \"k1\": 0, failed: 0"), "{out}");
    let now = newest(&clear);
    assert!(!now.contains_key("ep-gone"), "a deleted endpoint stays deleted");
    assert!(now["ep-a"].secrets[0].key.starts_with("hlenc:v1:k1:") && now["ep-b"].secrets[0].key.starts_with("hlenc:v1:k1:"));
    let (ok, out, _) = hookline(&with_k1, &["secrets", "reseal"]).await;
    assert!(ok && out.contains("resealed: 0, already under key \"k1\": 2, failed: 0"), "idempotent: {out}");

    // Rotation: k2 becomes current (k1 still opens), from a key file as a Kubernetes Secret mounts it.
    let dir = std::env::temp_dir().join(format!("hookline-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("keys");
    std::fs::write(&file, format!("# hookline secrets new-key\nk1={K1}\nk2={K2}\n")).expect("key file");
    let mut with_k2 = clear.config.clone();
    with_k2.secrets = SecretsConfig { current_key: "k2".into(), keys_file: file.display().to_string(), ..Default::default() };
    let (ok, out, _) = hookline(&with_k2, &["secrets", "reseal", "--dry-run"]).await;
    assert!(ok && out.contains("would reseal  ep-a: k1 -> k2") && out.contains("to reseal: 2"), "{out}");
    assert!(newest(&clear)["ep-a"].secrets[0].key.starts_with("hlenc:v1:k1:"), "a dry run writes nothing");
    let (ok, out, err) = hookline(&with_k2, &["secrets", "reseal"]).await;
    assert!(ok && out.contains("resealed      ep-a: k1 -> k2") && out.contains("resealed: 2"), "{out}\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
    clear.stop().await;

    // The old key goes: roles with only k2 start (older k1 and clear records are superseded)
    // and sign with the secret sealed since the first reseal.
    let p = TestPipeline::builder().topic_prefix(&with_k2.kafka.topic_prefix).secrets(keys("k2", &[("k2", K2)])).start().await;
    assert_eq!(p.registry.get("ep-a").expect("ep-a").endpoint.secrets[0].key, sink.secret);
    assert!(p.registry.get("ep-gone").is_none());
    p.publish(&[event("evt_rotated", "order.created", "", "{}")]).await;
    let ledger = sink.ledger.clone();
    eventually("ep-a receives evt_rotated", WAIT, || ledger.count("evt_rotated") == 1).await;
    assert!(verifies(&sink.ledger.received()[0], &sink.secret));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_the_key_refuses_to_start_and_names_the_key_and_setting() {
    let p = TestPipeline::builder().secrets(keys("k1", &[("k1", K1)])).without_roles().start().await;
    p.add_endpoint("sealed", "http://127.0.0.1:9/s", &["*"], "", &secret(81)).await;

    let mut no_key = p.config.clone();
    no_key.secrets = SecretsConfig::default();
    let (ok, _, err) = hookline(&no_key, &["router"]).await;
    assert!(!ok, "the router must not start: {err}");
    assert!(
        err.contains("endpoint \"sealed\": secrets[0]: is sealed with key \"k1\", which is not configured; refusing to start: \
                      configure the key \"k1\" (secrets.keys.k1, HOOKLINE_SECRETS__KEYS__K1"),
        "{err}"
    );
    // Other bytes under the same id: as refused, never used.
    let mut wrong_bytes = p.config.clone();
    wrong_bytes.secrets = keys("k1", &[("k1", K2)]);
    let (ok, _, err) = hookline(&wrong_bytes, &["sender"]).await;
    assert!(!ok, "the sender must not start: {err}");
    assert!(err.contains("does not open with key \"k1\"") && err.contains("refusing to start"), "{err}");
    assert!(!err.contains(&secret(81)) && !err.contains(K1) && !err.contains(K2), "no secret or key in the error");
    p.stop().await;
}
