//! Request and response bodies of the API, with their OpenAPI schemas. Times are Unix
//! epoch milliseconds.

pub use crate::endpoint_auth::{AuthInput, AuthView, ClientCertificateInput, ClientCertificateView};
use hookline_proto::v1;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

// The endpoint rules (core::endpoint_rules) as schema constraints, so that clients and
// generated tests know them up front. `schema_with` replaces the whole field schema, doc
// comment included, hence the descriptions here.
fn string_list(pattern: &str) -> ArrayBuilder {
    ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)))
}

/// The PATCH form of a list: `null` is accepted and means "leave as it is".
fn or_null(list: ArrayBuilder) -> ArrayBuilder {
    list.schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
}

/// `order.created`, `order.*`, `*`: dot-separated segments of letters, digits, `_`, `-`, or `*`.
const EVENT_TYPE_PATTERN: &str = r"^(\*|[A-Za-z0-9_-]+)(\.(\*|[A-Za-z0-9_-]+))*$";

fn event_types_schema() -> ArrayBuilder {
    string_list(EVENT_TYPE_PATTERN)
        .min_items(Some(1))
        .description(Some("Event-type patterns: `order.created`, `order.*`, `*` (dot-separated segments of letters, digits, `_`, `-`, or `*`)."))
        .examples([serde_json::json!(["order.*"])])
}

fn retry_schedule_schema() -> ArrayBuilder {
    string_list("^[0-9]+(ms|s|m|h|d)$")
        .description(Some("Own retry schedule: delays before attempts 2, 3, ..., each a number and a unit (`ms`, `s`, `m`, `h`, `d`)."))
        .examples([serde_json::json!(["5s", "5m", "1h"])])
}

fn permanent_statuses_schema() -> ArrayBuilder {
    let status = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(100))
        .maximum(Some(599));
    ArrayBuilder::new()
        .items(status)
        .description(Some("Statuses that fail a delivery at once instead of being retried (not 2xx)."))
        .examples([serde_json::json!([400, 422])])
}

fn event_types_or_null() -> ArrayBuilder {
    or_null(event_types_schema())
}

fn retry_schedule_or_null() -> ArrayBuilder {
    or_null(retry_schedule_schema())
}

