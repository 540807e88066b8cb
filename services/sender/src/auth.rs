//! Endpoint authentication at the edge: the `Authorization` value of an endpoint's
//! `auth` (basic, bearer, or an OAuth2 client-credentials token), and the token exchange.
//!
//! Tokens are fetched through the sender's one pooled client, so the token URL goes
//! through the same SSRF-checking resolver (and literal-IP check) as deliveries. Each
//! endpoint has a [`TokenCache`] (`core::endpoint_auth`) behind an async lock: concurrent
//! attempts wait for one fetch. A change of the endpoint's OAuth2 settings starts a new
//! cache. Neither the token nor the client secret is ever logged or put in an error.

use crate::client::{blocked_cause, HttpClient};
use bytes::Bytes;
use dashmap::DashMap;
use hookline_core::address::AddressPolicy;
use hookline_core::endpoint_auth::{self, Grant, TokenCache, TokenError};
use hookline_proto::v1;
use hookline_proto::v1::endpoint_auth::Kind;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Token responses read at most.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// What an attempt sends as `Authorization`.
pub enum Credential {
    None,
    /// Basic or bearer: a fixed value.
    Fixed(HeaderValue),
    /// An OAuth2 access token (kept to tell the cache which token a 401 rejected).
    OAuth2 {
        token: String,
        header: HeaderValue,
    },
}

impl Credential {
    pub fn header(&self) -> Option<&HeaderValue> {
        match self {
            Self::None => None,
            Self::Fixed(h) | Self::OAuth2 { header: h, .. } => Some(h),
        }
    }

    /// The OAuth2 token sent, if this is one.
    pub fn oauth2_token(&self) -> Option<&str> {
        match self {
            Self::OAuth2 { token, .. } => Some(token),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Credential::None",
            Self::Fixed(_) => "Credential::Fixed(<redacted>)",
            Self::OAuth2 { .. } => "Credential::OAuth2(<redacted>)",
        })
    }
}

/// One endpoint's token cache, for the OAuth2 settings it was filled with.
struct TokenSlot {
    settings: [u8; 32],
    cache: TokenCache,
}

pub struct Authenticator {
    client: HttpClient,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
    user_agent: HeaderValue,
    tokens: DashMap<String, Arc<tokio::sync::Mutex<TokenSlot>>>,
}

impl Authenticator {
    pub fn new(client: HttpClient, policy: Arc<AddressPolicy>, timeout: Duration, user_agent: HeaderValue) -> Self {
        Self { client, policy, timeout, user_agent, tokens: DashMap::new() }
    }

    /// The `Authorization` to send to `endpoint` now: fetches an OAuth2 token if none is
    /// cached (or it is about to expire).
    pub async fn credential(&self, endpoint: &v1::Endpoint) -> Result<Credential, TokenError> {
        let header = |value: String| {
            HeaderValue::try_from(value).map(|mut h| {
                h.set_sensitive(true);
                h
            })
        };
        match endpoint.auth.as_ref().and_then(|a| a.kind.as_ref()) {
            None => Ok(Credential::None),
            Some(Kind::Basic(b)) => header(endpoint_auth::basic_authorization(&b.username, &b.password))
                .map(Credential::Fixed)
                .map_err(|_| TokenError::Unsendable("the basic credentials")),
            Some(Kind::Bearer(b)) => header(endpoint_auth::bearer_authorization(&b.token))
                .map(Credential::Fixed)
                .map_err(|_| TokenError::Unsendable("the bearer token")),
            Some(Kind::Oauth2(o)) => {
                let slot = self.slot(&endpoint.id);
                let mut slot = slot.lock().await;
                // Another token URL, client or scope: the cached token is not for these settings.
                let settings = settings_fingerprint(o);
                if slot.settings != settings {
                    *slot = TokenSlot { settings, cache: TokenCache::default() };
                }
                let token = match slot.cache.valid(Instant::now()) {
                    Some(token) => token.to_owned(),
                    None => {
                        let grant = self.fetch(&endpoint.id, o).await?;
                        slot.cache.store(grant, Instant::now()).to_owned()
                    }
                };
                let header = header(endpoint_auth::bearer_authorization(&token))
                    .map_err(|_| TokenError::BadResponse("access_token has characters a header cannot carry"))?;
                Ok(Credential::OAuth2 { token, header })
            }
        }
    }

