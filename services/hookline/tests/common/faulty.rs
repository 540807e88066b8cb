//! A receiver whose answers a test scripts per request: statuses, `Retry-After`, hanging
//! past the sender's timeout. It records every request with its arrival time (the ledger).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hookline_runtime::shutdown::Shutdown;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// 429 or 503 with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// Never answer (the sender's timeout fires).
    Hang,
    /// Answer this status after this many milliseconds.
    Late(u16, u64),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub webhook_id: String,
    pub at: Instant,
    pub at_ms: i64,
    pub reply: Reply,
    pub body: Bytes,
    /// The `traceparent` header, if the sender sent one.
    pub traceparent: Option<String>,
    /// An ordered lane's `webhook-sequence` and `webhook-sequence-previous` headers.
    pub sequence: Option<i64>,
    pub previous_sequence: Option<i64>,
}

type Script = dyn Fn(&str, usize) -> Reply + Send + Sync;

struct Inner {
    script: Box<Script>,
    hits: Mutex<Vec<Hit>>,
    per_id: Mutex<HashMap<String, usize>>,
}

pub struct FaultyReceiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Shutdown,
}

impl FaultyReceiver {
    /// `script(webhook_id, n)` answers the `n`-th (0-based) request for that id.
    pub async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        let inner = Arc::new(Inner { script: Box::new(script), hits: Mutex::default(), per_id: Mutex::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/{*path}", post(receive)).with_state(Arc::clone(&inner));
        let stop = Shutdown::new();
        let s = stop.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await });
        Self { addr, inner, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().clone()
    }

    pub fn hits_for(&self, id: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.webhook_id == id).collect()
    }

    /// Requests answered 2xx, per webhook id.
    pub fn successes(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for h in self.hits() {
            if matches!(h.reply, Reply::Status(200..=299)) {
                *out.entry(h.webhook_id).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for FaultyReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let n = {
        let mut per = inner.per_id.lock();
        let c = per.entry(id.clone()).or_default();
        *c += 1;
        *c - 1
    };
    let reply = (inner.script)(&id, n);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let traceparent = header("traceparent");
    let number = |name: &str| header(name).and_then(|v| v.parse().ok());
    let (sequence, previous_sequence) = (number("webhook-sequence"), number("webhook-sequence-previous"));
    let at_ms = hookline_runtime::time::now_ms();
    let hit = Hit { webhook_id: id, at: Instant::now(), at_ms, reply, body, traceparent, sequence, previous_sequence };
    inner.hits.lock().push(hit);
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).expect("status").into_response(),
        Reply::RetryAfter(s, secs) => {
            (StatusCode::from_u16(s).expect("status"), [("retry-after", secs.to_string())]).into_response()
        }
        Reply::Late(s, ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::from_u16(s).expect("status").into_response()
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}
