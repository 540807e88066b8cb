//! `hookline sink`: a webhook receiver for trying Hookline and for tests. It verifies each
//! request's Standard Webhooks signature with the endpoint's secret(s), answers 204 (or
//! 401 for a bad signature, as a real receiver would), and keeps a ledger of what arrived:
//! per event id how often, when first, and (optionally) the body and headers.
//!
//! Deliveries are counted per (path, `webhook-id`): with fan-out, one event reaches each
//! endpoint once. When the body is a JSON object with a numeric `latency_field` (Unix ms),
//! the end-to-end latency from that timestamp is recorded, overall and per second.
//!
//! `GET /stats` returns the ledger's summary as JSON, with the longest pause between two
//! consecutive deliveries (`max_gap`, millisecond resolution); `GET /stats?timeline=true`
//! adds the per-second series, `GET /stats?gaps=true` every pause of at least
//! [`GAP_KEPT_MS`] with its start and end, overall and per path (one path per endpoint), so a
//! harness can pick the pauses inside a window of its own.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use dashmap::DashMap;
use hookline_core::signing::{verify, SigningKey, DEFAULT_TOLERANCE_SECS};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// `whsec_...` secrets accepted; empty means "do not verify" (every request counts as
    /// unverified, and is still answered 204).
    pub secrets: Vec<String>,
    /// Keep every request's body and headers (tests); otherwise only counts and ids.
    pub keep_bodies: bool,
    /// Log one line per request.
    pub print: bool,
    /// Top-level JSON field of the body holding the event's creation time (Unix ms).
    pub latency_field: Option<String>,
    /// Serve HTTPS with this certificate chain and key (PEM files) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_chain: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

fn server_tls(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert_chain)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub webhook_id: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub signature_valid: bool,
    pub arrived_at_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub received: u64,
    /// Distinct (path, webhook-id) pairs accepted.
    pub unique: u64,
    pub duplicates: u64,
    pub invalid_signatures: u64,
    pub unverified: u64,
}

/// End-to-end latency in ms, from the event's own timestamp to arrival.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Second {
    /// Unix seconds.
    pub t: i64,
    pub delivered: u64,
    pub p99_ms: u64,
}

type Histogram = hdrhistogram::Histogram<u64>;

fn histogram() -> Histogram {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("static bounds are valid")
}

fn latency_of(h: &Histogram) -> Latency {
    Latency {
        count: h.len(),
        p50: h.value_at_quantile(0.50),
        p95: h.value_at_quantile(0.95),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    }
}

/// Seconds of timeline kept (about two hours).
const TIMELINE_SECONDS: usize = 7_200;

/// Pauses between consecutive deliveries at least this long are kept with their times.
pub const GAP_KEPT_MS: i64 = 100;
/// At most this many kept pauses, overall and per path (the longest win when full).
const GAPS_KEPT: usize = 10_000;
/// Paths (endpoints) followed one by one; deliveries to further paths count only overall.
const GAP_PATHS: usize = 1_000;

/// A pause: no delivery after `from_ms` until `to_ms` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
    pub ms: i64,
}

/// The pauses of one stream of deliveries (all of them, or one path's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gaps {
    #[serde(skip)]
    last_ms: Option<i64>,
    /// The longest pause between two consecutive deliveries.
    pub max: Option<Gap>,
    /// Every pause of at least [`GAP_KEPT_MS`], in order (bounded).
    pub kept: Vec<Gap>,
}

impl Gaps {
    fn arrived(&mut self, at_ms: i64) {
        let Some(last) = self.last_ms else {
            self.last_ms = Some(at_ms);
            return;
        };
        // Requests are handled concurrently: an arrival stamped before the latest one closes no pause.
        if at_ms <= last {
            return;
        }
        let gap = Gap { from_ms: last, to_ms: at_ms, ms: at_ms - last };
        self.last_ms = Some(at_ms);
        if self.max.is_none_or(|m| gap.ms > m.ms) {
            self.max = Some(gap);
        }
        if gap.ms >= GAP_KEPT_MS {
            if self.kept.len() >= GAPS_KEPT {
                // Full: drop the shortest kept pause if this one is longer.
                let Some((i, shortest)) = self.kept.iter().enumerate().min_by_key(|(_, g)| g.ms) else { return };
                if shortest.ms >= gap.ms {
                    return;
                }
                self.kept.remove(i);
            }
            self.kept.push(gap);
        }
    }
}

