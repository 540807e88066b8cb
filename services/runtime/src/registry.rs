//! The endpoint registry: every endpoint and its subscription, read from the compacted,
//! single-partition endpoints topic (the Kafka Connect config-topic pattern).
//!
//! [`follow`] reads the topic from its start to the high-water mark, then marks the
//! registry ready and keeps applying changes live. Roles wait for readiness before they
//! route or send, so a restarted process never routes against a partial view.
//!
//! Signing secrets are sealed in the topic when a key is configured ([`SecretKeys`],
//! `core::sealing`): [`put_endpoint`] seals them and [`EndpointRegistry::apply`] opens
//! them, so everything past these two edges sees clear secrets, as before sealing.

use dashmap::DashMap;
use hookline_core::config::{KafkaConfig, SecretsConfig};
use hookline_core::client_cert::{self, ClientIdentity};
use hookline_core::contracts::filter::{EvalError, EventView, Filter, FilterOutcome};
use hookline_core::contracts::transform::{EventMeta, MaskKey, Transform, TransformError};
pub use hookline_core::endpoint_rules::{contract, validate, RuleError};
use hookline_core::endpoint_rules::rules;
use hookline_core::matching::{EventKey, Subscription, SubscriptionIndex};
use hookline_core::sealing::{self, KeyError, KeyRing, SealError};
use hookline_core::signing::SigningKey;
use hookline_proto::v1;
use hookline_proto::Message as _;
use parking_lot::RwLock;
use crate::kafka::FutureProducer;
use std::sync::Arc;

use crate::shutdown::Shutdown;

/// Why the registry refuses an endpoints-topic record: a broken rule of the definition
/// (`core::endpoint_rules`), or a record it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("record value is not a hookline.v1.Endpoint: {0}")]
    Undecodable(String),
    #[error("record key {key:?} differs from the endpoint id {id:?}")]
    KeyMismatch { key: String, id: String },
    #[error("secrets[{0}]: {1}")]
    Sealed(usize, SealError),
    #[error("{0}: {1}")]
    SealedField(&'static str, SealError),
}

impl EndpointError {
    /// The key id a sealed secret names when this process cannot open it (it lacks the
    /// key, or holds other bytes under that id).
    pub fn missing_key(&self) -> Option<&str> {
        match self {
            Self::Sealed(_, error) | Self::SealedField(_, error) => error.missing_key(),
            _ => None,
        }
    }
}

/// A role cannot read an endpoint whose secrets are sealed with a key it lacks: it stops
/// rather than run without the endpoint (or with a stale copy of it).
#[derive(Debug, thiserror::Error)]
#[error(
    "endpoint {endpoint_id:?}{}: {error}; refusing to start: configure the key {key_id:?} (secrets.keys.{key_id}, \
     HOOKLINE_SECRETS__KEYS__{env_id}, or a line `{key_id}=<base64 key>` in the file named by secrets.keys_file) \
     — see docs/operations.md#secrets-at-rest",
    match others { 0 => String::new(), n => format!(" (and {n} more endpoints)") }
)]
pub struct MissingKey {
    pub endpoint_id: String,
    pub key_id: String,
    env_id: String,
    error: EndpointError,
    /// Other endpoints that cannot be read either (each may name another key).
    others: usize,
}

impl MissingKey {
    fn new(endpoint_id: String, error: EndpointError) -> Self {
        let key_id = error.missing_key().unwrap_or_default().to_owned();
        Self { endpoint_id, env_id: key_id.to_uppercase(), key_id, error, others: 0 }
    }
}

/// A `[secrets]` section that does not make a key ring.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeysError {
    #[error("secrets.keys_file: cannot read {path:?}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("secrets.keys_file {path:?}: {source}")]
    BadFile { path: String, source: KeyError },
    #[error("secrets: {0}")]
    BadRing(KeyError),
}

/// The keys that seal endpoint secrets in the endpoints topic. None configured: secrets
/// are written in clear (as before sealing), and a sealed one cannot be read.
#[derive(Debug, Clone, Default)]
pub struct SecretKeys(Option<Arc<KeyRing>>);

