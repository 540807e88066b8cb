//! Endpoint authentication beyond signatures, as pure logic: the rules an `EndpointAuth`
//! must follow, the `Authorization` value of basic and bearer auth, and OAuth2 client
//! credentials: reading a token response, the per-endpoint [`TokenCache`] (when a token is
//! still good, when it must be fetched again, forgetting it after a 401), how a failure of
//! the token endpoint is classified, and the single retry after a 401.
//!
//! The sender does the HTTP exchanges (`hookline_sender::auth`); the clock is a parameter.
//! Nothing here formats a secret into an error or a `Debug` output.

use crate::outcome::{Class, MAX_RETRY_AFTER};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hookline_proto::v1;
use hookline_proto::v1::endpoint_auth::Kind;
use std::time::{Duration, Instant};

/// A token is fetched again this long before it expires (or at 90% of a shorter life),
/// so a request never leaves with a token that expires on the way.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// The life of a token whose response has no `expires_in`: it is fetched again after this,
/// or sooner if the endpoint answers 401.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Longest a token is cached, whatever `expires_in` says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A broken rule of an endpoint's `auth`, naming the field (`auth.<kind>.<field>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth: must name a kind (basic, bearer or oauth2)")]
    NoKind,
    #[error("auth.{0}: is required")]
    Missing(&'static str),
    #[error("auth.basic.username: must not contain ':' (RFC 7617)")]
    ColonInUsername,
    #[error("auth.{0}: must be visible ASCII without spaces or control characters")]
    NotHeaderSafe(&'static str),
    #[error("auth.{0}: must not contain control characters")]
    ControlCharacters(&'static str),
    #[error("auth.oauth2.token_url: must be an absolute http(s) URL with a host")]
    BadTokenUrl,
}

/// Checks every rule of `auth` (clear values).
pub fn validate(auth: &v1::EndpointAuth) -> Result<(), AuthError> {
    match auth.kind.as_ref().ok_or(AuthError::NoKind)? {
        Kind::Basic(b) => {
            require("basic.username", &b.username)?;
            require("basic.password", &b.password)?;
            if b.username.contains(':') {
                return Err(AuthError::ColonInUsername);
            }
            no_controls("basic.username", &b.username)?;
            no_controls("basic.password", &b.password)
        }
        Kind::Bearer(b) => {
            require("bearer.token", &b.token)?;
            token68("bearer.token", &b.token)
        }
        Kind::Oauth2(o) => {
            require("oauth2.token_url", &o.token_url)?;
            require("oauth2.client_id", &o.client_id)?;
            require("oauth2.client_secret", &o.client_secret)?;
            let host = o
                .token_url
                .strip_prefix("https://")
                .or_else(|| o.token_url.strip_prefix("http://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
            if host.is_none_or(|h| h.is_empty() || h.starts_with(':')) {
                return Err(AuthError::BadTokenUrl);
            }
            for (field, value) in [
                ("oauth2.token_url", &o.token_url),
                ("oauth2.client_id", &o.client_id),
                ("oauth2.client_secret", &o.client_secret),
                ("oauth2.scope", &o.scope),
                ("oauth2.audience", &o.audience),
            ] {
                no_controls(field, value)?;
            }
            Ok(())
        }
    }
}

fn require(field: &'static str, value: &str) -> Result<(), AuthError> {
    if value.is_empty() {
        Err(AuthError::Missing(field))
    } else {
        Ok(())
    }
}

fn no_controls(field: &'static str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(char::is_control) {
        Err(AuthError::ControlCharacters(field))
    } else {
        Ok(())
    }
}

fn token68(field: &'static str, value: &str) -> Result<(), AuthError> {
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(AuthError::NotHeaderSafe(field))
    }
}

/// `Basic base64(username:password)` (RFC 7617, UTF-8).
pub fn basic_authorization(username: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

/// `Bearer <token>` (RFC 6750).
pub fn bearer_authorization(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token granted by a token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    /// `expires_in`, if the response said.
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("access_token", &"<redacted>").field("expires_in", &self.expires_in).finish()
    }
}

/// Why a token endpoint's answer gave no token. The texts never hold a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("oauth2 token endpoint answered HTTP {status}{}", oauth_error(.error))]
    Status { status: u16, error: Option<String>, retry_after: Option<Duration> },
    #[error("oauth2 token endpoint: {0}")]
    Unreachable(String),
    #[error("oauth2 token endpoint timed out after {0} ms")]
    TimedOut(u128),
    #[error("oauth2 token endpoint blocked by policy: {0}")]
    Blocked(String),
    #[error("oauth2 token endpoint answered 2xx without a usable token: {0}")]
    BadResponse(&'static str),
    /// A value the rules let through but a header cannot carry (not expected).
    #[error("auth: {0} cannot be sent in a header")]
    Unsendable(&'static str),
}

fn oauth_error(error: &Option<String>) -> String {
    error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
}

impl TokenError {
    /// What the failed attempt is: 5xx, 408, 429, timeouts and connection errors are
    /// retryable (the delivery goes on through its retry schedule); other 4xx and a 2xx
    /// without a token are permanent, since only fixing the endpoint's `auth` helps (the
    /// delivery is dead-lettered and can be replayed after the fix); a token URL that
    /// resolves to a refused address is blocked by policy.
    pub fn class(&self) -> Class {
        match self {
            Self::Status { status, retry_after, .. } => match status {
                408 | 429 | 500..=599 => Class::Retryable { retry_after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)) },
                _ => Class::Permanent,
            },
            Self::Unreachable(_) | Self::TimedOut(_) => Class::Retryable { retry_after: None },
            Self::Blocked(_) => Class::BlockedByPolicy,
            Self::BadResponse(_) | Self::Unsendable(_) => Class::Permanent,
        }
    }
}

/// The `error` code of an RFC 6749 §5.2 error body (`invalid_client`, ...), if it is one;
/// only codes of safe characters are kept, so nothing else of the body reaches a record.
pub fn oauth_error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.as_str()?;
    let safe = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    safe.then(|| code.to_owned())
}