/// Pauses overall and per path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pauses {
    pub threshold_ms: i64,
    pub all: Gaps,
    pub paths: std::collections::BTreeMap<String, Gaps>,
}

/// What the sink has seen.
#[derive(Default)]
pub struct Ledger {
    /// Accepted deliveries per (path, id), by a 64-bit hash of the pair (bounded memory).
    pairs: DashMap<u64, u32>,
    /// Accepted deliveries per id (only with `keep_bodies`: tests look ids up).
    by_id: DashMap<String, u32>,
    kept: parking_lot::Mutex<Vec<Received>>,
    latency: parking_lot::Mutex<Option<Histogram>>,
    timeline: parking_lot::Mutex<std::collections::BTreeMap<i64, (u64, Histogram)>>,
    pauses: parking_lot::Mutex<Pauses>,
    received: AtomicU64,
    invalid: AtomicU64,
    unverified: AtomicU64,
}

impl Ledger {
    pub fn summary(&self) -> Summary {
        let received = self.received.load(Ordering::Relaxed);
        let unique = self.pairs.len() as u64;
        Summary {
            received,
            unique,
            duplicates: self.pairs.iter().map(|e| u64::from(e.value().saturating_sub(1))).sum(),
            invalid_signatures: self.invalid.load(Ordering::Relaxed),
            unverified: self.unverified.load(Ordering::Relaxed),
        }
    }

    /// How many valid requests carried `webhook_id` (counted only with `keep_bodies`).
    pub fn count(&self, webhook_id: &str) -> u32 {
        self.by_id.get(webhook_id).map_or(0, |c| *c)
    }

    pub fn latency(&self) -> Option<Latency> {
        self.latency.lock().as_ref().map(latency_of)
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.lock().iter().map(|(t, (n, h))| Second { t: *t, delivered: *n, p99_ms: h.value_at_quantile(0.99) }).collect()
    }

    /// The longest pause between two consecutive accepted deliveries (any path).
    pub fn max_gap(&self) -> Option<Gap> {
        self.pauses.lock().all.max
    }

    /// Every pause kept, overall and per path.
    pub fn pauses(&self) -> Pauses {
        Pauses { threshold_ms: GAP_KEPT_MS, ..self.pauses.lock().clone() }
    }

    fn record(&self, path: &str, id: &str, arrived_ms: i64, created_ms: Option<i64>, keep_id: bool) {
        {
            let mut pauses = self.pauses.lock();
            pauses.all.arrived(arrived_ms);
            if pauses.paths.contains_key(path) || pauses.paths.len() < GAP_PATHS {
                pauses.paths.entry(path.to_owned()).or_default().arrived(arrived_ms);
            }
        }
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (path, id).hash(&mut hasher);
        *self.pairs.entry(hasher.finish()).or_insert(0) += 1;
        if keep_id {
            *self.by_id.entry(id.to_owned()).or_insert(0) += 1;
        }
        let ms = created_ms.map(|c| (arrived_ms - c).max(1) as u64);
        if let Some(ms) = ms {
            let mut latency = self.latency.lock();
            let _ = latency.get_or_insert_with(histogram).record(ms.min(3_600_000));
        }
        let mut timeline = self.timeline.lock();
        let (n, h) = timeline.entry(arrived_ms / 1000).or_insert_with(|| (0, histogram()));
        *n += 1;
        if let Some(ms) = ms {
            let _ = h.record(ms.min(3_600_000));
        }
        while timeline.len() > TIMELINE_SECONDS {
            timeline.pop_first();
        }
    }

    /// Every kept request, in arrival order (only with `keep_bodies`).
    pub fn received(&self) -> Vec<Received> {
        self.kept.lock().clone()
    }
}

struct Inner {
    keys: Vec<SigningKey>,
    config: SinkConfig,
    ledger: Arc<Ledger>,
}

