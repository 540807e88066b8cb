//! The endpoint registry: every endpoint and its subscription, read from the compacted,
//! single-partition endpoints topic (the Kafka Connect config-topic pattern).
//!
//! [`follow`] reads the topic from its start to the high-water mark, then marks the
//! registry ready and keeps applying changes live. Roles wait for readiness before they
//! route or send, so a restarted process never routes against a partial view.

use dashmap::DashMap;
use hookline_core::config::KafkaConfig;
use hookline_core::matching::{EventKey, EventTypePattern, PatternError, Subscription, SubscriptionIndex};
use hookline_core::signing::{SecretError, SigningKey};
use hookline_proto::v1;
use hookline_proto::Message as _;
use parking_lot::RwLock;
use crate::kafka::FutureProducer;
use std::sync::Arc;

use crate::shutdown::Shutdown;

/// A broken rule of an endpoint definition, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("id: must be 1-128 chars of letters, digits, '_' or '-'")]
    BadId,
    #[error("url: {0}")]
    BadUrl(String),
    #[error("event_types: must name at least one pattern")]
    NoEventTypes,
    #[error("event_types[{0}]: {1}")]
    BadPattern(usize, PatternError),
    #[error("secrets: at least one signing secret is required")]
    NoSecrets,
    #[error("secrets[{0}]: {1}")]
    BadSecret(usize, SecretError),
    #[error("retry_schedule{0}")]
    BadSchedule(hookline_core::retry::ScheduleError),
    #[error("permanent_statuses[{0}]: {1} is not an HTTP status between 100 and 599 (2xx cannot be permanent)")]
    BadStatus(usize, u32),
    #[error("record value is not a hookline.v1.Endpoint: {0}")]
    Undecodable(String),
    #[error("record key {key:?} differs from the endpoint id {id:?}")]
    KeyMismatch { key: String, id: String },
}

struct TimedKey {
    key: SigningKey,
    not_before_ms: i64,
    expires_at_ms: i64,
}

/// One endpoint with what the hot path needs precomputed (HMAC keys, parsed patterns).
pub struct EndpointEntry {
    pub endpoint: v1::Endpoint,
    keys: Vec<TimedKey>,
}

impl std::fmt::Debug for EndpointEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointEntry").field("id", &self.endpoint.id).field("url", &self.endpoint.url).finish()
    }
}

impl EndpointEntry {
    /// Validates `endpoint` and precomputes its signing keys.
    pub fn new(endpoint: v1::Endpoint) -> Result<(Self, Subscription), EndpointError> {
        let subscription = validate(&endpoint)?;
        let keys = endpoint
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = SigningKey::from_secret(&s.key).map_err(|e| EndpointError::BadSecret(i, e))?;
                Ok(TimedKey { key, not_before_ms: s.not_before_ms, expires_at_ms: s.expires_at_ms })
            })
            .collect::<Result<Vec<_>, EndpointError>>()?;
        Ok((Self { endpoint, keys }, subscription))
    }

    /// Keys that sign a request made at `now_ms` (several during a rotation window).
    pub fn signing_keys(&self, now_ms: i64) -> impl Iterator<Item = &SigningKey> {
        self.keys
            .iter()
            .filter(move |k| k.not_before_ms <= now_ms && (k.expires_at_ms == 0 || now_ms < k.expires_at_ms))
            .map(|k| &k.key)
    }
}