impl SecretKeys {
    /// No key: secrets in clear.
    pub fn clear() -> Self {
        Self(None)
    }

    pub fn new(ring: KeyRing) -> Self {
        Self(Some(Arc::new(ring)))
    }

    /// The key ring `cfg` describes, reading `keys_file` if it names one.
    pub fn load(cfg: &SecretsConfig) -> Result<Self, SecretKeysError> {
        if !cfg.is_configured() {
            return Ok(Self::clear());
        }
        let mut keys: Vec<(String, String)> = cfg.keys.iter().map(|(id, key)| (id.clone(), key.clone())).collect();
        if !cfg.keys_file.is_empty() {
            let path = cfg.keys_file.clone();
            let text = std::fs::read_to_string(&path).map_err(|source| SecretKeysError::Unreadable { path: path.clone(), source })?;
            keys.extend(sealing::parse_key_file(&text).map_err(|source| SecretKeysError::BadFile { path, source })?);
        }
        KeyRing::new(&cfg.current_key, keys).map(Self::new).map_err(SecretKeysError::BadRing)
    }

    pub fn ring(&self) -> Option<&KeyRing> {
        self.0.as_deref()
    }

    /// Whether secrets are sealed on write.
    pub fn seals(&self) -> bool {
        self.0.is_some()
    }

    /// Where an endpoint's signing secrets belong, bound into each sealed value: a secret
    /// sealed for one endpoint does not open on another.
    fn context(endpoint_id: &str) -> String {
        format!("hookline.v1.Endpoint/{endpoint_id}/secrets")
    }

    /// Opens every sealed secret of `endpoint` in place; clear ones stay as they are.
    pub fn open(&self, endpoint: &mut v1::Endpoint) -> Result<(), EndpointError> {
        let context = Self::context(&endpoint.id);
        for (i, secret) in endpoint.secrets.iter_mut().enumerate() {
            if sealing::is_sealed(&secret.key) {
                secret.key = sealing::open_if_sealed(self.ring(), &secret.key, &context).map_err(|e| EndpointError::Sealed(i, e))?;
            }
        }
        let id = endpoint.id.clone();
        for (field, value) in secret_fields(endpoint) {
            if sealing::is_sealed(value) {
                let context = Self::field_context(&id, field);
                *value = sealing::open_if_sealed(self.ring(), value, &context).map_err(|e| EndpointError::SealedField(field, e))?;
            }
        }
        Ok(())
    }

    /// Where one of the other secret fields of an endpoint belongs (`field` as in
    /// [`secret_fields`]).
    fn field_context(endpoint_id: &str, field: &str) -> String {
        format!("hookline.v1.Endpoint/{endpoint_id}/{field}")
    }

    /// `endpoint` (with clear secrets) as written to the topic: each secret sealed with
    /// the current key under a fresh random nonce, or, with no key, as it is.
    pub fn seal(&self, endpoint: &v1::Endpoint) -> v1::Endpoint {
        let mut stored = endpoint.clone();
        if let Some(ring) = self.ring() {
            let context = Self::context(&endpoint.id);
            for secret in &mut stored.secrets {
                secret.key = ring.seal(&secret.key, &context, rand::random());
            }
            let id = stored.id.clone();
            for (field, value) in secret_fields(&mut stored) {
                *value = ring.seal(value, &Self::field_context(&id, field), rand::random());
            }
        }
        stored
    }

    /// Whether the stored `endpoint` should be written again: a secret is clear, or sealed
    /// with another key than the current one. Never with no key configured.
    pub fn needs_reseal(&self, stored: &v1::Endpoint) -> bool {
        let mut stored = stored.clone();
        self.ring().is_some_and(|ring| {
            stored.secrets.iter().any(|s| ring.needs_reseal(&s.key))
                || secret_fields(&mut stored).into_iter().any(|(_, value)| ring.needs_reseal(value))
        })
    }
}