/// A bound, not yet serving, sink.
pub struct Sink {
    listener: TcpListener,
    inner: Arc<Inner>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("secret {index}: {error}")]
    Secret { index: usize, error: hookline_core::signing::SecretError },
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("tls: {0:#}")]
    Tls(anyhow::Error),
}

impl Sink {
    pub async fn bind(addr: SocketAddr, config: SinkConfig) -> Result<Self, SinkError> {
        let keys = config
            .secrets
            .iter()
            .enumerate()
            .map(|(index, s)| SigningKey::for_verifying(s).map_err(|error| SinkError::Secret { index, error }))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match &config.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_tls(files).map_err(SinkError::Tls)?))),
            None => None,
        };
        let listener = hookline_runtime::net::listen(addr).map_err(|error| SinkError::Bind { addr, error })?;
        Ok(Self { listener, inner: Arc::new(Inner { keys, config, ledger: Arc::default() }), tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        Arc::clone(&self.inner.ledger)
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let app = Router::new()
            .route("/stats", get(stats))
            .route("/healthz", get(|| async { "ok" }))
            .route("/", post(receive))
            .route("/{*path}", post(receive))
            .with_state(self.inner);
        let Some(acceptor) = self.tls else {
            return axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await;
        };
        // HTTPS: TLS handshake, then HTTP/1.1 or HTTP/2 (ALPN) on each connection.
        tokio::pin!(shutdown);
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => accepted?,
            };
            let (acceptor, service) = (acceptor.clone(), hyper_util::service::TowerToHyperService::new(app.clone()));
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    }
}

#[derive(serde::Deserialize)]
struct StatsQuery {
    #[serde(default)]
    timeline: bool,
    #[serde(default)]
    gaps: bool,
}

/// The ledger as JSON: counts, latency, and (on request) the per-second timeline.
#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    summary: Summary,
    latency_ms: Option<Latency>,
    max_gap: Option<Gap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Vec<Second>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gaps: Option<Pauses>,
}

async fn stats(State(inner): State<Arc<Inner>>, axum::extract::Query(q): axum::extract::Query<StatsQuery>) -> Json<Stats> {
    let ledger = &inner.ledger;
    Json(Stats {
        summary: ledger.summary(),
        latency_ms: ledger.latency(),
        max_gap: ledger.max_gap(),
        timeline: q.timeline.then(|| ledger.timeline()),
        gaps: q.gaps.then(|| ledger.pauses()),
    })
}

async fn receive(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let webhook_id = header("webhook-id");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let ledger = &inner.ledger;
    ledger.received.fetch_add(1, Ordering::Relaxed);
    let verdict = if inner.keys.is_empty() {
        ledger.unverified.fetch_add(1, Ordering::Relaxed);
        Ok(())
    } else {
        verify(
            &inner.keys,
            &webhook_id,
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &body,
            now_ms / 1000,
            DEFAULT_TOLERANCE_SECS,
        )
    };
    let valid = verdict.is_ok() && !inner.keys.is_empty();
    if inner.config.print {
        let outcome = match &verdict {
            Ok(()) if valid => "signature valid".to_owned(),
            Ok(()) => "not verified".to_owned(),
            Err(e) => format!("REJECTED: {e}"),
        };
        println!("{} {} {} bytes, {}", uri.path(), webhook_id, body.len(), outcome);
    }
    if verdict.is_ok() {
        let created = inner.config.latency_field.as_deref().and_then(|field| created_at(&body, field));
        ledger.record(uri.path(), &webhook_id, now_ms, created, inner.config.keep_bodies);
    } else {
        ledger.invalid.fetch_add(1, Ordering::Relaxed);
    }
    if inner.config.keep_bodies {
        ledger.kept.lock().push(Received {
            path: uri.path().to_owned(),
            webhook_id,
            headers,
            body,
            signature_valid: valid,
            arrived_at_ms: now_ms,
        });
    }
    if verdict.is_ok() { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED }
}

