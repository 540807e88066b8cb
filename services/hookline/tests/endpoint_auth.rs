//! Endpoint authentication beyond signatures, against the real Kafka broker: receivers
//! that require basic auth, a bearer token, an OAuth2 token (with its token endpoint), or a
//! TLS client certificate. Secrets are sealed (a key is configured), and neither the
//! endpoints topic, the attempt records nor the API views hold a clear password, token,
//! client secret or private key.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::Router;
use common::api::{ADMIN, READ};
use common::{endpoint, event, eventually, secret, TestPipeline};
use hookline_core::config::SecretsConfig;
use hookline_proto::v1;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const K1: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
const PASSWORD: &str = "pw-Xq7-basic";
const BEARER: &str = "bearer-Xq7-token";
const CLIENT_SECRET: &str = "cs-Xq7-client";

fn sealing() -> SecretsConfig {
    SecretsConfig {
        current_key: "k1".into(),
        keys: [("k1".to_string(), K1.to_string())].into(),
        keys_file: String::new(),
    }
}

/// A receiver that answers 204 to the `Authorization` values it accepts and 401 to others,
/// recording what each request carried.
#[derive(Default)]
struct Gate {
    accepted: Mutex<HashSet<String>>,
    /// (webhook-id, Authorization, status answered)
    hits: Mutex<Vec<(String, String, u16)>>,
}

impl Gate {
    fn accept(&self, authorization: &str) {
        self.accepted.lock().insert(authorization.to_owned());
    }

    fn revoke(&self, authorization: &str) {
        self.accepted.lock().remove(authorization);
    }

    fn answered(&self, id: &str, status: u16) -> usize {
        self.hits.lock().iter().filter(|(i, _, s)| i == id && *s == status).count()
    }

    fn authorizations(&self, id: &str) -> Vec<String> {
        self.hits.lock().iter().filter(|(i, ..)| i == id).map(|(_, a, _)| a.clone()).collect()
    }
}

async fn gate_handler(State(gate): State<Arc<Gate>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let status =
        if gate.accepted.lock().contains(&authorization) { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED };
    gate.hits.lock().push((id, authorization, status.as_u16()));
    status
}

/// An OAuth2 token endpoint: checks the client's Basic credentials, grants `tok-<n>` and
/// tells the receiver's gate to accept it.
struct TokenServer {
    gate: Arc<Gate>,
    client_basic: String,
    expires_in: AtomicU64,
    /// Answer this status instead of a token (0: grant).
    fail_with: AtomicU16,
    grants: AtomicUsize,
    /// The form bodies received (to check the grant type and scope).
    forms: Mutex<Vec<String>>,
}

async fn token_handler(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    server.forms.lock().push(body);
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let failing = server.fail_with.load(Ordering::SeqCst);
    if failing != 0 {
        return (
            StatusCode::from_u16(failing).expect("status"),
            json!({"error": "temporarily_unavailable"}).to_string(),
        );
    }
    if given != server.client_basic {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "bad secret"}).to_string(),
        );
    }
    let n = server.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("tok-{n}");
    server.gate.accept(&format!("Bearer {token}"));
    let expires_in = server.expires_in.load(Ordering::SeqCst);
    (StatusCode::OK, json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}).to_string())
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

async fn gate() -> (Arc<Gate>, SocketAddr) {
    let gate = Arc::new(Gate::default());
    let addr = serve(Router::new().route("/{*path}", post(gate_handler)).with_state(Arc::clone(&gate))).await;
    (gate, addr)
}

