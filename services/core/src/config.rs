//! Typed configuration with embedded defaults, and its validation.
//!
//! Loading (file, then `HOOKLINE_*` variables) happens in `hookline-runtime`; this module
//! only says what a valid configuration is, so every rule is testable without IO. Values
//! with a syntax are parsed as the file loads, into their types (socket addresses, CIDR
//! blocks, the retry schedule, enums), and reach the code typed: a bad one fails the load
//! naming its key, and no code parses them again. Durations are integer milliseconds
//! (`*_ms`); [`Config::validate`] then checks ranges and the rules across fields.

use crate::address::Cidr;
use crate::retry::RetrySchedule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub router: RouterConfig,
    pub sender: SenderConfig,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    pub admin: AdminConfig,
    pub api: ApiConfig,
    pub replay: ReplayConfig,
    pub traces: TracesConfig,
    pub log: LogConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Bearer tokens, stored as the hex SHA-256 of the token (`hookline api token` makes one).
    pub tokens: Vec<TokenConfig>,
    /// Endpoint URLs must be https (dev mode turns this off).
    pub require_https: bool,
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` or a caller-chosen event id deduplicates ingest.
    pub idempotency_window_ms: i64,
    /// Keys remembered at most for that (oldest forgotten first).
    pub idempotency_max_keys: usize,
    /// How long the old secret keeps signing after a rotation.
    pub rotation_grace_ms: i64,
    /// How far back the attempts and DLQ views are rebuilt at start.
    pub history_lookback_ms: i64,
    pub history_per_endpoint: usize,
    /// Events whose attempts `GET /v1/events/{id}/attempts` can show ...
    pub history_events: usize,
    /// ... and the attempts held for that at most (the oldest events go first).
    pub history_attempts: usize,
    pub dlq_kept: usize,
    /// The API's address as browsers reach it (`https://hooks.example.com`), for the portal
    /// URLs that `POST /v1/portal/sessions` returns; empty: a path (`/portal/#session=...`).
    pub public_url: String,
    /// The key portal sessions are signed with (at least 32 characters; every API replica
    /// needs the same). Empty: a random key per process, so sessions end with it.
    pub portal_session_key: String,
    /// Origins that may frame the portal (CSP `frame-ancestors`, e.g.
    /// `https://app.example.com`); empty: none. The console is never framed.
    pub portal_frame_ancestors: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tokens: Vec::new(),
            require_https: true,
            max_body_bytes: 1024 * 1024,
            idempotency_window_ms: DAY_MS,
            idempotency_max_keys: 1_000_000,
            rotation_grace_ms: DAY_MS,
            history_lookback_ms: DAY_MS,
            history_per_endpoint: 100,
            history_events: 100_000,
            history_attempts: 200_000,
            dlq_kept: 10_000,
            public_url: String::new(),
            portal_session_key: String::new(),
            portal_frame_ancestors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (logged instead of the token).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: TokenDigest,
    /// `admin` (everything), `read` (GET), `publish` (POST /v1/events).
    pub scopes: Vec<Scope>,
}

/// The SHA-256 of an API token; in a configuration, 64 hex digits. The token itself is
/// never configured, so a leaked file does not give it away.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(token.as_bytes()).into())
    }
}

impl std::str::FromStr for TokenDigest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
        bytes.map(Self).ok_or_else(|| "must be 64 hex digits (hookline api token prints one)".into())
    }
}

impl TryFrom<String> for TokenDigest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::fmt::Display for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({self})")
    }
}