fn permanent_statuses_or_null() -> ArrayBuilder {
    or_null(permanent_statuses_schema())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second at most.
    #[schema(minimum = 1)]
    pub per_second: u32,
    /// Token-bucket burst (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Absolute https URL (http only where the API is configured to allow it).
    #[schema(example = "https://example.com/webhooks", pattern = "^https?://")]
    pub url: String,
    #[schema(schema_with = event_types_schema)]
    pub event_types: Vec<String>,
    /// Only this tenant's events (default: every tenant).
    #[serde(default)]
    pub tenant: String,
    /// The signing secret: `whsec_<base64>` of 24 to 64 bytes (HMAC-SHA256, `v1`
    /// signatures), or an ed25519 secret key `whsk_<base64>` of 32 or 64 bytes (`v1a`
    /// signatures). Default: a new random one of the `signing` scheme.
    #[serde(default)]
    #[schema(pattern = "^(whsec_[A-Za-z0-9+/]{32,86}={0,2}|whsk_([A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==))$")]
    pub secret: Option<String>,
    /// The scheme of the secret made when `secret` is absent (default `hmac`).
    #[serde(default)]
    pub signing: Option<Signing>,
    #[serde(default)]
    pub description: String,
    /// Extra request headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Authentication besides signing: basic, bearer or OAuth2 client credentials.
    #[serde(default)]
    pub auth: Option<AuthInput>,
    /// A TLS client certificate presented to this endpoint (mTLS).
    #[serde(default)]
    pub client_certificate: Option<ClientCertificateInput>,
    /// Exact-match filters on event attributes.
    #[serde(default)]
    pub filter_attributes: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent requests (0: the sender's default).
    #[serde(default)]
    pub max_in_flight: u32,
    /// Request timeout in ms (0: the sender's default).
    #[serde(default)]
    pub timeout_ms: u32,
    #[serde(default)]
    #[schema(schema_with = retry_schedule_schema)]
    pub retry_schedule: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = permanent_statuses_schema)]
    pub permanent_statuses: Vec<u32>,
    /// Ordered delivery: `none` (default), `endpoint` (one delivery at a time, in order) or
    /// `key` (in order per event `ordering_key`). Ordered failures retry in place.
    #[serde(default)]
    pub ordering: Ordering,
    /// An ordered lane whose head has failed this long is blocked (0: the retry schedule's
    /// span; its attempts are a limit too).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2_592_000_000_i64)]
    pub lane_max_block_ms: i64,
    /// What a blocked lane does: `skip` its head to the DLQ (default) or `halt` until the
    /// endpoint is enabled again.
    #[serde(default)]
    pub on_lane_blocked: LaneBlocked,
    /// A second URL, used after `failover_after` consecutive failures of `url` (5xx,
    /// timeouts, connection errors) until the primary answers a probe again. Same rules
    /// as `url` (https, SSRF policy), same signing. Omit for none.
    #[serde(default)]
    pub failover_url: Option<String>,
    /// Consecutive failures of `url` that move deliveries to `failover_url` (0 or absent: 3).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub failover_after: Option<u32>,
    /// A content filter: a CEL expression over `payload`, `type`, `tenant`, `attributes` and
    /// `id` that must be true for the endpoint to get the event (docs/contracts.md).
    #[serde(default)]
    #[schema(max_length = 4096, example = "payload.amount > 100 && tenant == 'acme'")]
    pub filter: Option<String>,
    /// A payload transformation applied before signing (docs/contracts.md):
    /// `{"envelope": "raw" | "standard", "ops": [{"op": "include" | "exclude", "pointers": [...]},
    /// {"op": "mask", "pointer": "/card/number", "with": "marker" | "hash"}, {"op": "rename",
    /// "from": "/a", "to": "/b"}]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub transform: Option<serde_json::Value>,
    /// The event-type version this endpoint receives (an event's `version` attribute; none
    /// is version 1). Absent or 0: every version.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub version: Option<u32>,
}

/// Ordered delivery of an endpoint (docs/delivery.md, "Ordered lanes").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    #[default]
    None,
    Endpoint,
    Key,
}

impl Ordering {
    pub fn proto(self) -> v1::DeliveryOrdering {
        match self {
            Self::None => v1::DeliveryOrdering::None,
            Self::Endpoint => v1::DeliveryOrdering::Endpoint,
            Self::Key => v1::DeliveryOrdering::Key,
        }
    }

    fn of(o: v1::DeliveryOrdering) -> Self {
        match o {
            v1::DeliveryOrdering::None => Self::None,
            v1::DeliveryOrdering::Endpoint => Self::Endpoint,
            v1::DeliveryOrdering::Key => Self::Key,
        }
    }
}

/// What a blocked ordered lane does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LaneBlocked {
    #[default]
    Skip,
    Halt,
}

impl LaneBlocked {
    pub fn proto(self) -> v1::LaneBlocked {
        match self {
            Self::Skip => v1::LaneBlocked::Skip,
            Self::Halt => v1::LaneBlocked::Halt,
        }
    }

    fn of(b: v1::LaneBlocked) -> Self {
        match b {
            v1::LaneBlocked::Skip => Self::Skip,
            v1::LaneBlocked::Halt => Self::Halt,
        }
    }
}

/// How deliveries are signed (Standard Webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Signing {
    /// HMAC-SHA256 with a shared `whsec_` secret: `v1,` signatures.
    Hmac,
    /// ed25519 with a `whsk_` secret key; receivers verify with the `whpk_` public key:
    /// `v1a,` signatures.
    Ed25519,
}

impl Signing {
    /// The scheme of a secret, by its prefix.
    pub fn of(secret: &str) -> Self {
        if secret.starts_with(hookline_core::signing::ED25519_SECRET_PREFIX) { Self::Ed25519 } else { Self::Hmac }
    }

