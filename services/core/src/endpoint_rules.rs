//! The rules of an endpoint definition, in one place.
//!
//! Two levels:
//! - [`validate`]: what any endpoint record must satisfy to be used at all. The registry
//!   applies it to every record of the endpoints topic, whoever wrote it.
//! - [`check_write`]: what a writer (the API, `hookline endpoint create`) checks before it
//!   writes one, on top of [`validate`]: https unless allowed, no header Hookline sets, a
//!   failover URL that differs from the URL, and no URL that resolves only to addresses the
//!   SSRF policy refuses (the sender checks again at send time, since DNS changes).
//!
//! Pure: the addresses a host name resolves to are given by the caller
//! (`hookline_runtime::endpoint_check` resolves them), so every rule is testable without IO.

use crate::address::AddressPolicy;
use crate::client_cert::{self, CertError};
use crate::contracts::filter::{Filter, FilterError};
use crate::contracts::transform::{Transform, TransformConfig};
use crate::contracts::version::{self, VersionError};
use crate::endpoint_auth::{self, AuthError};
use crate::matching::{EventTypePattern, PatternError, Subscription};
use crate::retry::{RetrySchedule, ScheduleError};
use crate::signing::{SecretError, SigningKey};
use hookline_proto::v1;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The longest an ordered lane may be blocked before its head is skipped or it halts.
pub const MAX_LANE_BLOCK_MS: i64 = 30 * 86_400_000;

/// The most consecutive failures of the URL before deliveries go to the failover URL.
pub const MAX_FAILOVER_AFTER: u32 = 1000;

/// Headers an endpoint may not set: Hookline sets them.
pub const RESERVED_HEADERS: &[&str] = &[
    "host", "content-length", "content-type", "transfer-encoding", "connection", "user-agent",
    "webhook-id", "webhook-timestamp", "webhook-signature",
];

/// A broken rule of an endpoint definition; its text starts with the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
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
    BadSchedule(ScheduleError),
    #[error("permanent_statuses[{0}]: {1} is not an HTTP status between 100 and 599 (2xx cannot be permanent)")]
    BadStatus(usize, u32),
    #[error("lane_max_block_ms: {0} is not between 0 and 2592000000 (30 days)")]
    BadLaneBlock(i64),
    #[error("{0}")]
    BadAuth(AuthError),
    #[error("headers.{0}: cannot be set next to `auth`, which sets Authorization; remove the header or the auth")]
    AuthorizationHeader(String),
    #[error("{0}")]
    BadCertificate(CertError),
    #[error("{0}")]
    BadFilter(FilterError),
    #[error("{0}")]
    BadTransform(String),
    #[error("version: {0}")]
    BadVersion(VersionError),
    #[error("mask_key: the transformation masks with a keyed hash and the endpoint has no mask key")]
    NoMaskKey,
}

/// One broken rule, as a field and what is wrong with it (a 422's `errors[]`, a line of
/// the command line's refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

impl From<RuleError> for FieldProblem {
    fn from(error: RuleError) -> Self {
        let text = error.to_string();
        match text.split_once(": ") {
            Some((field, problem)) if !field.contains(' ') => Self::new(field, problem),
            _ => Self::new("body", text),
        }
    }
}

/// Every rule of an endpoint record, its contract included; its subscription if it passes.
pub fn validate(endpoint: &v1::Endpoint) -> Result<Subscription, RuleError> {
    let subscription = rules(endpoint)?;
    contract(endpoint)?;
    Ok(subscription)
}