/// The secret fields of an endpoint besides its signing secrets (auth password, token or
/// client secret; the mTLS private key), named as in errors and sealing contexts. Empty
/// values are left out: there is nothing to seal.
fn secret_fields(endpoint: &mut v1::Endpoint) -> Vec<(&'static str, &mut String)> {
    use v1::endpoint_auth::Kind;
    let mut fields = Vec::new();
    match endpoint.auth.as_mut().and_then(|a| a.kind.as_mut()) {
        Some(Kind::Basic(b)) => fields.push(("auth.basic.password", &mut b.password)),
        Some(Kind::Bearer(b)) => fields.push(("auth.bearer.token", &mut b.token)),
        Some(Kind::Oauth2(o)) => fields.push(("auth.oauth2.client_secret", &mut o.client_secret)),
        None => {}
    }
    if let Some(cert) = endpoint.client_certificate.as_mut() {
        fields.push(("client_certificate.private_key_pem", &mut cert.private_key_pem));
    }
    fields.push(("mask_key", &mut endpoint.mask_key));
    fields.retain(|(_, value)| !value.is_empty());
    fields
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
    /// The mTLS client certificate, parsed and checked once per record.
    pub client_identity: Option<Arc<ClientIdentity>>,
    /// The content filter, compiled (the router evaluates it).
    pub filter: Option<Filter>,
    /// The payload transformation, compiled, and the key of its hashed masks (the sender
    /// applies it before signing).
    pub transform: Option<(Transform, Option<MaskKey>)>,
    /// Its `url` and `failover_url`, parsed once.
    targets: Vec<Target>,
}

/// One of an endpoint's URLs, parsed: its URI, and for `http` the `Host` header of a request
/// to it, which hyper would otherwise format and validate for every request (about 2% of a
/// delivery's instructions, docs/performance.md). Not for `https`: a TLS connection may
/// speak HTTP/2, where the authority travels as `:authority` and hyper sets no `Host`.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub uri: http::Uri,
    pub host: Option<http::HeaderValue>,
}

impl Target {
    fn parse(url: &str) -> Option<Self> {
        let uri: http::Uri = url.parse().ok()?;
        let host = if uri.scheme_str() == Some("http") { host_header(&uri) } else { None };
        Some(Self { url: url.to_owned(), uri, host })
    }
}

/// The `Host` header of a request to `uri`, as hyper-util's client writes it: the host, and
/// the port unless it is the scheme's default.
pub fn host_header(uri: &http::Uri) -> Option<http::HeaderValue> {
    let host = uri.host()?;
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    let value = match uri.port_u16() {
        Some(443) if secure => host.to_owned(),
        Some(80) if !secure => host.to_owned(),
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    http::HeaderValue::from_str(&value).ok()
}

impl std::fmt::Debug for EndpointEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointEntry").field("id", &self.endpoint.id).field("url", &self.endpoint.url).finish()
    }
}