/// Reads a successful token response (RFC 6749 §5.1): `access_token`, a `token_type` of
/// `bearer` (any case, or absent) and `expires_in` in seconds (a number or a numeric string).
pub fn parse_grant(body: &[u8]) -> Result<Grant, TokenError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| TokenError::BadResponse("the body is not JSON"))?;
    let access_token = value
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::BadResponse("no access_token"))?;
    if token68("", access_token).is_err() {
        return Err(TokenError::BadResponse("access_token has characters a header cannot carry"));
    }
    match value.get("token_type").and_then(serde_json::Value::as_str) {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(TokenError::BadResponse("token_type is not bearer")),
    }
    let expires_in = match value.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    Ok(Grant { access_token: access_token.to_owned(), expires_in: expires_in.map(Duration::from_secs) })
}

/// When a token granted at `now` should be fetched again: [`REFRESH_MARGIN`] before it
/// expires, or at 90% of its life if that is shorter; a token of no life is not kept.
pub fn refresh_at(now: Instant, expires_in: Option<Duration>) -> Instant {
    let life = expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).min(MAX_TOKEN_LIFETIME);
    let margin = REFRESH_MARGIN.min(life / 10);
    now + (life - margin)
}

/// One endpoint's OAuth2 token, shared by its deliveries. The sender holds it behind a
/// lock while it fetches, so concurrent attempts wait for one fetch instead of each
/// asking the token endpoint.
#[derive(Default)]
pub struct TokenCache {
    token: Option<(String, Instant)>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("refresh_at", &self.token.as_ref().map(|(_, at)| at)).finish()
    }
}

impl TokenCache {
    /// The cached token if it is still good at `now`; `None`: fetch one.
    pub fn valid(&self, now: Instant) -> Option<&str> {
        self.token.as_ref().filter(|(_, at)| now < *at).map(|(t, _)| t.as_str())
    }