    /// The public key receivers verify with, for an ed25519 secret.
    pub fn public_key(secret: &str) -> Option<String> {
        hookline_core::signing::SigningKey::from_secret(secret).ok().and_then(|k| k.public_key())
    }
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    #[schema(schema_with = event_types_or_null)]
    pub event_types: Option<Vec<String>>,
    pub tenant: Option<String>,
    pub description: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// Replaces the endpoint's auth (secret included); `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    pub auth: Option<Option<AuthInput>>,
    /// Replaces the client certificate (a rotation: the next delivery uses it); `null`
    /// removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    pub client_certificate: Option<Option<ClientCertificateInput>>,
    pub filter_attributes: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    pub rate_limit: Option<Option<RateLimit>>,
    pub max_in_flight: Option<u32>,
    pub timeout_ms: Option<u32>,
    #[schema(schema_with = retry_schedule_or_null)]
    pub retry_schedule: Option<Vec<String>>,
    #[schema(schema_with = permanent_statuses_or_null)]
    pub permanent_statuses: Option<Vec<u32>>,
    pub ordering: Option<Ordering>,
    #[schema(minimum = 0, maximum = 2_592_000_000_i64)]
    pub lane_max_block_ms: Option<i64>,
    pub on_lane_blocked: Option<LaneBlocked>,
    /// A new failover URL; `""` removes it.
    pub failover_url: Option<String>,
    /// Consecutive failures of `url` that move deliveries to `failover_url` (0: 3).
    #[schema(minimum = 0, maximum = 1000)]
    pub failover_after: Option<u32>,
    /// A new content filter; `""` removes it.
    #[schema(max_length = 4096)]
    pub filter: Option<String>,
    /// A new payload transformation; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>, nullable)]
    pub transform: Option<Option<serde_json::Value>>,
    /// The version received (0: every version).
    #[schema(minimum = 0)]
    pub version: Option<u32>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub tenant: String,
    pub description: String,
    pub headers: BTreeMap<String, String>,
    /// The kind of auth and its settings; never its password, token or client secret.
    pub auth: Option<AuthView>,
    /// The client certificate (public part); never its key.
    pub client_certificate: Option<ClientCertificateView>,
    pub filter_attributes: BTreeMap<String, String>,
    pub enabled: bool,
    pub rate_limit: Option<RateLimit>,
    pub max_in_flight: u32,
    pub timeout_ms: u32,
    pub retry_schedule: Vec<String>,
    pub permanent_statuses: Vec<u32>,
    pub ordering: Ordering,
    pub lane_max_block_ms: i64,
    pub on_lane_blocked: LaneBlocked,
    /// Since when every delivery has been exhausted, if so.
    pub failing_since: Option<i64>,
    /// The failover URL, if any.
    pub failover_url: Option<String>,
    /// Consecutive failures of `url` that move deliveries to `failover_url`.
    pub failover_after: u32,
    /// Since when the circuit breaker has said the endpoint is down (published as
    /// `hookline.endpoint.failing`), if so.
    pub unhealthy_since: Option<i64>,
    /// `hmac` or `ed25519`: how the newest secret signs.
    pub signing: Signing,
    /// For `ed25519`: the `whpk_` public key receivers verify with (not secret).
    pub public_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The content filter (CEL), if any.
    pub filter: Option<String>,
    /// The payload transformation, if any.
    #[schema(value_type = Option<Object>)]
    pub transform: Option<serde_json::Value>,
    /// The event-type version received; absent: every version.
    pub version: Option<u32>,
    /// Why Hookline disabled it (410 Gone, failing too long, a halted ordered lane); absent
    /// when enabled or disabled by a person.
    pub disabled_reason: Option<String>,
}