impl EndpointEntry {
    /// Validates `endpoint` and precomputes its signing keys.
    pub fn new(endpoint: v1::Endpoint) -> Result<(Self, Subscription), EndpointError> {
        let subscription = rules(&endpoint)?;
        let keys = endpoint
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = SigningKey::from_secret(&s.key).map_err(|e| RuleError::BadSecret(i, e))?;
                Ok(TimedKey { key, not_before_ms: s.not_before_ms, expires_at_ms: s.expires_at_ms })
            })
            .collect::<Result<Vec<_>, RuleError>>()?;
        let client_identity = endpoint
            .client_certificate
            .as_ref()
            .map(|c| client_cert::parse(&c.certificate_pem, &c.private_key_pem).map(Arc::new))
            .transpose()
            .map_err(RuleError::BadCertificate)?;
        let contract = contract(&endpoint)?;
        let transform = contract.transform.map(|t| (t, (!endpoint.mask_key.is_empty()).then(|| MaskKey::new(endpoint.mask_key.as_bytes()))));
        let targets = [&endpoint.url, &endpoint.failover_url].into_iter().filter(|u| !u.is_empty()).filter_map(|u| Target::parse(u)).collect();
        Ok((Self { endpoint, keys, client_identity, filter: contract.filter, transform, targets }, subscription))
    }

    /// Whether the endpoint's contract takes `event` (of `version`): its version pin, then
    /// its content filter. `view` is the event as filters see it, built at most once per
    /// event and shared by every endpoint.
    pub fn admits(&self, event: &v1::Event, version: Option<u32>, view: &mut Option<EventView>) -> Admission {
        let pin = (self.endpoint.version != 0).then_some(self.endpoint.version);
        if !hookline_core::contracts::version::accepts(pin, version) {
            return Admission::OtherVersion;
        }
        let Some(filter) = &self.filter else { return Admission::Admitted };
        let view = view.get_or_insert_with(|| EventView::from_bytes(&event.id, &event.r#type, &event.tenant, &event.attributes, &event.payload));
        match filter.eval(view) {
            FilterOutcome::Match => Admission::Admitted,
            FilterOutcome::NoMatch => Admission::Filtered,
            FilterOutcome::Error(error) => Admission::FilterFailed(error),
        }
    }

    /// The event as this endpoint receives it, when its transformation changes it (`None`:
    /// as published). A transformed payload is JSON.
    pub fn transformed(&self, event: &v1::Event) -> Result<Option<v1::Event>, TransformError> {
        let Some((transform, key)) = &self.transform else { return Ok(None) };
        let meta = EventMeta { id: &event.id, event_type: &event.r#type, occurred_at_ms: event.occurred_at_ms };
        match transform.apply(&meta, &event.payload, key.as_ref())? {
            std::borrow::Cow::Borrowed(_) => Ok(None),
            std::borrow::Cow::Owned(body) => {
                Ok(Some(v1::Event { payload: body.into(), content_type: "application/json".into(), ..event.clone() }))
            }
        }
    }

    /// `url` (its `url` or `failover_url`) parsed, when it parses.
    pub fn target(&self, url: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.url == url)
    }

    /// Keys that sign a request made at `now_ms` (several during a rotation window).
    pub fn signing_keys(&self, now_ms: i64) -> impl Iterator<Item = &SigningKey> {
        self.keys
            .iter()
            .filter(move |k| k.not_before_ms <= now_ms && (k.expires_at_ms == 0 || now_ms < k.expires_at_ms))
            .map(|k| &k.key)
    }
}

/// Whether an endpoint's contract takes an event its subscription matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Admitted,
    /// The endpoint pins another version.
    OtherVersion,
    /// Its content filter is false.
    Filtered,
    /// Its content filter failed on this event (a missing field, a wrong type): no match.
    FilterFailed(EvalError),
}

/// What applying one endpoints-topic record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Upserted(String),
    Removed(String),
}

/// The in-memory view of the endpoints topic, shared by every task of a process.
pub struct EndpointRegistry {
    endpoints: DashMap<String, Arc<EndpointEntry>, hookline_core::keyed::FastHasher>,
    index: RwLock<SubscriptionIndex>,
    /// Opens the secrets of the records applied; writers seal with the same keys.
    keys: SecretKeys,
    /// How far the endpoints topic has been read.
    pub position: crate::compacted::Position,
}

impl Default for EndpointRegistry {
    fn default() -> Self {
        Self {
            endpoints: DashMap::default(),
            index: RwLock::new(SubscriptionIndex::default()),
            keys: SecretKeys::clear(),
            position: Default::default(),
        }
    }
}

impl EndpointRegistry {
    /// A registry of clear secrets (no key configured).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A registry that opens sealed secrets with `keys`.
    pub fn with_keys(keys: SecretKeys) -> Arc<Self> {
        Arc::new(Self { keys, ..Self::default() })
    }