    /// The endpoint answered 401 to `token`: the next [`Self::credential`] fetches anew
    /// (unless another attempt already did).
    pub async fn rejected(&self, endpoint: &v1::Endpoint, token: &str) {
        if let Some(slot) = self.tokens.get(&endpoint.id).map(|s| Arc::clone(s.value())) {
            slot.lock().await.cache.reject(token);
        }
    }

    fn slot(&self, endpoint_id: &str) -> Arc<tokio::sync::Mutex<TokenSlot>> {
        let fresh = || Arc::new(tokio::sync::Mutex::new(TokenSlot { settings: [0; 32], cache: TokenCache::default() }));
        Arc::clone(self.tokens.entry(endpoint_id.to_owned()).or_insert_with(fresh).value())
    }

    /// Asks the token endpoint for a token (client credentials grant, client
    /// authentication by HTTP Basic as RFC 6749 section 2.3.1 prefers).
    async fn fetch(&self, endpoint_id: &str, o: &v1::OAuth2ClientCredentials) -> Result<Grant, TokenError> {
        let uri: Uri = o.token_url.parse().map_err(|_| TokenError::Unsendable("oauth2.token_url"))?;
        if let Some(ip) = uri.host().and_then(crate::attempt::literal_ip) {
            self.policy.check(ip).map_err(|blocked| TokenError::Blocked(blocked.to_string()))?;
        }
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !o.scope.is_empty() {
                form.append_pair("scope", &o.scope);
            }
            if !o.audience.is_empty() {
                form.append_pair("audience", &o.audience);
            }
            form.finish()
        };
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut client_auth =
            HeaderValue::try_from(endpoint_auth::basic_authorization(&encode(&o.client_id), &encode(&o.client_secret)))
                .map_err(|_| TokenError::Unsendable("the oauth2 client credentials"))?;
        client_auth.set_sensitive(true);
        let request = Request::post(uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, self.user_agent.clone())
            .header(AUTHORIZATION, client_auth)
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| TokenError::Unsendable("the oauth2 token request"))?;
        let started = Instant::now();
        let exchange = crate::attempt::exchange(&self.client, request, MAX_TOKEN_RESPONSE_BYTES);
        let (status, retry_after, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(TokenError::TimedOut(self.timeout.as_millis())),
            Ok(Err(error)) => {
                return Err(match blocked_cause(&error) {
                    Some(blocked) => TokenError::Blocked(blocked.to_string()),
                    None => TokenError::Unreachable(crate::attempt::error_chain(&error)),
                })
            }
            Ok(Ok(answer)) => answer,
        };
        if !(200..300).contains(&status) {
            let error = endpoint_auth::oauth_error_code(&body);
            tracing::warn!(
                endpoint_id,
                status,
                oauth_error = error.as_deref().unwrap_or(""),
                "oauth2 token request refused"
            );
            return Err(TokenError::Status { status, error, retry_after });
        }
        let grant = endpoint_auth::parse_grant(&body)?;
        tracing::debug!(
            endpoint_id,
            expires_in_s = grant.expires_in.map(|d| d.as_secs()),
            latency_ms = started.elapsed().as_millis() as u64,
            "oauth2 token fetched"
        );
        Ok(grant)
    }
}

/// Names the OAuth2 settings a cached token was fetched with (secret included, hashed).
fn settings_fingerprint(o: &v1::OAuth2ClientCredentials) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [&o.token_url, &o.client_id, &o.client_secret, &o.scope, &o.audience] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}
