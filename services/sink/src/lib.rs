//! `hookline sink`: a webhook receiver for trying Hookline and for tests. It verifies each
//! request's Standard Webhooks signature with the endpoint's secret(s), answers 204 (or
//! 401 for a bad signature, as a real receiver would), and keeps a ledger of what arrived:
//! per event id how often, when first, and (optionally) the body and headers.
//!
//! `GET /stats` returns the ledger's summary as JSON.

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
    pub unique: u64,
    pub duplicates: u64,
    pub invalid_signatures: u64,
    pub unverified: u64,
}

/// What the sink has seen.
#[derive(Default)]
pub struct Ledger {
    seen: DashMap<String, u32>,
    kept: parking_lot::Mutex<Vec<Received>>,
    received: AtomicU64,
    invalid: AtomicU64,
    unverified: AtomicU64,
}

impl Ledger {
    pub fn summary(&self) -> Summary {
        let received = self.received.load(Ordering::Relaxed);
        let unique = self.seen.len() as u64;
        Summary {
            received,
            unique,
            duplicates: self.seen.iter().map(|e| u64::from(e.value().saturating_sub(1))).sum(),
            invalid_signatures: self.invalid.load(Ordering::Relaxed),
            unverified: self.unverified.load(Ordering::Relaxed),
        }
    }

    /// How many valid requests carried `webhook_id`.
    pub fn count(&self, webhook_id: &str) -> u32 {
        self.seen.get(webhook_id).map_or(0, |c| *c)
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
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("secret {index}: {error}")]
    Secret { index: usize, error: hookline_core::signing::SecretError },
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
}

impl Sink {
    pub async fn bind(addr: SocketAddr, config: SinkConfig) -> Result<Self, SinkError> {
        let keys = config
            .secrets
            .iter()
            .enumerate()
            .map(|(index, s)| SigningKey::from_secret(s).map_err(|error| SinkError::Secret { index, error }))
            .collect::<Result<Vec<_>, _>>()?;
        let listener = TcpListener::bind(addr).await.map_err(|error| SinkError::Bind { addr, error })?;
        Ok(Self { listener, inner: Arc::new(Inner { keys, config, ledger: Arc::default() }) })
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
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await
    }
}

async fn stats(State(inner): State<Arc<Inner>>) -> Json<Summary> {
    Json(inner.ledger.summary())
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
        *ledger.seen.entry(webhook_id.clone()).or_insert(0) += 1;
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
        let sink = Sink::bind("127.0.0.1:0".parse().expect("addr"), SinkConfig { secrets: vec![SECRET.into()], keep_bodies: true, print: false })
            .await
            .expect("bind");
        let (addr, ledger) = (sink.local_addr(), sink.ledger());
        tokio::spawn(sink.serve(std::future::pending()));
        let key = SigningKey::from_secret(SECRET).expect("secret");
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
        let good = signature_header([&key], "evt_1", ts, b"{}");
        assert_eq!(post(addr, "evt_1", &good, "{}").await, 204);
        assert_eq!(post(addr, "evt_1", &good, "{}").await, 204);
        assert_eq!(post(addr, "evt_2", &good, "{}").await, 401, "signature made for another id");
        assert_eq!(
            ledger.summary(),
            Summary { received: 3, unique: 1, duplicates: 1, invalid_signatures: 1, unverified: 0 }
        );
        assert_eq!(ledger.count("evt_1"), 2);
        assert!(ledger.received().iter().filter(|r| r.signature_valid).count() == 2);
    }
}