    /// The keys this registry opens secrets with; writers pass them to [`put_endpoint`].
    pub fn secret_keys(&self) -> &SecretKeys {
        &self.keys
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
        let mut endpoint = v1::Endpoint::decode(value).map_err(|e| EndpointError::Undecodable(e.to_string()))?;
        if endpoint.id != key {
            return Err(EndpointError::KeyMismatch { key, id: endpoint.id });
        }
        self.keys.open(&mut endpoint)?;
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
///
/// An endpoint whose newest record is sealed with a key this process lacks stops the
/// loading with [`MissingKey`]: the registry never becomes ready, and the role refuses to
/// start. (An older record under a removed key, superseded but not yet compacted away, does
/// not.) Once live, such a record is logged as an error and the endpoint keeps its
/// previous version.
pub async fn follow(
    cfg: &KafkaConfig,
    topic: &str,
    client_id: &str,
    registry: Arc<EndpointRegistry>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let loaded = Arc::clone(&registry);
    let stop = shutdown.child_token();
    // While loading: endpoints whose newest record so far needs a key this process lacks.
    let unreadable = parking_lot::Mutex::new(std::collections::BTreeMap::<String, MissingKey>::new());
    let refused = std::sync::OnceLock::<MissingKey>::new();
    let apply = |key: &[u8], value: Option<&[u8]>, offset: i64| {
        let endpoint_id = String::from_utf8_lossy(key).into_owned();
        match registry.apply(key, value) {
            Ok(applied) => {
                unreadable.lock().remove(&endpoint_id);
                tracing::debug!(?applied, offset, "endpoint change applied");
            }
            Err(error) => match error.missing_key() {
                None => tracing::warn!(%error, %endpoint_id, offset, "endpoint record skipped"),
                Some(key_id) if registry.is_ready() => tracing::error!(
                    %error, %endpoint_id, key_id, offset,
                    "endpoint record sealed with a key this process lacks; the endpoint keeps its previous version"
                ),
                Some(_) => {
                    unreadable.lock().insert(endpoint_id.clone(), MissingKey::new(endpoint_id, error));
                }
            },
        }
        registry.position.mark_applied(offset + 1);
    };
    let caught_up = || {
        let mut unreadable = std::mem::take(&mut *unreadable.lock());
        if let Some((_, mut first)) = unreadable.pop_first() {
            first.others = unreadable.len();
            let _ = refused.set(first);
            stop.cancel();
            return;
        }
        tracing::info!(endpoints = loaded.len(), "endpoints loaded");
        loaded.mark_ready();
    };
    crate::compacted::follow(cfg, topic, client_id, stop.clone(), apply, caught_up).await?;
    match refused.into_inner() {
        Some(missing) => Err(missing.into()),
        None => Ok(()),
    }
}

/// Writes (creates or replaces) `endpoint` after validating it, its secrets sealed with
/// the current key of `keys` (a secret given sealed is opened and sealed again, so it ends
/// under the current key); returns, once Kafka has it, the record's offset (for
/// [`EndpointRegistry::wait_applied`]).
pub async fn put_endpoint(
    producer: &FutureProducer,
    topic: &str,
    keys: &SecretKeys,
    endpoint: &v1::Endpoint,
) -> anyhow::Result<i64> {
    let mut clear = endpoint.clone();
    keys.open(&mut clear)?;
    validate(&clear)?;
    let stored = keys.seal(&clear);
    crate::compacted::put(producer, topic, &endpoint.id, Some(&stored.encode_to_vec())).await
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
    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_the_schemes_default() {
        let host = |url: &str| host_header(&url.parse().expect("uri")).map(|h| h.to_str().expect("ascii").to_owned());
        assert_eq!(host("https://hooks.example.com/in").as_deref(), Some("hooks.example.com"));
        assert_eq!(host("https://hooks.example.com:443/in").as_deref(), Some("hooks.example.com"));
        assert_eq!(host("http://hooks.example.com:80/in").as_deref(), Some("hooks.example.com"));
        assert_eq!(host("http://hooks.example.com:443/in").as_deref(), Some("hooks.example.com:443"));
        assert_eq!(host("https://hooks.example.com:8443/in").as_deref(), Some("hooks.example.com:8443"));
        assert_eq!(host("http://[::1]:9200/ep1").as_deref(), Some("[::1]:9200"));
        assert_eq!(host("http://user:pw@127.0.0.1:9200/x").as_deref(), Some("127.0.0.1:9200"), "never the userinfo");
        assert_eq!(host("/relative"), None);
    }

    #[test]
    fn an_endpoints_urls_are_parsed_once() {
        let mut e = endpoint("ep", &["*"]);
        e.url = "https://a.example.com/in".into();
        e.failover_url = "http://b.example.com:8080/in".into();
        let (entry, _) = EndpointEntry::new(e).expect("valid");
        let target = entry.target("http://b.example.com:8080/in").expect("the failover url");
        assert_eq!((target.uri.path(), target.host.as_ref().map(|h| h.as_bytes())), ("/in", Some(&b"b.example.com:8080"[..])));
        let https = entry.target("https://a.example.com/in").expect("the url");
        assert!(https.host.is_none(), "https may be HTTP/2: hyper sets the authority there");
        assert!(entry.target("https://elsewhere.example.com/").is_none());
    }

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
        let refused = r.apply(b"ep1", Some(&bad.encode_to_vec())).expect_err("bad pattern");
        assert!(matches!(refused, EndpointError::Rule(RuleError::BadPattern(0, _))), "{refused:?}");
        assert!(refused.to_string().starts_with("event_types[0]: "), "{refused}");
        assert!(r.is_empty());
    }

    fn keys(current: &str) -> SecretKeys {
        let ring = KeyRing::new(current, [("k1", K1), ("k2", K2)]);
        SecretKeys::new(ring.expect("ring"))
    }

    #[test]
    fn sealed_secrets_are_opened_on_apply_and_only_for_their_endpoint() {
        let keys = keys("k1");
        let r = EndpointRegistry::with_keys(keys.clone());
        let stored = keys.seal(&endpoint("ep1", &["order.*"]));
        assert!(stored.secrets[0].key.starts_with("hlenc:v1:k1:"));
        let bytes = stored.encode_to_vec();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "the record never holds the clear secret");
        assert_eq!(r.apply(b"ep1", Some(&bytes)), Ok(Applied::Upserted("ep1".into())));
        assert_eq!(r.get("ep1").expect("applied").endpoint.secrets[0].key, SECRET, "readers see the clear secret");
        // The same sealed secret on another endpoint does not open.
        let mut copied = endpoint("ep2", &["order.*"]);
        copied.secrets = stored.secrets.clone();
        let refused = r.apply(b"ep2", Some(&copied.encode_to_vec())).expect_err("bound to ep1");
        assert_eq!(refused, EndpointError::Sealed(0, SealError::DoesNotOpen { key_id: "k1".into() }));
        assert!(r.get("ep2").is_none());
    }