/// Every rule but the contract's (compiled by [`contract`], which a reader keeps).
pub fn rules(endpoint: &v1::Endpoint) -> Result<Subscription, RuleError> {
    let id_ok = (1..=128).contains(&endpoint.id.len())
        && endpoint.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(RuleError::BadId);
    }
    let uri: http::Uri =
        endpoint.url.parse().map_err(|e| RuleError::BadUrl(format!("{:?} is not a URL: {e}", endpoint.url)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(RuleError::BadUrl(format!("{:?} must be an absolute http(s) URL", endpoint.url))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(RuleError::BadUrl(format!("{:?} has no host", endpoint.url)));
    }
    if endpoint.event_types.is_empty() {
        return Err(RuleError::NoEventTypes);
    }
    let patterns = endpoint
        .event_types
        .iter()
        .enumerate()
        .map(|(i, p)| EventTypePattern::parse(p).map_err(|e| RuleError::BadPattern(i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    if endpoint.secrets.is_empty() {
        return Err(RuleError::NoSecrets);
    }
    RetrySchedule::parse(&endpoint.retry_schedule).map_err(RuleError::BadSchedule)?;
    if !(0..=MAX_LANE_BLOCK_MS).contains(&endpoint.lane_max_block_ms) {
        return Err(RuleError::BadLaneBlock(endpoint.lane_max_block_ms));
    }
    for (i, &status) in endpoint.permanent_statuses.iter().enumerate() {
        if !(100..600).contains(&status) || (200..300).contains(&status) {
            return Err(RuleError::BadStatus(i, status));
        }
    }
    for (i, s) in endpoint.secrets.iter().enumerate() {
        SigningKey::from_secret(&s.key).map_err(|e| RuleError::BadSecret(i, e))?;
    }
    if let Some(auth) = &endpoint.auth {
        endpoint_auth::validate(auth).map_err(RuleError::BadAuth)?;
        if let Some(name) = endpoint.headers.keys().find(|h| h.eq_ignore_ascii_case("authorization")) {
            return Err(RuleError::AuthorizationHeader(name.clone()));
        }
    }
    if let Some(c) = &endpoint.client_certificate {
        client_cert::parse(&c.certificate_pem, &c.private_key_pem).map_err(RuleError::BadCertificate)?;
    }
    Ok(Subscription {
        endpoint_id: endpoint.id.clone(),
        tenant: endpoint.tenant.clone(),
        patterns,
        filter_attributes: endpoint.filter_attributes.clone().into_iter().collect(),
    })
}

/// An endpoint's event contract, compiled: its content filter and payload transformation.
pub struct Contract {
    pub filter: Option<Filter>,
    pub transform: Option<Transform>,
}

/// Compiles the endpoint's filter and transformation, and checks its version pin.
pub fn contract(endpoint: &v1::Endpoint) -> Result<Contract, RuleError> {
    let filter =
        (!endpoint.filter.trim().is_empty()).then(|| Filter::compile(&endpoint.filter)).transpose().map_err(RuleError::BadFilter)?;
    let transform = if endpoint.transform.trim().is_empty() {
        None
    } else {
        let config: TransformConfig =
            serde_json::from_str(&endpoint.transform).map_err(|e| RuleError::BadTransform(format!("transform: {e}")))?;
        let t = Transform::compile(&config).map_err(|e| RuleError::BadTransform(e.to_string()))?;
        if t.needs_key() && endpoint.mask_key.is_empty() {
            return Err(RuleError::NoMaskKey);
        }
        (!t.is_identity()).then_some(t)
    };
    if endpoint.version != 0 {
        version::check_pin(endpoint.version).map_err(RuleError::BadVersion)?;
    }
    Ok(Contract { filter, transform })
}

/// What a writer holds an endpoint to beyond [`validate`].
pub struct WritePolicy<'a> {
    /// Endpoint URLs must be https (`api.require_https`; `hookline dev` and `--dev` turn it off).
    pub require_https: bool,
    /// The sender's SSRF policy (`sender.allowed_cidrs`, `sender.allow_loopback`).
    pub addresses: &'a AddressPolicy,
}

/// The URLs Hookline connects to for this endpoint, by field: its URL, its failover URL,
/// and its OAuth2 token URL (fetched by the sender like a delivery).
pub fn target_urls(endpoint: &v1::Endpoint) -> Vec<(&'static str, &str)> {
    let mut urls = vec![("url", endpoint.url.as_str())];
    if !endpoint.failover_url.is_empty() {
        urls.push(("failover_url", endpoint.failover_url.as_str()));
    }
    if let Some(v1::endpoint_auth::Kind::Oauth2(o)) = endpoint.auth.as_ref().and_then(|a| a.kind.as_ref()) {
        urls.push(("auth.oauth2.token_url", o.token_url.as_str()));
    }
    urls
}

/// The host of `url` as a resolver takes it (without IPv6 brackets), and the address when
/// it is a literal (`[fe80::1%25eth0]`: the zone id does not change which address it is).
pub fn host_of(url: &str) -> Option<(String, Option<IpAddr>)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let literal = host.split('%').next().unwrap_or(host).parse().ok();
    Some((host.to_owned(), literal))
}

/// Every rule a writer checks, [`validate`]'s first (alone if it fails, as a record the
/// registry would refuse is not worth more detail), then the writer's own, all at once.
/// `resolved` gives the addresses of a host name (empty: it does not resolve now, which
/// passes: the sender checks at send time).
pub fn check_write(
    endpoint: &v1::Endpoint,
    policy: &WritePolicy,
    resolved: &dyn Fn(&str) -> Vec<IpAddr>,
) -> Result<Subscription, Vec<FieldProblem>> {
    let subscription = validate(endpoint).map_err(|e| vec![FieldProblem::from(e)])?;
    let mut problems = Vec::new();
    for (field, url) in target_urls(endpoint) {
        problems.extend(url_problem(field, url, policy, resolved));
    }
    if !endpoint.failover_url.is_empty() && endpoint.failover_url == endpoint.url {
        problems.push(FieldProblem::new("failover_url", "is the same as url"));
    }
    if endpoint.failover_after > MAX_FAILOVER_AFTER {
        problems.push(FieldProblem::new("failover_after", format!("must be at most {MAX_FAILOVER_AFTER} (0: the default, 3)")));
    }
    // By name, so the same endpoint always gets the same answer.
    for (name, value) in endpoint.headers.iter().collect::<BTreeMap<_, _>>() {
        problems.extend(header_problem(name, value));
    }
    if problems.is_empty() { Ok(subscription) } else { Err(problems) }
}

/// What is wrong with one URL Hookline would connect to, if anything.
fn url_problem(field: &str, url: &str, policy: &WritePolicy, resolved: &dyn Fn(&str) -> Vec<IpAddr>) -> Option<FieldProblem> {
    let Ok(uri) = url.parse::<http::Uri>() else { return Some(FieldProblem::new(field, "is not a URL")) };
    if !matches!(uri.scheme_str(), Some("https") | Some("http")) {
        return Some(FieldProblem::new(field, "must be an absolute http(s) URL"));
    }
    if policy.require_https && uri.scheme_str() != Some("https") {
        return Some(FieldProblem::new(field, "must be https"));
    }
    let (host, literal) = host_of(url)?;
    let addresses = literal.map_or_else(|| resolved(&host), |ip| vec![ip]);
    let refused: Vec<String> = addresses.iter().filter_map(|ip| policy.addresses.check(*ip).err()).map(|b| b.to_string()).collect();
    (!addresses.is_empty() && refused.len() == addresses.len()).then(|| {
        FieldProblem::new(
            field,
            format!("points at a refused address ({}); an operator can allow it with sender.allowed_cidrs", refused.join("; ")),
        )
    })
}

fn header_problem(name: &str, value: &str) -> Option<FieldProblem> {
    let problem = if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        "is set by Hookline"
    } else if http::HeaderName::try_from(name).is_err() {
        "is not a valid header name"
    } else if http::HeaderValue::try_from(value).is_err() {
        "is not a valid header value"
    } else {
        return None;
    };
    Some(FieldProblem::new(format!("headers.{name}"), problem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Cidr;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn endpoint(url: &str) -> v1::Endpoint {
        v1::Endpoint {
            id: "ep1".into(),
            url: url.into(),
            event_types: vec!["order.*".into()],
            secrets: vec![v1::Secret { key: SECRET.into(), ..Default::default() }],
            ..Default::default()
        }
    }

    fn with_auth(kind: v1::endpoint_auth::Kind) -> v1::Endpoint {
        v1::Endpoint { auth: Some(v1::EndpointAuth { kind: Some(kind) }), ..endpoint("https://example.com/hook") }
    }

    /// No name resolves: every address in these tests is a literal, or a name that passes.
    fn unresolved(_: &str) -> Vec<IpAddr> {
        Vec::new()
    }

    fn check(endpoint: &v1::Endpoint, require_https: bool, allow: Vec<Cidr>) -> Result<(), Vec<String>> {
        let addresses = AddressPolicy::new(allow, false);
        let policy = WritePolicy { require_https, addresses: &addresses };
        check_write(endpoint, &policy, &unresolved).map(|_| ()).map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_record_breaks_one_rule_at_a_time_naming_its_field() {
        let mut bad_url = endpoint("ftp://example.com");
        assert!(matches!(validate(&bad_url), Err(RuleError::BadUrl(_))));
        bad_url.url = "https://".into();
        assert!(matches!(validate(&bad_url), Err(RuleError::BadUrl(_))));
        let mut no_secret = endpoint("https://example.com");
        no_secret.secrets.clear();
        assert_eq!(validate(&no_secret).map(|_| ()), Err(RuleError::NoSecrets));
        let mut bad_pattern = endpoint("https://example.com");
        bad_pattern.event_types = vec!["order.*".into(), "order..x".into()];
        assert!(matches!(validate(&bad_pattern), Err(RuleError::BadPattern(1, _))));
        let mut bad_status = endpoint("https://example.com");
        bad_status.permanent_statuses = vec![410, 204];
        assert_eq!(validate(&bad_status).map(|_| ()), Err(RuleError::BadStatus(1, 204)));
        let mut bad_id = endpoint("https://example.com");
        bad_id.id = "a b".into();
        assert_eq!(validate(&bad_id).map(|_| ()), Err(RuleError::BadId));
        assert_eq!(
            FieldProblem::from(RuleError::BadStatus(1, 204)),
            FieldProblem::new("permanent_statuses[1]", "204 is not an HTTP status between 100 and 599 (2xx cannot be permanent)")
        );
    }

    #[test]
    fn an_authorization_header_next_to_auth_is_refused() {
        let mut ep = with_auth(v1::endpoint_auth::Kind::Bearer(v1::BearerAuth { token: "t".into() }));
        assert!(validate(&ep).is_ok());
        ep.headers.insert("Authorization".into(), "Bearer other".into());
        let error = validate(&ep).map(|_| ()).expect_err("two Authorization sources");
        assert!(error.to_string().starts_with("headers.Authorization: cannot be set next to `auth`"), "{error}");
        let bad = with_auth(v1::endpoint_auth::Kind::Basic(v1::BasicAuth { username: "a:b".into(), password: "p".into() }));
        assert_eq!(validate(&bad).map(|_| ()), Err(RuleError::BadAuth(AuthError::ColonInUsername)));
        let mut mismatch = endpoint("https://example.com");
        mismatch.client_certificate = Some(v1::ClientCertificate {
            certificate_pem: include_str!("testdata/client-a.pem").into(),
            private_key_pem: include_str!("testdata/client-b.key").into(),
        });
        assert_eq!(validate(&mismatch).map(|_| ()), Err(RuleError::BadCertificate(CertError::KeyMismatch)));
    }

    #[test]
    fn a_writer_wants_https_and_no_refused_address() {
        assert_eq!(check(&endpoint("https://93.184.215.14/hooks"), true, vec![]), Ok(()));
        assert_eq!(check(&endpoint("http://93.184.215.14/hooks"), true, vec![]), Err(vec!["url: must be https".into()]));
        assert_eq!(check(&endpoint("http://93.184.215.14/hooks"), false, vec![]), Ok(()));
        for url in ["https://127.0.0.1:9000/", "https://10.1.2.3/", "https://169.254.169.254/latest", "https://[::1]/", "https://[fe80::1%25eth0]/"] {
            let problems = check(&endpoint(url), true, vec![]).expect_err(url);
            assert!(problems.len() == 1 && problems[0].starts_with("url: points at a refused address ("), "{url}: {problems:?}");
        }
        let internal = vec!["10.20.0.0/16".parse().expect("cidr")];
        assert_eq!(check(&endpoint("https://10.20.1.2/"), true, internal.clone()), Ok(()));
        assert!(check(&endpoint("https://10.21.1.2/"), true, internal).is_err());
    }

    #[test]
    fn a_name_is_refused_only_when_every_address_is() {
        let addresses = AddressPolicy::new(vec![], false);
        let policy = WritePolicy { require_https: true, addresses: &addresses };
        let ep = endpoint("https://hooks.example.com/in");
        let loopback = |_: &str| vec![IpAddr::from([127, 0, 0, 1])];
        let mixed = |_: &str| vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([93, 184, 215, 14])];
        assert!(check_write(&ep, &policy, &loopback).is_err());
        assert!(check_write(&ep, &policy, &mixed).is_ok());
        assert!(check_write(&ep, &policy, &unresolved).is_ok(), "a name that does not resolve now may later");
    }

    #[test]
    fn failover_and_token_urls_follow_the_same_rules() {
        let mut ep = endpoint("https://93.184.215.14/a");
        ep.failover_url = "http://93.184.215.14/a".into();
        ep.failover_after = 1001;
        assert_eq!(
            check(&ep, true, vec![]),
            Err(vec!["failover_url: must be https".into(), "failover_after: must be at most 1000 (0: the default, 3)".into()])
        );
        ep.failover_url = ep.url.clone();
        ep.failover_after = 0;
        assert_eq!(check(&ep, true, vec![]), Err(vec!["failover_url: is the same as url".into()]));
        let mut oauth = with_auth(v1::endpoint_auth::Kind::Oauth2(v1::OAuth2ClientCredentials {
            token_url: "https://169.254.169.254/token".into(),
            client_id: "hookline".into(),
            client_secret: "s".into(),
            ..Default::default()
        }));
        oauth.url = "https://93.184.215.14/a".into();
        let problems = check(&oauth, true, vec![]).expect_err("metadata address");
        assert!(problems.len() == 1 && problems[0].starts_with("auth.oauth2.token_url: points at a refused address"), "{problems:?}");
    }

    #[test]
    fn headers_hookline_sets_or_http_refuses_are_named() {
        let mut ep = endpoint("https://93.184.215.14/");
        for (name, value) in [("X-Ok", "a\nb"), ("Webhook-Signature", "v1,x"), ("Bad Name", "x"), ("X-Fine", "yes"), ("host", "x")] {
            ep.headers.insert(name.into(), value.into());
        }
        assert_eq!(
            check(&ep, true, vec![]),
            Err(vec![
                "headers.Bad Name: is not a valid header name".into(),
                "headers.Webhook-Signature: is set by Hookline".into(),
                "headers.X-Ok: is not a valid header value".into(),
                "headers.host: is set by Hookline".into(),
            ])
        );
    }

    #[test]
    fn a_record_rule_comes_alone_before_the_writer_rules() {
        let mut ep = endpoint("ftp://example.com/");
        ep.headers.insert("Host".into(), "x".into());
        let problems = check(&ep, true, vec![]).expect_err("scheme");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("url: ") && problems[0].contains("must be an absolute http(s) URL"), "{problems:?}");
    }
}