impl From<TokenDigest> for String {
    fn from(d: TokenDigest) -> Self {
        d.to_string()
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything.
    Admin,
    /// Reads: GET routes.
    Read,
    /// Ingest: POST /v1/events.
    Publish,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::Publish => "publish",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` listen; empty (`None`) turns the listener off.
    #[serde(with = "optional_address")]
    pub listen: Option<SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: Some(SocketAddr::from(([0, 0, 0, 0], 9090))) }
    }
}

/// An address that may be left out as an empty string (which TOML and environment variables
/// can say, unlike a missing value).
mod optional_address {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(address: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&address.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not an address like 0.0.0.0:9090 (or empty to turn it off)"))
        })
    }
}


#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Delays before attempts 2, 3, ...; every distinct delay is a retry tier topic.
    pub schedule: RetrySchedule,
    /// Each delay is stretched by up to this fraction (0 to 0.5), never shortened.
    pub jitter: f64,
    /// An endpoint whose deliveries keep being exhausted for this long is disabled.
    pub disable_after_ms: i64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            jitter: 0.1,
            disable_after_ms: 5 * 24 * 60 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Share of failed attempts (5xx, timeouts, connection errors) in the window that opens
    /// it, once the window holds `min_calls` attempts.
    pub failure_rate: f64,
    /// Attempts the window must hold before its failure rate counts.
    pub min_calls: u32,
    /// The sliding window, ms.
    pub window_ms: u64,
    /// Consecutive failed attempts that open it while the window holds fewer than
    /// `min_calls` (endpoints too quiet for a rate).
    pub failure_threshold: u32,
    pub initial_cooldown_ms: u64,
    pub max_cooldown_ms: u64,
    /// How long a breaker must stay closed after a failing period before
    /// `hookline.endpoint.recovered` is published (the debounce of a flapping breaker).
    pub recovered_after_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let d = crate::breaker::BreakerSettings::default();
        Self {
            failure_rate: d.failure_rate,
            min_calls: d.min_calls,
            window_ms: d.window.as_millis() as u64,
            failure_threshold: d.failure_threshold,
            initial_cooldown_ms: d.initial_cooldown.as_millis() as u64,
            max_cooldown_ms: d.max_cooldown.as_millis() as u64,
            recovered_after_ms: 60_000,
        }
    }
}

impl BreakerConfig {
    pub fn settings(&self) -> crate::breaker::BreakerSettings {
        let ms = std::time::Duration::from_millis;
        crate::breaker::BreakerSettings {
            failure_threshold: self.failure_threshold,
            window: ms(self.window_ms),
            min_calls: self.min_calls,
            failure_rate: self.failure_rate,
            initial_cooldown: ms(self.initial_cooldown_ms),
            max_cooldown: ms(self.max_cooldown_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Every topic and consumer group name starts with this, so several installations (or
    /// tests) can share one cluster.
    pub topic_prefix: String,
    pub replication_factor: i16,
    pub min_insync_replicas: u16,
    pub partitions: PartitionConfig,
    /// Retention of the events topic (replay by time range reads it).
    pub events_retention_ms: i64,
    pub deliveries_retention_ms: i64,
    pub attempts_retention_ms: i64,
    pub dlq_retention_ms: i64,
    /// Producer compression for deliveries, attempts and the DLQ.
    pub compression: Compression,
    /// Extra librdkafka properties applied to every client (for TLS/SASL, tuning).
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: "hookline".into(),
            replication_factor: 1,
            min_insync_replicas: 1,
            partitions: PartitionConfig::default(),
            events_retention_ms: 7 * DAY_MS,
            deliveries_retention_ms: 7 * DAY_MS,
            attempts_retention_ms: 7 * DAY_MS,
            dlq_retention_ms: 30 * DAY_MS,
            compression: Compression::Lz4,
            client: BTreeMap::new(),
        }
    }
}

/// A producer's compression codec (librdkafka's `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Its name in librdkafka's `compression.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionConfig {
    pub events: i32,
    pub deliveries: i32,
    pub attempts: i32,
    pub dlq: i32,
    /// Partitions of each retry tier topic.
    pub retry: i32,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self { events: 6, deliveries: 12, attempts: 6, dlq: 3, retry: 6 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Events taken but not yet fully fanned out; past it the router stops reading.
    pub max_in_flight_events: usize,
    /// Largest event payload routed; a larger one is dead-lettered (`payload_too_large`).
    /// Every delivery copies the payload, and delivery records must stay under the
    /// deliveries topic's `max.message.bytes`, hence the cap [`MAX_PAYLOAD_BYTES_LIMIT`].
    pub max_payload_bytes: usize,
}

/// The highest `router.max_payload_bytes` allowed: delivery, retry and dead-letter records
/// carry the payload plus an envelope and must fit the 4 MiB those topics accept.
pub const MAX_PAYLOAD_BYTES_LIMIT: usize = 3 * 1024 * 1024;

impl Default for RouterConfig {
    fn default() -> Self {
        Self { max_in_flight_events: 10_000, max_payload_bytes: crate::event::DEFAULT_MAX_PAYLOAD_BYTES }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderConfig {
    pub connect_timeout_ms: u64,
    /// Whole request, connect to last body byte, unless the endpoint sets its own.
    pub request_timeout_ms: u64,
    /// Requests in flight across all endpoints of one sender.
    pub max_in_flight: usize,
    /// Requests in flight to one endpoint, unless the endpoint sets its own.
    pub max_in_flight_per_endpoint: usize,
    /// Deliveries one endpoint may hold in a sender (in flight or waiting). Past it, a
    /// healthy endpoint's work waits (back-pressure); a stalled or failing endpoint's is
    /// moved to the next retry tier, so it cannot take the sender's whole window.
    pub max_queued_per_endpoint: usize,
    /// Idle keep-alive connections kept per host. As many as `max_in_flight` by default:
    /// endpoints often share a host, and a connection the pool has no room for is closed
    /// after its request and opened again for the next.
    pub pool_max_idle_per_host: usize,
    /// (event, endpoint) pairs delivered recently that a sender remembers, so the copies a
    /// restarted router routes again are not sent twice (0: remember none). About 40 bytes
    /// each.
    pub recent_deliveries: usize,
    /// Attempt records are written in batches, one record per endpoint per window of this
    /// long (`AttemptBatch`); they reach the history this much later. Lost on a crash are at
    /// most this window's records (history, not deliveries).
    pub attempt_batch_ms: u64,
    /// Allow endpoints on loopback addresses (only `hookline dev` turns this on).
    pub allow_loopback: bool,
    /// CIDR blocks the SSRF policy lets through (internal targets), e.g. `10.20.0.0/16`.
    pub allowed_cidrs: Vec<Cidr>,
    /// A PEM file of extra CA certificates trusted for endpoint TLS, besides the public
    /// (webpki) roots: for internal endpoints behind a private CA. Empty: none.
    pub ca_file: String,
    /// While an endpoint's deliveries go to its failover URL, one delivery per this many ms
    /// goes to the primary instead, to see whether it is back.
    pub failover_probe_ms: u64,
    /// An ordered lane whose head has failed for this long moves, head first, to the parked
    /// topic, so it holds neither its partition's commit nor the sender's window (0: only
    /// when the lane holds `max_queued_per_endpoint` deliveries).
    pub lane_park_after_ms: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            max_in_flight: 2_000,
            max_in_flight_per_endpoint: 64,
            max_queued_per_endpoint: 512,
            pool_max_idle_per_host: 2_000,
            recent_deliveries: 200_000,
            attempt_batch_ms: 100,
            allow_loopback: false,
            allowed_cidrs: Vec::new(),
            ca_file: String::new(),
            failover_probe_ms: 30_000,
            lane_park_after_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Deliveries per second a replay job produces when it names no rate of its own.
    pub default_rate_per_second: u32,
    /// The highest rate a job may ask for.
    pub max_rate_per_second: u32,
    /// How often a running job writes its position and counts (its resume point).
    pub progress_interval_ms: u64,
    /// How long a finished job (completed, cancelled, failed) stays listed before the
    /// worker deletes it from the replays topic.
    pub keep_finished_ms: i64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            default_rate_per_second: 200,
            max_rate_per_second: 5_000,
            progress_interval_ms: 1_000,
            keep_finished_ms: 30 * DAY_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces` (empty: no export).
    pub otlp_endpoint: String,
    /// Extra headers on every export request (e.g. an API key of a tracing vendor).
    pub otlp_headers: std::collections::BTreeMap<String, String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Send each attempt's trace context to the endpoint as a `traceparent` header.
    pub propagate_to_endpoints: bool,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            otlp_headers: Default::default(),
            service_name: "hookline".into(),
            propagate_to_endpoints: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `auto` (default: text with colours on a terminal, JSON otherwise), `json` (for
    /// machines) or `text` (colours only on a terminal).
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info,hookline_sender=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into() }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text with colours on a terminal, JSON otherwise.
    Auto,
    Json,
    Text,
}

/// The keys that seal secrets at rest (endpoint signing secrets in the endpoints topic);
/// see `sealing` and docs/operations.md#secrets-at-rest. No key: secrets are written in
/// clear, as before sealing existed.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The id of the key that seals new values; it must be one of the keys.
    pub current_key: String,
    /// Keys by id, each 32 random bytes as base64 (`hookline secrets new-key` makes one).
    /// Inline keys are for development; in production use `keys_file`.
    pub keys: BTreeMap<String, String>,
    /// A file of `<id>=<base64 key>` lines (a Kubernetes Secret mounted as a file), read
    /// at start; its keys join the inline ones. Empty: none.
    pub keys_file: String,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("current_key", &self.current_key)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("keys_file", &self.keys_file)
            .finish()
    }
}

impl SecretsConfig {
    /// Whether any key is configured (otherwise secrets are kept in clear).
    pub fn is_configured(&self) -> bool {
        !self.current_key.is_empty() || !self.keys.is_empty() || !self.keys_file.is_empty()
    }
}

/// One broken rule: the dotted field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

/// The broken rules found so far, each with its field.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn check(&mut self, ok: bool, field: &str, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(ConfigError { field: field.into(), problem: problem() });
        }
    }

    fn at_least(&mut self, min: u64, value: u64, field: &str) {
        self.check(value >= min, field, || format!("is {value}; must be at least {min}"));
    }

    fn within<T: PartialOrd + std::fmt::Display>(&mut self, range: std::ops::RangeInclusive<T>, value: T, field: &str) {
        let ok = range.contains(&value);
        self.check(ok, field, || format!("is {value}; use {} to {}", range.start(), range.end()));
    }
}

impl Config {
    /// Every broken rule at once, so a user fixes the file in one go. Values are already
    /// parsed (addresses, CIDRs, the retry schedule, enums): what is left are ranges and
    /// rules across fields.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut p = Problems::default();
        self.kafka.check(&mut p);
        self.router.check(&mut p);
        self.sender.check(&mut p);
        self.retry.check(&mut p);
        self.breaker.check(&mut p);
        self.api.check(&mut p);
        self.replay.check(&mut p);
        self.traces.check(&mut p);
        self.secrets.check(&mut p);
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }

    pub fn topics(&self) -> Topics {
        Topics::new(&self.kafka.topic_prefix)
    }

    /// A copy with every secret-bearing value replaced by [`REDACTED`] (a value that is
    /// not set stays empty, so the copy still shows whether it is): the Kafka client's
    /// passwords and private keys, the OTLP export headers, the portal session key and the
    /// sealing keys. Token digests stay: a digest does not give the token.
    pub fn redacted(&self) -> Config {
        let hide = |v: &mut String| {
            if !v.is_empty() {
                *v = REDACTED.into();
            }
        };
        let mut c = self.clone();
        for (key, value) in &mut c.kafka.client {
            if is_secret_client_property(key) {
                hide(value);
            }
        }
        c.traces.otlp_headers.values_mut().for_each(hide);
        hide(&mut c.api.portal_session_key);
        c.secrets.keys.values_mut().for_each(hide);
        c
    }
}

impl KafkaConfig {
    fn check(&self, p: &mut Problems) {
        p.check(!self.bootstrap_servers.trim().is_empty(), "kafka.bootstrap_servers", || "must name at least one host:port".into());
        p.check(is_topic_safe(&self.topic_prefix), "kafka.topic_prefix", || {
            format!("{:?} must be 1-100 chars of letters, digits, '.', '_' or '-'", self.topic_prefix)
        });
        p.at_least(1, self.replication_factor.max(0) as u64, "kafka.replication_factor");
        p.check(
            self.min_insync_replicas >= 1 && i32::from(self.min_insync_replicas) <= i32::from(self.replication_factor),
            "kafka.min_insync_replicas",
            || format!("must be between 1 and replication_factor ({})", self.replication_factor),
        );
        let n = &self.partitions;
        for (name, count) in [("events", n.events), ("deliveries", n.deliveries), ("attempts", n.attempts), ("dlq", n.dlq), ("retry", n.retry)] {
            p.check(count >= 1, &format!("kafka.partitions.{name}"), || format!("is {count}; must be at least 1"));
        }
        for (name, ms) in [
            ("events_retention_ms", self.events_retention_ms),
            ("deliveries_retention_ms", self.deliveries_retention_ms),
            ("attempts_retention_ms", self.attempts_retention_ms),
            ("dlq_retention_ms", self.dlq_retention_ms),
        ] {
            p.check(ms == -1 || ms >= 60_000, &format!("kafka.{name}"), || format!("is {ms}; use -1 (forever) or at least 60000"));
        }
    }
}

impl RouterConfig {
    fn check(&self, p: &mut Problems) {
        p.within(1..=MAX_PAYLOAD_BYTES_LIMIT, self.max_payload_bytes, "router.max_payload_bytes");
        p.at_least(1, self.max_in_flight_events as u64, "router.max_in_flight_events");
    }
}

impl SenderConfig {
    fn check(&self, p: &mut Problems) {
        p.at_least(1, self.connect_timeout_ms, "sender.connect_timeout_ms");
        p.check(self.request_timeout_ms >= self.connect_timeout_ms, "sender.request_timeout_ms", || {
            format!("must be at least sender.connect_timeout_ms ({})", self.connect_timeout_ms)
        });
        p.at_least(1, self.max_in_flight as u64, "sender.max_in_flight");
        p.check((1..=self.max_in_flight.max(1)).contains(&self.max_in_flight_per_endpoint), "sender.max_in_flight_per_endpoint", || {
            format!("must be between 1 and sender.max_in_flight ({})", self.max_in_flight)
        });
        p.check(self.max_queued_per_endpoint >= self.max_in_flight_per_endpoint, "sender.max_queued_per_endpoint", || {
            format!("must be at least sender.max_in_flight_per_endpoint ({})", self.max_in_flight_per_endpoint)
        });
        p.within(1..=10_000, self.attempt_batch_ms, "sender.attempt_batch_ms");
        p.within(100..=3_600_000, self.failover_probe_ms, "sender.failover_probe_ms");
    }
}

impl RetryConfig {
    fn check(&self, p: &mut Problems) {
        p.within(0.0..=0.5, self.jitter, "retry.jitter");
        p.at_least(1_000, self.disable_after_ms.max(0) as u64, "retry.disable_after_ms");
    }
}

impl BreakerConfig {
    fn check(&self, p: &mut Problems) {
        p.at_least(1, u64::from(self.failure_threshold), "breaker.failure_threshold");
        p.check(self.failure_rate > 0.0 && self.failure_rate <= 1.0, "breaker.failure_rate", || {
            format!("is {}; use a share above 0 and at most 1 (0.5: half the attempts)", self.failure_rate)
        });
        p.at_least(1, u64::from(self.min_calls), "breaker.min_calls");
        p.within(1_000..=3_600_000, self.window_ms, "breaker.window_ms");
        p.check(self.initial_cooldown_ms >= 1 && self.max_cooldown_ms >= self.initial_cooldown_ms, "breaker.max_cooldown_ms", || {
            format!("must be at least breaker.initial_cooldown_ms ({}), which must be positive", self.initial_cooldown_ms)
        });
        p.within(0..=86_400_000, self.recovered_after_ms, "breaker.recovered_after_ms");
    }
}

impl ApiConfig {
    fn check(&self, p: &mut Problems) {
        for (i, t) in self.tokens.iter().enumerate() {
            p.check(!t.scopes.is_empty(), &format!("api.tokens[{i}].scopes"), || "use one or more of admin, read, publish".into());
        }
        p.at_least(1024, self.max_body_bytes as u64, "api.max_body_bytes");
        p.check(self.portal_session_key.is_empty() || self.portal_session_key.len() >= 32, "api.portal_session_key", || {
            "must be at least 32 characters (or empty for a random key per process)".into()
        });
        p.check(
            self.public_url.is_empty() || self.public_url.starts_with("https://") || self.public_url.starts_with("http://"),
            "api.public_url",
            || format!("{:?} is not an http(s) URL", self.public_url),
        );
        for (i, origin) in self.portal_frame_ancestors.iter().enumerate() {
            // A CSP source: an origin, a scheme-wildcard host, or 'self'; never a quote or separator.
            p.check(
                origin == "'self'" || (!origin.is_empty() && !origin.contains([';', ',', ' ', '\'', '"'])),
                &format!("api.portal_frame_ancestors[{i}]"),
                || format!("{origin:?} is not a CSP source such as https://app.example.com or 'self'"),
            );
        }
        for (name, v) in [
            ("idempotency_max_keys", self.idempotency_max_keys),
            ("history_per_endpoint", self.history_per_endpoint),
            ("history_events", self.history_events),
            ("history_attempts", self.history_attempts),
            ("dlq_kept", self.dlq_kept),
        ] {
            p.at_least(1, v as u64, &format!("api.{name}"));
        }
        for (name, v) in [
            ("idempotency_window_ms", self.idempotency_window_ms),
            ("rotation_grace_ms", self.rotation_grace_ms),
            ("history_lookback_ms", self.history_lookback_ms),
        ] {
            p.check(v >= 0, &format!("api.{name}"), || "must not be negative".into());
        }
    }
}

impl ReplayConfig {
    fn check(&self, p: &mut Problems) {
        p.at_least(1, u64::from(self.max_rate_per_second), "replay.max_rate_per_second");
        p.within(1..=self.max_rate_per_second.max(1), self.default_rate_per_second, "replay.default_rate_per_second");
        p.within(100..=60_000, self.progress_interval_ms, "replay.progress_interval_ms");
        p.at_least(1_000, self.keep_finished_ms.max(0) as u64, "replay.keep_finished_ms");
    }
}

impl TracesConfig {
    fn check(&self, p: &mut Problems) {
        p.check(self.otlp_endpoint.is_empty() || self.otlp_endpoint.starts_with("http://"), "traces.otlp_endpoint", || {
            format!(
                "{:?} must be an http:// URL (an OTLP/HTTP collector, e.g. http://otel-collector:4318/v1/traces) or empty",
                self.otlp_endpoint
            )
        });
        p.check(!self.service_name.trim().is_empty(), "traces.service_name", || "must not be empty".into());
    }
}

impl SecretsConfig {
    fn check(&self, p: &mut Problems) {
        if self.is_configured() {
            let problem = if !crate::sealing::is_key_id(&self.current_key) {
                Some(format!("{:?} must name the key that seals: lowercase letters, digits, '_' or '-'", self.current_key))
            } else if self.keys_file.is_empty() && !self.keys.contains_key(&self.current_key) {
                Some(format!("{:?} is not one of secrets.keys (and no secrets.keys_file is set)", self.current_key))
            } else {
                None
            };
            if let Some(problem) = problem {
                p.check(false, "secrets.current_key", || problem);
            }
        }
        for (id, key) in &self.keys {
            if let Err(e) = crate::sealing::parse_key(id, key) {
                p.check(false, &format!("secrets.keys.{id}"), || e.to_string());
            }
        }
    }
}

/// What [`Config::redacted`] shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property (`kafka.client`) carries a secret: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `ssl.key.pem`,
/// `sasl.oauthbearer.client.secret`, and `sasl.oauthbearer.config` (which may hold one).
fn is_secret_client_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key == "ssl.key.pem" || key == "sasl.oauthbearer.config"
}

impl Config {
    /// Every retry tier of the global schedule, with its topic.
    pub fn retry_tiers(&self) -> Vec<(crate::retry::Delay, String)> {
        let topics = self.topics();
        self.retry.schedule.tiers().into_iter().map(|d| (d, topics.retry(d))).collect()
    }
}

fn is_topic_safe(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Names of every topic and consumer group of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub prefix: String,
    pub events: String,
    pub endpoints: String,
    pub deliveries: String,
    pub attempts: String,
    pub dlq: String,
    /// Ordered lanes' deliveries moved out of the way while their lane is blocked: one
    /// partition per deliveries partition, read by the sender that owns that partition.
    pub parked: String,
    /// Replay jobs: compacted, one partition; key `<id>` holds the request (written by the
    /// API), key `<id>/status` its progress (written by the replay worker).
    pub replays: String,
    /// The event-type catalog: compacted, one partition; key = the type's name.
    pub event_types: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            events: format!("{prefix}.events"),
            endpoints: format!("{prefix}.endpoints"),
            deliveries: format!("{prefix}.deliveries"),
            attempts: format!("{prefix}.attempts"),
            dlq: format!("{prefix}.dlq"),
            parked: format!("{prefix}.parked"),
            replays: format!("{prefix}.replays"),
            event_types: format!("{prefix}.event-types"),
        }
    }

    /// The tier topic of one delay, e.g. `hookline.retry.5m`.
    pub fn retry(&self, delay: crate::retry::Delay) -> String {
        format!("{}.retry.{delay}", self.prefix)
    }

    /// Consumer group of a role, e.g. `hookline.router`.
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}", self.prefix)
    }

    /// Topics whose partitions pair one to one with another topic's, as (topic, paired
    /// with): the first needs at least as many partitions as the second has, whatever the
    /// configuration says. A lane parked from deliveries partition p goes to parked
    /// partition p.
    pub fn paired(&self) -> Vec<(String, String)> {
        vec![(self.parked.clone(), self.deliveries.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut c = Config::default();
        c.kafka.topic_prefix = "bad prefix!".into();
        c.kafka.min_insync_replicas = 2;
        c.kafka.partitions.deliveries = 0;
        c.sender.request_timeout_ms = 10;
        c.breaker.window_ms = 10;
        c.api.tokens.push(TokenConfig { name: "ci".into(), sha256: TokenDigest([0xab; 32]), scopes: vec![] });
        c.replay.progress_interval_ms = 5;
        let errors = c.validate().expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "kafka.topic_prefix",
                "kafka.min_insync_replicas",
                "kafka.partitions.deliveries",
                "sender.request_timeout_ms",
                "breaker.window_ms",
                "api.tokens[0].scopes",
                "replay.progress_interval_ms",
            ]
        );
        assert!(errors[0].to_string().starts_with("kafka.topic_prefix: \"bad prefix!\""));
        assert_eq!(errors[4].to_string(), "breaker.window_ms: is 10; use 1000 to 3600000");
    }

    /// A value with a syntax fails as it loads, naming what is wrong; it is never a string
    /// parsed later where it is used.
    #[test]
    fn typed_values_are_parsed_as_they_load() {
        let load = |json: &str| serde_json::from_str::<Config>(json).map_err(|e| e.to_string());
        let c = load(
            r#"{"retry": {"schedule": ["1s", "90s"]}, "sender": {"allowed_cidrs": ["10.20.0.0/16", "fd00::1"]},
                "kafka": {"compression": "zstd"}, "log": {"format": "text"}, "admin": {"listen": ""},
                "api": {"listen": "127.0.0.1:8081", "tokens": [{"name": "ci", "sha256": "abababababababababababababababababababababababababababababababab", "scopes": ["publish"]}]}}"#,
        )
        .expect("valid");
        assert_eq!(c.retry.schedule.delays().iter().map(|d| d.to_string()).collect::<Vec<_>>(), ["1s", "90s"]);
        assert_eq!(c.sender.allowed_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["10.20.0.0/16", "fd00::1/128"]);
        assert_eq!((c.kafka.compression, c.log.format), (Compression::Zstd, LogFormat::Text));
        assert_eq!((c.admin.listen, c.api.listen), (None, "127.0.0.1:8081".parse().expect("address")));
        assert_eq!(c.api.tokens[0].scopes, [Scope::Publish]);
        for (json, says) in [
            (r#"{"retry": {"schedule": ["5x"]}}"#, "\"5x\""),
            (r#"{"sender": {"allowed_cidrs": ["10.0.0.0/33"]}}"#, "10.0.0.0/33"),
            (r#"{"kafka": {"compression": "brotli"}}"#, "brotli"),
            (r#"{"log": {"format": "xml"}}"#, "xml"),
            (r#"{"admin": {"listen": "localhost"}}"#, "\"localhost\" is not an address"),
            (r#"{"api": {"listen": "8080"}}"#, "invalid socket address"),
            (r#"{"api": {"tokens": [{"name": "x", "sha256": "abababababababababababababababababababababababababababababababab", "scopes": ["root"]}]}}"#, "root"),
            (r#"{"api": {"tokens": [{"name": "x", "sha256": "abc", "scopes": ["read"]}]}}"#, "must be 64 hex digits"),
        ] {
            let message = load(json).expect_err(json);
            assert!(message.contains(says), "{json}: {message}");
        }
    }

    /// What `hookline config` prints loads back as the same configuration.
    #[test]
    fn a_configuration_round_trips_through_its_text() {
        let mut c = Config::default();
        c.admin.listen = None;
        c.sender.allowed_cidrs = vec!["10.20.0.0/16".parse().expect("cidr")];
        c.retry.schedule = RetrySchedule::parse(&["1s", "1m"]).expect("schedule");
        let text = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<Config>(&text).expect("loads"), c);
        assert_eq!(serde_json::from_str::<Config>(&serde_json::to_string(&Config::default()).expect("json")).expect("loads"), Config::default());
    }

    #[test]
    fn redacted_hides_every_secret_and_keeps_the_rest() {
        let mut c = Config::default();
        for (k, v) in [
            ("sasl.password", "pw1"),
            ("ssl.key.password", "pw2"),
            ("ssl.keystore.password", "pw3"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ("sasl.oauthbearer.client.secret", "client-secret-value"),
            ("sasl.oauthbearer.config", "principal=x secret=y"),
            ("sasl.username", "hookline"),
            ("security.protocol", "SASL_SSL"),
        ] {
            c.kafka.client.insert(k.into(), v.into());
        }
        c.traces.otlp_headers.insert("x-api-key".into(), "vendor-key".into());
        c.api.portal_session_key = "k".repeat(32);
        c.api.tokens.push(TokenConfig { name: "ops".into(), sha256: TokenDigest([0xab; 32]), scopes: vec![Scope::Admin] });
        c.secrets.keys.insert("k1".into(), "c2VhbGluZyBrZXk=".into());
        c.secrets.current_key = "k1".into();
        let r = c.redacted();
        let text = serde_json::to_string(&r).expect("json");
        for secret in ["pw1", "pw2", "pw3", "PRIVATE KEY", "client-secret-value", "secret=y", "vendor-key", &"k".repeat(32), "c2VhbGluZyBrZXk="] {
            assert!(!text.contains(secret), "{secret} shown in\n{text}");
        }
        assert_eq!(r.kafka.client["sasl.password"], REDACTED);
        assert_eq!(r.kafka.client["sasl.username"], "hookline");
        assert_eq!(r.kafka.client["security.protocol"], "SASL_SSL");
        assert_eq!(r.traces.otlp_headers["x-api-key"], REDACTED);
        assert_eq!(r.api.tokens, c.api.tokens);
        assert_eq!(r.secrets.current_key, "k1");
        // Unset stays unset, so the copy still tells whether a secret is configured.
        assert_eq!(Config::default().redacted(), Config::default());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let parsed: Result<Config, _> =
            serde_json::from_str(r#"{"kafka": {"bootstrap_server": "x:9092"}}"#);
        let message = parsed.expect_err("unknown field").to_string();
        assert!(message.contains("bootstrap_server"), "{message}");
    }

    #[test]
    fn topic_names_share_the_prefix() {
        let t = Topics::new("t1");
        assert_eq!(t.events, "t1.events");
        assert_eq!(t.endpoints, "t1.endpoints");
        assert_eq!(t.group("router"), "t1.router");
    }
}