    #[test]
    fn a_key_this_process_lacks_is_named_with_the_setting_to_add() {
        let stored = keys("k2").seal(&endpoint("ep1", &["a"]));
        let clear = EndpointRegistry::default();
        let error = clear.apply(b"ep1", Some(&stored.encode_to_vec())).expect_err("no key configured");
        assert_eq!(error.missing_key(), Some("k2"));
        assert_eq!(
            MissingKey::new("ep1".into(), error).to_string(),
            "endpoint \"ep1\": secrets[0]: is sealed with key \"k2\", which is not configured; refusing to start: \
             configure the key \"k2\" (secrets.keys.k2, HOOKLINE_SECRETS__KEYS__K2, or a line `k2=<base64 key>` in \
             the file named by secrets.keys_file) — see docs/operations.md#secrets-at-rest"
        );
        // A bad record that no key would fix is not a missing key.
        assert_eq!(EndpointError::Rule(RuleError::NoSecrets).missing_key(), None);
    }

    #[test]
    fn writing_again_reseals_with_the_current_key_and_never_twice() {
        let old = keys("k1").seal(&endpoint("ep1", &["a"]));
        let rotated = keys("k2");
        assert!(rotated.needs_reseal(&old));
        assert!(rotated.needs_reseal(&endpoint("ep1", &["a"])), "a clear secret needs sealing");
        assert!(!SecretKeys::clear().needs_reseal(&endpoint("ep1", &["a"])), "no key: clear is as it should be");
        // What put_endpoint does with a secret given sealed: open, then seal under the current key.
        let mut clear = old.clone();
        rotated.open(&mut clear).expect("k1 still opens");
        assert_eq!(clear.secrets[0].key, SECRET);
        let resealed = rotated.seal(&clear);
        assert!(resealed.secrets[0].key.starts_with("hlenc:v1:k2:") && !rotated.needs_reseal(&resealed));
        assert_ne!(rotated.seal(&clear).secrets[0].key, resealed.secrets[0].key, "a fresh nonce every time");
    }