    /// Keeps `grant` (fetched at `now`) and returns its token.
    pub fn store(&mut self, grant: Grant, now: Instant) -> &str {
        let at = refresh_at(now, grant.expires_in);
        &self.token.insert((grant.access_token, at)).0
    }

    /// The endpoint answered 401 to `token`: forget it, unless another attempt has already
    /// replaced it with a fresh one (then that one is used, and no second fetch happens).
    pub fn reject(&mut self, token: &str) {
        if self.token.as_ref().is_some_and(|(t, _)| t == token) {
            self.token = None;
        }
    }
}

/// What to do after an attempt that carried an OAuth2 token got `status`: a 401 fetches a
/// new token and sends the attempt once more; anything else (or a second 401) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterResponse {
    Stands,
    RefreshAndRetry,
}

pub fn after_response(status: u16, retried: bool) -> AfterResponse {
    if status == 401 && !retried {
        AfterResponse::RefreshAndRetry
    } else {
        AfterResponse::Stands
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use v1::{BasicAuth, BearerAuth, EndpointAuth, OAuth2ClientCredentials};

    fn oauth2(token_url: &str) -> EndpointAuth {
        EndpointAuth {
            kind: Some(Kind::Oauth2(OAuth2ClientCredentials {
                token_url: token_url.into(),
                client_id: "hookline".into(),
                client_secret: "s3cret".into(),
                ..Default::default()
            })),
        }
    }

    fn basic(username: &str, password: &str) -> EndpointAuth {
        EndpointAuth { kind: Some(Kind::Basic(BasicAuth { username: username.into(), password: password.into() })) }
    }

    #[test]
    fn rules_name_the_field() {
        assert_eq!(validate(&EndpointAuth::default()), Err(AuthError::NoKind));
        assert_eq!(validate(&basic("", "pw")), Err(AuthError::Missing("basic.username")));
        assert_eq!(validate(&basic("a:b", "pw")), Err(AuthError::ColonInUsername));
        assert_eq!(validate(&basic("ops", "p\nw")), Err(AuthError::ControlCharacters("basic.password")));
        assert_eq!(validate(&basic("ops", "pass word: ok")), Ok(()));
        let bearer = |t: &str| EndpointAuth { kind: Some(Kind::Bearer(BearerAuth { token: t.into() })) };
        assert_eq!(validate(&bearer("abc.def-_~+/=")), Ok(()));
        assert_eq!(validate(&bearer("a b")), Err(AuthError::NotHeaderSafe("bearer.token")));
        assert_eq!(validate(&oauth2("https://id.example.com/oauth/token")), Ok(()));
        for bad in ["ftp://id.example.com/token", "https:///token", "id.example.com/token", "https://:443/x"] {
            assert_eq!(validate(&oauth2(bad)), Err(AuthError::BadTokenUrl), "{bad}");
        }
        assert_eq!(AuthError::Missing("oauth2.client_secret").to_string(), "auth.oauth2.client_secret: is required");
    }

    #[test]
    fn basic_and_bearer_values() {
        // RFC 7617 section 2's example.
        assert_eq!(basic_authorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(bearer_authorization("t0k"), "Bearer t0k");
    }

    #[test]
    fn token_responses() {
        let grant = parse_grant(br#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#).expect("grant");
        assert_eq!(grant, Grant { access_token: "tok".into(), expires_in: Some(Duration::from_secs(3600)) });
        let grant = parse_grant(br#"{"access_token":"zq81","expires_in":"60"}"#).expect("string expiry");
        assert_eq!(grant.expires_in, Some(Duration::from_secs(60)));
        assert_eq!(parse_grant(br#"{"access_token":"tok"}"#).expect("no expiry").expires_in, None);
        assert_eq!(parse_grant(b"<html>"), Err(TokenError::BadResponse("the body is not JSON")));
        assert_eq!(parse_grant(br#"{"token_type":"bearer"}"#), Err(TokenError::BadResponse("no access_token")));
        assert_eq!(
            parse_grant(br#"{"access_token":"t","token_type":"mac"}"#),
            Err(TokenError::BadResponse("token_type is not bearer"))
        );
        assert!(!format!("{grant:?}").contains("zq81"), "Debug never shows the token");
    }

    #[test]
    fn token_endpoint_failures_are_classified_and_say_no_secret() {
        let status = |status: u16| TokenError::Status { status, error: None, retry_after: None };
        assert_eq!(status(503).class(), Class::Retryable { retry_after: None });
        assert_eq!(status(429).class(), Class::Retryable { retry_after: None });
        assert_eq!(status(400).class(), Class::Permanent);
        assert_eq!(status(401).class(), Class::Permanent);
        assert_eq!(TokenError::TimedOut(500).class(), Class::Retryable { retry_after: None });
        assert_eq!(TokenError::Blocked("loopback".into()).class(), Class::BlockedByPolicy);
        assert_eq!(
            oauth_error_code(br#"{"error":"invalid_client","error_description":"x"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error_code(br#"{"error":"<script>"}"#), None);
        let e = TokenError::Status { status: 401, error: Some("invalid_client".into()), retry_after: None };
        assert_eq!(e.to_string(), "oauth2 token endpoint answered HTTP 401 (invalid_client)");
    }

    #[test]
    fn a_401_refreshes_once() {
        assert_eq!(after_response(401, false), AfterResponse::RefreshAndRetry);
        assert_eq!(after_response(401, true), AfterResponse::Stands);
        assert_eq!(after_response(403, false), AfterResponse::Stands);
        assert_eq!(after_response(200, false), AfterResponse::Stands);
    }

    fn grant(token: &str, expires_in_secs: Option<u64>) -> Grant {
        Grant { access_token: token.into(), expires_in: expires_in_secs.map(Duration::from_secs) }
    }

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_kept_until_shortly_before_they_expire() {
        let mut cache = TokenCache::default();
        assert_eq!(cache.valid(now()), None, "nothing fetched yet");
        cache.store(grant("t1", Some(3600)), now());
        tokio::time::advance(Duration::from_secs(3569)).await;
        assert_eq!(cache.valid(now()), Some("t1"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.valid(now()), None, "30 s before expiry it is fetched again");
        // A short-lived token is refreshed at 90% of its life.
        cache.store(grant("t2", Some(10)), now());
        tokio::time::advance(Duration::from_millis(8_999)).await;
        assert_eq!(cache.valid(now()), Some("t2"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.valid(now()), None);
        // No expires_in: the default life.
        cache.store(grant("t3", None), now());
        tokio::time::advance(DEFAULT_TOKEN_LIFETIME - REFRESH_MARGIN - Duration::from_millis(1)).await;
        assert_eq!(cache.valid(now()), Some("t3"));
        // expires_in 0: used once, never kept.
        cache.store(grant("t4", Some(0)), now());
        assert_eq!(cache.valid(now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_is_forgotten_only_if_it_is_still_the_cached_one() {
        let mut cache = TokenCache::default();
        cache.store(grant("old", Some(3600)), now());
        cache.reject("old");
        assert_eq!(cache.valid(now()), None, "a 401 forces a fetch even before expiry");
        cache.store(grant("new", Some(3600)), now());
        // A second attempt that also sent "old" got its 401 late: the fresh token stays.
        cache.reject("old");
        assert_eq!(cache.valid(now()), Some("new"));
        assert!(!format!("{cache:?}").contains("new"), "Debug never shows the token");
    }

    proptest! {
        #[test]
        fn refresh_is_before_expiry_and_not_too_early(secs in 1u64..200_000) {
            let start = Instant::now();
            let at = refresh_at(start, Some(Duration::from_secs(secs)));
            let life = Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME);
            prop_assert!(at < start + life || secs == 0);
            prop_assert!(at >= start + life.mul_f64(0.9) - Duration::from_millis(1));
            prop_assert!(at + REFRESH_MARGIN >= start + life);
        }
    }
}
