//! What the console and the portal read and do, through the API on the real Kafka broker:
//! the event log with each fan-out and its attempts (request headers, next retry), dead
//! letters paged through with cursors, one dead letter replayed by id, and a portal session
//! that sees its tenant and nothing else, whatever it asks for.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{ADMIN, READ};
use common::faulty::{FaultyReceiver, Reply};
use common::{endpoint, event, eventually_async, secret, TestPipeline, TestSink};
use hookline_runtime::time::now_ms;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["data"].as_array().map(|a| a.iter().filter_map(|x| x[field].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_dead_letters_and_a_portal_session_scoped_to_its_tenant() {
    let p = TestPipeline::builder().retry_schedule(&["1s"]).breaker(100, 1_000).start().await;
    let api = p.api(false);
    let _worker = p.replay_worker();
    let fixed = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fixed);
    let acme_rx = FaultyReceiver::start(move |_, _| Reply::Status(if f.load(Ordering::Acquire) { 200 } else { 500 })).await;
    let globex_rx = TestSink::start(&secret(52)).await;
    p.put_endpoint(endpoint("acme_ep", &acme_rx.url(), &["order.*"], "acme", &secret(51))).await;
    p.put_endpoint(endpoint("globex_ep", &globex_rx.url("g"), &["order.*"], "globex", &globex_rx.secret)).await;

    let from = now_ms();
    let acme: Vec<_> = (0..5).map(|i| event(&format!("evt_acme_{i}"), "order.created", "acme", "{}")).collect();
    p.publish(&acme).await;
    p.publish(&[event("evt_globex", "order.created", "globex", "{}")]).await;
    p.dead_letters(5).await;

    // The event log: the failed event's fan-out, its attempts with the headers sent and
    // the retry that was due, then dead. The dead letters and the attempts come on two
    // topics: the log may show an event dead a moment before it has read its last attempt.
    let log = "/v1/events?tenant=acme&status=dead";
    eventually_async("five dead acme events in the log, each with both attempts", WAIT, || async {
        let page = api.call(Method::GET, log, Some(READ), None).await.json;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        data.len() == 5 && data.iter().all(|e| e["deliveries"][0]["attempts"] == 2)
    })
    .await;
    let one = api.call(Method::GET, "/v1/events?event_id=evt_acme_0", Some(READ), None).await.json;
    assert_eq!(one["data"][0]["deliveries"][0]["endpoint_id"], "acme_ep", "{one}");
    assert_eq!(one["data"][0]["deliveries"][0]["attempts"], 2, "{one}");
    let attempts = api.call(Method::GET, "/v1/events/evt_acme_0/attempts", Some(READ), None).await.json;
    let first = &attempts["data"][0];
    assert_eq!(first["request_headers"]["webhook-id"], "evt_acme_0", "{first}");
    assert!(first["request_headers"]["webhook-signature"].as_str().is_some_and(|s| s.starts_with("v1,")), "{first}");
    assert!(first["next_attempt_at"].as_i64().is_some_and(|t| t > first["at"].as_i64().unwrap_or(0)), "{first}");
    assert!(attempts["data"][1]["next_attempt_at"].is_null(), "the last attempt has no retry: {attempts}");
    eventually_async("globex delivered", WAIT, || async {
        api.call(Method::GET, "/v1/events?status=delivered", Some(READ), None).await.json["data"][0]["event_id"] == "evt_globex"
    })
    .await;

    // The endpoint list carries each endpoint's stats when asked (one call for a page).
    let listed = api.call(Method::GET, "/v1/endpoints?stats_window_ms=3600000", Some(READ), None).await.json;
    assert_eq!(listed["stats"]["acme_ep"]["success_rate"], json!(0.0), "{listed}");
    assert_eq!(listed["stats"]["acme_ep"]["attempts"], 10, "{listed}");

    // Dead letters, two at a time, each exactly once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/dlq?endpoint_id=acme_ep&limit=2&after={a}"),
            None => "/v1/dlq?endpoint_id=acme_ep&limit=2".to_owned(),
        };
        let page = api.call(Method::GET, &path, Some(READ), None).await.json;
        seen.extend(ids(&page, "event_id"));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("evt_acme_{i}")).collect::<Vec<_>>());
    let bad = api.call(Method::GET, "/v1/dlq?after=nope", Some(READ), None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A portal session for acme: view and replay.
    let made = api
        .call(Method::POST, "/v1/portal/sessions", Some(ADMIN), Some(json!({"tenant": "acme", "permissions": ["replay"], "ttl_seconds": 600})))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    let token = made.json["token"].as_str().expect("token").to_owned();
    assert!(made.json["url"].as_str().expect("url").ends_with(&format!("/portal/#session={token}")));
    let session = Some(token.as_str());
    let me = api.call(Method::GET, "/v1/me", session, None).await.json;
    assert_eq!((me["kind"].clone(), me["tenant"].clone()), (json!("portal"), json!("acme")), "{me}");

    // It sees acme only ...
    assert_eq!(ids(&api.call(Method::GET, "/v1/endpoints", session, None).await.json, "id"), ["acme_ep"]);
    let events = ids(&api.call(Method::GET, "/v1/events", session, None).await.json, "event_id");
    assert!(events.len() == 5 && events.iter().all(|e| e.starts_with("evt_acme")), "{events:?}");
    assert!(ids(&api.call(Method::GET, "/v1/dlq", session, None).await.json, "event_id").iter().all(|e| e.starts_with("evt_acme")));
    let types = api.call(Method::GET, "/v1/stats/event-types", session, None).await.json;
    assert!(types["data"].as_array().expect("types").iter().all(|t| t["tenant"] == "acme"), "{types}");
    // ... and reaches nothing of globex's, whatever it sends.
    for path in ["/v1/endpoints/globex_ep", "/v1/endpoints/globex_ep/attempts", "/v1/endpoints/globex_ep/stats", "/v1/endpoints/globex_ep/series"] {
        assert_eq!(api.call(Method::GET, path, session, None).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/v1/endpoints?tenant=globex", "/v1/events?tenant=globex", "/v1/dlq?tenant=globex"] {
        assert_eq!(api.call(Method::GET, path, session, None).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(api.call(Method::GET, "/v1/events/evt_globex/attempts", session, None).await.json["data"], json!([]));
    // Its permissions hold: no endpoint changes, no secrets, no pipeline-wide views.
    let denied = [
        (Method::POST, "/v1/endpoints", Some(json!({"url": "https://example.com/x", "event_types": ["*"], "tenant": "acme"}))),
        (Method::GET, "/v1/endpoints/acme_ep/secret", None),
        (Method::POST, "/v1/endpoints/acme_ep/secret/rotate", None),
        (Method::PATCH, "/v1/endpoints/globex_ep", Some(json!({"enabled": false}))),
        (Method::POST, "/v1/portal/sessions", Some(json!({"tenant": "globex"}))),
        (Method::GET, "/v1/stats/throughput", None),
        (Method::POST, "/v1/events", Some(json!({"type": "order.created", "data": {}}))),
    ];
    for (method, path, body) in denied {
        let r = api.call(method.clone(), path, session, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.json);
    }
    let other_tenant = json!({"source": "dlq", "endpoint_id": "globex_ep", "from": from});
    assert_eq!(api.call(Method::POST, "/v1/replays", session, Some(other_tenant)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A forged or expired session is refused.
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(api.call(Method::GET, "/v1/me", Some(&forged), None).await.status, StatusCode::UNAUTHORIZED);

    // One dead letter replayed by its event id, from the portal, once the receiver works.
    fixed.store(true, Ordering::Release);
    let job = api
        .call(Method::POST, "/v1/replays", session, Some(json!({"source": "dlq", "event_ids": ["evt_acme_3"], "from": from, "rate_per_second": 100})))
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.json);
    assert_eq!(job.json["tenant"], "acme");
    let job_path = format!("/v1/replays/{}", job.json["id"].as_str().expect("id"));
    eventually_async("the replay completes", WAIT, || async { api.call(Method::GET, &job_path, session, None).await.json["state"] == "completed" }).await;
    let done = api.call(Method::GET, &job_path, session, None).await.json;
    assert_eq!(done["progress"]["replayed"], 1, "{done}");
    eventually_async("the replayed event is delivered", WAIT, || async { acme_rx.successes().get("evt_acme_3").is_some_and(|n| *n >= 1) }).await;
    assert_eq!(acme_rx.successes().len(), 1, "only the one chosen");
    // Admin jobs without a tenant are not the portal's to see.
    let admin_job = api.call(Method::POST, "/v1/replays", Some(ADMIN), Some(json!({"source": "dlq", "endpoint_id": "globex_ep", "from": from}))).await;
    assert_eq!(admin_job.status, StatusCode::ACCEPTED, "{}", admin_job.json);
    let listed = ids(&api.call(Method::GET, "/v1/replays", session, None).await.json, "id");
    assert_eq!(listed, [job.json["id"].as_str().expect("id")]);
    // Jobs page with a cursor too, newest first.
    let first = api.call(Method::GET, "/v1/replays?limit=1", Some(READ), None).await.json;
    assert_eq!(ids(&first, "id"), [admin_job.json["id"].as_str().expect("id")], "{first}");
    let cursor = first["next"].as_str().expect("a second page");
    let second = api.call(Method::GET, &format!("/v1/replays?limit=1&after={cursor}"), Some(READ), None).await.json;
    assert_eq!(ids(&second, "id"), listed);
    assert!(second["next"].is_null(), "{second}");
    p.stop().await;
}
