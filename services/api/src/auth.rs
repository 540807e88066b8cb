//! Bearer-token authentication with scopes. Tokens are configured as the hex SHA-256 of the
//! token, compared in constant time, and never logged (the token's name is).

use crate::problem::Problem;
use axum::http::{HeaderMap, StatusCode};
use crate::portal::{Permission, Session, SessionKey};
pub use hookline_core::config::Scope;
use hookline_core::config::{TokenConfig, TokenDigest};
use subtle::ConstantTimeEq;

struct Token {
    name: String,
    digest: TokenDigest,
    scopes: Vec<Scope>,
}

/// The configured tokens and the portal-session key; or none at all (`hookline dev`
/// without tokens: open, with a warning).
pub struct Auth {
    tokens: Vec<Token>,
    open: bool,
    sessions: SessionKey,
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// `hookline dev` without tokens.
    Open,
    /// An API token (by its configured name) and its scopes.
    Token { name: String, scopes: Vec<Scope> },
    /// A consumer-portal session: one tenant, some permissions.
    Portal(Session),
}

/// What an authorized request may see. Handlers scope every read and write with it: a portal
/// session sees its own tenant's data only, whatever it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub caller: Caller,
}

impl Access {
    /// The only tenant visible, for a portal session; `None` sees every tenant.
    pub fn tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Portal(session) => Some(&session.tenant),
            _ => None,
        }
    }

    pub fn sees(&self, tenant: &str) -> bool {
        self.tenant().is_none_or(|t| t == tenant)
    }

    /// The tenant a list is filtered to: `asked`, or a portal session's own tenant whatever
    /// it asked for (403 when it asks for another).
    pub fn tenant_filter(&self, asked: Option<String>) -> Result<Option<String>, Problem> {
        match (self.tenant(), asked) {
            (Some(own), Some(asked)) if asked != own => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this portal session sees tenant {own:?} only"),
            )),
            (Some(own), _) => Ok(Some(own.to_owned())),
            (None, asked) => Ok(asked),
        }
    }
}


impl Auth {
    /// Tokens, and the key portal sessions are signed with.
    pub fn new(tokens: &[TokenConfig], sessions: SessionKey) -> Self {
        let tokens = tokens.iter().map(|t| Token { name: t.name.clone(), digest: t.sha256, scopes: t.scopes.clone() }).collect();
        Self { tokens, open: false, sessions }
    }

    /// No authentication for tokens: only for `hookline dev` on a laptop. Portal sessions
    /// are still checked (a session is a tenant's, even on a laptop).
    pub fn open(sessions: SessionKey) -> Self {
        Self { tokens: Vec::new(), open: true, sessions }
    }

    pub fn sessions(&self) -> &SessionKey {
        &self.sessions
    }

