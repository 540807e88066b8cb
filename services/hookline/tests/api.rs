//! The management API, called in-process, over a pipeline on the real Kafka broker.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, PUBLISH, READ};
use common::faulty::{FaultyReceiver, Reply};
use common::{endpoint, event, eventually, eventually_async, secret, TestPipeline, TestSink};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_crud_reads_its_own_writes_and_paginates() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let created = api
        .call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": "http://127.0.0.1:9/a", "event_types": ["order.*"], "headers": {"X-Team": "pay"}})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert!(created.json["secret"].as_str().expect("secret shown once").starts_with("whsec_"));
    // Read-your-writes: visible at once, secret not shown.
    let got = api.call(Method::GET, &format!("/v1/endpoints/{id}"), Some(READ), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["event_types"], json!(["order.*"]));
    assert!(got.json.get("secret").is_none());
    assert_eq!(p.registry.get(&id).map(|e| e.endpoint.headers["X-Team"].clone()), Some("pay".into()));

    for i in 0..4 {
        let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": format!("http://127.0.0.1:9/{i}"), "event_types": ["*"]}))).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let first = api.call(Method::GET, "/v1/endpoints?limit=2", Some(READ), None).await;
    assert_eq!(first.json["data"].as_array().map(Vec::len), Some(2));
    let mut seen: Vec<String> = first.json["data"].as_array().expect("data").iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect();
    let mut next = first.json["next"].as_str().map(str::to_owned);
    while let Some(after) = next {
        let page = api.call(Method::GET, &format!("/v1/endpoints?limit=2&after={after}"), Some(READ), None).await;
        seen.extend(page.json["data"].as_array().expect("data").iter().map(|e| e["id"].as_str().expect("id").to_owned()));
        next = page.json["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5, "pages cover every endpoint once: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(api.call(Method::GET, "/v1/endpoints", Some(READ), None).await.json.to_string().find("whsec_").is_none(), "lists never show secrets");

    let patched = api
        .call(Method::PATCH, &format!("/v1/endpoints/{id}"), Some(ADMIN), Some(json!({"enabled": false, "rate_limit": {"per_second": 5}})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert_eq!((patched.json["enabled"].clone(), patched.json["rate_limit"]["per_second"].clone()), (json!(false), json!(5)));
    assert!(p.registry.get(&id).is_some_and(|e| e.endpoint.disabled), "the write is applied before the answer");

    assert_eq!(api.call(Method::DELETE, &format!("/v1/endpoints/{id}"), Some(ADMIN), None).await.status, StatusCode::NO_CONTENT);
    let gone = api.call(Method::GET, &format!("/v1/endpoints/{id}"), Some(READ), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.headers["content-type"], "application/problem+json");
    p.stop().await;
}

/// Writes racing on one endpoint each start from what the one before left: a PATCH or a
/// rotation that loses the race to a DELETE answers 404 instead of writing the endpoint back,
/// and no write is left waiting for a state another write replaced (the 503 schemathesis
/// found when a DELETE and a PATCH of the same id crossed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_never_bring_a_deleted_endpoint_back() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    for round in 0..8 {
        let body = json!({"url": format!("http://127.0.0.1:9/{round}"), "event_types": ["*"]});
        let created = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
        let path = format!("/v1/endpoints/{}", created.json["id"].as_str().expect("id"));
        let rotate = format!("{path}/secret/rotate");
        let patch = |i: usize| api.call(Method::PATCH, &path, Some(ADMIN), Some(json!({"description": format!("edit {i}")})));
        // Writes started before the DELETE, and writes started while its tombstone is on
        // its way (they still see the endpoint unless they wait for the DELETE).
        let before = futures::future::join_all((0..3).map(patch));
        let after = futures::future::join_all((3..6).map(patch).chain((0..2).map(|_| api.call(Method::POST, &rotate, Some(ADMIN), None))));
        let (before, deleted, after) = tokio::join!(before, api.call(Method::DELETE, &path, Some(ADMIN), None), after);
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "round {round}: {}", deleted.json);
        for reply in before.iter().chain(&after) {
            assert!(
                [StatusCode::OK, StatusCode::NOT_FOUND].contains(&reply.status),
                "round {round}: a racing write answered {} {}",
                reply.status,
                reply.json
            );
        }
        let after = api.call(Method::GET, &path, Some(READ), None).await;
        assert_eq!(after.status, StatusCode::NOT_FOUND, "round {round}: the deleted endpoint came back: {}", after.json);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_naming_the_field() {
    let p = TestPipeline::builder().allow_loopback(false).start().await;
    let api = p.api(true);
    let cases = [
        (json!({"url": "https://example.com", "event_types": ["a"], "urll": 1}), "urll"),
        (json!({"url": "https://example.com", "event_types": ["order..x"]}), "event_types[0]"),
        (json!({"url": "http://example.com/h", "event_types": ["a"]}), "url"),
        (json!({"url": "ftp://example.com", "event_types": ["a"]}), "url"),
        (json!({"url": "https://127.0.0.1/h", "event_types": ["a"]}), "url"),
        (json!({"url": "https://[::ffff:169.254.169.254]/h", "event_types": ["a"]}), "url"),
        (json!({"url": "https://[fe80::1%25eth0]/h", "event_types": ["a"]}), "url"),
        (json!({"url": "https://2130706433/h", "event_types": ["a"]}), "url"),
        (json!({"url": "https://example.com", "event_types": []}), "event_types"),
        (json!({"url": "https://example.com", "event_types": ["a"], "secret": "nope"}), "secret"),
        (json!({"url": "https://example.com", "event_types": ["a"], "headers": {"webhook-id": "x"}}), "headers.webhook-id"),
        (json!({"url": "https://example.com", "event_types": ["a"], "retry_schedule": ["5 years"]}), "retry_schedule[0]"),
        (json!({"url": "https://example.com", "event_types": ["a"], "permanent_statuses": [200]}), "permanent_statuses[0]"),
        (json!({"url": "https://example.com", "event_types": ["a"], "rate_limit": {"per_second": 0}}), "rate_limit.per_second"),
        (json!({"event_types": ["a"]}), "url"),
    ];
    for (body, field) in cases {
        let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.json);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        let fields: Vec<&str> = r.json["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().expect("field")).collect();
        assert!(fields.contains(&field), "{body}: expected {field}, got {fields:?} ({})", r.json["detail"]);
    }
    let bad_json = api.call_raw(Method::POST, "/v1/endpoints", Some(ADMIN), Some("{not json"), &[]).await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    let no_type = api.call_raw(Method::POST, "/v1/events", Some(PUBLISH), None, &[]).await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"type": "a", "data": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let too_big = api.call_raw(Method::POST, "/v1/events", Some(PUBLISH), Some(&huge), &[]).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.headers["content-type"], "application/problem+json");
    let bad_query = api.call(Method::GET, "/v1/endpoints?limit=abc", Some(READ), None).await;
    assert_eq!(bad_query.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_reason = api.call(Method::GET, "/v1/dlq?reason=bogus", Some(READ), None).await;
    assert_eq!(bad_reason.json["errors"][0]["field"], "reason");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_scopes_give_401_and_403() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let none = api.call(Method::GET, "/v1/endpoints", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    assert_eq!(api.call(Method::GET, "/v1/endpoints", Some("hl_wrong"), None).await.status, StatusCode::UNAUTHORIZED);
    // Authentication comes before validation: a bad body without a token is still 401.
    assert_eq!(api.call(Method::POST, "/v1/endpoints", None, Some(json!({"bad": 1}))).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.call(Method::POST, "/v1/endpoints", Some(READ), Some(json!({}))).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call(Method::GET, "/v1/endpoints", Some(PUBLISH), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call(Method::POST, "/v1/events", Some(READ), Some(json!({"type": "a", "data": {}}))).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call(Method::GET, "/v1/endpoints", Some(READ), None).await.status, StatusCode::OK);
    assert_eq!(api.call(Method::GET, "/v1/dlq", Some(ADMIN), None).await.status, StatusCode::OK);
    // The spec is public.
    let spec = api.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(spec.json["openapi"], "3.1.0");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_delivers_once_per_idempotency_key_and_batches() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let sink = TestSink::start(&secret(1)).await;
    let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": sink.url("in"), "event_types": ["order.*"], "secret": sink.secret}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);

    let body = r#"{"type": "order.created", "data": {"amount" : 10.50, "note": "kept as sent"}}"#;
    let first = api.call_raw(Method::POST, "/v1/events", Some(PUBLISH), Some(body), &[("idempotency-key", "k1")]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    let again = api.call_raw(Method::POST, "/v1/events", Some(PUBLISH), Some(body), &[("idempotency-key", "k1")]).await;
    assert_eq!((again.status, again.json["id"].clone()), (StatusCode::ACCEPTED, first.json["id"].clone()));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let with_id = json!({"type": "order.paid", "data": {}, "id": "evt_caller_1"});
    for _ in 0..2 {
        assert_eq!(api.call(Method::POST, "/v1/events", Some(PUBLISH), Some(with_id.clone())).await.json["id"], "evt_caller_1");
    }

    let bad = api.call(Method::POST, "/v1/events/batch", Some(PUBLISH), Some(json!({"events": [{"type": "a", "data": 1}, {"type": "a..b", "data": 2}]}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json["errors"][0]["field"], "events[1].type");
    let batch = api
        .call(Method::POST, "/v1/events/batch", Some(PUBLISH), Some(json!({"events": [{"type": "order.a", "data": [1]}, {"type": "order.b", "data": "x", "id": "evt_caller_1"}]})))
        .await;
    assert_eq!(batch.status, StatusCode::ACCEPTED);
    assert_eq!(batch.json["ids"][1], "evt_caller_1", "a known id in a batch is accepted once");

    let first_id = first.json["id"].as_str().expect("id").to_owned();
    let ledger = sink.ledger.clone();
    eventually("three distinct events delivered", WAIT, || ledger.summary().unique == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.ledger.summary().received, 3, "no event was produced twice");
    let delivered = sink.ledger.received().into_iter().find(|r| r.webhook_id == first_id).expect("first event");
    assert_eq!(delivered.body, r#"{"amount" : 10.50, "note": "kept as sent"}"#.as_bytes(), "data arrives byte for byte");
    p.stop().await;
}

/// Standard Webhooks asymmetric signatures: an endpoint with an ed25519 secret key (`whsk_`)
/// gets `v1a` signatures that a receiver holding only the public key (`whpk_`) verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ed25519_endpoint_gets_v1a_signatures_its_public_key_verifies() {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let secret_key = hookline_core::signing::ed25519_secret_from_seed(&[44u8; 32]);
    let public_key = hookline_core::signing::SigningKey::from_secret(&secret_key).expect("key").public_key().expect("whpk_");
    let sink = TestSink::start(&public_key).await;
    let body = json!({"url": sink.url("ed"), "event_types": ["*"], "secret": secret_key});
    let created = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!((created.json["signing"].as_str(), created.json["public_key"].as_str()), (Some("ed25519"), Some(public_key.as_str())));

    p.publish(&[event("evt_ed", "order.created", "", r#"{"n":1}"#)]).await;
    let ledger = sink.ledger.clone();
    eventually("delivered and verified with the public key alone", WAIT, || ledger.count("evt_ed") == 1).await;
    assert_eq!(sink.ledger.summary().invalid_signatures, 0);
    // Checked again without Hookline's code: ed25519 over `id.timestamp.body`.
    let got = sink.ledger.received().into_iter().find(|r| r.webhook_id == "evt_ed").expect("delivery");
    let header = got.headers["webhook-signature"].to_str().expect("ascii").to_owned();
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = b64.decode(header.strip_prefix("v1a,").expect("a v1a signature")).expect("base64");
    let public: [u8; 32] = b64.decode(public_key.strip_prefix("whpk_").expect("whpk_")).expect("b64").try_into().expect("32 bytes");
    let content = [b"evt_ed.", got.headers["webhook-timestamp"].as_bytes(), b".", &got.body[..]].concat();
    ed25519_dalek::VerifyingKey::from_bytes(&public)
        .expect("public key")
        .verify(&content, &ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes"))
        .expect("ed25519 verifies");

    // A rotation keeps the scheme; a generated key pair comes with its public key.
    let id = created.json["id"].as_str().expect("id");
    let rotated = api.call(Method::POST, &format!("/v1/endpoints/{id}/secret/rotate"), Some(ADMIN), None).await;
    let new_public = rotated.json["public_key"].as_str().expect("public key").to_owned();
    assert!(rotated.json["secret"].as_str().is_some_and(|s| s.starts_with("whsk_")) && new_public != public_key, "{}", rotated.json);
    let made = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": sink.url("gen"), "event_types": ["*"], "signing": "ed25519"}))).await;
    let made_secret = made.json["secret"].as_str().expect("secret");
    assert_eq!(
        hookline_core::signing::SigningKey::from_secret(made_secret).expect("whsk_").public_key().as_deref(),
        made.json["public_key"].as_str()
    );
    let mismatch = json!({"url": sink.url("x"), "event_types": ["*"], "signing": "ed25519", "secret": secret(9)});
    let refused = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(mismatch)).await;
    assert_eq!((refused.status, refused.json["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("signing")));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_and_the_old_one_both_verify_during_the_window_then_only_the_new() {
    let p = TestPipeline::start().await;
    let api = p.api(false);
    let old = secret(21);
    let sink = TestSink::start(&old).await;
    let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": sink.url("r"), "event_types": ["*"], "secret": old}))).await;
    let id = r.json["id"].as_str().expect("id").to_owned();
    let rotated = api.call(Method::POST, &format!("/v1/endpoints/{id}/secret/rotate?grace_period_ms=4000"), Some(ADMIN), None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.json);
    let new = rotated.json["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    let read = api.call(Method::GET, &format!("/v1/endpoints/{id}/secret"), Some(ADMIN), None).await;
    assert_eq!(read.json["secret"], new.as_str());

    let verifies = |r: &hookline_sink::Received, s: &str| {
        let mut h = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            h.insert(name, r.headers[name].clone());
        }
        standardwebhooks::Webhook::new(s).expect("secret").verify(&r.body, &h).is_ok()
    };
    p.publish(&[event("evt_in_window", "order.created", "", "{}")]).await;
    let ledger = sink.ledger.clone();
    eventually("delivered in the window", WAIT, || ledger.count("evt_in_window") == 1).await;
    let during = sink.ledger.received().into_iter().find(|r| r.webhook_id == "evt_in_window").expect("delivery");
    assert_eq!(during.headers["webhook-signature"].to_str().expect("ascii").split(' ').count(), 2);
    assert!(verifies(&during, &old), "a receiver with only the old secret accepts during the window");
    assert!(verifies(&during, &new), "a receiver with only the new secret accepts");

    tokio::time::sleep(Duration::from_millis(4_200)).await;
    p.publish(&[event("evt_after_window", "order.created", "", "{}")]).await;
    // The sink knows only the old secret, so it now answers 401; what it received counts.
    eventually("sent after the window", WAIT, || sink.ledger.received().iter().any(|r| r.webhook_id == "evt_after_window")).await;
    let after = sink.ledger.received().into_iter().find(|r| r.webhook_id == "evt_after_window").expect("delivery");
    assert_eq!(after.headers["webhook-signature"].to_str().expect("ascii").split(' ').count(), 1);
    assert!(!verifies(&after, &old), "after the window the old secret no longer verifies");
    assert!(verifies(&after, &new));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_stats_dlq_and_send_test_are_served() {
    let p = TestPipeline::builder().retry_schedule(&["1s"]).breaker(100, 1_000).start().await;
    let api = p.api(false);
    let failing = FaultyReceiver::start(|_, _| Reply::Status(500)).await;
    let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": failing.url(), "event_types": ["order.*"]}))).await;
    let id = r.json["id"].as_str().expect("id").to_owned();
    p.publish(&[event("evt_hist", "order.created", "", "{}")]).await;
    p.dead_letters(1).await;

    let path = "/v1/events/evt_hist/attempts";
    eventually_async("both attempts in the history", WAIT, || async { api.call(Method::GET, path, Some(READ), None).await.json["data"].as_array().map_or(0, Vec::len) == 2 })
    .await;
    let by_endpoint = api.call(Method::GET, &format!("/v1/endpoints/{id}/attempts"), Some(READ), None).await;
    assert_eq!(by_endpoint.json["data"][0]["status"], 500);
    let stats = api.call(Method::GET, &format!("/v1/endpoints/{id}/stats"), Some(READ), None).await;
    assert_eq!((stats.json["attempts"].clone(), stats.json["success_rate"].clone()), (json!(2), json!(0.0)));
    let dlq_path = format!("/v1/dlq?endpoint_id={id}&reason=exhausted");
    eventually_async("the dead letter is browsable", WAIT, || async { api.call(Method::GET, &dlq_path, Some(READ), None).await.json["data"].as_array().map_or(0, Vec::len) == 1 })
    .await;
    let dead = api.call(Method::GET, &dlq_path, Some(READ), None).await;
    assert_eq!(dead.json["data"][0]["event_id"], "evt_hist");
    assert_eq!(dead.json["data"][0]["last_status"], 500);

    // send-test reaches an endpoint whatever it subscribes to.
    let sink = TestSink::start(&secret(30)).await;
    let r = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": sink.url("t"), "event_types": ["never.*"], "secret": sink.secret}))).await;
    let test_ep = r.json["id"].as_str().expect("id").to_owned();
    let sent = api.call_raw(Method::POST, &format!("/v1/endpoints/{test_ep}/test"), Some(ADMIN), None, &[]).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.json);
    let test_id = sent.json["id"].as_str().expect("id").to_owned();
    let ledger = sink.ledger.clone();
    eventually("the test event arrives", WAIT, || ledger.count(&test_id) == 1).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_blocked_by_policy_is_dead_lettered_and_visible_in_the_api() {
    let p = TestPipeline::builder().allow_loopback(false).start().await;
    let api = p.api(true);
    // Refused at creation ...
    let refused = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(json!({"url": "https://127.0.0.1:9/x", "event_types": ["*"]}))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // ... and at send time, for a URL that became refused after creation (DNS can change):
    // written straight to the topic here.
    p.put_endpoint(endpoint("rebound", "https://127.0.0.1:9/x", &["*"], "", &secret(40))).await;
    p.publish(&[event("evt_blocked", "order.created", "", "{}")]).await;
    p.dead_letters(1).await;
    let path = "/v1/dlq?reason=blocked_by_policy";
    eventually_async("visible in the API", WAIT, || async { api.call(Method::GET, path, Some(READ), None).await.json["data"].as_array().map_or(0, Vec::len) == 1 })
    .await;
    let dead = api.call(Method::GET, path, Some(READ), None).await;
    assert_eq!(dead.json["data"][0]["endpoint_id"], "rebound");
    assert!(dead.json["data"][0]["detail"].as_str().expect("detail").contains("loopback"));
    p.stop().await;
}