/// Every record value of a single-partition topic so far.
async fn raw_records(p: &TestPipeline, topic: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &p.config.kafka.bootstrap_servers)
        .create()
        .expect("consumer");
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks");
    let records = p.read(topic, 1, high as usize, Duration::from_secs(20)).await;
    records.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect::<Vec<_>>().join("\n")
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, BEARER, CLIENT_SECRET, "PRIVATE KEY", "tok-1", "tok-2"] {
        assert!(!text.contains(secret), "{what} holds {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_bearer_auth_are_sent_and_never_shown() {
    let p = TestPipeline::builder().secrets(sealing()).start().await;
    let api = p.api(false);
    let (basic, basic_addr) = gate().await;
    basic.accept(&format!("Basic {}", base64_encode(&format!("ops:{PASSWORD}"))));
    let (bearer, bearer_addr) = gate().await;
    bearer.accept(&format!("Bearer {BEARER}"));

    let create = |url: String, auth: serde_json::Value| json!({"url": url, "event_types": ["order.*"], "auth": auth});
    let made = api
        .call(
            Method::POST,
            "/v1/endpoints",
            Some(ADMIN),
            Some(create(
                format!("http://{basic_addr}/b"),
                json!({"kind": "basic", "username": "ops", "password": PASSWORD}),
            )),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    assert_eq!(
        made.json["auth"],
        json!({"kind": "basic", "username": "ops"}),
        "the view shows the kind and the username only"
    );
    let made = api
        .call(
            Method::POST,
            "/v1/endpoints",
            Some(ADMIN),
            Some(create(format!("http://{bearer_addr}/t"), json!({"kind": "bearer", "token": BEARER}))),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    let bearer_id = made.json["id"].as_str().expect("id").to_owned();

    // Refused with the field: an Authorization header next to auth, a colon in a username.
    let mut both = create(format!("http://{basic_addr}/b"), json!({"kind": "bearer", "token": BEARER}));
    both["headers"] = json!({"Authorization": "Bearer other"});
    let refused = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(both)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json["errors"][0]["field"], "headers.Authorization", "{}", refused.json);
    let colon = create(format!("http://{basic_addr}/b"), json!({"kind": "basic", "username": "a:b", "password": "x"}));
    let refused = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(colon)).await;
    assert_eq!(refused.json["errors"][0]["field"], "auth.basic.username", "{}", refused.json);

    p.publish(&[event("evt_auth_1", "order.created", "", "{}")]).await;
    eventually("both receivers accept evt_auth_1", WAIT, || {
        basic.answered("evt_auth_1", 204) == 1 && bearer.answered("evt_auth_1", 204) == 1
    })
    .await;
    assert_eq!(basic.answered("evt_auth_1", 401) + bearer.answered("evt_auth_1", 401), 0);

    // Removing the auth (PATCH null): the receiver refuses the next delivery.
    let patched =
        api.call(Method::PATCH, &format!("/v1/endpoints/{bearer_id}"), Some(ADMIN), Some(json!({"auth": null}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert!(patched.json["auth"].is_null());
    p.publish(&[event("evt_auth_2", "order.created", "", "{}")]).await;
    eventually("the bearer receiver refuses evt_auth_2 without a token", WAIT, || {
        bearer.answered("evt_auth_2", 401) >= 1
    })
    .await;
    assert_eq!(bearer.authorizations("evt_auth_2")[0], "");

    let views = api.call(Method::GET, "/v1/endpoints", Some(READ), None).await.json.to_string();
    assert_no_secret("the endpoint list", &views);
    assert_no_secret("the endpoints topic", &raw_records(&p, &p.config.topics().endpoints).await);
    let attempts = p.attempts(3).await;
    assert_no_secret("attempt records", &format!("{attempts:?}"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_are_cached_refreshed_on_expiry_and_after_a_401() {
    let p = TestPipeline::builder().secrets(sealing()).retry_schedule(&["1s"]).start().await;
    let (receiver, receiver_addr) = gate().await;
    let tokens = Arc::new(TokenServer {
        gate: Arc::clone(&receiver),
        client_basic: format!("Basic {}", base64_encode(&format!("hookline:{CLIENT_SECRET}"))),
        expires_in: AtomicU64::new(3600),
        fail_with: AtomicU16::new(0),
        grants: AtomicUsize::new(0),
        forms: Mutex::default(),
    });
    let token_addr = serve(Router::new().route("/token", post(token_handler)).with_state(Arc::clone(&tokens))).await;
    let oauth2 = |client_secret: &str| {
        let mut ep = endpoint("oauth", &format!("http://{receiver_addr}/hook"), &["order.*"], "", &secret(71));
        ep.auth = Some(v1::EndpointAuth {
            kind: Some(v1::endpoint_auth::Kind::Oauth2(v1::OAuth2ClientCredentials {
                token_url: format!("http://{token_addr}/token"),
                client_id: "hookline".into(),
                client_secret: client_secret.into(),
                scope: "webhooks:write".into(),
                audience: String::new(),
            })),
        });
        ep
    };
    p.put_endpoint(oauth2(CLIENT_SECRET)).await;

    // One token serves several deliveries.
    p.publish(&[event("evt_o1", "order.created", "", "{}"), event("evt_o2", "order.created", "", "{}")]).await;
    eventually("evt_o1 and evt_o2 accepted", WAIT, || {
        receiver.answered("evt_o1", 204) == 1 && receiver.answered("evt_o2", 204) == 1
    })
    .await;
    assert_eq!(tokens.grants.load(Ordering::SeqCst), 1, "the token is cached");
    assert_eq!(receiver.authorizations("evt_o2"), ["Bearer tok-1"]);
    let form = tokens.forms.lock()[0].clone();
    assert!(form.contains("grant_type=client_credentials") && form.contains("scope=webhooks%3Awrite"), "{form}");

    // The receiver stops accepting tok-1 before it expires: a 401, a new token, and the
    // same attempt succeeds.
    receiver.revoke("Bearer tok-1");
    p.publish(&[event("evt_o3", "order.created", "", "{}")]).await;
    eventually("evt_o3 accepted with a fresh token", WAIT, || receiver.answered("evt_o3", 204) == 1).await;
    assert_eq!(receiver.authorizations("evt_o3"), ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(tokens.grants.load(Ordering::SeqCst), 2);

    // Short-lived tokens are fetched again once (about) expired.
    tokens.expires_in.store(1, Ordering::SeqCst);
    receiver.revoke("Bearer tok-2");
    p.publish(&[event("evt_o4", "order.created", "", "{}")]).await;
    eventually("evt_o4 accepted", WAIT, || receiver.answered("evt_o4", 204) == 1).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    p.publish(&[event("evt_o5", "order.created", "", "{}")]).await;
    eventually("evt_o5 accepted", WAIT, || receiver.answered("evt_o5", 204) == 1).await;
    assert_eq!(receiver.authorizations("evt_o5"), ["Bearer tok-4"], "fetched anew after expiry, no 401 first");

    // A token endpoint that fails with 503 is a retryable attempt failure...
    tokens.fail_with.store(503, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    p.publish(&[event("evt_o6", "order.created", "", "{}")]).await;
    let dead = p.dead_letters(1).await;
    let last = dead[0].last_attempt.clone().expect("last attempt");
    assert_eq!(last.event_id, "evt_o6");
    assert_eq!(last.outcome(), v1::Outcome::Retryable, "{last:?}");
    assert_eq!(last.attempt, 2, "retried through the schedule");
    assert_eq!(last.error, "oauth2 token endpoint answered HTTP 503 (temporarily_unavailable)");
    assert_eq!(receiver.authorizations("evt_o6").len(), 0, "nothing sent without a token");

    // ... and a wrong client secret (401 invalid_client) fails the delivery at once.
    tokens.fail_with.store(0, Ordering::SeqCst);
    p.put_endpoint(oauth2("wrong-secret")).await;
    p.publish(&[event("evt_o7", "order.created", "", "{}")]).await;
    let dead = p.dead_letters(2).await;
    assert_eq!(dead[1].reason(), v1::DeadLetterReason::PermanentFailure);
    let last = dead[1].last_attempt.clone().expect("last attempt");
    assert_eq!((last.event_id.as_str(), last.attempt), ("evt_o7", 1));
    assert!(last.error.starts_with("oauth2 token endpoint answered HTTP 401 (invalid_client)"), "{}", last.error);

    assert_no_secret("the endpoints topic", &raw_records(&p, &p.config.topics().endpoints).await);
    let attempts = p.attempts(8).await;
    assert_no_secret("attempt records", &format!("{attempts:?}"));
    assert_no_secret("dead letters", &format!("{dead:?}"));
    let view = p.api(false).call(Method::GET, "/v1/endpoints/oauth", Some(READ), None).await;
    assert_eq!(view.json["auth"]["kind"], "oauth2");
    assert_eq!(view.json["auth"]["client_id"], "hookline");
    assert_no_secret("the endpoint view", &view.json.to_string());
    assert!(!view.json.to_string().contains("wrong-secret"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_only_to_its_endpoint_and_rotates() {
    let dir = std::env::temp_dir().join(format!("hookline-endpoint-auth-{}", uuid::Uuid::new_v4().simple()));
    let (ca, tls) = common::test_ca(&dir);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("test-ca file");
    let receiver = MtlsReceiver::start(&ca, &tls).await;
    let p = TestPipeline::builder()
        .secrets(sealing())
        .endpoint_ca_file(&ca.display().to_string())
        .retry_schedule(&["1s"])
        .start()
        .await;
    let api = p.api(false);

    // The API refuses a key of another certificate, naming the field.
    let mismatched = json!({
        "url": receiver.url("m"), "event_types": ["order.*"],
        "client_certificate": {"certificate_pem": read("client.pem"), "private_key_pem": read("client2.key")},
    });
    let refused = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(mismatched)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json["errors"][0]["field"], "client_certificate.private_key_pem", "{}", refused.json);

    let body = json!({
        "url": receiver.url("m"), "event_types": ["order.*"],
        "client_certificate": {"certificate_pem": read("client.pem"), "private_key_pem": read("client.key")},
    });
    let made = api.call(Method::POST, "/v1/endpoints", Some(ADMIN), Some(body)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    let id = made.json["id"].as_str().expect("id").to_owned();
    assert!(made.json["client_certificate"]["sha256"].as_str().is_some_and(|s| s.len() == 95), "{}", made.json);
    // The same receiver without a certificate: its handshake fails.
    p.put_endpoint(endpoint("no-cert", &receiver.url("n"), &["order.*"], "", &secret(72))).await;

    p.publish(&[event("evt_m1", "order.created", "", "{}")]).await;
    eventually("evt_m1 delivered over mTLS", WAIT, || receiver.clients_of("evt_m1") == ["hookline-test-client"]).await;
    let dead = p.dead_letters(1).await;
    let last = dead[0].last_attempt.clone().expect("last attempt");
    assert_eq!(last.endpoint_id, "no-cert");
    assert!(last.status == 0 && !last.error.is_empty(), "{last:?}");

    // Rotation: the next delivery presents the new certificate.
    let rotate =
        json!({"client_certificate": {"certificate_pem": read("client2.pem"), "private_key_pem": read("client2.key")}});
    let rotated = api.call(Method::PATCH, &format!("/v1/endpoints/{id}"), Some(ADMIN), Some(rotate)).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.json);
    assert_ne!(rotated.json["client_certificate"]["sha256"], made.json["client_certificate"]["sha256"]);
    p.publish(&[event("evt_m2", "order.created", "", "{}")]).await;
    eventually("evt_m2 delivered with the rotated certificate", WAIT, || {
        receiver.clients_of("evt_m2") == ["hookline-test-client2"]
    })
    .await;

    let topic = raw_records(&p, &p.config.topics().endpoints).await;
    assert!(topic.contains("BEGIN CERTIFICATE"), "the certificate is public and stays clear");
    assert_no_secret("the endpoints topic", &topic);
    assert_no_secret("the endpoint view", &rotated.json.to_string());
    assert_no_secret("attempt records", &format!("{:?}", p.attempts(3).await));
    p.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An HTTPS receiver that requires a client certificate signed by the test CA and records
/// the certificate's common name per delivery.
struct MtlsReceiver {
    addr: SocketAddr,
    /// (webhook-id, client CN)
    hits: Arc<Mutex<Vec<(String, String)>>>,
}

impl MtlsReceiver {
    async fn start(ca: &std::path::Path, tls: &hookline_sink::TlsFiles) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
            roots.add(cert.expect("ca cert")).expect("root");
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .expect("verifier");
        let chain = CertificateDer::pem_file_iter(&tls.cert_chain)
            .expect("chain")
            .collect::<Result<Vec<_>, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_file(&tls.key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let recorded = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, hits) = (acceptor.clone(), Arc::clone(&recorded));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let client = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(common_name)
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let id = request
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        hits.lock().push((id, client.clone()));
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Empty::<bytes::Bytes>::new(),
                            ))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}/{path}", self.addr)
    }

    fn clients_of(&self, id: &str) -> Vec<String> {
        self.hits.lock().iter().filter(|(i, _)| i == id).map(|(_, c)| c.clone()).collect()
    }
}

/// The CN of a certificate made by scripts/test-ca.sh (found by its text, which is enough
/// for these names).
fn common_name(cert: &rustls::pki_types::CertificateDer<'_>) -> String {
    let der = cert.as_ref();
    ["hookline-test-client2", "hookline-test-client"]
        .iter()
        .find(|name| der.windows(name.len()).any(|w| w == name.as_bytes()))
        .map_or_else(String::new, |name| name.to_string())
}