    #[test]
    fn the_key_file_joins_the_inline_keys() {
        let dir = std::env::temp_dir().join(format!("hookline-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keys");
        std::fs::write(&file, format!("# mounted from a Secret\nk2={K2}\n")).expect("write");
        let mut cfg = SecretsConfig { current_key: "k2".into(), keys_file: file.display().to_string(), ..Default::default() };
        cfg.keys.insert("k1".into(), K1.into());
        let loaded = SecretKeys::load(&cfg).expect("valid");
        assert_eq!(loaded.ring().map(|r| r.ids().collect::<Vec<_>>()), Some(vec!["k1", "k2"]));
        cfg.keys_file = dir.join("missing").display().to_string();
        let error = SecretKeys::load(&cfg).expect_err("no file").to_string();
        assert!(error.starts_with("secrets.keys_file: cannot read"), "{error}");
        std::fs::write(&file, "k2 AgIC\n").expect("write");
        cfg.keys_file = file.display().to_string();
        let error = SecretKeys::load(&cfg).expect_err("bad line").to_string();
        assert!(error.ends_with("line 1: expected `<key id>=<base64 key>`"), "{error}");
        assert!(!SecretKeys::load(&SecretsConfig::default()).expect("clear").seals());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn with_auth(id: &str, kind: v1::endpoint_auth::Kind) -> v1::Endpoint {
        v1::Endpoint { auth: Some(v1::EndpointAuth { kind: Some(kind) }), ..endpoint(id, &["a"]) }
    }

    #[test]
    fn auth_secrets_and_client_keys_are_sealed_like_signing_secrets() {
        use v1::endpoint_auth::Kind;
        let keys = keys("k1");
        let r = EndpointRegistry::with_keys(keys.clone());
        let kinds = [
            Kind::Basic(v1::BasicAuth { username: "ops".into(), password: "pw-clear-1".into() }),
            Kind::Bearer(v1::BearerAuth { token: "pw-clear-1".into() }),
            Kind::Oauth2(v1::OAuth2ClientCredentials {
                token_url: "https://id.example.com/token".into(),
                client_id: "hookline".into(),
                client_secret: "pw-clear-1".into(),
                ..Default::default()
            }),
        ];
        for kind in kinds {
            let mut clear = with_auth("ep1", kind);
            clear.client_certificate = Some(v1::ClientCertificate {
                certificate_pem: include_str!("../../core/src/testdata/client-a.pem").into(),
                private_key_pem: include_str!("../../core/src/testdata/client-a.key").into(),
            });
            let stored = keys.seal(&clear);
            let bytes = stored.encode_to_vec();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("pw-clear-1") && !text.contains("PRIVATE KEY"), "{text}");
            assert!(!keys.needs_reseal(&stored) && keys.needs_reseal(&clear));
            r.apply(b"ep1", Some(&bytes)).expect("opens");
            let applied = r.get("ep1").expect("applied");
            assert_eq!(applied.endpoint, clear, "readers see the clear values");
            assert!(applied.client_identity.is_some());
            // A sealed password is bound to its endpoint.
            let copied = v1::Endpoint { id: "ep2".into(), secrets: clear.secrets.clone(), ..stored.clone() };
            let refused = r.apply(b"ep2", Some(&copied.encode_to_vec())).expect_err("bound to ep1");
            assert!(matches!(refused, EndpointError::SealedField(_, SealError::DoesNotOpen { .. })), "{refused:?}");
            assert_eq!(refused.missing_key(), Some("k1"));
        }
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
