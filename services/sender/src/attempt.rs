//! One delivery attempt: build the signed request, send it, classify what happened.
//! An endpoint's `auth` adds `Authorization` (an OAuth2 token answered by 401 is fetched
//! again and the request sent once more, within the same attempt); an endpoint with a
//! client certificate is sent through its own client ([`EndpointClients`]).

use crate::auth::{Authenticator, Credential};
use crate::client::{blocked_cause, EndpointClients, HttpClient};
use hookline_core::endpoint_auth::{after_response, AfterResponse};
use bytes::Bytes;
use hookline_core::address::AddressPolicy;
use hookline_core::outcome::{classify_status, parse_retry_after_secs, Class};
use hookline_core::signing::signature_header;
use hookline_proto::v1;
use hookline_runtime::registry::{EndpointEntry, Target};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Response bytes kept in the attempt record.
const EXCERPT_BYTES: usize = 256;
/// Response bytes read at most (reading the body lets the connection be reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Headers the endpoint's custom headers may not override.
/// The `User-Agent` of every delivery.
pub const USER_AGENT_VALUE: &str = concat!("hookline/", env!("CARGO_PKG_VERSION"));

const RESERVED: &[&str] = &[
    "host", "content-length", "content-type", "transfer-encoding", "connection", "user-agent",
    "webhook-id", "webhook-timestamp", "webhook-signature", "webhook-sequence", "webhook-sequence-previous",
];

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub class: Class,
    /// 0 when no response arrived.
    pub status: u16,
    pub latency: Duration,
    pub error: String,
    pub excerpt: Vec<u8>,
    /// The request's headers as sent, credentials redacted.
    pub request_headers: RecordedHeaders,
}

impl AttemptReport {
    fn failed(class: Class, latency: Duration, error: String) -> Self {
        Self { class, status: 0, latency, error, excerpt: Vec::new(), request_headers: RecordedHeaders::default() }
    }
}

pub struct Attempter {
    client: HttpClient,
    policy: Arc<AddressPolicy>,
    default_timeout: Duration,
    user_agent: HeaderValue,
    auth: Authenticator,
    /// Clients of endpoints with a client certificate (none: such endpoints fail).
    endpoint_clients: Option<EndpointClients>,
}

impl Attempter {
    pub fn new(client: HttpClient, policy: Arc<AddressPolicy>, default_timeout: Duration) -> Self {
        let user_agent = HeaderValue::from_static(USER_AGENT_VALUE);
        let auth = Authenticator::new(client.clone(), Arc::clone(&policy), default_timeout, user_agent.clone());
        Self { client, policy, default_timeout, user_agent, auth, endpoint_clients: None }
    }

    /// Sends to endpoints with a client certificate through clients built by `clients`.
    pub fn with_endpoint_clients(mut self, clients: EndpointClients) -> Self {
        self.endpoint_clients = Some(clients);
        self
    }

    /// The client for `entry`'s connections: its own when it has a client certificate
    /// (`None`: the shared one).
    fn endpoint_client(&self, entry: &EndpointEntry) -> Result<Option<HttpClient>, String> {
        let id = &entry.endpoint.id;
        match (&entry.client_identity, &self.endpoint_clients) {
            (Some(identity), Some(clients)) => clients
                .client(id, identity)
                .map(Some)
                .map_err(|e| format!("client_certificate: cannot be used: {e}")),
            (Some(_), None) => Err("client_certificate: this sender builds no per-endpoint clients".into()),
            (None, Some(clients)) => {
                // A certificate removed from the endpoint: its client goes.
                if !clients.is_empty() {
                    clients.forget(id);
                }
                Ok(None)
            }
            (None, None) => Ok(None),
        }
    }