impl From<&v1::Endpoint> for EndpointView {
    fn from(e: &v1::Endpoint) -> Self {
        let limits = e.limits.unwrap_or_default();
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            tenant: e.tenant.clone(),
            description: e.description.clone(),
            headers: e.headers.clone().into_iter().collect(),
            auth: e.auth.as_ref().and_then(AuthView::of),
            client_certificate: e.client_certificate.as_ref().map(ClientCertificateView::of),
            filter_attributes: e.filter_attributes.clone().into_iter().collect(),
            enabled: !e.disabled,
            rate_limit: (limits.rate_per_second > 0).then(|| RateLimit {
                per_second: limits.rate_per_second,
                burst: (limits.burst > 0).then_some(limits.burst),
            }),
            max_in_flight: limits.max_in_flight,
            timeout_ms: limits.timeout_ms,
            retry_schedule: e.retry_schedule.clone(),
            permanent_statuses: e.permanent_statuses.clone(),
            ordering: Ordering::of(e.ordering()),
            lane_max_block_ms: e.lane_max_block_ms,
            on_lane_blocked: LaneBlocked::of(e.on_lane_blocked()),
            failing_since: (e.failing_since_ms > 0).then_some(e.failing_since_ms),
            failover_url: (!e.failover_url.is_empty()).then(|| e.failover_url.clone()),
            failover_after: if e.failover_after == 0 { hookline_core::failover::DEFAULT_AFTER } else { e.failover_after },
            unhealthy_since: (e.unhealthy_since_ms > 0).then_some(e.unhealthy_since_ms),
            signing: e.secrets.last().map_or(Signing::Hmac, |s| Signing::of(&s.key)),
            public_key: e.secrets.last().and_then(|s| Signing::public_key(&s.key)),
            created_at: e.created_at_ms,
            updated_at: e.updated_at_ms,
            filter: (!e.filter.is_empty()).then(|| e.filter.clone()),
            transform: serde_json::from_str(&e.transform).ok(),
            version: (e.version != 0).then_some(e.version),
            disabled_reason: (e.disabled && !e.disabled_reason.is_empty()).then(|| e.disabled_reason.clone()),
        }
    }
}