/// Checks every rule of an endpoint definition and returns its subscription.
pub fn validate(endpoint: &v1::Endpoint) -> Result<Subscription, EndpointError> {
    let id_ok = (1..=128).contains(&endpoint.id.len())
        && endpoint.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(EndpointError::BadId);
    }
    let uri: http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| EndpointError::BadUrl(format!("{:?} is not a URL: {e}", endpoint.url)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(EndpointError::BadUrl(format!("{:?} must be an absolute http(s) URL", endpoint.url))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(EndpointError::BadUrl(format!("{:?} has no host", endpoint.url)));
    }
    if endpoint.event_types.is_empty() {
        return Err(EndpointError::NoEventTypes);
    }
    let patterns = endpoint
        .event_types
        .iter()
        .enumerate()
        .map(|(i, p)| EventTypePattern::parse(p).map_err(|e| EndpointError::BadPattern(i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    if endpoint.secrets.is_empty() {
        return Err(EndpointError::NoSecrets);
    }
    hookline_core::retry::RetrySchedule::parse(&endpoint.retry_schedule).map_err(EndpointError::BadSchedule)?;
    for (i, &status) in endpoint.permanent_statuses.iter().enumerate() {
        if !(100..600).contains(&status) || (200..300).contains(&status) {
            return Err(EndpointError::BadStatus(i, status));
        }
    }
    for (i, s) in endpoint.secrets.iter().enumerate() {
        SigningKey::from_secret(&s.key).map_err(|e| EndpointError::BadSecret(i, e))?;
    }
    Ok(Subscription {
        endpoint_id: endpoint.id.clone(),
        tenant: endpoint.tenant.clone(),
        patterns,
        filter_attributes: endpoint.filter_attributes.clone().into_iter().collect(),
    })
}

/// What applying one endpoints-topic record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Upserted(String),
    Removed(String),
}

/// The in-memory view of the endpoints topic, shared by every task of a process.
pub struct EndpointRegistry {
    endpoints: DashMap<String, Arc<EndpointEntry>>,
    index: RwLock<SubscriptionIndex>,
    /// How far the endpoints topic has been read.
    pub position: crate::compacted::Position,
}

impl Default for EndpointRegistry {
    fn default() -> Self {
        Self { endpoints: DashMap::new(), index: RwLock::new(SubscriptionIndex::default()), position: Default::default() }
    }
}

impl EndpointRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn get(&self, id: &str) -> Option<Arc<EndpointEntry>> {
        self.endpoints.get(id).map(|e| Arc::clone(e.value()))
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Every endpoint, sorted by id.
    pub fn all(&self) -> Vec<Arc<EndpointEntry>> {
        let mut all: Vec<_> = self.endpoints.iter().map(|e| Arc::clone(e.value())).collect();
        all.sort_by(|a, b| a.endpoint.id.cmp(&b.endpoint.id));
        all
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Enabled endpoints subscribed to `event`.
    pub fn matches(&self, event: EventKey<'_>) -> Vec<String> {
        self.index.read().matches(event)
    }

    /// Whether the (enabled) endpoint `endpoint_id` is subscribed to `event`.
    pub fn subscribed(&self, endpoint_id: &str, event: EventKey<'_>) -> bool {
        self.index.read().get(endpoint_id).is_some_and(|s| s.matches(event))
    }

    /// Applies one record of the endpoints topic: a value upserts, a tombstone removes. A
    /// disabled endpoint stays known (its deliveries are dead-lettered with that reason)
    /// but leaves the subscription index, so the router stops fanning out to it.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> Result<Applied, EndpointError> {
        let key = String::from_utf8_lossy(key).into_owned();
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            self.endpoints.remove(&key);
            self.index.write().remove(&key);
            return Ok(Applied::Removed(key));
        };
        let endpoint = v1::Endpoint::decode(value).map_err(|e| EndpointError::Undecodable(e.to_string()))?;
        if endpoint.id != key {
            return Err(EndpointError::KeyMismatch { key, id: endpoint.id });
        }
        let disabled = endpoint.disabled;
        let (entry, subscription) = EndpointEntry::new(endpoint)?;
        self.endpoints.insert(key.clone(), Arc::new(entry));
        let mut index = self.index.write();
        if disabled {
            index.remove(&key);
        } else {
            index.upsert(subscription);
        }
        Ok(Applied::Upserted(key))
    }

    pub fn mark_ready(&self) {
        self.position.mark_ready();
    }

    pub fn is_ready(&self) -> bool {
        self.position.is_ready()
    }

    /// Resolves once the registry has read the endpoints topic to its high-water mark.
    pub async fn wait_ready(&self) {
        self.position.wait_ready().await;
    }

    /// Resolves once the record at `offset` (as returned by [`put_endpoint`] or
    /// [`delete_endpoint`]) has been applied.
    pub async fn wait_applied(&self, offset: i64) {
        self.position.wait_applied(offset).await;
    }
}

/// Reads the endpoints topic into `registry` until `shutdown`: first to the high-water
/// mark (then the registry is ready), then live.
pub async fn follow(
    cfg: &KafkaConfig,
    topic: &str,
    client_id: &str,
    registry: Arc<EndpointRegistry>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let loaded = Arc::clone(&registry);
    let apply = |key: &[u8], value: Option<&[u8]>, offset: i64| {
        match registry.apply(key, value) {
            Ok(applied) => tracing::debug!(?applied, offset, "endpoint change applied"),
            Err(error) => tracing::warn!(%error, offset, "endpoint record skipped"),
        }
        registry.position.mark_applied(offset + 1);
    };
    let caught_up = move || {
        tracing::info!(endpoints = loaded.len(), "endpoints loaded");
        loaded.mark_ready();
    };
    crate::compacted::follow(cfg, topic, client_id, shutdown, apply, caught_up).await
}

/// Writes (creates or replaces) `endpoint` after validating it; returns, once Kafka has
/// it, the record's offset (for [`EndpointRegistry::wait_applied`]).
pub async fn put_endpoint(producer: &FutureProducer, topic: &str, endpoint: &v1::Endpoint) -> anyhow::Result<i64> {
    validate(endpoint)?;
    crate::compacted::put(producer, topic, &endpoint.id, Some(&endpoint.encode_to_vec())).await
}

/// Writes a tombstone for `id`; returns its offset.
pub async fn delete_endpoint(producer: &FutureProducer, topic: &str, id: &str) -> anyhow::Result<i64> {
    crate::compacted::put(producer, topic, id, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn endpoint(id: &str, types: &[&str]) -> v1::Endpoint {
        v1::Endpoint {
            id: id.into(),
            url: "https://example.com/hook".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            secrets: vec![v1::Secret { key: SECRET.into(), ..Default::default() }],
            ..Default::default()
        }
    }

    fn matches(r: &EndpointRegistry, t: &str) -> Vec<String> {
        let none = HashMap::new();
        r.matches(EventKey { tenant: "", event_type: t, attributes: &none })
    }

    #[test]
    fn apply_upserts_disables_and_removes() {
        let r = EndpointRegistry::default();
        let ep = endpoint("ep1", &["order.*"]);
        assert_eq!(r.apply(b"ep1", Some(&ep.encode_to_vec())), Ok(Applied::Upserted("ep1".into())));
        assert_eq!(matches(&r, "order.created"), ["ep1"]);
        let mut disabled = ep.clone();
        disabled.disabled = true;
        r.apply(b"ep1", Some(&disabled.encode_to_vec())).expect("valid");
        assert!(matches(&r, "order.created").is_empty());
        assert!(r.get("ep1").is_some_and(|e| e.endpoint.disabled));
        assert_eq!(r.apply(b"ep1", None), Ok(Applied::Removed("ep1".into())));
        assert!(r.get("ep1").is_none());
    }

    #[test]
    fn bad_records_are_refused_with_the_field() {
        let r = EndpointRegistry::default();
        assert!(matches!(r.apply(b"x", Some(b"\xff\xff")), Err(EndpointError::Undecodable(_))));
        let ep = endpoint("ep1", &["order.*"]);
        assert!(matches!(r.apply(b"other", Some(&ep.encode_to_vec())), Err(EndpointError::KeyMismatch { .. })));
        let bad = endpoint("ep1", &["order..x"]);
        assert!(matches!(r.apply(b"ep1", Some(&bad.encode_to_vec())), Err(EndpointError::BadPattern(0, _))));
        let mut bad_url = endpoint("ep1", &["a"]);
        bad_url.url = "ftp://example.com".into();
        assert!(matches!(validate(&bad_url), Err(EndpointError::BadUrl(_))));
        let mut no_secret = endpoint("ep1", &["a"]);
        no_secret.secrets.clear();
        assert_eq!(validate(&no_secret).map(|_| ()), Err(EndpointError::NoSecrets));
        assert!(r.is_empty());
    }

    #[test]
    fn signing_keys_follow_validity_windows() {
        let mut ep = endpoint("ep1", &["a"]);
        ep.secrets[0].expires_at_ms = 2_000;
        ep.secrets.push(v1::Secret { key: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), not_before_ms: 1_000, expires_at_ms: 0 });
        let (entry, _) = EndpointEntry::new(ep).expect("valid");
        assert_eq!(entry.signing_keys(500).count(), 1);
        assert_eq!(entry.signing_keys(1_500).count(), 2);
        assert_eq!(entry.signing_keys(2_000).count(), 1);
    }
}