    /// One attempt of `event` to `url`: the endpoint's `url` or its `failover_url`, signed
    /// and checked the same way.
    pub async fn attempt(
        &self,
        entry: &EndpointEntry,
        url: &str,
        event: &v1::Event,
        now_ms: i64,
        traceparent: Option<&str>,
        extra: &[(&'static str, String)],
    ) -> AttemptReport {
        let started = Instant::now();
        let mut retried = false;
        // The URL as the registry parsed it, once for the attempt.
        let target = entry.target(url);
        loop {
            let credential = match self.auth.credential(&entry.endpoint).await {
                Ok(c) => c,
                Err(e) => return AttemptReport::failed(e.class(), started.elapsed(), e.to_string()),
            };
            let request = match self.request(entry, url, target, event, now_ms, traceparent, extra) {
                Ok(r) => r,
                Err(report) => return report,
            };
            let report = self.send(entry, request, target.and_then(|t| t.host.as_ref()), &credential, started).await;
            match credential.oauth2_token() {
                Some(token) if after_response(report.status, retried) == AfterResponse::RefreshAndRetry => {
                    tracing::debug!(endpoint_id = %entry.endpoint.id, "endpoint answered 401: fetching a new oauth2 token");
                    self.auth.rejected(&entry.endpoint, token).await;
                    retried = true;
                }
                _ => return report,
            }
        }
    }

    /// Sends one request of the attempt, with `credential` as its `Authorization`.
    async fn send(
        &self,
        entry: &EndpointEntry,
        mut request: Request<Full<Bytes>>,
        host: Option<&HeaderValue>,
        credential: &Credential,
        started: Instant,
    ) -> AttemptReport {
        let endpoint = &entry.endpoint;
        if let Some(value) = credential.header() {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        let own_client = match self.endpoint_client(entry) {
            Ok(c) => c,
            Err(error) => return AttemptReport::failed(Class::Permanent, started.elapsed(), error),
        };
        let client = own_client.as_ref().unwrap_or(&self.client);
        let request_headers = RecordedHeaders::of(request.headers());
        // After the recording, which shows the headers Hookline chose, as before.
        if let Some(host) = host {
            request.headers_mut().insert(HOST, host.clone());
        }
        let timeout = match endpoint.limits.as_ref().map(|l| l.timeout_ms) {
            Some(ms) if ms > 0 => Duration::from_millis(u64::from(ms)),
            _ => self.default_timeout,
        };
        let report = match tokio::time::timeout(timeout, exchange(client, request, MAX_RESPONSE_BYTES)).await {
            Err(_) => AttemptReport::failed(
                Class::Retryable { retry_after: None },
                started.elapsed(),
                format!("timed out after {} ms", timeout.as_millis()),
            ),
            Ok(Err(error)) => {
                let class = if blocked_cause(&error).is_some() {
                    Class::BlockedByPolicy
                } else {
                    Class::Retryable { retry_after: None }
                };
                AttemptReport::failed(class, started.elapsed(), error_chain(&error))
            }
            Ok(Ok((status, retry_after, body))) => {
                let permanent: Vec<u16> =
                    endpoint.permanent_statuses.iter().filter_map(|s| u16::try_from(*s).ok()).collect();
                let class = classify_status(status, &permanent, retry_after);
                let error = match class {
                    Class::Success => String::new(),
                    _ if (300..400).contains(&status) => format!("HTTP {status} (redirects are not followed)"),
                    _ => format!("HTTP {status}"),
                };
                AttemptReport {
                    class,
                    status,
                    latency: started.elapsed(),
                    error,
                    excerpt: body[..body.len().min(EXCERPT_BYTES)].to_vec(),
                    request_headers: RecordedHeaders::default(),
                }
            }
        };
        AttemptReport { request_headers, ..report }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        entry: &EndpointEntry,
        url: &str,
        target: Option<&Target>,
        event: &v1::Event,
        now_ms: i64,
        traceparent: Option<&str>,
        extra: &[(&'static str, String)],
    ) -> Result<Request<Full<Bytes>>, AttemptReport> {
        let permanent = |error: String| AttemptReport::failed(Class::Permanent, Duration::ZERO, error);
        let uri: Uri = match target {
            Some(target) => target.uri.clone(),
            None => url.parse().map_err(|e| permanent(format!("url {url:?}: {e}")))?,
        };
        // Literal IPs never reach the resolver, so they are checked here.
        if let Some(ip) = uri.host().and_then(literal_ip) {
            if let Err(blocked) = self.policy.check(ip) {
                return Err(AttemptReport::failed(
                    Class::BlockedByPolicy,
                    Duration::ZERO,
                    format!("blocked by policy: {blocked}"),
                ));
            }
        }
        let mut request = Request::post(uri).body(Full::new(event.payload.clone())).map_err(|e| permanent(format!("request: {e}")))?;
        *request.headers_mut() = signed_headers(entry, event, now_ms, &self.user_agent, traceparent, extra);
        Ok(request)
    }
}

/// The headers of a delivery of `event` to `entry` made at `now_ms`, but the credentials:
/// content type, user agent, the Standard Webhooks id, timestamp and signature(s) of the
/// body, the trace context, Hookline's own `extra` headers, then the endpoint's custom
/// headers (never one Hookline sets). The sender sends these; `POST .../preview` shows them.
pub fn signed_headers(
    entry: &EndpointEntry,
    event: &v1::Event,
    now_ms: i64,
    user_agent: &HeaderValue,
    traceparent: Option<&str>,
    extra: &[(&'static str, String)],
) -> http::HeaderMap {
    let endpoint = &entry.endpoint;
    let timestamp = now_ms / 1000;
    let signature = signature_header(entry.signing_keys(now_ms), &event.id, timestamp, &event.payload);
    // Room for Hookline's headers and the endpoint's: the map never grows while filled.
    let mut headers = http::HeaderMap::with_capacity(8 + extra.len() + endpoint.headers.len());
    if event.content_type.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(USER_AGENT, user_agent.clone());
    let mut put = |name: HeaderName, value: &str| match HeaderValue::try_from(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => tracing::warn!(endpoint_id = %endpoint.id, header = %name, "invalid header value skipped"),
    };
    if !event.content_type.is_empty() {
        put(CONTENT_TYPE, &event.content_type);
    }
    put(HeaderName::from_static("webhook-id"), &event.id);
    put(HeaderName::from_static("webhook-timestamp"), &timestamp.to_string());
    put(HeaderName::from_static("webhook-signature"), &signature);
    if let Some(tp) = traceparent {
        put(HeaderName::from_static("traceparent"), tp);
    }
    for (name, value) in extra {
        put(HeaderName::from_static(name), value);
    }
    for (name, value) in &endpoint.headers {
        let lower = name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) || (traceparent.is_some() && lower == "traceparent") {
            continue;
        }
        match HeaderName::try_from(name.as_str()) {
            Ok(n) => put(n, value),
            Err(_) => tracing::warn!(endpoint_id = %endpoint.id, header = %name, "invalid custom header skipped"),
        }
    }
    headers
}

/// The headers of a request as an attempt record keeps them: every header, except that an
/// `authorization` value keeps only its scheme (`Bearer [redacted]`), so the record shows
/// that credentials were sent and never what they were. Kept encoded, as the attempt's
/// `request_headers` field ([`hookline_proto::push_request_header`]), so that recording them
/// allocates once, not twice per header; [`Self::apply_to`] puts them in an `Attempt` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedHeaders(Vec<u8>);

impl RecordedHeaders {
    pub fn of(headers: &http::HeaderMap) -> Self {
        let mut fields = Vec::with_capacity(headers.len() * 64);
        for (name, value) in headers {
            // Protobuf strings are UTF-8; a header value need not be. `from_utf8` checks the
            // usual all-ASCII value a word at a time; the lossy copy is for the rest.
            let mut shown = match std::str::from_utf8(value.as_bytes()) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(value.as_bytes()),
            };
            if name == AUTHORIZATION {
                shown = match shown.split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} [redacted]"),
                    None => "[redacted]".to_owned(),
                }
                .into();
            }
            hookline_proto::push_request_header(&mut fields, name.as_str(), &shown);
        }
        Self(fields)
    }

    /// The encoded field, to append to an encoded attempt.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Adds the headers to `attempt`'s `request_headers`.
    pub fn apply_to(&self, attempt: &mut v1::Attempt) {
        use hookline_proto::Message as _;
        attempt.merge(self.0.as_slice()).expect("encoded by Self::of");
    }
}

/// The IP address a URL host names literally: dotted IPv4, or bracketed IPv6 with or
/// without a zone id (`[fe80::1%25eth0]` is judged as `fe80::1`).
pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let without_zone = bare.split('%').next().unwrap_or(bare);
    without_zone.parse().ok()
}

/// Sends `request` and reads its status, `Retry-After` and (at most `max_body` bytes of) its
/// body: reading the body lets the connection go back to the pool.
pub(crate) async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(u16, Option<Duration>, Bytes), hyper_util::client::legacy::Error> {
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
    let body = Limited::new(response.into_body(), max_body).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok((status, retry_after, body))
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means now).
fn retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_secs(value).or_else(|| {
        let at = httpdate::parse_http_date(value.trim()).ok()?;
        Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
    })
}

/// `error: cause: cause` on one line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{build, ClientSettings, PolicyResolver};
    use hookline_core::signing::{verify, SigningKey};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn attempter(policy: AddressPolicy) -> Attempter {
        let policy = Arc::new(policy);
        let settings = ClientSettings { connect_timeout: Duration::from_secs(1), pool_max_idle_per_host: 1, extra_roots: Vec::new() };
        let client = build(PolicyResolver::system(Arc::clone(&policy)), &settings).expect("client");
        Attempter::new(client, policy, Duration::from_secs(1))
    }