/// The endpoint as created, with its secret (shown here and by an explicit secret read).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointPage {
    pub data: Vec<EndpointView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
    /// With `stats_window_ms`: each listed endpoint's stats over that window, by id.
    pub stats: Option<BTreeMap<String, StatsView>>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Return items after this id.
    pub after: Option<String>,
    /// Only this tenant's items.
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EndpointPageQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Return endpoints after this id.
    pub after: Option<String>,
    /// Only this tenant's endpoints.
    pub tenant: Option<String>,
    /// Also each listed endpoint's stats over this window (ms, up to 24 h), in `stats`.
    #[param(minimum = 1, maximum = 86400000)]
    pub stats_window_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretView {
    /// The secret that now signs, `whsec_...` or `whsk_...`.
    pub secret: String,
    /// For an ed25519 secret: the `whpk_` public key receivers verify with.
    pub public_key: Option<String>,
    /// Until when the previous secret also signs (rotation window), if any.
    pub previous_expires_at: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RotateQuery {
    /// How long the old secret keeps signing, in ms (default `api.rotation_grace_ms`).
    pub grace_period_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestEvent {
    /// Event type, e.g. `order.created`: dot-separated segments of letters, digits, `_`, `-`.
    #[serde(rename = "type")]
    #[schema(pattern = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length = 256, example = "order.created")]
    pub event_type: String,
    /// The webhook body: any JSON, delivered exactly as sent here.
    #[schema(value_type = Object)]
    pub data: Box<serde_json::value::RawValue>,
    /// Event id (default: a new `evt_...`); a repeated id within the idempotency window is
    /// accepted once. Printable ASCII without spaces.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,256}$")]
    pub id: Option<String>,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When it happened (default: now).
    #[serde(default)]
    pub occurred_at: Option<i64>,
    /// Events with the same key reach an endpoint with `ordering: key` one at a time, in
    /// the order they were accepted (they are produced with it as their record key).
    #[serde(default)]
    #[schema(pattern = "^[!-~]{0,256}$")]
    pub ordering_key: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// 1 to 1000 events.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<IngestEvent>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AcceptedBatch {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    /// Type of the test event (default `hookline.test`).
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// Body of the test event (default a small JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub attempt: u32,
    /// success, retryable, permanent, gone, blocked_by_policy, deferred
    pub outcome: String,
    /// HTTP status, 0 when no response arrived.
    pub status: u32,
    pub latency_ms: u32,
    pub error: String,
    pub at: i64,
    /// The URL the request went to (the endpoint's `url` or its `failover_url`); empty for
    /// a deferral and in records of older senders.
    pub url: String,
    /// When the next attempt is due (ms), if this one failed and another is scheduled.
    pub next_attempt_at: Option<i64>,
    /// The request's headers as sent; an `authorization` value shows only its scheme.
    pub request_headers: BTreeMap<String, String>,
    /// The first bytes of the response body (UTF-8, invalid bytes replaced).
    pub response_excerpt: String,
}

pub fn outcome_name(o: v1::Outcome) -> &'static str {
    match o {
        v1::Outcome::Success => "success",
        v1::Outcome::Retryable => "retryable",
        v1::Outcome::Permanent => "permanent",
        v1::Outcome::Gone => "gone",
        v1::Outcome::BlockedByPolicy => "blocked_by_policy",
        v1::Outcome::Deferred => "deferred",
        v1::Outcome::Unspecified => "unspecified",
    }
}

impl From<&v1::Attempt> for AttemptView {
    fn from(a: &v1::Attempt) -> Self {
        Self {
            event_id: a.event_id.clone(),
            endpoint_id: a.endpoint_id.clone(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            outcome: outcome_name(a.outcome()).to_owned(),
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            at: a.at_ms,
            url: a.url.clone(),
            next_attempt_at: (a.next_attempt_at_ms > 0).then_some(a.next_attempt_at_ms),
            request_headers: a.request_headers.clone(),
            response_excerpt: String::from_utf8_lossy(&a.response_excerpt).into_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptList {
    pub data: Vec<AttemptView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// At most this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Window in ms, up to 24 h (default 15 min).
    #[param(minimum = 1, maximum = 86400000)]
    pub window_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsView {
    pub endpoint_id: String,
    pub window_ms: i64,
    /// Real attempts in the window (deferrals excluded).
    pub attempts: usize,
    pub successes: usize,
    /// Successes / attempts, absent without attempts.
    pub success_rate: Option<f64>,
    pub latency_p50_ms: Option<u32>,
    pub latency_p95_ms: Option<u32>,
    pub latency_p99_ms: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DlqQuery {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub event_id: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// A reason such as `exhausted`, `endpoint_gone`, `blocked_by_policy`.
    pub reason: Option<String>,
    /// Dead at or after (ms).
    pub from: Option<i64>,
    /// Dead before (ms).
    pub to: Option<i64>,
    /// 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    /// e.g. `exhausted`, `undecodable_event`.
    pub reason: String,
    pub detail: String,
    pub attempts: u32,
    pub last_status: Option<u32>,
    pub last_error: Option<String>,
    pub dead_at: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl From<&v1::DeadLetter> for DeadLetterView {
    fn from(d: &v1::DeadLetter) -> Self {
        let delivery = d.delivery.as_ref();
        let event = delivery.and_then(|x| x.event.as_ref());
        let source = d.source.clone().unwrap_or_default();
        Self {
            event_id: event.map(|e| e.id.clone()),
            endpoint_id: delivery.map(|x| x.endpoint_id.clone()),
            event_type: event.map(|e| e.r#type.clone()),
            reason: d.reason().label().to_owned(),
            detail: d.detail.clone(),
            attempts: delivery.map_or(0, |x| x.attempt),
            last_status: d.last_attempt.as_ref().map(|a| a.status),
            last_error: d.last_attempt.as_ref().map(|a| a.error.clone()),
            dead_at: d.dead_at_ms,
            source_topic: source.topic,
            source_partition: source.partition,
            source_offset: source.offset,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetterView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Where a replay reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplaySourceName {
    /// Dead letters, delivered again from attempt 1.
    Dlq,
    /// The events topic, delivered to one endpoint (backfill).
    Events,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReplay {
    pub source: ReplaySourceName,
    /// `dlq`: only this endpoint's dead letters (default: every endpoint's). `events`:
    /// required, the endpoint to backfill; it gets the events its subscription takes.
    #[serde(default)]
    pub endpoint_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = event_types_or_empty)]
    pub event_types: Vec<String>,
    /// `dlq` only: reasons such as `exhausted`, `endpoint_gone` (default: every reason).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Records written at or after this time (ms).
    #[schema(minimum = 0)]
    pub from: i64,
    /// Records written before this time (ms; default: now).
    #[serde(default)]
    pub to: Option<i64>,
    /// Deliveries per second at most (default: `replay.default_rate_per_second`).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub rate_per_second: Option<u32>,
    /// Only this tenant's events (a portal session's jobs are always its tenant's).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `dlq` only: replay exactly the dead letters of these events (one, or a selection;
    /// at most 1,000). Empty: every dead letter the other filters take.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub event_ids: Vec<String>,
}

fn event_types_or_empty() -> ArrayBuilder {
    string_list(EVENT_TYPE_PATTERN)
        .description(Some("Only events whose type matches one of these patterns (default: no extra filter)."))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayProgress {
    /// Records of the range read so far.
    pub read: u64,
    /// Records in the range (known once the job has started).
    pub total: u64,
    /// Deliveries produced.
    pub replayed: u64,
    /// Records outside the filter.
    pub filtered: u64,
    /// Records that cannot be replayed (undecodable, endpoint deleted or disabled).
    pub unreplayable: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayView {
    pub id: String,
    pub source: ReplaySourceName,
    pub endpoint_id: Option<String>,
    pub event_types: Vec<String>,
    pub reasons: Vec<String>,
    pub tenant: Option<String>,
    pub event_ids: Vec<String>,
    pub from: i64,
    pub to: i64,
    pub rate_per_second: u32,
    /// `pending`, `running`, `completed`, `cancelled` or `failed`.
    pub state: String,
    pub cancel_requested: bool,
    pub progress: ReplayProgress,
    pub detail: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<&hookline_replay::jobs::Job> for ReplayView {
    fn from(job: &hookline_replay::jobs::Job) -> Self {
        let r = &job.request;
        let status = job.status.clone().unwrap_or_default();
        let (read, total) = hookline_replay::plan::progress(&status);
        let positive = |ms: i64| (ms > 0).then_some(ms);
        Self {
            id: r.id.clone(),
            source: if r.source() == v1::ReplaySource::Events { ReplaySourceName::Events } else { ReplaySourceName::Dlq },
            endpoint_id: (!r.endpoint_id.is_empty()).then(|| r.endpoint_id.clone()),
            event_types: r.event_types.clone(),
            reasons: r.reasons.iter().filter_map(|x| v1::DeadLetterReason::try_from(*x).ok()).map(|r| r.label().to_owned()).collect(),
            tenant: (!r.tenant.is_empty()).then(|| r.tenant.clone()),
            event_ids: r.event_ids.clone(),
            from: r.from_ms,
            to: r.to_ms,
            rate_per_second: r.rate_per_second,
            state: hookline_replay::plan::state_name(job.state()).to_owned(),
            cancel_requested: r.cancel_requested,
            progress: ReplayProgress {
                read,
                total,
                replayed: status.replayed,
                filtered: status.filtered,
                unreplayable: status.unreplayable,
            },
            detail: status.detail.clone(),
            created_at: r.created_at_ms,
            started_at: positive(status.started_at_ms),
            finished_at: positive(status.finished_at_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayList {
    /// Newest first.
    pub data: Vec<ReplayView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Filters of the event log. Events are listed newest first (by their first attempt); an
/// event no endpoint subscribes to has no attempts and is not listed.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub event_id: Option<String>,
    /// Events with a delivery to this endpoint.
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    /// `delivered`, `pending` (a retry is due) or `dead` (dead-lettered).
    pub status: Option<String>,
    /// First attempted at or after (ms).
    pub from: Option<i64>,
    /// First attempted before (ms).
    pub to: Option<i64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// One endpoint's part of an event's fan-out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub endpoint_id: String,
    /// `delivered`, `pending` or `dead`.
    pub status: String,
    /// Real attempts made (deferrals excluded).
    pub attempts: u32,
    /// HTTP status of the last attempt, 0 without a response.
    pub last_status: u32,
    pub last_attempt_at: i64,
    pub next_attempt_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventSummaryView {
    pub event_id: String,
    pub event_type: String,
    pub tenant: String,
    pub first_attempt_at: i64,
    pub last_attempt_at: i64,
    /// `dead` if a delivery is dead-lettered, else `pending` if one waits for a retry, else
    /// `delivered`.
    pub status: String,
    pub deliveries: Vec<DeliveryView>,
}

impl From<&crate::history::EventSummary> for EventSummaryView {
    fn from(e: &crate::history::EventSummary) -> Self {
        Self {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            tenant: e.tenant.clone(),
            first_attempt_at: e.first_at_ms,
            last_attempt_at: e.last_at_ms,
            status: e.status.name().to_owned(),
            deliveries: e
                .deliveries
                .iter()
                .map(|d| DeliveryView {
                    endpoint_id: d.endpoint_id.clone(),
                    status: d.status.name().to_owned(),
                    attempts: d.attempts,
                    last_status: d.last_status,
                    last_attempt_at: d.last_at_ms,
                    next_attempt_at: d.next_attempt_at_ms,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub data: Vec<EventSummaryView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Minutes back from now, 1 to 60 (default 60).
    #[param(minimum = 1, maximum = 60)]
    pub minutes: Option<usize>,
}

/// One minute of attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the minute (ms).
    pub start: i64,
    pub successes: u32,
    /// Failed real attempts (deferrals are not counted).
    pub failures: u32,
    /// Latency percentiles, as the upper bound of a histogram bucket (1, 2, 5, 10, 20, 50 ms
    /// ... 30 s).
    pub p50_ms: Option<u32>,
    pub p99_ms: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesView {
    pub bucket_ms: i64,
    /// Oldest first, one per minute, empty minutes included.
    pub buckets: Vec<SeriesPoint>,
}

impl SeriesView {
    pub fn of(points: &[crate::series::Point]) -> Self {
        Self {
            bucket_ms: 60_000,
            buckets: points
                .iter()
                .map(|p| SeriesPoint { start: p.start_ms, successes: p.successes, failures: p.failures, p50_ms: p.p50_ms, p99_ms: p.p99_ms })
                .collect(),
        }
    }
}

/// An event type seen in attempts: the console's event-type picker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypeSeen {
    pub event_type: String,
    pub tenant: String,
    /// Attempts of this type held in the API's history.
    pub attempts: u64,
    pub last_seen: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypesSeen {
    /// Most recently seen first.
    pub data: Vec<EventTypeSeen>,
}

/// Who the caller is and what it may do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeView {
    /// `token`, `portal` or `open` (`hookline dev` without tokens).
    pub kind: String,
    /// The token's configured name; the session id for a portal session.
    pub name: String,
    /// A token's scopes (`admin`, `read`, `publish`).
    pub scopes: Vec<String>,
    /// A portal session's tenant: every call is limited to it.
    pub tenant: Option<String>,
    pub permissions: Vec<crate::portal::Permission>,
    pub expires_at: Option<i64>,
}

/// A consumer-portal session to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalSession {
    /// The tenant the session sees; nothing else is reachable with it.
    #[schema(min_length = 1, max_length = 200)]
    pub tenant: String,
    /// What it may do besides `view` (always granted).
    #[serde(default)]
    pub permissions: Vec<crate::portal::Permission>,
    /// Lifetime in seconds, 60 to 86,400 (default 3,600).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 86400)]
    pub ttl_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalSessionView {
    /// The bearer token of the session (`hlps_...`). Shown once; not stored by the server.
    pub token: String,
    /// The portal's address with the token in its fragment (never sent to a server; the
    /// portal moves it into session storage and removes it from the address bar).
    pub url: String,
    pub tenant: String,
    pub permissions: Vec<crate::portal::Permission>,
    pub expires_at: i64,
}

/// A draft endpoint and an event, for a dry run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewDraft {
    pub endpoint: CreateEndpoint,
    pub event: IngestEvent,
}

/// What an endpoint would be sent for an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewView {
    /// Whether the endpoint would get the event.
    pub matches: bool,
    /// Why not, when it would not.
    pub reason: Option<String>,
    /// The exact body (after the endpoint's transformation).
    pub body: Option<String>,
    /// The headers, signature included (computed now; credentials are not shown).
    pub headers: BTreeMap<String, String>,
}