/// The numeric top-level `field` of a JSON object body.
fn created_at(body: &[u8], field: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Probe(std::collections::HashMap<String, serde_json::Value>);
    let Probe(map) = serde_json::from_slice(body).ok()?;
    map.get(field)?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::signing::signature_header;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    async fn post(addr: SocketAddr, id: &str, signature: &str, body: &'static str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
        let request = format!(
            "POST /hook HTTP/1.1\r\nhost: x\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response[9..12].parse().expect("status")
    }

    #[tokio::test]
    async fn verifies_signatures_and_counts_duplicates() {
        let config = SinkConfig { secrets: vec![SECRET.into()], keep_bodies: true, print: false, latency_field: Some("at".into()), tls: None };
        let sink = Sink::bind("127.0.0.1:0".parse().expect("addr"), config)
            .await
            .expect("bind");
        let (addr, ledger) = (sink.local_addr(), sink.ledger());
        tokio::spawn(sink.serve(std::future::pending()));
        let key = SigningKey::from_secret(SECRET).expect("secret");
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
        let body = Box::leak(format!(r#"{{"at": {}}}"#, ts * 1000 - 250).into_boxed_str());
        let good = signature_header([&key], "evt_1", ts, body.as_bytes());
        assert_eq!(post(addr, "evt_1", &good, body).await, 204);
        assert_eq!(post(addr, "evt_1", &good, body).await, 204);
        assert_eq!(post(addr, "evt_2", &good, "{}").await, 401, "signature made for another id");
        assert_eq!(
            ledger.summary(),
            Summary { received: 3, unique: 1, duplicates: 1, invalid_signatures: 1, unverified: 0 }
        );
        assert_eq!(ledger.count("evt_1"), 2);
        let latency = ledger.latency().expect("latency recorded from the body's timestamp");
        assert_eq!(latency.count, 2);
        assert!(latency.p50 >= 250 && latency.p50 < 2_000, "{latency:?}");
        assert_eq!(ledger.timeline().iter().map(|s| s.delivered).sum::<u64>(), 2);
        assert!(ledger.received().iter().filter(|r| r.signature_valid).count() == 2);
    }

    #[test]
    fn keeps_the_pauses_between_deliveries_overall_and_per_path() {
        let ledger = Ledger::default();
        assert_eq!(ledger.max_gap(), None);
        // /a at 1000, 1010, 1500 (a 490 ms pause), 1520; /b at 1005, then 2600 (1595 ms).
        for (path, id, at) in [("/a", "e1", 1_000), ("/b", "e1", 1_005), ("/a", "e2", 1_010), ("/a", "e3", 1_500), ("/a", "e4", 1_520)] {
            ledger.record(path, id, at, None, false);
        }
        // Stamped before the latest arrival (handled concurrently): closes no pause.
        ledger.record("/a", "e5", 1_505, None, false);
        ledger.record("/b", "e2", 2_600, None, false);
        let gap = |from_ms, to_ms| Gap { from_ms, to_ms, ms: to_ms - from_ms };
        assert_eq!(ledger.max_gap(), Some(gap(1_520, 2_600)), "overall: the longest pause between any two deliveries");
        let pauses = ledger.pauses();
        assert_eq!(pauses.threshold_ms, GAP_KEPT_MS);
        assert_eq!(pauses.all.kept, [gap(1_010, 1_500), gap(1_520, 2_600)]);
        assert_eq!(pauses.paths["/a"].max, Some(gap(1_010, 1_500)));
        assert_eq!(pauses.paths["/a"].kept, [gap(1_010, 1_500)]);
        assert_eq!(pauses.paths["/b"].max, Some(gap(1_005, 2_600)));
        let json = serde_json::to_value(&pauses).expect("json");
        assert_eq!(json["paths"]["/b"]["kept"][0]["ms"], 1_595);
    }

    #[test]
    fn a_full_list_of_pauses_keeps_the_longest() {
        let mut gaps = Gaps::default();
        let mut at = 0;
        for i in 0..GAPS_KEPT as i64 + 5 {
            at += GAP_KEPT_MS + i % 7;
            gaps.arrived(at);
        }
        at += 60_000;
        gaps.arrived(at);
        assert_eq!(gaps.kept.len(), GAPS_KEPT);
        assert_eq!(gaps.max.map(|g| g.ms), Some(60_000));
        assert!(gaps.kept.iter().any(|g| g.ms == 60_000), "the longest pause survives a full list");
    }
}