    /// Checks the `Authorization` header: a token with `scope` (or admin), or a portal
    /// session holding `permission` (routes a portal may not use pass `None`). 401 without
    /// valid credentials, 403 with valid ones that lack the scope or permission.
    pub fn check(&self, headers: &HeaderMap, scope: Scope, permission: Option<Permission>, now_ms: i64) -> Result<Access, Problem> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        if let Some(token) = presented.filter(|t| SessionKey::is_session(t)) {
            let session = self
                .sessions
                .verify(token, now_ms)
                .map_err(|e| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
            return match permission {
                Some(p) if session.allows(p) => Ok(Access { caller: Caller::Portal(session) }),
                _ => Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "this portal session does not allow that")),
            };
        }
        if self.open {
            return Ok(Access { caller: Caller::Open });
        }
        let presented =
            presented.ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <token>"))?;
        let digest = TokenDigest::of(presented);
        // Compare against every token, so timing does not tell which one nearly matched.
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            if bool::from(token.digest.0.ct_eq(&digest.0)) {
                found = Some(token);
            }
        }
        let token = found.ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token is not valid"))?;
        if token.scopes.iter().any(|&s| s == Scope::Admin || s == scope) {
            Ok(Access { caller: Caller::Token { name: token.name.clone(), scopes: token.scopes.clone() } })
        } else {
            tracing::info!(token = %token.name, scope = scope.name(), "request refused: missing scope");
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token lacks the {:?} scope", scope.name()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(http::header::AUTHORIZATION, format!("Bearer {t}").parse().expect("header"));
        }
        h
    }

    #[test]
    fn scopes_and_statuses() {
        let key = || SessionKey::new(b"k".to_vec());
        let auth = Auth::new(&[
            TokenConfig { name: "ops".into(), sha256: TokenDigest::of("admin-token"), scopes: vec![Scope::Admin] },
            TokenConfig { name: "ci".into(), sha256: TokenDigest::of("pub-token"), scopes: vec![Scope::Publish] },
        ], key());
        let status = |token: Option<&str>, scope, permission| auth.check(&headers(token), scope, permission, 0).map(|_| ()).map_err(|p| p.status);
        assert_eq!(status(Some("admin-token"), Scope::Read, None), Ok(()));
        assert_eq!(status(Some("pub-token"), Scope::Publish, None), Ok(()));
        assert_eq!(status(Some("pub-token"), Scope::Read, None), Err(403));
        assert_eq!(status(Some("nope"), Scope::Read, None), Err(401));
        assert_eq!(status(None, Scope::Read, None), Err(401));
        assert_eq!(Auth::open(key()).check(&headers(None), Scope::Admin, None, 0).map(|a| a.caller), Ok(Caller::Open));
    }

    #[test]
    fn portal_sessions_see_their_tenant_with_their_permissions() {
        let key = || SessionKey::new(b"k".to_vec());
        let session = Session { id: "s".into(), tenant: "acme".into(), permissions: vec![Permission::View], expires_at_ms: 100 };
        let token = key().issue(&session);
        for auth in [Auth::new(&[], key()), Auth::open(key())] {
            let access = auth.check(&headers(Some(&token)), Scope::Read, Some(Permission::View), 50).expect("valid");
            assert_eq!(access.tenant(), Some("acme"));
            assert!(access.sees("acme") && !access.sees("globex"));
            assert_eq!(access.tenant_filter(None), Ok(Some("acme".into())));
            assert_eq!(access.tenant_filter(Some("globex".into())).map_err(|p| p.status), Err(403));
            let status = |scope, permission, now| auth.check(&headers(Some(&token)), scope, permission, now).map(|_| ()).map_err(|p| p.status);
            assert_eq!(status(Scope::Admin, Some(Permission::Replay), 50), Err(403), "a permission it lacks");
            assert_eq!(status(Scope::Admin, None, 50), Err(403), "a route no portal may use");
            assert_eq!(status(Scope::Read, Some(Permission::View), 100), Err(401), "expired");
        }
        let other = SessionKey::new(b"other".to_vec()).issue(&session);
        assert_eq!(Auth::open(key()).check(&headers(Some(&other)), Scope::Read, Some(Permission::View), 0).map(|_| ()).map_err(|p| p.status), Err(401));
    }
}

/// Extractors that authorize a request before its body is read, so an unauthenticated
/// caller gets 401, never a validation error. Each carries the caller's [`Access`].
macro_rules! scope_extractor {
    ($(#[$doc:meta])* $name:ident, $scope:expr, $permission:expr) => {
        $(#[$doc])*
        pub struct $name(pub Access);

        impl axum::extract::FromRequestParts<std::sync::Arc<crate::AppState>> for $name {
            type Rejection = Problem;

            async fn from_request_parts(
                parts: &mut http::request::Parts,
                state: &std::sync::Arc<crate::AppState>,
            ) -> Result<Self, Self::Rejection> {
                let now = hookline_runtime::time::now_ms();
                state.auth.check(&parts.headers, $scope, $permission, now).map($name)
            }
        }
    };
}

scope_extractor!(
    /// Admin tokens only (never a portal session).
    Admin, Scope::Admin, None);
scope_extractor!(
    /// Reads: read or admin tokens, and portal sessions (their tenant only).
    Read, Scope::Read, Some(Permission::View));
scope_extractor!(
    /// Reads of the whole pipeline (throughput): tokens only.
    ReadAll, Scope::Read, None);
scope_extractor!(Publish, Scope::Publish, None);
scope_extractor!(
    /// Endpoint changes: admin tokens, portal sessions with `manage_endpoints`.
    ManageEndpoints, Scope::Admin, Some(Permission::ManageEndpoints));
scope_extractor!(
    /// Revealing a secret: admin tokens, portal sessions with `view_secrets`.
    ViewSecrets, Scope::Admin, Some(Permission::ViewSecrets));
scope_extractor!(
    /// Rotating a secret: admin tokens, portal sessions with `rotate_secrets`.
    RotateSecrets, Scope::Admin, Some(Permission::RotateSecrets));
scope_extractor!(
    /// Replays: admin tokens, portal sessions with `replay`.
    Replay, Scope::Admin, Some(Permission::Replay));