    fn entry(url: &str) -> EndpointEntry {
        let endpoint = v1::Endpoint {
            id: "ep".into(),
            url: url.into(),
            event_types: vec!["*".into()],
            secrets: vec![v1::Secret { key: SECRET.into(), ..Default::default() }],
            headers: [("X-Team".to_owned(), "payments".to_owned()), ("webhook-id".to_owned(), "forged".to_owned())].into(),
            ..Default::default()
        };
        EndpointEntry::new(endpoint).expect("valid").0
    }

    #[tokio::test]
    async fn the_request_is_signed_and_custom_headers_cannot_override_ours() {
        let a = attempter(AddressPolicy::default());
        let event = v1::Event { id: "evt_1".into(), payload: bytes::Bytes::from_static(b"{\"a\":1}"), ..Default::default() };
        let e = entry("https://example.com/hook");
        let request = a.request(&e, "https://example.com/hook", e.target("https://example.com/hook"), &event, 1_700_000_000_123, None, &[]).expect("request");
        let h = request.headers();
        assert_eq!(h["webhook-id"], "evt_1");
        assert_eq!(h["webhook-timestamp"], "1700000000");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-team"], "payments");
        assert_eq!(h.get_all("webhook-id").iter().count(), 1, "a custom header cannot forge webhook-id");
        let key = SigningKey::from_secret(SECRET).expect("secret");
        let signature = h["webhook-signature"].to_str().expect("ascii");
        assert_eq!(verify(&[key], "evt_1", "1700000000", signature, b"{\"a\":1}", 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn recorded_headers_are_every_header_with_credentials_redacted() {
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static("evt_1"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cr3t"));
        headers.insert("x-empty", HeaderValue::from_static(""));
        headers.insert("x-binary", HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is allowed"));
        headers.insert("x-long", HeaderValue::try_from("v".repeat(300)).expect("value"));
        let mut attempt = v1::Attempt { event_id: "evt_1".into(), ..Default::default() };
        RecordedHeaders::of(&headers).apply_to(&mut attempt);
        let expected: std::collections::BTreeMap<String, String> = [
            ("webhook-id", "evt_1".to_owned()),
            ("authorization", "Bearer [redacted]".to_owned()),
            ("x-empty", String::new()),
            ("x-binary", "caf\u{fffd}".to_owned()),
            ("x-long", "v".repeat(300)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(attempt.request_headers, expected);
        assert_eq!(attempt.event_id, "evt_1", "the other fields are left as they were");
        let mut no_scheme = http::HeaderMap::new();
        no_scheme.insert(AUTHORIZATION, HeaderValue::from_static("s3cr3t"));
        let mut attempt = v1::Attempt::default();
        RecordedHeaders::of(&no_scheme).apply_to(&mut attempt);
        assert_eq!(attempt.request_headers["authorization"], "[redacted]");
    }

    #[tokio::test]
    async fn literal_ips_are_checked_before_any_connection() {
        let a = attempter(AddressPolicy::default());
        let event = v1::Event { id: "evt_1".into(), ..Default::default() };
        for url in ["http://127.0.0.1:9/x", "http://[::ffff:10.0.0.1]/x", "http://169.254.169.254/latest/meta-data"] {
            let report = a.attempt(&entry(url), url, &event, 0, None, &[]).await;
            assert_eq!(report.class, Class::BlockedByPolicy, "{url}: {}", report.error);
            assert!(report.error.starts_with("blocked by policy"), "{}", report.error);
        }
    }

    #[tokio::test]
    async fn loopback_in_any_notation_is_refused() {
        let a = attempter(AddressPolicy::default());
        let event = v1::Event { id: "evt_1".into(), ..Default::default() };
        // Decimal, hex, octal and short forms are not IPv4 literals to hyper; the system
        // resolver turns them into 127.0.0.1, and the policy refuses that. IPv6 forms are
        // literals, checked before any connection.
        for host in ["2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "[::1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]"] {
            let url = format!("http://{host}:9/x");
            let report = a.attempt(&entry(&url), &url, &event, 0, None, &[]).await;
            assert_eq!(report.class, Class::BlockedByPolicy, "{url}: {}", report.error);
        }
        // A zone id does not hide a link-local address.
        let report = a.attempt(&entry("http://[fe80::1%25eth0]:9/x"), "http://[fe80::1%25eth0]:9/x", &event, 0, None, &[]).await;
        assert_eq!(report.class, Class::BlockedByPolicy, "{}", report.error);
        assert!(report.error.contains("link-local"), "{}", report.error);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let a = attempter(AddressPolicy::new(vec![], true));
        let event = v1::Event { id: "evt_1".into(), ..Default::default() };
        let url = format!("http://{closed}/x");
        let report = a.attempt(&entry(&url), &url, &event, 0, None, &[]).await;
        assert_eq!(report.class, Class::Retryable { retry_after: None });
        assert_eq!(report.status, 0);
        assert!(!report.error.is_empty());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date means now");
        let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&future).expect("date");
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(retry_after("soon"), None);
    }
}
